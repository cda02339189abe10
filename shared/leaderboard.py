"""How leaderboards live in Redis: key names and the encoding of ranks.

Each competition's keys share the hash tag ``{<competition_id>}`` so multi-key scripts work on
Redis Cluster. Per window there are two keys:

- ``<prefix>lb:{<cid>}:<window>:z`` — a sorted set, member ``<reached_us>:<user_id>``;
- ``<prefix>lb:{<cid>}:<window>:m`` — a hash ``user_id -> member`` to find a user's member.

Rank order is always ascending ``ZRANGE`` order:

- the sorted-set score is the standing's value for ``asc`` competitions and its negation for
  ``desc`` ones, so a better score always sorts first;
- ties (equal scores) sort by member, lexicographically; the member starts with the time the
  score was reached, in microseconds since the Unix epoch as 16 zero-padded digits, so the
  user who reached the score first ranks higher; equal times fall back to the user id.

Limits: scores are IEEE-754 doubles, stored and returned exactly (Redis keeps the double and
prints it with 17 significant digits), so any finite value whose magnitude is below 2**1023
ranks correctly, and two values that differ in their last bit still rank apart. Reached times
must lie between 1970-01-01 and 2286-11-20 (16 digits of microseconds); the tie-break
resolution is one microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.schemas.competition import SortOrder

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REACHED_DIGITS = 16
MAX_REACHED_US = 10**REACHED_DIGITS - 1


def _tag(prefix: str, competition_id: str) -> str:
    return f"{prefix}lb:{{{competition_id}}}"


def ranking_key(prefix: str, competition_id: str, window: str) -> str:
    """The sorted set holding a window's ranking."""
    return f"{_tag(prefix, competition_id)}:{window}:z"


def members_key(prefix: str, competition_id: str, window: str) -> str:
    """The hash mapping user id to sorted-set member in a window."""
    return f"{_tag(prefix, competition_id)}:{window}:m"


def version_key(prefix: str, competition_id: str) -> str:
    """The counter of change messages published for a competition."""
    return f"{_tag(prefix, competition_id)}:version"


def competition_key_pattern(prefix: str, competition_id: str) -> str:
    """A SCAN pattern matching every key of one competition."""
    escaped = competition_id.replace("[", "\\[").replace("]", "\\]").replace("*", "\\*")
    return f"{_tag(prefix, escaped)}:*"


def reached_us(reached_at: datetime) -> int:
    """Microseconds since the epoch, checked against the encodable range."""
    delta = reached_at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not 0 <= micros <= MAX_REACHED_US:
        raise ValueError(f"reached time {reached_at.isoformat()} is outside 1970..2286")
    return micros


def encode_member(user_id: str, reached_at: datetime) -> str:
    """The sorted-set member of a user whose score was reached at ``reached_at``."""
    return f"{reached_us(reached_at):0{REACHED_DIGITS}d}:{user_id}"


def member_user_id(member: str | bytes) -> str:
    """The user id inside a sorted-set member."""
    text = member.decode() if isinstance(member, bytes) else member
    return text[REACHED_DIGITS + 1 :]


def redis_score(value: float, sort_order: SortOrder) -> float:
    """The sorted-set score for a standing value (negated for ``desc``)."""
    return -value if sort_order is SortOrder.DESC else value


def standing_value(score: float, sort_order: SortOrder) -> float:
    """The standing value for a sorted-set score (inverse of :func:`redis_score`)."""
    value = -score if sort_order is SortOrder.DESC else score
    return value + 0.0  # turns -0.0 into 0.0
