"""Writing one prebuilt WebSocket frame to many sockets, and quiet per-connection logs.

Through ASGI, every ``websocket.send`` of the same update to 10,000 clients frames the text
again: starlette's send, uvicorn's send, websockets' ``send_text`` (encode, ``Frame``,
``serialize``, ``data_to_send``, join) and then the one ``transport.write`` that matters.
Measured on the bench, that path was most of the notifier's ~55 µs of CPU per client and
update. A server-to-client text frame is the same bytes for every socket (no masking, no
per-connection state once permessage-deflate is off), so the fan-out encodes it once
(:func:`text_frame`) and writes those bytes to each socket.

uvicorn does not offer its transport to the app, so :class:`FrameWriterProtocol` (uvicorn's
websockets-sansio protocol, selected through :func:`services.notifier.app.websocket_limits`)
adds one ASGI scope extension, ``podium.frame_writer``, whose ``writer`` can tell whether a
frame may be written now and write it. It refuses whenever the ASGI path would not write at
once: before the handshake, after a close was sent or received, while the transport's
buffer is over its high-water mark (the socket is slow: the caller then waits through ASGI,
under the send timeout, exactly as before) or when an extension was negotiated. Under
another server (or a test client) the extension is absent and every frame goes through ASGI.

Per-connection INFO lines (uvicorn's ``"WebSocket /ws/..." [accepted]`` and websockets'
``connection open`` / ``connection closed``) are logged at DEBUG instead
(:class:`ConnectionLogsAtDebug`): at 10,000 clients they were 30,000 lines per reconnect
storm and told an operator nothing the connection gauge does not.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final, Protocol

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

EXTENSION: Final = "podium.frame_writer"
UVICORN_LOGGER: Final = "uvicorn.error"
# distinct frames kept encoded: the shared ones of the last updates and snapshots (per-user
# frames pass through and are evicted first)
_ENCODED_FRAMES: Final = 256
_PER_CONNECTION_MESSAGES: Final = frozenset(
    {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
)


class FrameWriter(Protocol):
    """Writes complete, already encoded frames to one socket."""

    def can_write(self) -> bool:
        """Whether a frame written now goes straight to the transport."""
        ...

    def write(self, frame: bytes) -> None:
        """Write ``frame``; only after :meth:`can_write` answered True in this loop step."""
        ...


@functools.lru_cache(maxsize=_ENCODED_FRAMES)
def text_frame(text: str) -> bytes:
    """``text`` as one unmasked, final WebSocket text frame (what a server sends).

    Cached: the fan-out passes the very same text object for every top-only client of an
    update (:func:`~services.notifier.protocol.top_update_frame`), so 10,000 sockets cost
    one encoding and then a dictionary hit each (a ``str`` keeps its hash).
    """
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def frame_writer(websocket: WebSocket) -> FrameWriter | None:
    """The socket's frame writer, or None when the server does not offer one."""
    extension: dict[str, Any] | None = websocket.scope.get("extensions", {}).get(EXTENSION)
    return None if extension is None else extension.get("writer")


class FrameWriterProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, plus the ``podium.frame_writer`` extension."""

    def handle_connect(self, event: Request) -> None:
        """Accept the upgrade as uvicorn does, then offer the writer to the app.

        The scope is built here and the app's task only starts on a later loop step, so the
        extension is in place before the app reads it.
        """
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:  # only a 101 builds a scope (a refusal never reaches the app)
            scope["extensions"][EXTENSION] = {"writer": self}

    def connection_lost(self, exc: Exception | None) -> None:
        """Also take the writer out of the scope: the scope refers to this protocol and the
        protocol to the scope, a cycle that reference counting cannot free, and the
        notifier's GC freezing keeps cycles for minutes (every closed connection would
        linger until the next sweep)."""
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(EXTENSION, None)
        super().connection_lost(exc)

    def can_write(self) -> bool:
        """Open, handshake sent, no close either way, no extension, transport not paused."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and self.conn.state is State.OPEN
            and not self.conn.extensions
            and not self.transport.is_closing()
        )

    def write(self, frame: bytes) -> None:
        """Write one complete frame (the caller checked :meth:`can_write`)."""
        self.transport.write(frame)


class ConnectionLogsAtDebug(logging.Filter):
    """Turns the per-connection INFO lines ``logger`` gets from uvicorn and websockets into
    DEBUG ones (dropped unless ``logger`` is enabled for DEBUG)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass every other record; demote (or drop) a per-connection line."""
        if record.levelno != logging.INFO or record.msg not in _PER_CONNECTION_MESSAGES:
            return True
        if not self._logger.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


def log_connections_at_debug() -> None:
    """Install :class:`ConnectionLogsAtDebug` on uvicorn's logger (idempotent)."""
    logger = logging.getLogger(UVICORN_LOGGER)
    if not any(isinstance(existing, ConnectionLogsAtDebug) for existing in logger.filters):
        logger.addFilter(ConnectionLogsAtDebug(logger))
