"""Podium's services: ingest, ranker, query and notifier."""
