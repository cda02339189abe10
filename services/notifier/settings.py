"""The notifier's settings: the common ones plus what only the notifier reads."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """The notifier's configuration: its port, send rate and WebSocket limits.

    Only the notifier serves WebSockets, so the ``ws_*`` fields are its own; the two that
    configure uvicorn's WebSocket protocol reach the shared server code as an argument
    (:func:`services.notifier.app.websocket_limits`), not as fields of the common settings.
    """

    notifier_port: int = Field(8003, ge=1, le=65535, description="Notifier service HTTP port.")
    notify_max_hz: float = Field(5.0, gt=0, description="Most messages/s sent to one client.")
    ws_send_timeout: float = Field(
        5.0, gt=0, description="Seconds a client may take to accept a message before closing."
    )
    ws_queue_size: int = Field(8, ge=1, description="Per-client outgoing queue bound.")
    ws_max_connections: int = Field(20_000, ge=1, description="WebSocket connections/process.")
    ws_ping_interval_s: float = Field(20.0, gt=0, description="WebSocket ping interval.")
    ws_max_message_bytes: int = Field(4096, ge=64, description="Largest client WS message.")
    ws_client_messages_per_s: float = Field(
        2.0, gt=0, description="Messages/s a WS client may send (resync, ping); more is 1008."
    )
    ws_client_message_burst: int = Field(
        10, ge=1, description="Burst of client WS messages allowed above that rate."
    )
