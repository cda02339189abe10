"""The environment k6 runs with: the client's Go collector held back, nothing of Podium's."""

from __future__ import annotations

import pytest

from bench.k6 import k6_environment


def test_k6_runs_without_the_collector_up_to_its_memory_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PODIUM_DB_DSN", "postgresql://secret@host/db")
    monkeypatch.setenv("GOGC", "100")
    monkeypatch.setenv("HOME", "/home/bench")
    env = k6_environment({"URL": "http://ingest", "GOMEMLIMIT": "1GiB"}, memory_limit_mib=2048)
    assert env["GOGC"] == "off"  # the caller's GOGC does not turn the collector back on
    assert env["GOMEMLIMIT"] == "1GiB"  # what the script's caller asks for wins
    assert env["URL"] == "http://ingest"
    assert env["HOME"] == "/home/bench"
    assert env["K6_NO_USAGE_REPORT"] == "true"
    assert not [key for key in env if key.startswith("PODIUM_")]


def test_the_memory_limit_is_the_configured_one() -> None:
    assert k6_environment({}, memory_limit_mib=4096)["GOMEMLIMIT"] == "4096MiB"
