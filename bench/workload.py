"""The benchmark's data: competitions, users and which user is in which competition.

Event ``j`` goes to competition ``j % competitions`` for user ``(j * 7919) % users``; the wrk
scripts use the same formula to pick users that exist (for "around me").
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson

USER_STRIDE = 7919
OPERATORS = ("best", "latest", "sum")


def competition_id(index: int) -> str:
    """The id of competition ``index``."""
    return f"c{index}"


def user_id(index: int) -> str:
    """The id of user ``index``."""
    return f"u{index}"


def event_target(index: int, competitions: int, users: int) -> tuple[int, int]:
    """(competition, user) indexes of event ``index``."""
    return index % competitions, (index * USER_STRIDE) % users


def competition_body(index: int) -> dict[str, Any]:
    """The create request of competition ``index`` (operators rotate; all public, desc)."""
    return {
        "id": competition_id(index),
        "name": f"bench {index}",
        "operator": OPERATORS[index % len(OPERATORS)],
    }


def topic_messages(count: int, competitions: int, users: int, seed: int) -> list[bytes]:
    """``count`` encoded score-event records (the ingest wire format), values random."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    messages = []
    for index in range(count):
        cid, uid = event_target(index, competitions, users)
        messages.append(
            orjson.dumps(
                {
                    "v": 1,
                    "kind": "score",
                    "event_id": f"r{seed}-{index}",
                    "competition_id": competition_id(cid),
                    "user_id": user_id(uid),
                    "value": float(rng.randint(1, 1_000_000)),
                    "ts": now,
                    "received_at": now,
                    "metadata": {},
                }
            )
        )
    return messages
