"""The notifier's frames, parameters, page policy and rate limiter (pure functions)."""

from __future__ import annotations

import orjson
import pytest

from services.notifier import protocol
from services.notifier.connection import TokenBucket
from services.notifier.openapi import notifier_openapi
from services.notifier.page import page_csp
from shared.errors import BadRequestError, ValidationFailedError
from shared.schemas.change_message import LeaderboardEntry


def test_frames_are_valid_json_with_only_what_changed() -> None:
    top = protocol.top_json([LeaderboardEntry(rank=1, user_id="ann", score=2.5)])
    me = protocol.Me(rank=3, score=1.0)
    snapshot = orjson.loads(protocol.snapshot_frame("c1", "alltime", 7, top, me, True))
    assert snapshot == {
        "type": "snapshot",
        "competition_id": "c1",
        "window": "alltime",
        "version": 7,
        "top": [{"rank": 1, "user_id": "ann", "score": 2.5}],
        "me": {"rank": 3, "score": 1.0},
    }
    assert "me" not in orjson.loads(protocol.snapshot_frame("c1", "alltime", 7, top, None, False))
    assert orjson.loads(protocol.update_frame(8, None, None, True)) == {
        "type": "update",
        "version": 8,
        "me": None,
    }
    assert orjson.loads(protocol.update_frame(9, top, None, False)) == {
        "type": "update",
        "version": 9,
        "top": [{"rank": 1, "user_id": "ann", "score": 2.5}],
    }


def test_params_are_validated_naming_the_field() -> None:
    assert protocol.parse_params({"top": "5", "user": "u1"}, 10).top == 5
    with pytest.raises(ValidationFailedError) as error:
        protocol.parse_params({"top": "many"}, 10)
    assert error.value.details[0]["field"] == "query.top"
    with pytest.raises(ValidationFailedError):
        protocol.parse_params({"top": "11"}, 10)


def test_client_messages() -> None:
    assert protocol.parse_client_message('{"type": "resync"}').type == "resync"
    with pytest.raises(BadRequestError):
        protocol.parse_client_message("{")
    with pytest.raises(ValidationFailedError):
        protocol.parse_client_message('{"type": "resync", "extra": 1}')


def test_close_reason_fits_a_close_frame() -> None:
    assert len(protocol.close_reason("é" * 200).encode()) <= 123
    assert protocol.close_reason("short") == "short"


def test_page_csp_allows_its_script_and_this_hosts_socket_only() -> None:
    csp = page_csp("example.org:8003")
    assert "script-src 'self'" in csp
    assert "connect-src 'self' ws://example.org:8003 wss://example.org:8003" in csp
    assert "unsafe-inline" not in csp
    assert "connect-src 'self';" in page_csp("evil.org; script-src *")


def test_token_bucket_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate_per_s=0.001, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_openapi_documents_the_page_and_the_socket() -> None:
    paths = notifier_openapi()["paths"]
    assert "/leaderboards/{competition_id}" in paths
    socket = paths["/ws/leaderboards/{competition_id}"]["get"]
    assert {p["name"] for p in socket["parameters"]} >= {"window", "user", "top", "token"}
