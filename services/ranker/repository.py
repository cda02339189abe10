"""The ranker's PostgreSQL reads and writes, each one set-based statement per batch.

Multi-row ``unnest`` statements keep a batch to a handful of round trips (single-row upserts
top out near 18k events/s). Callers hold one transaction per batch and take the competition
locks first, so two rankers briefly owning the same partition during a rebalance serialise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from services.ranker.planner import BatchPlan, StandingKey, StoredState, UserKey
from services.ranker.records import ScoreMessage
from services.ranker.rules import DeadLetterReason, Standing
from shared.competitions import competition_rows_sql, competitions_from_rows
from shared.entrants import entrants_among
from shared.event_partitions import LOCK_ID, PRUNED_BEFORE_SQL, held_shared
from shared.schemas.competition import Competition
from shared.teams import TEAM_BOARD_SUFFIX, competition_of, team_board

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    DbConnection = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]


# Every statement of a batch looks rows up by key (event ids, (competition, user) pairs
# unnested from arrays) or inserts them, so probing an index per key is always the right
# plan; but PostgreSQL estimates from statistics, and a table it has not analyzed yet (a new
# week partition, or any table with autovacuum off) looks to it as if every row matched.
# Measured in the bench after its drain phase: with 230,000 events in the week's partition
# the event-id lookup scanned them all (150-300 ms per batch, growing with the partition),
# and the standings read merge-joined the whole standings index (100-160 ms for 5,000
# pairs). SET LOCAL (set_config(..., true)): rolled back with the transaction; statements
# outside a batch (rebuilds, the reconciler) keep the defaults.
#
# JIT off too: "off" makes PostgreSQL add 10^10 to the cost of any sequential scan it must
# still make (the one-row watermark table has no index to use), so every batch's read went
# far over jit_above_cost and PostgreSQL compiled it with LLVM: 8 ms of the backend's CPU per
# batch measured here (66-117 ms for a backend's first), for a statement that runs in 0.03 ms.
# A batch's statements are key lookups over tens to thousands of rows: JIT never pays there.
_INDEX_SCANS_ONLY = (
    "set_config('enable_seqscan', 'off', true),"
    " set_config('enable_hashjoin', 'off', true),"
    " set_config('enable_mergejoin', 'off', true),"
    " set_config('jit', 'off', true),"
    " set_config('TimeZone', 'UTC', true)"  # JSON times in UTC, as asyncpg's own decoding
)

# The transaction-scoped advisory locks of the competitions in $1, taken one by one in key
# order (every locker takes them in this order, so two batches cannot deadlock); one row.
_LOCKED_IN_ORDER = (
    "(SELECT count(pg_advisory_xact_lock(lock_key)) FROM ("
    " SELECT DISTINCT hashtextextended(cid, 0) AS lock_key"
    " FROM unnest($1::text[]) AS cid ORDER BY 1) AS ordered)"
)


def _lock_ids(competition_ids: Iterable[str]) -> list[str]:
    """The ids whose locks guard ``competition_ids`` (a team board's is its competition's:
    one batch writes both)."""
    return sorted({competition_of(cid) for cid in competition_ids})


async def begin_batch(connection: DbConnection, competition_ids: Iterable[str]) -> None:
    """Plan the rest of the batch's transaction for key lookups (index scans, and joins as
    nested loops from the batch's keys: ``enable_seqscan``, ``enable_hashjoin`` and
    ``enable_mergejoin`` off), take the competitions' locks, then hold the event partitions
    (:func:`shared.event_partitions.held_shared`), in one round trip.

    The first statement of every batch transaction (a round trip is ~0.1 ms of ranker CPU
    here, and a batch at 1,000 events/s holds only tens of events). The partitions are held
    after every competition lock (CASE evaluates its condition first: PostgreSQL's documented
    way to order evaluation), as when they were two statements: a batch waiting for a
    competition lock holds no partition lock that a queued ``podium prune`` could make the
    lock's holder wait behind.
    """
    await connection.execute(
        f"SELECT {_INDEX_SCANS_ONLY}, CASE WHEN {_LOCKED_IN_ORDER} >= 0 THEN {held_shared(2)} END",
        _lock_ids(competition_ids),
        LOCK_ID,
    )


async def lock_competitions(connection: DbConnection, competition_ids: Iterable[str]) -> None:
    """Take the transaction-scoped advisory locks of these competitions, in a fixed order
    (a team board's is its competition's: one batch writes both)."""
    await connection.execute(
        f"SELECT {_LOCKED_IN_ORDER}",
        _lock_ids(competition_ids),
    )


_STANDING_COLUMNS = (
    "s.competition_id, s.window_label, s.user_id, s.score, s.reached_at, s.last_event_ts"
)


def _standings_among(competitions_parameter: int, users_parameter: int) -> str:
    """FROM the standings of the (competition, user) pairs given as two parallel text arrays,
    ``$competitions_parameter`` and ``$users_parameter``."""
    return (
        "FROM standings s"
        f" JOIN unnest(${competitions_parameter}::text[], ${users_parameter}::text[])"
        " AS u(cid, uid) ON s.competition_id = u.cid AND s.user_id = u.uid"
    )


# What a batch's events depend on, in one round trip (under the locks begin_batch took): the
# watermark, which event ids are known, bans, standings and standings versions. Each part is
# an array (of rows: asyncpg decodes anonymous records into tuples), so one statement
# returns them all; every part is still a key lookup (begin_batch planned for those).
BATCH_STATE_SQL = (
    f"SELECT ({PRUNED_BEFORE_SQL}),"  # noqa: S608 - constant SQL, no input in it
    " ARRAY(SELECT event_id FROM score_events WHERE event_id = ANY($1::text[])),"
    " ARRAY(SELECT event_id FROM control_events WHERE event_id = ANY($2::text[])),"
    " ARRAY(SELECT ROW(b.competition_id, b.user_id) FROM banned_users b"
    "  JOIN unnest($3::text[], $4::text[]) AS u(cid, uid)"
    "  ON b.competition_id = u.cid AND b.user_id = u.uid),"
    f" ARRAY(SELECT ROW({_STANDING_COLUMNS}) {_standings_among(3, 4)}),"
    " ARRAY(SELECT ROW(competition_id, version) FROM standings_versions"
    "  WHERE competition_id = ANY($5::text[] ||"  # one key list: index lookups, no OR
    f"   ARRAY(SELECT id || '{TEAM_BOARD_SUFFIX}' FROM competitions"
    "    WHERE id = ANY($5::text[]) AND teams IS NOT NULL))),"
    f" {competition_rows_sql(5)}"
)
"""One statement for the batch's state: the standings versions of its competitions and of
their team boards (``team_board_id``), and the competitions themselves."""


async def load_state(
    connection: DbConnection,
    competition_ids: list[str],
    users: set[UserKey],
    score_ids: list[str],
    control_ids: list[str],
    scores: Iterable[ScoreMessage] = (),
) -> StoredState:
    """Read what the batch's events depend on: competitions, seen ids, bans, standings,
    standings versions and how far event rows were pruned; for competitions with a team
    board, the team state (``scores``: the batch's scores, for the teams they name).

    Called after :func:`begin_batch`: the partitions are held before the event ids are looked
    up (the ids are probed in every partition, dedup is by event_id whatever the event time),
    so no ``podium prune`` can drop one until the batch commits. One round trip (competitions
    and the rest in one statement) unless team boards or tournaments need more.
    """
    user_cids = [cid for cid, _ in users]
    user_ids = [user for _, user in users]
    row = await connection.fetchrow(
        BATCH_STATE_SQL, score_ids, control_ids, user_cids, user_ids, competition_ids
    )
    assert row is not None  # a SELECT without FROM: always one row
    pruned_before, known_scores, known_controls, banned, stored, versions, competition_rows = row
    competitions = competitions_from_rows(competition_rows)
    team_boards = {
        cid: team_board(competition)
        for cid, competition in competitions.items()
        if competition.teams is not None
    }
    standings = _standings_by_key(stored)
    tournaments = {
        cid
        for cid, competition in competitions.items()
        if competition.join_required or competition.max_attempts is not None
    }
    # batches without tournaments or team boards (the common case) read nothing more
    scores = list(scores) if tournaments or team_boards else ()  # read twice below
    entrants: set[UserKey] = set()
    attempts: dict[StandingKey, int] = {}
    refused: dict[str, DeadLetterReason] = {}
    if tournaments:
        entrants, attempts = await _load_tournament_state(connection, competitions, users)
        refused = await _load_refused(connection, tournaments, scores)
    team_members: dict[UserKey, str] = {}
    if team_boards:
        team_members = await _load_team_state(connection, team_boards, users, scores, standings)
        competitions.update({board.id: board for board in team_boards.values()})
    return StoredState(
        competitions=competitions,
        known_score_ids=set(known_scores),
        known_control_ids=set(known_controls),
        banned={(cid, user) for cid, user in banned},
        standings=standings,
        pruned_before=pruned_before,
        standings_versions=dict(versions),
        entrants=entrants,
        attempts=attempts,
        refused=refused,
        team_boards=team_boards,
        team_members=team_members,
    )


async def _load_team_state(
    connection: DbConnection,
    team_boards: dict[str, Competition],
    users: set[UserKey],
    scores: Iterable[ScoreMessage],
    standings: dict[StandingKey, Standing],
) -> dict[UserKey, str]:
    """The teams of the batch's users, every member of those teams and of the teams the
    batch's scores name, and (added to ``standings``) those members' standings and the teams'
    own. Three statements, only for batches of competitions with a team board."""
    batch_users = sorted((cid, user) for cid, user in users if cid in team_boards)
    rows = await connection.fetch(
        "SELECT m.competition_id, m.user_id, m.team_id FROM team_members m"
        " JOIN unnest($1::text[], $2::text[]) AS u(cid, uid)"
        " ON m.competition_id = u.cid AND m.user_id = u.uid",
        [cid for cid, _ in batch_users],
        [user for _, user in batch_users],
    )
    own_teams = {(row["competition_id"], row["user_id"]): row["team_id"] for row in rows}
    teams = {(cid, team) for (cid, _), team in own_teams.items()}
    teams.update(
        (score.competition_id, score.team_id)
        for score in scores
        if score.team_id is not None and score.competition_id in team_boards
    )
    involved = sorted(teams)
    rows = await connection.fetch(
        "SELECT m.competition_id, m.user_id, m.team_id FROM team_members m"
        " JOIN unnest($1::text[], $2::text[]) AS t(cid, team)"
        " ON m.competition_id = t.cid AND m.team_id = t.team",
        [cid for cid, _ in involved],
        [team for _, team in involved],
    )
    members = {(row["competition_id"], row["user_id"]): row["team_id"] for row in rows}
    members.update(own_teams)
    wanted = sorted(
        {key for key in members if key not in users}
        | {(team_boards[cid].id, team) for cid, team in involved}
    )
    standings.update(
        await _standings_of(connection, [cid for cid, _ in wanted], [user for _, user in wanted])
    )
    return members


async def _standings_of(
    connection: DbConnection, competition_ids: list[str], user_ids: list[str]
) -> dict[StandingKey, Standing]:
    """Every window's standing of each (competition or board, user) pair given as two
    parallel columns."""
    rows = await connection.fetch(
        f"SELECT {_STANDING_COLUMNS} {_standings_among(1, 2)}",
        competition_ids,
        user_ids,
    )
    return _standings_by_key(rows)


def _standings_by_key(rows: Iterable[Iterable[Any]]) -> dict[StandingKey, Standing]:
    """Standings by (competition, window, user), from rows of :data:`_STANDING_COLUMNS`."""
    return {
        (cid, window, user): Standing(score, reached_at, last_event_ts)
        for cid, window, user, score, reached_at, last_event_ts in rows
    }


async def _load_refused(
    connection: DbConnection, tournaments: set[str], scores: Iterable[ScoreMessage]
) -> dict[str, DeadLetterReason]:
    """Earlier verdicts on the batch's scores of the ``tournaments`` (competitions with
    ``join_required`` or ``max_attempts``)."""
    ids = [score.event_id for score in scores if score.competition_id in tournaments]
    if not ids:
        return {}
    rows = await connection.fetch(
        "SELECT event_id, reason FROM refused_events WHERE event_id = ANY($1::text[])", ids
    )
    return {row["event_id"]: DeadLetterReason(row["reason"]) for row in rows}


async def _load_tournament_state(
    connection: DbConnection, competitions: dict[str, Competition], users: set[UserKey]
) -> tuple[set[UserKey], dict[StandingKey, int]]:
    """Which of the batch's users joined their ``join_required`` competition, and the
    attempts stored for users of ``max_attempts`` competitions (every window: a control
    event erases them all)."""
    joining = [
        (cid, user)
        for cid, user in users
        if cid in competitions and competitions[cid].join_required
    ]
    counting = sorted(
        (cid, user)
        for cid, user in users
        if cid in competitions and competitions[cid].max_attempts is not None
    )
    entrants = await entrants_among(cast(asyncpg.Connection, connection), joining)
    attempts: dict[StandingKey, int] = {}
    if counting:
        rows = await connection.fetch(
            "SELECT a.competition_id, a.window_label, a.user_id, a.attempts FROM attempts a"
            " JOIN unnest($1::text[], $2::text[]) AS u(cid, uid)"
            " ON a.competition_id = u.cid AND a.user_id = u.uid",
            [cid for cid, _ in counting],
            [user for _, user in counting],
        )
        attempts = {
            (row["competition_id"], row["window_label"], row["user_id"]): row["attempts"]
            for row in rows
        }
    return entrants, attempts


# A batch's common writes in one statement: its new events, its standings upserts and its
# standings versions (data-modifying CTEs all run, to completion, whether or not the outer
# SELECT reads them; they touch three different tables, so one snapshot serves them all).
_WRITE_SQL = (
    "WITH events AS ("
    " INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
    " received_at, metadata, team_id)"
    " SELECT e, c, u, v, t, r, m, g FROM json_to_recordset($1::json)"
    " AS x(e text, c text, u text, v float8, t timestamptz, r timestamptz, m jsonb, g text)"
    " ON CONFLICT (event_id, event_ts) DO NOTHING),"
    " upserted AS ("
    " INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
    " last_event_ts)"
    " SELECT c, w, u, s, r, l FROM json_to_recordset($2::json)"
    " AS x(c text, w text, u text, s float8, r timestamptz, l timestamptz)"
    " ON CONFLICT (competition_id, window_label, user_id) DO UPDATE SET"
    " score = EXCLUDED.score, reached_at = EXCLUDED.reached_at,"
    " last_event_ts = EXCLUDED.last_event_ts, updated_at = now()),"
    " versions AS ("
    " INSERT INTO standings_versions (competition_id, version)"
    " SELECT * FROM unnest($3::text[], $4::bigint[])"
    " ON CONFLICT (competition_id) DO UPDATE SET version = EXCLUDED.version)"
    " SELECT 1"
)


def new_standings_versions(state: StoredState, competition_ids: Iterable[str]) -> dict[str, int]:
    """Each competition's standings version after this batch: the stored one plus one (a
    competition without one starts at 1). Exact because the batch holds the competition's
    lock from the read to the commit, as does everyone else who writes the version."""
    stored = state.standings_versions
    return {cid: stored.get(cid, 0) + 1 for cid in sorted(set(competition_ids))}


async def write_plan(
    connection: DbConnection, plan: BatchPlan, new_versions: dict[str, int]
) -> None:
    """Write the plan's events, bans and standings, and ``new_versions`` (competition id →
    standings version, from :func:`new_standings_versions`), inside the caller's transaction.

    The rare writes (control events, bans, refusals, attempts, teams, deleted standings) are a
    statement each, first; events, upserted standings and versions are one statement, last.
    """
    versions = sorted(new_versions.items())
    if plan.new_controls:
        await connection.execute(
            "INSERT INTO control_events (event_id, competition_id, user_id, action, received_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::timestamptz[]) ON CONFLICT (event_id) DO NOTHING",
            [event.event_id for event in plan.new_controls],
            [event.competition_id for event in plan.new_controls],
            [event.user_id for event in plan.new_controls],
            [event.action.value for event in plan.new_controls],
            [event.received_at for event in plan.new_controls],
        )
    if plan.new_bans:
        await connection.execute(
            "INSERT INTO banned_users (competition_id, user_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            [cid for cid, _ in plan.new_bans],
            [user for _, user in plan.new_bans],
        )
    if plan.new_refusals:
        await connection.execute(
            "INSERT INTO refused_events (event_id, competition_id, reason, event_ts)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT (event_id) DO NOTHING",
            [message.event_id for message, _ in plan.new_refusals],
            [message.competition_id for message, _ in plan.new_refusals],
            [reason.value for _, reason in plan.new_refusals],
            [message.ts for message, _ in plan.new_refusals],
        )
    if plan.attempts_cleared:
        cleared = sorted(plan.attempts_cleared)
        await connection.execute(
            "DELETE FROM attempts a USING unnest($1::text[], $2::text[]) AS d(cid, uid)"
            " WHERE a.competition_id = d.cid AND a.user_id = d.uid",
            [cid for cid, _ in cleared],
            [user for _, user in cleared],
        )
    if plan.attempts:
        counted = sorted(plan.attempts)
        await connection.execute(
            "INSERT INTO attempts (competition_id, window_label, user_id, attempts)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])"
            " ON CONFLICT (competition_id, user_id, window_label)"
            " DO UPDATE SET attempts = EXCLUDED.attempts",
            *_columns(counted),
            [plan.attempts[key] for key in counted],
        )
    if plan.team_changes:
        await _write_team_changes(connection, plan.team_changes)
    if plan.deletes:
        keys = sorted(plan.deletes)
        await connection.execute(
            "DELETE FROM standings s USING unnest($1::text[], $2::text[], $3::text[])"
            " AS d(cid, w, uid)"
            " WHERE s.competition_id = d.cid AND s.window_label = d.w AND s.user_id = d.uid",
            *_columns(keys),
        )
    if plan.new_scores or plan.upserts or versions:
        upserts = plan.upserts
        await connection.execute(
            _WRITE_SQL,
            _rows_json(
                {
                    "e": event.event_id,
                    "c": event.competition_id,
                    "u": event.user_id,
                    "v": event.value,
                    "t": event.ts,
                    "r": event.received_at,
                    "m": event.metadata,
                    "g": event.team_id,
                }
                for event in plan.new_scores
            ),
            _rows_json(
                {
                    "c": cid,
                    "w": window,
                    "u": user,
                    "s": upserts[(cid, window, user)].score,
                    "r": upserts[(cid, window, user)].reached_at,
                    "l": upserts[(cid, window, user)].last_event_ts,
                }
                for cid, window, user in sorted(upserts)
            ),
            [cid for cid, _ in versions],
            [version for _, version in versions],
        )


async def _write_team_changes(connection: DbConnection, changes: dict[UserKey, str | None]) -> None:
    """Users' new teams (upserted) and users out of their team (deleted)."""
    moved = sorted((key, team) for key, team in changes.items() if team is not None)
    left = sorted(key for key, team in changes.items() if team is None)
    if moved:
        await connection.execute(
            "INSERT INTO team_members (competition_id, user_id, team_id)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
            " ON CONFLICT (competition_id, user_id) DO UPDATE SET team_id = EXCLUDED.team_id",
            [cid for (cid, _), _ in moved],
            [user for (_, user), _ in moved],
            [team for _, team in moved],
        )
    if left:
        await connection.execute(
            "DELETE FROM team_members m USING unnest($1::text[], $2::text[]) AS d(cid, uid)"
            " WHERE m.competition_id = d.cid AND m.user_id = d.uid",
            [cid for cid, _ in left],
            [user for _, user in left],
        )


def _rows_json(rows: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    """Rows for ``json_to_recordset``, sent as one JSON parameter (the pool's orjson codec).

    One JSON text instead of a typed array per column: asyncpg's per-element array
    encoding was about a tenth of a batch's CPU. Floats keep their exact value (shortest
    round-trip repr, parsed by float8in) and times their microseconds and offset.
    """
    return list(rows)


def _columns(keys: list[StandingKey]) -> tuple[list[str], list[str], list[str]]:
    return (
        [cid for cid, _, _ in keys],
        [window for _, window, _ in keys],
        [user for _, _, user in keys],
    )
