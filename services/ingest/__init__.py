"""Ingest: authenticated, validated, rate-limited score intake onto Kafka."""
