"""Ranker: the faust-streaming processor that turns score events into standings.

Modules, in the order a batch flows through them:

- ``agent``: the faust app; applies each fetch as one batch, then commits its offsets itself;
- ``consumer``: faust's Kafka consumer handing whole fetches over (no per-event stream path);
- ``records``: decoding records into plain events (the topic model only for unusual ones);
- ``applier``: one batch end to end (PostgreSQL, Redis, change messages, dead letters);
- ``repository``: the set-based PostgreSQL statements (locks, state, inserts, upserts);
- ``planner`` and ``rules``: the pure decisions (dedup, dead letters, operators, controls);
- ``index``: the Redis write of absolute standings and the change description;
- ``runtime``: the resources and the ``/health/*`` + ``/metrics`` server on the worker's loop;
- ``rebuild``: ``podium rebuild [--competition ID]``;
- ``metrics``: the Prometheus series (``podium_ranker_*``).

Dead letters go to ``PODIUM_TOPIC_DEAD_LETTERS`` with the original key, value and headers
(``request_id``, ``producer``, ``traceparent``), then the headers ``reason``
(``undecodable``, ``unknown_competition``, ``bad_value``, ``bad_time``,
``outside_competition``, ``late``, ``banned``, ``beyond_dedup_horizon``), ``source_partition``,
``source_offset`` and, for undecodable records, ``error``. Delivery is at least once: a
replayed batch may publish a dead letter or a change message again (change-message versions
still increase).
"""
