"""How standings are encoded in Redis sorted sets (key names: :mod:`shared.redis_keys`).

Each window is a sorted set whose members are ``<reached_us>:<user_id>``, plus a hash
``user_id -> member`` to find a user's member.

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
_SEPARATOR = ":"
USER_ID_START = REACHED_DIGITS + len(_SEPARATOR)
"""Where the user id starts in a member (0-based); Lua scripts derive their offset from it."""


def reached_us(reached_at: datetime) -> int:
    """Microseconds since the epoch, checked against the encodable range."""
    delta = reached_at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not 0 <= micros <= MAX_REACHED_US:
        raise ValueError(f"reached time {reached_at.isoformat()} is outside 1970..2286")
    return micros


def encode_member(user_id: str, reached_at: datetime) -> str:
    """The sorted-set member of a user whose score was reached at ``reached_at``."""
    return f"{reached_us(reached_at):0{REACHED_DIGITS}d}{_SEPARATOR}{user_id}"


def member_user_id(member: str | bytes) -> str:
    """The user id inside a sorted-set member."""
    text = member.decode() if isinstance(member, bytes) else member
    return text[USER_ID_START:]


def redis_score(value: float, sort_order: SortOrder) -> float:
    """The sorted-set score for a standing value (negated for ``desc``)."""
    return -value if sort_order is SortOrder.DESC else value


def standing_value(score: float, sort_order: SortOrder) -> float:
    """The standing value for a sorted-set score (inverse of :func:`redis_score`)."""
    value = -score if sort_order is SortOrder.DESC else score
    return value + 0.0  # turns -0.0 into 0.0
