"""faust's Kafka consumer, handing whole fetches to the ranker instead of one event at a time.

faust stays the framework: it runs the consumer group (joins, heartbeats, rebalances, the
consumer thread, pausing and seeking partitions, flow control). Only its per-message path is
replaced: faust turns every record into a ``ConsumerMessage``, runs it through the conductor
into a channel queue and an ``Event`` for the stream, where ``take_events`` collects it again
into a batch. For the ranker, which only ever wants batches, that path was the largest single
cost (about 18% of the process in the profile of a backlog drain). Here the fetcher task
takes each fetch's records (aiokafka's own ``ConsumerRecord`` objects) and awaits the ranker's
handler with them, with the same checks faust's ``getmany``/``_drain_messages`` make: only
partitions still active, nothing from an older group generation, nothing behind the read
offset.

The consumer also sets aiokafka's ``fetch_max_wait_ms``, which faust hard-codes to 1,500 ms
(``AIOKafkaConsumerThread._create_worker_consumer``): Kafka answers a fetch as soon as data
exists, but the dev broker (tansu) holds a fetch over several partitions for the whole wait,
which was the ranker's idle latency (a constant ~550 ms, 202 to applied).

Offsets are not faust's business here either: the handler commits what it applied (see
``agent.py``). Batches are pipelined: once the handler has applied a batch it returns the
batch's rest (waiting for the broker's acks of its change messages, then committing its
offsets), which runs while the next batch is fetched and applied; rests run one after the
other in batch order, so offsets are committed in order and never before their batch is
applied and announced, and a batch is fetched only while at most a few rests are unfinished
(``Fetching.rests_overlapping``). A rebalance waits for the batch in flight and
every unfinished rest (:meth:`wait_empty`), so the old owner commits them before the
partition moves.

A batch never skips offsets: the records of a partition must start where the last ones ended
(or at the offset seeked to). The dev broker breaks that under two concurrent producers (two
ingest replicas) to one partition: tansu raises a partition's high watermark before it stores
the batch, so a fetch in between can return the *next* producer's batch while the earlier one
is not readable yet; the client moves past it, and committing the later batch lost the
earlier one's events (the short soak lost 1-4 accepted events in about a third of its runs;
``docs/tansu_gap_probe.py`` shows the skip with plain aiokafka). Such records are held back and
the partition is fetched again from the first missing offset, until the gap closes or has
stood for ``gap_wait_s`` (then it is taken as real: transaction markers leave such offsets).
The change feeds guard against the same skip with the same rule (:mod:`shared.offset_gaps`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Container, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import aiokafka
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TopicT

from services.ranker import metrics
from shared.offset_gaps import GapWatch

logger = logging.getLogger(__name__)

BatchRest = Callable[[], Awaitable[None]]
"""What is left of an applied batch (its messages acknowledged, its offsets committed)."""
FetchHandler = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[BatchRest | None]]
"""Applies one batch of records (in partition order per partition); returns the batch's rest,
which the consumer runs after the previous batch's while the next batch is applied (None:
nothing is left)."""

FETCH_TIMEOUT_S = 1.0
"""How long one wait for records may last before the loop checks whether to stop."""
REST_STOP_WAIT_S = 5.0
"""How long a stopping fetcher lets applied batches finish (acks, offset commits)."""


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread with the ranker's fetch wait instead of faust's 1,500 ms."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher (not started yet here)
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka changed: AIOKafkaConsumer._fetch_max_wait_ms is gone")
        consumer._fetch_max_wait_ms = cast(BatchTransport, transport).fetching.max_wait_ms
        return consumer


@dataclass(frozen=True, slots=True)
class Fetching:
    """How the ranker fetches: the broker's longest hold of an idle fetch, and batching."""

    max_wait_ms: int
    batch_size: int
    batch_within_s: float = 0.0
    gap_wait_s: float = 2.0
    rests_overlapping: int = 4
    """How many applied batches may still wait for their acks and offset commit while the
    next one is fetched and applied."""


class BatchConsumer(faust_aiokafka.Consumer):
    """A faust consumer whose fetcher task hands each fetch to one :data:`FetchHandler`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handler: FetchHandler | None = None
        self._handler_ready = asyncio.Event()
        self._idle = asyncio.Event()
        """Set while no batch is being applied and every batch's rest has run."""
        self._idle.set()
        self._unfinished = 0  # batches taken whose rest has not run yet
        self._rests: collections.deque[asyncio.Future[None]] = collections.deque()
        """Rests scheduled and perhaps unfinished, oldest first (they finish in this order;
        finished ones are dropped from the left): the last one is the last batch's."""
        self._batch_started_at: float | None = None
        self._tolerated_gaps: set[Any] = set()
        """Partitions whose next fetch is taken even if it skips offsets (the wait is over)."""
        super().__init__(*args, **kwargs)
        self._gap_watch = GapWatch(self.fetching.gap_wait_s)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_start(self) -> None:
        """Register the transport's topics with the conductor, which subscribes to them once
        agents and tables are up (here, on the worker's event loop: the conductor binds a
        future to the running loop, so this cannot happen while the app is being built)."""
        await super().on_start()
        for topic in cast(BatchTransport, self.transport).topics:
            self.app.topics.add(topic)

    @property
    def fetching(self) -> Fetching:
        """The transport's fetch settings."""
        return cast(BatchTransport, self.transport).fetching

    def attach(self, handler: FetchHandler | None) -> None:
        """Start handing fetches to ``handler`` (None: stop; fetches wait for the next one)."""
        self._handler = handler
        if handler is None:
            self._handler_ready.clear()
        else:
            self._handler_ready.set()

    def observe(self) -> None:
        """Refresh the gauges of partition states and of the batch in flight."""
        started_at = self._batch_started_at
        metrics.BATCH_IN_FLIGHT_S.set(time.monotonic() - started_at if started_at else 0.0)
        active = self._active_partitions
        metrics.PARTITIONS.labels("assigned").set(len(self.assignment()))
        metrics.PARTITIONS.labels("active").set(len(active) if active is not None else 0)
        metrics.PARTITIONS.labels("paused").set(len(self._paused_partitions))

    async def wait_empty(self) -> None:
        """Wait for the batch in flight and every batch's rest too (faust calls this when
        partitions are revoked): their offsets are committed before another member may take
        the partitions."""
        await self._idle.wait()
        await super().wait_empty()

    def _take_batch(self) -> None:
        self._unfinished += 1
        self._idle.clear()

    def _batch_finished(self) -> None:
        self._unfinished -= 1
        if not self._unfinished:
            self._idle.set()

    def _run_after_previous(self, rest: BatchRest | None) -> None:
        """Run ``rest`` once the previous batch's rest has run (batches finish in order)."""
        previous = self._last_rest()
        if rest is None and previous is None:
            self._batch_finished()
            return

        async def run() -> None:
            try:
                if previous is not None:
                    await previous  # never raises: each rest handles its own errors
                if rest is not None:
                    await rest()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # as for a failed batch: the process stops rather than commit past it later
                logger.exception("ranker batch failed after it was applied; crashing")
                await self.app.crash(error)
            finally:
                self._batch_finished()

        self._rests.append(asyncio.ensure_future(run()))

    def _last_rest(self) -> asyncio.Future[None] | None:
        """The last batch's rest, unless it (and so every rest) has finished and was dropped."""
        return self._rests[-1] if self._rests else None

    async def _room_for_a_batch(self) -> None:
        """Wait until at most ``rests_overlapping`` batches' rests are unfinished: the next
        batch overlaps them, no more, so a broker that stops acknowledging holds the consumer
        back instead of piling up applied, uncommitted batches."""
        rests = self._rests
        while rests and rests[0].done():
            rests.popleft()
        limit = self.fetching.rests_overlapping
        if len(rests) > limit:  # rests finish in order: once this one has, `limit` are left
            await asyncio.shield(rests[len(rests) - limit - 1])

    async def _rests_done(self) -> None:
        """Wait until every taken batch has finished (the last rest ran)."""
        last = self._last_rest()
        if last is not None:
            await asyncio.shield(last)

    async def _stop_rests(self) -> None:
        """When the fetcher stops: let the unfinished rests commit their offsets for up to
        :data:`REST_STOP_WAIT_S` (what they do not commit is fetched again by the next owner,
        as a batch cut off mid-apply is), then cancel them."""
        last = self._last_rest()
        if last is None or last.done():
            return
        await asyncio.wait({last}, timeout=REST_STOP_WAIT_S)
        if not last.done():
            logger.warning("stopping before the last batches' offsets were committed")
            last.cancel()

    async def _drain_messages(self, fetcher: Any) -> None:
        """The fetcher task: fetch, hand over, repeat (replaces faust's per-message loop)."""
        try:
            while not (self.should_stop or fetcher.should_stop):
                await self._handler_ready.wait()
                await self._room_for_a_batch()  # before the fetch: its checks stay current
                batch = await self._next_batch()
                handler = self._handler
                if not batch or handler is None or self.should_stop:
                    continue
                self._take_batch()
                self._batch_started_at = time.monotonic()
                try:
                    rest = await handler(batch)
                except BaseException:
                    self._batch_finished()
                    raise
                finally:
                    self._batch_started_at = None
                self._run_after_previous(rest)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            logger.info("broker stopped the consumer while the ranker stops")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        except Exception as error:
            # as faust's CrashingSupervisor did for the agent: a restarted fetcher would skip
            # the records of the failed fetch, so the process stops instead
            logger.exception("ranker batch failed outside its retries; crashing")
            await self.app.crash(error)
            raise
        finally:
            await self._stop_rests()

    async def _next_batch(self) -> list[ConsumerRecord[bytes, bytes]]:
        """One fetch's records (waiting up to ``batch_within_s`` for more), checked as faust's
        ``getmany`` checks them; empty when nothing arrived or the group moved on.

        The generation is read *after* the first wait, as faust does: a rebalance during the
        wait has already seeked the partitions to their committed offsets, so what that fetch
        returns is from the new generation and must be applied, not dropped (dropping it
        would leave the fetch position past records nobody applied, and the next batch's
        commit would skip them). When the group moves on while more is being collected, or
        flow stopped for a rebalance, everything collected is dropped and every partition is
        seeked back to its committed offset, so each dropped record is fetched again.
        """
        fetching = self.fetching
        records, active = await self._wait_next_records(FETCH_TIMEOUT_S)
        generation = self.app.consumer_generation_id
        if not records or self.should_stop:
            return []
        if not self.flow_active:
            await self._rewind(records_dropped=_count(records))
            return []
        batch = await self._accept(records, active)
        if not batch or fetching.batch_within_s <= 0:
            return batch
        deadline = time.monotonic() + fetching.batch_within_s
        while len(batch) < fetching.batch_size and (remaining := deadline - time.monotonic()) > 0:
            records, active = await self._wait_next_records(remaining)
            if self.should_stop:
                return []
            if not self.flow_active or self.app.consumer_generation_id != generation:
                await self._rewind(records_dropped=len(batch) + _count(records))
                return []
            if not records:
                break
            batch += await self._accept(records, active)
        return batch

    async def _accept(
        self, records: Mapping[Any, Sequence[ConsumerRecord[bytes, bytes]]], active: set[Any] | None
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """:func:`accepted` records of one fetch; a partition whose records skip offsets is
        fetched again from the first missing one (see the module docstring)."""
        tolerated, self._tolerated_gaps = self._tolerated_gaps, set()
        fetched = accepted(records, active, self._buffered_partitions, self._read_offset, tolerated)
        for tp in fetched.contiguous:
            self._gap_watch.closed(tp)
        if fetched.gaps:
            await self._refetch_gaps(fetched.gaps)
        return fetched.batch

    async def _refetch_gaps(self, gaps: Mapping[Any, int]) -> None:
        """Seek each partition back to its first missing offset; one whose gap has stood for
        ``gap_wait_s`` is taken as it is on its next fetch."""
        for tp, missing_from in gaps.items():
            open_s = self._gap_watch.open_since_s(tp)
            if self._gap_watch.fetch_again(tp, missing_from):
                metrics.FETCH_GAPS.labels("refetched").inc()
                continue
            logger.warning(
                "partition %s skipped offsets from %d for %.1f s: taking the records after it",
                tp,
                missing_from,
                open_s,
            )
            self._tolerated_gaps.add(tp)
            metrics.FETCH_GAPS.labels("accepted").inc()
        # in the consumer's thread, as faust's own seeks (it also sets the read offsets)
        await self._thread.seek_wait(dict(gaps))

    async def _rewind(self, records_dropped: int) -> None:
        """Seek every assigned partition back to its committed offset (faust's
        ``perform_seek``): records fetched but dropped are then fetched again.

        aiokafka's ``seek_to_committed`` leaves a partition where it is when its committed
        offset is None or 0 (nothing committed yet): its fetch position would stay past the
        dropped records, and the next batch's commit would skip them. Those partitions are
        seeked to their beginning instead (what ``auto_offset_reset=earliest`` reads from).
        """
        _count_fetched(rewound=records_dropped)
        logger.info("group rebalanced while a batch was collected; back to committed offsets")
        await self._rests_done()  # the committed offsets include every applied batch
        await self.perform_seek()
        uncommitted = [
            aiokafka.TopicPartition(tp.topic, tp.partition)
            for tp in self.assignment()
            if not self._read_offset.get(tp)
        ]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)


class Fetched(NamedTuple):
    """What :func:`accepted` took from one fetch."""

    batch: list[ConsumerRecord[bytes, bytes]]
    gaps: dict[Any, int]
    """Partitions whose records did not start at their read offset: that offset (none taken)."""
    contiguous: list[Any]
    """Partitions whose records were taken from their read offset on."""


def accepted(
    records: Mapping[Any, Sequence[ConsumerRecord[bytes, bytes]]],
    active: set[Any] | None,
    buffered: set[Any],
    read_offset: MutableMapping[Any, int | None],
    tolerated_gaps: Container[Any] = (),
) -> Fetched:
    """One fetch's records in partition order per partition, dropped as faust's ``getmany``
    and ``_drain_messages`` drop them: partitions neither active (paused or revoked) nor
    buffered, and records behind the partition's read offset, which is then moved past the
    last record taken (``None``: not known; a seek sets it to the offset seeked to). A
    partition whose first record taken lies *beyond* its read offset is held back whole (a
    gap), unless it is in ``tolerated_gaps``. Every record is counted in
    ``podium_ranker_fetched_records_total`` by outcome."""
    batch: list[ConsumerRecord[bytes, bytes]] = []
    gaps: dict[Any, int] = {}
    contiguous: list[Any] = []
    inactive = behind = held = 0
    for tp, partition_records in records.items():
        if active is not None and tp not in active and tp not in buffered:
            inactive += len(partition_records)
            continue
        position = read_offset.get(tp)
        taken = (
            [record for record in partition_records if record.offset >= position]
            if position is not None
            else list(partition_records)
        )
        behind += len(partition_records) - len(taken)
        if not taken:
            continue
        if position is not None and taken[0].offset > position and tp not in tolerated_gaps:
            gaps[tp] = position
            held += len(taken)
            continue
        contiguous.append(tp)
        batch += taken
        read_offset[tp] = taken[-1].offset + 1
    _count_fetched(
        accepted=len(batch), inactive_partition=inactive, behind_read_offset=behind, gap=held
    )
    return Fetched(batch, gaps, contiguous)


def _count(records: Mapping[Any, Sequence[Any]] | None) -> int:
    return sum(len(partition_records) for partition_records in (records or {}).values())


def _count_fetched(**records_by_outcome: int) -> None:
    for outcome, count in records_by_outcome.items():
        if count:
            metrics.FETCHED_RECORDS.labels(outcome).inc(count)


class BatchTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`BatchConsumer` as its consumer."""

    Consumer = BatchConsumer

    def __init__(self, url: Any, app: Any, fetching: Fetching, topics: Sequence[TopicT]) -> None:
        super().__init__(url, app)
        self.fetching = fetching
        self.topics = tuple(topics)
