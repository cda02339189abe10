"""The final check: every store and API against the oracle, and loss/double-count figures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.db import connect
from shared.leaderboard_store import CompetitionNotBuiltError, LeaderboardStore
from shared.redis_client import create_redis
from shared.schemas.competition import SortOrder
from shared.settings import CommonSettings
from shared.teams import competition_of, is_team_board
from soak.faults import PROBE_COMPETITION
from soak.http import HTTP_ERRORS, SoakClient
from soak.oracle import OracleResult

DRAIN_STALL_S = 60.0  # no event applied for this long: what is missing now is lost
DRAIN_POLL_S = 0.5
DRAIN_REPORT_EVERY_S = 10.0


@dataclass
class CheckResult:
    """What the final comparison found."""

    lost: int = 0
    double_counted: int = 0
    postgres_equal: bool = False
    redis_equal: bool = False
    query_equal: bool = False
    websocket_equal: bool | None = None
    mismatches: list[str] = field(default_factory=list)


async def wait_for_drain(settings: CommonSettings, accepted_ids: set[str]) -> set[str]:
    """Wait until PostgreSQL holds every accepted event; the ids still missing at the end.

    It waits as long as the ranker makes progress — a long run at a high rate can leave a
    backlog of minutes behind its load, and a fixed timeout would report events still queued
    on the topic as lost — and gives up after ``DRAIN_STALL_S`` without any. It polls a count
    (the probes' competition left out: those events are not the load's), and compares the
    event ids once, at the end (fetching millions of ids every poll took seconds each).
    """
    connection = await connect(settings)
    try:
        stored_count, progressed_at, reported_at = -1, time.monotonic(), 0.0
        while True:
            count = await connection.fetchval(
                "SELECT count(*) FROM score_events WHERE competition_id <> $1", PROBE_COMPETITION
            )
            now = time.monotonic()
            if count > stored_count:
                stored_count, progressed_at = count, now
            if stored_count >= len(accepted_ids) or now - progressed_at > DRAIN_STALL_S:
                break
            if now - reported_at >= DRAIN_REPORT_EVERY_S:
                reported_at = now
                print(
                    f"soak | draining: {stored_count:,} of {len(accepted_ids):,} accepted events"
                    " in PostgreSQL",
                    flush=True,
                )
            await asyncio.sleep(DRAIN_POLL_S)
        stored = {
            row["event_id"]
            for row in await connection.fetch(
                "SELECT event_id FROM score_events WHERE competition_id <> $1", PROBE_COMPETITION
            )
        }
        return accepted_ids - stored
    finally:
        await connection.close()


async def compare(
    settings: CommonSettings, query_url: str, expected: OracleResult, sum_competitions: set[str]
) -> CheckResult:
    """Compare PostgreSQL standings, Redis and the query API with ``expected``."""
    result = CheckResult()
    await _compare_postgres(settings, expected, sum_competitions, result)
    await _compare_redis(settings, expected, result)
    await _compare_query(query_url, expected, result)
    return result


async def postgres_standings(
    settings: CommonSettings,
) -> dict[tuple[str, str], dict[str, tuple[float, datetime]]]:
    """Every standing in PostgreSQL, shaped as :class:`OracleResult` holds them."""
    connection = await connect(settings)
    try:
        rows = await connection.fetch(
            "SELECT competition_id, window_label, user_id, score, reached_at FROM standings"
        )
    finally:
        await connection.close()
    actual: dict[tuple[str, str], dict[str, tuple[float, datetime]]] = {}
    for row in rows:
        key = (row["competition_id"], row["window_label"])
        actual.setdefault(key, {})[row["user_id"]] = (row["score"], row["reached_at"])
    return actual


async def _compare_postgres(
    settings: CommonSettings,
    expected: OracleResult,
    sum_competitions: set[str],
    result: CheckResult,
) -> None:
    actual = await postgres_standings(settings)
    equal = True
    for key, want in expected.standings.items():
        table = actual.get(key, {})
        if table != want:
            equal = False
            result.mismatches.append(f"postgres {key}: {_diff(want, table)}")
        if key[0] in sum_competitions and key[1] == "alltime":
            for user, (score, _) in table.items():
                expected_score = want[user][0] if user in want else 0.0
                if score > expected_score:
                    result.double_counted += int(score - expected_score)
    checked = {competition_id for competition_id, _ in expected.standings}
    extra = {key for key in actual if key[0] in checked} - set(expected.standings)
    if extra:
        equal = False
        result.mismatches.append(f"postgres has unexpected windows {sorted(extra)[:5]}")
    result.postgres_equal = equal


def _diff(want: dict[str, Any], have: dict[str, Any]) -> str:
    missing = sorted(set(want) - set(have))[:3]
    extra = sorted(set(have) - set(want))[:3]
    changed = sorted(user for user in set(want) & set(have) if want[user] != have[user])[:3]
    details = [f"{user}: want {want[user]} have {have[user]}" for user in changed]
    return f"missing {missing} extra {extra} changed {details}"


async def _compare_redis(
    settings: CommonSettings, expected: OracleResult, result: CheckResult
) -> None:
    redis = create_redis(settings)
    store = LeaderboardStore(redis, settings.redis_key_prefix)
    equal = True
    try:
        for competition_id, window in expected.standings:
            ranking = expected.ranking(competition_id, window)
            order = SortOrder(expected.sort_orders[competition_id])
            try:
                entries = await store.top(competition_id, window, order, 0, len(ranking) + 10)
                if not await store.is_built(competition_id):
                    raise CompetitionNotBuiltError(competition_id)
            except CompetitionNotBuiltError:
                equal = False
                result.mismatches.append(f"redis {competition_id} not built")
                continue
            have = [(entry.user_id, entry.score) for entry in entries]
            if have != ranking:
                equal = False
                result.mismatches.append(f"redis {(competition_id, window)} differs")
    finally:
        await redis.aclose()
    result.redis_equal = equal


async def read_all_pages(
    client: SoakClient, query_url: str, competition_id: str, window: str
) -> list[tuple[str, float]]:
    """Every entry of a leaderboard through the query API, following cursors (a team board,
    ``<cid>~teams``, through ``.../teams/top``)."""
    path, name = f"{competition_id}/top", "user_id"
    if is_team_board(competition_id):
        path, name = f"{competition_of(competition_id)}/teams/top", "team_id"
    entries: list[tuple[str, float]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, "window": window}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"{query_url}/api/v1/leaderboards/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        entries += [(entry[name], entry["score"]) for entry in body["entries"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return entries


async def _compare_query(query_url: str, expected: OracleResult, result: CheckResult) -> None:
    equal = True
    async with SoakClient(timeout_s=10.0) as client:
        for competition_id, window in expected.standings:
            try:
                have = await read_all_pages(client, query_url, competition_id, window)
            except HTTP_ERRORS as error:
                equal = False
                result.mismatches.append(f"query {(competition_id, window)}: {error}")
                continue
            if have != expected.ranking(competition_id, window):
                equal = False
                result.mismatches.append(f"query {(competition_id, window)} differs")
    result.query_equal = equal
