"""Ports for child servers: below the ephemeral range, never the same twice in a process."""

from __future__ import annotations

import socket

from devstack.processes import _ephemeral_start, free_port


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < _ephemeral_start() for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", ports[0]))  # nobody took it meanwhile
