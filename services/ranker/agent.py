"""The faust app: the ranker's consumer group, applying each fetch as one batch and committing it.

Records are read raw: faust's JSON codec would stall the partition on a bad record, the ranker
decodes and dead-letters instead. faust runs the group (membership, rebalances, seeks, flow
control), but not its per-event stream machinery: the consumer hands every fetch's records
to :class:`BatchHandler` directly (``services/ranker/consumer.py`` says why and what it
saved). Faust's own acking is not used (``acks=False`` on the topic): faust acked a batch
when it was taken, and when the agent body failed it committed the batch without applying it
(faust-streaming #312/#606). Instead the handler applies a batch (retrying inside, so no error
reaches faust), and once the broker acknowledged the batch's change messages and dead letters
commits ``offset + 1`` of the batch's last record per partition; the consumer starts the next
batch meanwhile and finishes batches in order (``services/ranker/consumer.py``). An exception
that still escapes crashes the process: a restarted fetcher would skip the batch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
import faust.auth
import uvloop
from aiokafka import TopicPartition
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import ConsumerRecord
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Tracer, get_current_span

from services.ranker import metrics
from services.ranker.applier import BatchApplier, decode, outcomes, timed
from services.ranker.consumer import BatchConsumer, BatchRest, BatchTransport, Fetching
from services.ranker.lag import LagTracker
from services.ranker.records import IncomingEvent
from services.ranker.runtime import ranker_runtime
from services.ranker.settings import RankerSettings
from shared import tracing
from shared.kafka_headers import REQUEST_ID, header_value

logger = logging.getLogger(__name__)

LAG_REFRESH_S = 1.0
EVENT_IDS_SHOWN = 16
"""Event ids listed on one ``score apply`` span (a batch POST's span names its first ones)."""
GC_GEN0_THRESHOLD = 500_000


def broker_credentials(settings: RankerSettings) -> faust.auth.Credentials | None:
    """Faust's credentials for the configured Kafka security protocol (None: plaintext)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.kafka_sasl_mechanism is None:
        raise ValueError(f"PODIUM_KAFKA_SASL_MECHANISM is required with {protocol}")
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


class BatchHandler:
    """Applies one fetch's records as one batch; what it returns commits their offsets once
    the batch's messages are acknowledged."""

    def __init__(self, consumer: BatchConsumer, applier: BatchApplier, lag: LagTracker) -> None:
        self.consumer = consumer
        self.applier = applier
        self.lag = lag

    async def __call__(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> BatchRest:
        """Decode, apply (retrying until it succeeds), observe ages; returns the rest."""
        events = [
            decode(record.partition, record.offset, record.key, record.value, record.headers)
            for record in records
        ]
        _, delivered = await self.applier.apply_then_deliver(events)
        observe_ages(events)
        return self.rest(records, delivered)

    def rest(
        self,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        delivered: Callable[[], Awaitable[None]],
    ) -> BatchRest:
        """What is left of an applied batch: wait for its messages' acks, then commit."""

        async def finish() -> None:
            await delivered()
            await self.commit(records)

        return finish

    async def commit(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Commit ``offset + 1`` of the last record per partition."""
        last: dict[tuple[str, int], int] = {}
        for record in records:  # in offset order per partition: the last one wins
            last[record.topic, record.partition] = record.offset
        offsets: dict[Any, int] = {
            TopicPartition(topic, partition): offset + 1
            for (topic, partition), offset in last.items()
        }
        committed = await timed("offsets", self.consumer._commit(offsets))
        if not committed:
            logger.warning("offsets %s not committed (partitions moved)", offsets)
            return
        self.lag.committed(offsets)


def observe_ages(events: Sequence[IncomingEvent]) -> tuple[float, float] | None:
    """Observe the oldest and newest event's age (received by ingest -> applied) and return
    them in seconds; None when no event decoded."""
    received = [event.message.received_at for event in events if event.message is not None]
    if not received:
        return None
    now = datetime.now(UTC)
    oldest_s = (now - min(received)).total_seconds()
    newest_s = (now - max(received)).total_seconds()
    metrics.EVENT_AGE.labels("oldest").observe(oldest_s)
    metrics.EVENT_AGE.labels("newest").observe(newest_s)
    return oldest_s, newest_s


class TracedBatchHandler(BatchHandler):
    """A :class:`BatchHandler` that traces (chosen at start-up when tracing is on).

    One ``score-events apply`` span per batch, linked to the sampled context each record
    carries (the ingest request that accepted it); when every traced record of the batch
    belongs to one trace, the span is also that trace's child, so a lone score's journey is
    one trace. The change messages the batch emits carry this span's context. Each traced
    request also gets a short ``score apply`` span in its own trace (linked back to the batch
    span) with its events' outcomes and age at apply: a score's trace shows where it was
    applied, however many traces its batch mixed. Records with the same ``traceparent`` (one
    batch POST) are extracted once; unsampled ones are not extracted at all.
    """

    async def __call__(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> BatchRest:
        """Decode, apply inside the batch span, observe ages; returns the rest (the span
        ends when the batch is applied: acks and the commit overlap the next batch)."""
        events = [
            decode(record.partition, record.offset, record.key, record.value, record.headers)
            for record in records
        ]
        contexts = _event_contexts(events)
        traces = {
            get_current_span(context).get_span_context().trace_id
            for context in contexts
            if context is not None
        }
        parent = (
            next(context for context in contexts if context is not None)
            if len(traces) == 1
            else None
        )
        tracer = tracing.tracer()
        started_ns = time.time_ns()
        with tracer.start_as_current_span(
            f"{records[0].topic} apply",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=tracing.links(contexts),
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.batch.message_count": len(records),
                "podium.traced_events": sum(context is not None for context in contexts),
            },
        ) as batch_span:
            plan, delivered = await self.applier.apply_then_deliver(events)
            ages = observe_ages(events)
            if ages is not None:
                batch_span.set_attribute("podium.event_age_oldest_s", ages[0])
                batch_span.set_attribute("podium.event_age_newest_s", ages[1])
            batch_span.set_attribute(
                "podium.applied", len(plan.new_scores) + len(plan.new_controls)
            )
            batch_span.set_attribute("podium.duplicates", plan.duplicates)
            batch_span.set_attribute("podium.dead_letters", len(plan.dead_letters))
            _event_spans(tracer, events, contexts, outcomes(events, plan), started_ns)
        return self.rest(records, delivered)


def _event_contexts(events: Sequence[IncomingEvent]) -> list[Context | None]:
    """Each event's remote context, extracted once per distinct header (one batch POST's
    events share one); None when it carries none or its trace is not sampled (nothing of
    that trace is exported, so neither a link nor a span would show anywhere)."""
    cache: dict[bytes, Context | None] = {}
    contexts: list[Context | None] = []
    for event in events:
        raw = next((value for name, value in event.headers if name == tracing.TRACEPARENT), None)
        if raw is None:
            contexts.append(None)
            continue
        context = cache.get(raw, _MISSING)
        if context is _MISSING:
            context = cache[raw] = (
                tracing.extract(event.headers) if tracing.sampled_traceparent(raw) else None
            )
        contexts.append(context)
    return contexts


_MISSING: Context = Context()


def _event_spans(
    tracer: Tracer,
    events: Sequence[IncomingEvent],
    contexts: Sequence[Context | None],
    event_outcomes: Sequence[str],
    started_ns: int,
) -> None:
    """A ``score apply`` span per traced request (the events sharing one remote context: one
    single POST's event, or a batch POST's events), in that request's trace and linked to
    the batch span: a score's trace shows where and how it was applied (see the handler)."""
    groups: dict[int, tuple[Context, list[tuple[IncomingEvent, str]]]] = {}
    for event, context, outcome in zip(events, contexts, event_outcomes, strict=True):
        if context is not None:
            groups.setdefault(id(context), (context, []))[1].append((event, outcome))
    if not groups:
        return
    batch_link = [Link(get_current_span().get_span_context())]
    now = datetime.now(UTC)
    for context, members in groups.values():
        counts = Counter(outcome for _, outcome in members)
        first = members[0][0]
        attributes: dict[str, str | float | int | list[str]] = {
            "podium.events": len(members),
            "podium.applied": counts["applied"],
            "podium.duplicates": counts["duplicate"],
            "podium.dead_letters": counts["dead_letter"],
            "messaging.kafka.destination.partition": first.partition,
            "messaging.kafka.offset": first.offset,
        }
        if len(counts) == 1:
            attributes["podium.outcome"] = members[0][1]
        messages = [event.message for event, _ in members if event.message is not None]
        if messages:
            attributes["podium.event_id"] = messages[0].event_id
            attributes["podium.event_ids"] = [m.event_id for m in messages[:EVENT_IDS_SHOWN]]
            attributes["podium.competition_id"] = messages[0].competition_id
            oldest = min(message.received_at for message in messages)
            attributes["podium.event_age_s"] = (now - oldest).total_seconds()
        request_id = header_value(first.headers, REQUEST_ID)
        if request_id:
            attributes["podium.request_id"] = request_id
        tracer.start_span(
            "score apply",
            context=context,
            kind=SpanKind.CONSUMER,
            links=batch_link,
            attributes=attributes,
            start_time=started_ns,
        ).end()


def handler_class() -> type[BatchHandler]:
    """The handler this process uses: traced when tracing is on (decided at start-up)."""
    return TracedBatchHandler if tracing.ENABLED else BatchHandler


def consumer_app(settings: RankerSettings, datadir: Path) -> faust.App:
    """A faust app in the ranker's consumer group whose consumer hands whole fetches to the
    handler attached to it (:meth:`BatchConsumer.attach`); nothing is attached yet."""
    brokers = ";".join(
        f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")
    )
    session_timeout_s = settings.kafka_session_timeout_ms / 1000
    app = faust.App(
        settings.ranker_group_id,
        broker=brokers,
        broker_credentials=broker_credentials(settings),
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=settings.kafka_partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=session_timeout_s,
        broker_request_timeout=30.0,
        broker_max_poll_records=settings.ranker_batch_size,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(
        settings.topic_score_events,
        value_type=bytes,
        key_type=bytes,
        partitions=settings.kafka_partitions,
        acks=False,
        # raw: faust's default JSON codec stalls the stream on an undecodable record
        key_serializer="raw",
        value_serializer="raw",
    )
    app.transport = BatchTransport(
        app.conf.broker_consumer,
        app,
        Fetching(
            max_wait_ms=settings.ranker_fetch_max_wait_ms,
            batch_size=settings.ranker_batch_size,
            batch_within_s=settings.ranker_batch_within_s,
            gap_wait_s=settings.kafka_gap_wait_s,
        ),
        [topic],  # subscribed without an agent: every fetch goes to the BatchHandler
    )
    return app


def create_faust_app(settings: RankerSettings, datadir: Path) -> faust.App:
    """The ranker's faust app for ``settings`` (faust keeps its scratch files in ``datadir``)."""
    app = consumer_app(settings, datadir)
    lag = LagTracker(lambda tp: app.consumer.highwater(tp))

    async def rank() -> None:
        """Hold the ranker's resources while the app runs and feed the consumer's fetches to
        them (faust cancels this task when it stops, after it has stopped the fetcher)."""
        consumer = cast(BatchConsumer, app.consumer)
        try:
            async with ranker_runtime(settings) as applier:
                logger.info("ranker consuming %s", settings.topic_score_events)
                consumer.attach(handler_class()(consumer, applier, lag))
                try:
                    await asyncio.get_running_loop().create_future()  # until cancelled
                finally:
                    consumer.attach(None)
        except Exception as error:
            logger.exception("ranker runtime failed; crashing")
            await app.crash(error)
            raise

    async def refresh_lag() -> None:
        lag.refresh()
        cast(BatchConsumer, app.consumer).observe()

    async def forget_revoked(sender: Any, *arguments: Any, **_: Any) -> None:
        lag.forget(arguments[0] if arguments else ())

    app.task(rank)
    app.timer(LAG_REFRESH_S)(refresh_lag)
    app.on_partitions_revoked.connect(cast(Any, forget_revoked))
    return app


def run_worker(app: faust.App, log_level: str) -> int:
    """Run ``app`` in a faust worker on uvloop until SIGTERM/SIGINT; returns the exit status.

    uvloop: the event loop's own overhead (socket writes, callbacks) was about a tenth of a
    batch's CPU on the default loop.
    """
    started = time.monotonic()
    # a batch of 5,000 events keeps ~150k container objects alive until it is applied, and
    # refcounting frees them (no cycles): above that many live young objects, a collection
    # rarely runs mid-batch, so they are neither scanned nor promoted to the old generations
    # (decode + plan: 4.5% fewer instructions than at 50k); frozen start-up objects are never
    # rescanned
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(
        app, loop=loop, loglevel=log_level, redirect_stdouts=False, override_logging=False
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        logger.info("ranker stopped after %.1f s", time.monotonic() - started)
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
