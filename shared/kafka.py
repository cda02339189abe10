"""Kafka clients: producer and consumer factories and topic creation.

Producers always use ``acks=all``. The idempotent producer is a setting because the local
broker (tansu) does not implement ``InitProducerId``; turn it on against real Kafka.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from shared.settings import CommonSettings

logger = logging.getLogger(__name__)


def connection_options(settings: CommonSettings) -> dict[str, Any]:
    """Options every Kafka client shares: servers, security and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def create_producer(settings: CommonSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with ``acks=all``; not started (call ``await producer.start()``)."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "request_timeout_ms": int(settings.kafka_request_timeout_s * 1000),
        "max_batch_size": 1_048_576,
        **overrides,
    }
    return AIOKafkaProducer(**options)


def create_consumer(
    settings: CommonSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer with the configured session timeouts; not started."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "group_id": group_id,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "rebalance_timeout_ms": max(settings.kafka_session_timeout_ms, 10_000),
        **overrides,
    }
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: CommonSettings) -> None:
    """Create Podium's topics when they are missing (existing topics are left as they are)."""
    partitions = settings.kafka_partitions
    wanted = [
        NewTopic(settings.topic_score_events, partitions, settings.kafka_replication_factor),
        NewTopic(settings.topic_changes, partitions, settings.kafka_replication_factor),
        NewTopic(settings.topic_dead_letters, partitions, settings.kafka_replication_factor),
    ]
    admin = AIOKafkaAdminClient(
        **connection_options(settings),
        request_timeout_ms=int(settings.kafka_request_timeout_s * 1000),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                logger.info("topics created concurrently by another process")
            logger.info("created topics %s", [topic.name for topic in missing])
    finally:
        await admin.close()


async def ping(producer: AIOKafkaProducer) -> None:
    """Raise unless the cluster answers a metadata request."""
    await producer.client.fetch_all_metadata()
