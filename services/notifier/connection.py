"""One subscribed WebSocket: its latest-state slot, its rate limit and its two loops.

The fan-out never writes to a socket: it hands each client the latest state it should see
(:meth:`ClientConnection.offer`, synchronous and cheap). The client's own sender task sends
it when the rate limit allows, so a burst of changes becomes one update with the latest
state, and a slow socket only ever delays itself. The update path holds at most one pending
state (a newer one replaces it: intermediates are dropped, latest wins); replies to the
client's own messages wait in a queue bounded by ``PODIUM_WS_QUEUE_SIZE``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import asyncpg
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.notifier import metrics, protocol
from services.notifier.protocol import Me
from services.notifier.repository import NotifierRepository
from services.notifier.settings import NotifierSettings
from shared.errors import PodiumError
from shared.schemas.competition import Competition

logger = logging.getLogger(__name__)


class RoomVersion(Protocol):
    """What a client needs of its room: the change version it last fanned out.

    A protocol rather than the hub's ``Room`` so that the dependency points one way
    (the hub knows its clients; a client only reads this number).
    """

    @property
    def version(self) -> int:
        """The newest change version the room has seen."""
        ...


class Unchanged:
    """Marker: the fan-out could not look the user up; keep what the client has."""


UNCHANGED: Final = Unchanged()


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a client watches: one window of a competition, maybe one user, the top N."""

    competition: Competition
    requested_window: str
    window: str
    user_id: str | None
    top_count: int


@dataclass(frozen=True, slots=True)
class _Pending:
    version: int
    top: str
    me: Me | Unchanged | None
    emitted_at: datetime


@dataclass(frozen=True, slots=True)
class Closing:
    """Why the server ends a connection: close code, reason text and metric label."""

    code: int
    reason: str
    label: str


class TokenBucket:
    """A small token bucket limiting what one client may send."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the client is over its rate."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class ClientConnection:
    """A subscriber: receives offers from its room and runs its own send/receive loops."""

    def __init__(
        self,
        websocket: WebSocket,
        subscription: Subscription,
        settings: NotifierSettings,
        repository: NotifierRepository,
    ) -> None:
        self.websocket = websocket
        self.subscription = subscription
        self.window = subscription.window
        self.room: RoomVersion | None = None
        self._settings = settings
        self._repository = repository
        self._interval_s = 1.0 / settings.notify_max_hz
        self._controls: collections.deque[str] = collections.deque()
        self._pending: _Pending | None = None
        self._resync = True  # the first frame is a snapshot
        self._wakeup = asyncio.Event()
        self._sending = False
        self._closed = False
        self.version = 0
        self._sent_top: str | None = None
        self._sent_me: Me | None = None

    @property
    def user_id(self) -> str | None:
        """The user this client follows, if any."""
        return self.subscription.user_id

    @property
    def top_count(self) -> int:
        """How many top entries this client shows."""
        return self.subscription.top_count

    # --- called by the room (synchronous: no awaits in the fan-out) -------------------------
    def offer(
        self, version: int, top: str, me: Me | Unchanged | None, emitted_at: datetime
    ) -> None:
        """The latest state this client should see; sent when the client can take it."""
        if self._closed or version <= self.version:
            return
        if self._pending is not None:
            metrics.UPDATES_DROPPED.labels("slow" if self._sending else "rate").inc()
        elif top == self._sent_top and (isinstance(me, Unchanged) or me == self._sent_me):
            return
        self._pending = _Pending(version, top, me, emitted_at)
        self._wakeup.set()

    def request_resync(self) -> None:
        """Send a fresh snapshot next (client asked, or its ``current`` window rolled over)."""
        self._resync = True
        self._wakeup.set()

    # --- the connection's life ------------------------------------------------------------
    async def serve(self) -> Closing | None:
        """Run until the client leaves (None) or the server decides to close (the reason)."""
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop())
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._closed = True
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        finished = done.pop()
        if finished.cancelled():
            return None
        return finished.result()

    async def _receive_loop(self) -> Closing | None:
        bucket = TokenBucket(
            self._settings.ws_client_messages_per_s, self._settings.ws_client_message_burst
        )
        limit = self._settings.ws_max_message_bytes
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode(errors="replace")
            if len(text.encode()) > limit:
                return Closing(
                    protocol.CLOSE_TOO_BIG, f"messages are limited to {limit} bytes", "too_large"
                )
            if not bucket.take():
                return Closing(protocol.CLOSE_POLICY, "too many messages; slow down", "flooding")
            try:
                client_message = protocol.parse_client_message(text)
            except PodiumError as error:
                reply = protocol.error_frame(error)
            else:
                if client_message.type == "resync":
                    self.request_resync()
                    continue
                reply = protocol.PONG_FRAME
            if len(self._controls) >= self._settings.ws_queue_size:
                return Closing(protocol.CLOSE_POLICY, "replies are not being read", "flooding")
            self._controls.append(reply)
            self._wakeup.set()

    async def _send_loop(self) -> Closing | None:
        loop = asyncio.get_running_loop()
        next_send_at = 0.0
        while True:
            if not (self._controls or self._resync or self._pending):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delay = next_send_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                frame, kind, emitted_at = await self._next_frame()
            except SnapshotUnavailableError:
                return Closing(
                    protocol.CLOSE_TRY_AGAIN,
                    "leaderboard unavailable; reconnect later",
                    "unavailable",
                )
            if frame is None:
                continue
            self._sending = True
            try:
                async with asyncio.timeout(self._settings.ws_send_timeout):
                    await self.websocket.send_text(frame)
            except TimeoutError:
                return Closing(
                    protocol.CLOSE_TRY_AGAIN,
                    f"client did not take a message within {self._settings.ws_send_timeout:g} s",
                    "slow",
                )
            except (WebSocketDisconnect, RuntimeError, OSError):
                return None
            finally:
                self._sending = False
            _sent_counter(kind).inc()
            if emitted_at is not None:
                lag = time.time() - emitted_at.timestamp()
                metrics.FANOUT_LATENCY.observe(max(lag, 0.0))
            next_send_at = loop.time() + self._interval_s

    async def _next_frame(self) -> tuple[str | None, str, datetime | None]:
        if self._controls:
            frame = self._controls.popleft()
            return frame, "error" if frame.startswith('{"type":"error"') else "pong", None
        if self._resync:
            self._resync = False
            return await self._snapshot(), "snapshot", None
        pending, self._pending = self._pending, None
        if pending is None or pending.version <= self.version:
            return None, "update", None
        top = None if pending.top == self._sent_top else pending.top
        with_me = self.user_id is not None and not isinstance(pending.me, Unchanged)
        me = pending.me if isinstance(pending.me, Me) else None
        if with_me and me == self._sent_me:
            with_me = False
        self.version = pending.version
        if top is None and not with_me:
            return None, "update", None
        if top is not None:
            self._sent_top = top
        if with_me:
            self._sent_me = me
        if with_me or top is None:
            frame = protocol.update_frame(pending.version, top, me, with_me)
        else:
            frame = protocol.top_update_frame(pending.version, top)
        return frame, "update", pending.emitted_at

    async def _snapshot(self) -> str:
        subscription = self.subscription
        known_version = self.room.version if self.room is not None else 0
        try:
            standings = await self._repository.standings(
                subscription.competition,
                self.window,
                subscription.top_count,
                [subscription.user_id] if subscription.user_id else [],
                known_version=known_version,
            )
        except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise SnapshotUnavailableError(str(error)) from error
        top = protocol.top_json(standings.top)
        me = protocol.me_of(standings.users.get(subscription.user_id or ""))
        self.version = max(self.version, standings.version)
        if self._pending is not None and self._pending.version <= self.version:
            self._pending = None
        self._sent_top, self._sent_me = top, me
        return protocol.snapshot_frame(
            subscription.competition.id,
            self.window,
            self.version,
            top,
            me,
            subscription.user_id is not None,
        )


@functools.cache
def _sent_counter(kind: str) -> Counter:
    """The labelled child of ``MESSAGES_SENT`` (looked up once per kind, not per send)."""
    return metrics.MESSAGES_SENT.labels(kind)


class SnapshotUnavailableError(Exception):
    """Redis or PostgreSQL did not answer while building a snapshot."""
