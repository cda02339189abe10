"""What a batch's planning reads and produces: the stored state and the plan.

Kept apart from the planner so the parts of planning in other modules (team boards) share
the types without importing the planner.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from services.ranker.records import ControlMessage, IncomingEvent, ScoreMessage
from services.ranker.rules import NOTHING_PRUNED, DeadLetterReason, Standing
from shared.schemas.competition import Competition

UserKey = tuple[str, str]  # (competition_id, user_id)
StandingKey = tuple[str, str, str]  # (competition_id, window, user_id)


class DeadLetter(NamedTuple):
    """An event that can never apply, with the reason."""

    event: IncomingEvent
    reason: DeadLetterReason


@dataclass(frozen=True, slots=True)
class StoredState:
    """What PostgreSQL holds for the batch's events, read under the competition locks."""

    competitions: dict[str, Competition]
    known_score_ids: set[str]
    known_control_ids: set[str]
    banned: set[UserKey]
    standings: dict[StandingKey, Standing]
    pruned_before: datetime = NOTHING_PRUNED
    """Event rows older than this may have been dropped (``shared.event_partitions``)."""
    standings_versions: dict[str, int] = field(default_factory=dict)
    """The stored standings version of the batch's competitions and team boards (absent: 0,
    none stored yet); the batch writes each one it writes to Redis as this plus one."""
    entrants: set[UserKey] = field(default_factory=set)
    """The batch's users who joined their ``join_required`` competition."""
    attempts: dict[StandingKey, int] = field(default_factory=dict)
    """Applied attempts of the batch's users in ``max_attempts`` competitions, per window."""
    team_boards: dict[str, Competition] = field(default_factory=dict)
    """Per competition with a team board, the board (also in ``competitions``, by its id)."""
    refused: dict[str, DeadLetterReason] = field(default_factory=dict)
    """Scores of the batch already refused for a state-dependent reason (``not_joined``,
    ``attempts_exhausted``): the verdict stands, whatever the state is now."""
    team_members: dict[UserKey, str] = field(default_factory=dict)
    """The stored team of the batch's users and of every member of their teams (old and
    new); ``standings`` then holds all those members' standings and the teams' own."""


@dataclass
class BatchPlan:
    """The outcome of a batch: what to insert, upsert and delete, and what to report."""

    new_scores: list[ScoreMessage] = field(default_factory=list)
    new_controls: list[ControlMessage] = field(default_factory=list)
    new_bans: list[UserKey] = field(default_factory=list)
    upserts: dict[StandingKey, Standing] = field(default_factory=dict)
    deletes: set[StandingKey] = field(default_factory=set)
    final: dict[StandingKey, Standing] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    # per competition: users whose standings Redis must hold as in ``final``, with the windows
    # to write; users touched by a control event must also vanish from every other window
    touched: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(dict))
    controlled: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # attempts: the users whose stored counts a control event erased (deleted first), then
    # the absolute counts after the batch
    attempts_cleared: set[UserKey] = field(default_factory=set)
    attempts: dict[StandingKey, int] = field(default_factory=dict)
    # scores refused for a state-dependent reason: recorded so a replay decides the same
    new_refusals: list[tuple[ScoreMessage, DeadLetterReason]] = field(default_factory=list)
    # team boards: each user's new team (None: no team any more)
    team_changes: dict[UserKey, str | None] = field(default_factory=dict)
