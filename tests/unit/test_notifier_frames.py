"""The shared top-only update frame is exactly the per-client one."""

from __future__ import annotations

import orjson

from services.notifier import protocol
from shared.schemas.change_message import LeaderboardEntry


def test_top_update_frame_equals_update_frame_and_is_shared() -> None:
    top = protocol.top_json(
        [
            LeaderboardEntry(rank=1, user_id="u1", score=9.5),
            LeaderboardEntry(rank=2, user_id="u2", score=3.0),
        ]
    )
    shared = protocol.top_update_frame(7, top)
    assert shared == protocol.update_frame(7, top, None, False)
    assert orjson.loads(shared) == {
        "type": "update",
        "version": 7,
        "top": [
            {"rank": 1, "user_id": "u1", "score": 9.5},
            {"rank": 2, "user_id": "u2", "score": 3.0},
        ],
    }
    assert protocol.top_update_frame(7, top) is shared  # one string for every client
    assert protocol.top_update_frame(8, top) != shared
