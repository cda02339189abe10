"""Driving the ranker in tests: a workload, producing it, waiting for commits, checking results.

The workload covers what the replay oracle must agree on: duplicates, out-of-order and equal
event times, all three operators, both sort orders, reset schedules in several time zones,
late events, events beyond the dedup horizon, control events and every dead-letter reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from devstack.processes import free_port
from podium.settings import PlatformSettings
from shared import entrants
from shared.competitions import create_competition
from shared.db import create_pool
from shared.kafka import create_producer
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import create_redis
from shared.schemas.change_message import ChangeMessage
from shared.schemas.competition import (
    CompetitionCreate,
    SortOrder,
    TeamAggregate,
    TeamsSetting,
)
from soak.check import postgres_standings
from soak.oracle import Message, OracleCompetition, OracleResult, replay
from tests.support.servers import podium_command, process_environment, running_process
from tests.support.topic_reader import read_topic

BASE = datetime(2026, 11, 20, tzinfo=UTC)  # a Friday; periods roll over inside the workload

COMPETITIONS = [
    OracleCompetition("c-best-desc", "desc", "best", "none", max_value=1000.0),
    OracleCompetition("c-best-asc", "asc", "best", "daily", "America/New_York"),
    OracleCompetition("c-latest", "desc", "latest", "weekly"),
    OracleCompetition(
        "c-sum", "desc", "sum", "monthly", "Asia/Tokyo", starts_at=BASE - timedelta(days=1)
    ),
    OracleCompetition("c-sum-asc", "asc", "sum", "daily", ends_at=BASE + timedelta(days=9)),
    # a tournament: half the users joined, two attempts a day
    OracleCompetition("c-cup", "desc", "best", "daily", join_required=True, max_attempts=2),
    # team boards: every aggregate; users mostly stay in one team, some move
    OracleCompetition("c-team-sum", "desc", "latest", "weekly", teams="sum"),
    OracleCompetition("c-team-best", "asc", "best", "none", teams="best"),
    OracleCompetition("c-team-mean", "desc", "sum", "daily", "Europe/Berlin", teams="mean"),
]
TEAMS = 4
JOINED_BEFORE = BASE - timedelta(days=30)


@dataclass
class Workload:
    """Competitions and the messages to produce, in order."""

    competitions: dict[str, OracleCompetition]
    messages: list[Message] = field(default_factory=list)
    entrants: set[tuple[str, str]] = field(default_factory=set)
    """(competition, user) pairs that join before the stream."""

    def expected(self, grace_s: float) -> OracleResult:
        """What the ranker must end with."""
        return replay(self.competitions, self.messages, grace_s, entrants=self.entrants)


def build_workload(seed: int, events: int, users: int = 25) -> Workload:
    """A random but reproducible workload of about ``events`` messages."""
    rng = random.Random(seed)
    workload = Workload({competition.id: competition for competition in COMPETITIONS})
    workload.entrants = {
        (competition.id, f"u{user}")
        for competition in COMPETITIONS
        if competition.join_required
        for user in range(0, users, 2)
    }
    ids = list(workload.competitions)
    sent: list[dict[str, Any]] = []
    for index in range(events):
        roll = rng.random()
        if sent and roll < 0.08:
            workload.messages.append(dict(rng.choice(sent)))  # a producer retry
            continue
        cid = rng.choice(ids)
        user = f"u{rng.randrange(users)}"
        if roll < 0.09:
            action = "ban_user" if rng.random() < 0.3 else "remove_user"
            workload.messages.append(
                {"v": 1, "kind": "control", "event_id": f"ctl-{seed}-{index}", "action": action,
                 "competition_id": cid, "user_id": user,
                 "received_at": (BASE + timedelta(days=5)).isoformat()}
            )  # fmt: skip
            continue
        if roll < 0.095:
            workload.messages.append(b"{not json")
            continue
        # minute grid: equal event times happen; order of times is shuffled (out of order)
        ts = BASE + timedelta(minutes=rng.randrange(-3 * 1440, 13 * 1440, 7))
        received = ts + timedelta(seconds=rng.randrange(600))
        lateness = rng.random()
        if lateness < 0.03:
            received = ts + timedelta(days=2)  # late for daily periods
        elif lateness < 0.04:
            received = ts + timedelta(days=31)  # beyond the dedup horizon (issue #18)
        value: float = float(rng.randrange(40))
        if cid.startswith("c-sum"):
            value = rng.randrange(1, 30) / 10  # float sums are order-sensitive
        if roll < 0.1:
            cid = "c-unknown"
        elif roll < 0.13 and cid == "c-best-desc":
            value = 5000.0  # above max_value
        message = {
            "v": 1, "kind": "score", "event_id": f"ev-{seed}-{index}", "competition_id": cid,
            "user_id": user, "value": value, "ts": ts.isoformat(),
            "received_at": received.isoformat(), "metadata": {"i": index},
        }  # fmt: skip
        if workload.competitions.get(cid, COMPETITIONS[0]).teams is not None:
            team_roll = rng.random()
            if team_roll < 0.75:  # the user's own team, or now and then another one
                team = int(user[1:]) % TEAMS if team_roll < 0.65 else rng.randrange(TEAMS)
                message["team_id"] = f"t{team}"
        sent.append(message)
        workload.messages.append(message)
    return workload


def competition_key(message: Message) -> bytes:
    """The record key: the competition id (raw garbage goes to a fixed competition)."""
    if isinstance(message, bytes):
        return b"c-best-desc"
    return str(message["competition_id"]).encode()


async def create_competitions(settings: PlatformSettings, workload: Workload) -> None:
    """Insert the workload's competitions."""
    pool = await create_pool(settings, max_size=2)
    try:
        for competition in workload.competitions.values():
            await create_competition(
                pool,
                CompetitionCreate(
                    id=competition.id,
                    name=competition.id,
                    sort_order=competition.sort_order,
                    operator=competition.operator,
                    reset=competition.reset,
                    timezone=competition.timezone,
                    starts_at=competition.starts_at,
                    ends_at=competition.ends_at,
                    max_value=competition.max_value,
                    join_required=competition.join_required,
                    max_attempts=competition.max_attempts,
                    teams=TeamsSetting(aggregate=TeamAggregate(competition.teams))
                    if competition.teams
                    else None,
                ),
            )
        for cid, user in sorted(workload.entrants):
            await entrants.join(pool, cid, user, JOINED_BEFORE)
    finally:
        await pool.close()


Position = tuple[int, int]  # (partition, offset)


async def produce(
    settings: PlatformSettings,
    messages: list[Message],
    *,
    chunk: int = 0,
    pause_s: float = 0.0,
    positions: list[Position] | None = None,
) -> list[Position]:
    """Produce ``messages`` in order, keyed by competition; returns each one's position.

    With ``chunk``, sends that many at a time with ``pause_s`` between chunks (a stream
    arriving while the ranker runs); ``positions`` then fills up as chunks are acknowledged.
    """
    producer = create_producer(settings)
    await producer.start()
    produced = positions if positions is not None else []
    step = chunk or max(len(messages), 1)
    try:
        for start in range(0, len(messages), step):
            futures = [
                await producer.send(
                    settings.topic_score_events,
                    key=competition_key(message),
                    value=message if isinstance(message, bytes) else orjson.dumps(message),
                )
                for message in messages[start : start + step]
            ]
            for metadata in await asyncio.gather(*futures):
                produced.append((metadata.partition, metadata.offset))
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await producer.stop()
    return produced


def end_offsets(positions: list[Position]) -> dict[int, int]:
    """Per partition, the offset after the last produced record."""
    ends: dict[int, int] = {}
    for partition, offset in positions:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


async def committed_offsets(settings: PlatformSettings) -> dict[int, int]:
    """The ranker group's committed offset per partition (0 when nothing is committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.ranker_group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        result = {}
        for partition in range(settings.kafka_partitions):
            offset = await consumer.committed(
                TopicPartition(settings.topic_score_events, partition)
            )
            result[partition] = offset or 0
        return result
    finally:
        await consumer.stop()


async def wait_committed(
    settings: PlatformSettings,
    targets: dict[int, int],
    timeout_s: float,
    processes: Sequence[subprocess.Popen[bytes]] = (),
    *,
    any_partition: bool = False,
) -> None:
    """Wait until the group committed at least ``targets`` on every partition (or any one).

    Fails at once when one of ``processes`` (the rankers) exits meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"ranker exited with {process.returncode}"
        committed = await committed_offsets(settings)
        reached = [committed.get(p, 0) >= offset for p, offset in targets.items()]
        if any(reached) if any_partition else all(reached):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"committed {committed}, wanted {targets}")


async def unapplied_below_commit(
    settings: PlatformSettings,
    messages: list[Message],
    positions: list[Position],
    expected: OracleResult,
) -> list[str]:
    """Events that must be in PostgreSQL (their offset is committed) but are not.

    ``positions`` may cover a prefix of ``messages`` (those produced so far).
    """
    committed = await committed_offsets(settings)
    connection = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": settings.db_schema},
    )
    try:
        scores = {r[0] for r in await connection.fetch("SELECT event_id FROM score_events")}
        controls = {r[0] for r in await connection.fetch("SELECT event_id FROM control_events")}
    finally:
        await connection.close()
    missing = []
    produced = list(positions)
    for message, (partition, offset), fate in zip(
        messages[: len(produced)], produced, expected.fates[: len(produced)], strict=True
    ):
        if offset >= committed[partition] or fate != "applied":
            continue
        assert isinstance(message, dict)
        stored = controls if message["kind"] == "control" else scores
        if message["event_id"] not in stored:
            missing.append(f"{message['event_id']}@{partition}:{offset}")
    return missing


async def read_redis(
    settings: PlatformSettings, windows: list[tuple[str, str]], sort_orders: dict[str, str]
) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """Each window's ranking in Redis: (user, score) in rank order."""
    client = create_redis(settings)
    try:
        store = LeaderboardStore(client, settings.redis_key_prefix)
        result = {}
        for cid, window in windows:
            entries = await store.top(cid, window, SortOrder(sort_orders[cid]), 0, 100_000)
            result[(cid, window)] = [(entry.user_id, entry.score) for entry in entries]
        return result
    finally:
        await client.aclose()


async def assert_matches_oracle(settings: PlatformSettings, expected: OracleResult) -> None:
    """PostgreSQL standings and attempts and Redis rankings equal the oracle exactly."""
    assert await postgres_attempts(settings) == expected.attempts, "attempts differ"
    postgres = await postgres_standings(settings)
    want = {key: rows for key, rows in expected.standings.items() if rows}
    assert set(postgres) == set(want), "windows differ"
    for key, rows in want.items():
        assert postgres[key] == rows, f"PostgreSQL standings differ in {key}"
    windows = sorted(set(want) | set(postgres))
    redis_rankings = await read_redis(settings, windows, expected.sort_orders)
    for key in windows:
        assert redis_rankings[key] == expected.ranking(*key), f"Redis ranking differs in {key}"


async def postgres_attempts(settings: PlatformSettings) -> dict[tuple[str, str, str], int]:
    """The ``attempts`` table: applied attempts per (competition, window, user)."""
    connection = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": settings.db_schema},
    )
    try:
        rows = await connection.fetch(
            "SELECT competition_id, window_label, user_id, attempts FROM attempts"
        )
    finally:
        await connection.close()
    return {(r["competition_id"], r["window_label"], r["user_id"]): r["attempts"] for r in rows}


async def dead_letter_reasons(settings: PlatformSettings) -> Counter[str]:
    """How many records the dead-letter topic holds, by ``reason`` header."""
    records = await read_topic(settings, settings.topic_dead_letters)
    return Counter(dict(record.headers)["reason"].decode() for record in records)


async def latest_tops(settings: PlatformSettings) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """The top N of each window in the newest change message that carries it."""
    tops: dict[tuple[str, str], tuple[int, list[tuple[str, float]]]] = {}
    for record in await read_topic(settings, settings.topic_changes):
        change = ChangeMessage.model_validate_json(record.value)
        for window in change.windows:
            key = (change.competition_id, window.window)
            if key not in tops or tops[key][0] < change.version:
                tops[key] = (change.version, [(e.user_id, e.score) for e in window.top])
    return {key: top for key, (_, top) in tops.items()}


def ranker(
    settings: PlatformSettings, log_path: Path, **overrides: Any
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Run ``podium ranker`` as a real process (own metrics port) for a ``with`` block."""
    process_settings = override(settings, **{"ranker_port": free_port(), **overrides})
    return running_process(
        podium_command("ranker"), process_environment(process_settings), log_path
    )


@contextlib.contextmanager
def http_service(
    name: str, settings: PlatformSettings, port_field: str, log_path: Path
) -> Iterator[str]:
    """``podium serve <name>`` as a process on a free port; yields its base URL."""
    port = free_port()
    environment = process_environment(override(settings, **{port_field: port}))
    with running_process(podium_command("serve", name), environment, log_path):
        yield f"http://127.0.0.1:{port}"


async def metric_samples(port: int, name: str) -> dict[str, float]:
    """The samples of metric ``name`` a ranker exports, by their label text."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    samples = {}
    for line in response.text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            labels, _, value = line[len(name) :].rpartition(" ")
            samples[labels] = float(value)
    return samples


async def wait_for_metric(port: int, name: str, minimum: float, timeout_s: float) -> float:
    """Wait until the sum of metric ``name``'s samples reaches ``minimum``."""
    deadline = time.monotonic() + timeout_s
    total = 0.0
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            total = sum((await metric_samples(port, name)).values())
            if total >= minimum:
                return total
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{name} stayed at {total}, wanted {minimum}")


def override(settings: PlatformSettings, **overrides: Any) -> PlatformSettings:
    """``settings`` with some fields replaced (validated, unlike ``model_copy``)."""
    return PlatformSettings(**{**settings.model_dump(), **overrides})
