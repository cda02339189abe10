"""The faust app: one agent taking batches of ``score-events`` and committing what it applied.

Records are read raw: faust's JSON codec would stall the partition on a bad record, the ranker
decodes and dead-letters instead. Faust's own acking is not used (``acks=False`` on the
topic): faust acks a batch when it is taken, and when the agent body failed it committed the
batch without applying it. Instead the agent applies a batch (retrying inside, so no error
reaches faust), then commits ``offset + 1`` of the batch's last record per partition. An
exception that still escapes crashes the process (``CrashingSupervisor``): a restarted agent
would skip the failed batch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path
from typing import Any, cast

import faust
import faust.auth
import mode
import uvloop
from aiokafka.helpers import create_ssl_context

from services.ranker.applier import decode
from services.ranker.lag import LagTracker
from services.ranker.runtime import ranker_runtime
from services.ranker.settings import RankerSettings

logger = logging.getLogger(__name__)

LAG_REFRESH_S = 1.0
GC_GEN0_THRESHOLD = 50_000


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


def create_faust_app(settings: RankerSettings, datadir: Path) -> faust.App:
    """The ranker's faust app for ``settings`` (faust keeps its scratch files in ``datadir``)."""
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

    async def rank(stream: Any) -> None:
        async with ranker_runtime(settings) as applier:
            logger.info("ranker consuming %s", settings.topic_score_events)
            async for records in stream.take_events(
                settings.ranker_batch_size, within=settings.ranker_batch_within_s
            ):
                events = [
                    decode(
                        record.message.partition,
                        record.message.offset,
                        record.message.key,
                        record.message.value,
                    )
                    for record in records
                ]
                await applier.apply_with_retries(events)
                offsets: dict[Any, int] = {}
                for record in records:
                    tp = record.message.tp
                    offsets[tp] = max(offsets.get(tp, -1), record.message.offset + 1)
                if not await cast(Any, app.consumer)._commit(offsets):
                    logger.warning("offsets %s not committed (partitions moved)", offsets)
                    continue
                lag.committed(offsets)

    lag = LagTracker(lambda tp: app.consumer.highwater(tp))

    async def refresh_lag() -> None:
        lag.refresh()

    async def forget_revoked(sender: Any, *arguments: Any, **_: Any) -> None:
        lag.forget(arguments[0] if arguments else ())

    app.agent(topic, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)(rank)
    app.timer(LAG_REFRESH_S)(refresh_lag)
    app.on_partitions_revoked.connect(cast(Any, forget_revoked))
    return app


def run_worker(app: faust.App, log_level: str) -> int:
    """Run ``app`` in a faust worker on uvloop until SIGTERM/SIGINT; returns the exit status.

    uvloop: the event loop's own overhead (socket writes, callbacks) was about a tenth of a
    batch's CPU on the default loop.
    """
    started = time.monotonic()
    # a batch allocates ~100k short-lived objects: a bigger generation-0 threshold promotes
    # fewer of them to the old generations, and frozen start-up objects are never rescanned
    # (together about a tenth of a batch's CPU was garbage collection)
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
