"""Ranker: the faust-streaming processor that turns score events into standings."""
