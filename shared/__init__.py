"""Podium's common library: configuration, wire schemas, logging, metrics, auth and clients."""
