"""Rate limits shared by every replica: token buckets in Redis, local leases, enforcement.

Used by ingest (writes), the query API (reads) and the notifier (WebSocket connects): which
bucket a caller uses is each service's decision (``services.ingest.rate_policies``,
:mod:`shared.rate_limit.readers`); the buckets, leases and the 429 live here.
"""
