"""Container HEALTHCHECK: exit 0 when this container's Podium service answers /health/live.

One image runs every service, each on its own port, so the check tries the configured
ports (``PODIUM_*_PORT``, else the defaults) and passes when any answers 200. Standard library
only: it runs with the image's Python and no Podium import (cheap, every 15 s). HTTPS is used
when ``PODIUM_TLS_CERTFILE`` is set (the certificate is not verified: it is localhost).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {
    "PODIUM_INGEST_PORT": 8001,
    "PODIUM_QUERY_PORT": 8002,
    "PODIUM_NOTIFIER_PORT": 8003,
    "PODIUM_RANKER_PORT": 8004,
}
TIMEOUT_S = 2.0


def candidate_urls(environ: dict[str, str]) -> list[str]:
    """The /health/live URLs this container may serve, from its environment."""
    scheme = "https" if environ.get("PODIUM_TLS_CERTFILE") else "http"
    ports = [int(environ.get(name, default)) for name, default in DEFAULT_PORTS.items()]
    return [f"{scheme}://127.0.0.1:{port}/health/live" for port in dict.fromkeys(ports)]


def is_live(url: str) -> bool:
    """Whether ``url`` answers 200 within the timeout."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    """0 when some Podium port answers /health/live, else 1."""
    for url in candidate_urls(dict(os.environ)):
        if is_live(url):
            return 0
    print("podium healthcheck: no /health/live answered", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
