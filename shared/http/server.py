"""Serving a Starlette app with uvicorn, configured from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from shared.settings import CommonSettings


@dataclass(frozen=True)
class WebSocketLimits:
    """uvicorn's WebSocket limits, for the one service with WebSocket routes (the notifier).

    They are that service's settings (``PODIUM_WS_*``), so shared code takes them as an
    argument rather than reading a service's field. A service without them runs with
    uvicorn's defaults, which never apply there: with no WebSocket route, an upgrade is
    refused (403) before any frame is read or any ping sent.
    """

    max_message_bytes: int
    ping_interval_s: float
    # uvicorn's WebSocket protocol class as an import path ("auto": uvicorn's choice); the
    # notifier names its own, which lets the app write prebuilt frames
    protocol: str = "auto"

    def uvicorn_options(self) -> dict[str, object]:
        """The limits as ``uvicorn.Config`` keywords (a missed ping closes the socket)."""
        return {
            "ws": self.protocol,
            "ws_max_size": self.max_message_bytes,
            "ws_ping_interval": self.ping_interval_s,
            "ws_ping_timeout": self.ping_interval_s,
        }


def uvicorn_config(
    app: Starlette | str,
    settings: CommonSettings,
    port: int,
    *,
    websocket: WebSocketLimits | None = None,
    **overrides: object,
) -> uvicorn.Config:
    """A uvicorn config: our logging, TLS when configured, graceful shutdown bound."""
    options: dict[str, object] = {
        "host": settings.host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (its default
        # FORWARDED_ALLOW_IPS) and rewrite the client address before Podium sees it, so a
        # local peer could pick any address for its rate-limit bucket; only
        # PODIUM_TRUSTED_PROXIES decides (shared.http.client_ip)
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "timeout_keep_alive": 5,
        # httptools plus a deadline for the request head, which uvicorn lacks (slowloris)
        "http": "shared.http.header_timeout:HeaderTimeoutProtocol",
        "ssl_certfile": settings.tls_certfile,
        "ssl_keyfile": settings.tls_keyfile,
        **(websocket.uvicorn_options() if websocket is not None else {}),
        # permessage-deflate compresses each frame per connection: it would undo the
        # notifier's serialise-once fan-out (CPU per client per update)
        "ws_per_message_deflate": False,
        "lifespan": "on",
        **overrides,
    }
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def serve(
    app_factory: Callable[[], Starlette],
    settings: CommonSettings,
    port: int,
    *,
    websocket: WebSocketLimits | None = None,
) -> None:
    """Run the app built by ``app_factory`` until SIGINT/SIGTERM.

    uvicorn is handed the factory's import path rather than an app object so that it can
    start ``PODIUM_HTTP_WORKERS`` worker processes, each building its own app (and pools);
    the factory takes no arguments, so it loads its service's settings itself (the
    composition root's factories in ``podium.apps`` do). The caller still names a real
    function, not a string.
    """
    factory_path = f"{app_factory.__module__}:{app_factory.__qualname__}"
    config = uvicorn_config(
        factory_path,
        settings,
        port,
        websocket=websocket,
        factory=True,
        workers=settings.http_workers,
    )
    server = uvicorn.Server(config)
    if settings.http_workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
    if not server.started and settings.http_workers == 1:
        raise SystemExit(3)
