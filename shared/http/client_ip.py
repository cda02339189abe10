"""The caller's address, believing ``X-Forwarded-For`` only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(addresses: Iterable[str]) -> list[IPNetwork]:
    """Parse proxy addresses or CIDR ranges (``10.0.0.0/8``) from settings."""
    return [ipaddress.ip_network(address, strict=False) for address in addresses]


def _trusted(address: str, proxies: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(connection: HTTPConnection, proxies: list[IPNetwork]) -> str:
    """The client's IP: the peer, or, when the peer is a trusted proxy, the right-most
    ``X-Forwarded-For`` hop that is not itself a trusted proxy (hops a client wrote further
    left are ignored, so spoofing the header gains nothing)."""
    peer = connection.client.host if connection.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    forwarded = connection.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return peer
