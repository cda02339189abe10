"""One subscribed WebSocket: its latest-state slot, its rate limit and its two loops.

The fan-out hands each client the latest state it should see
(:meth:`ClientConnection.deliver`, synchronous, no awaits). When the client can take it at
once (its sender is idle, its rate limit allows a frame now and its socket is writable, see
:mod:`services.notifier.wire`), the update is written right there: the same encoded frame
bytes for every top-only client, no task woken per client. Otherwise the state is left in
the client's one pending slot (:meth:`ClientConnection.offer`) and the client's own sender
task sends it when the rate limit allows, so a burst of changes becomes one update with the
latest state, and a slow socket only ever delays itself: a newer state replaces the pending
one (intermediates are dropped, latest wins), and a socket that does not take a frame within
``PODIUM_WS_SEND_TIMEOUT`` is closed. Replies to the client's own messages wait in a queue
bounded by ``PODIUM_WS_QUEUE_SIZE``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import asyncpg
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.notifier import metrics, protocol, wire
from services.notifier.protocol import Me
from services.notifier.repository import NotifierRepository
from services.notifier.settings import NotifierSettings
from shared.errors import PodiumError
from shared.schemas.competition import Competition

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedTop:
    """A window's top as a snapshot shows it, read once for every client of a room version."""

    version: int  # the data is at least this new (the version was read before it)
    top: str  # JSON text of the entries


class SubscribedRoom(Protocol):
    """What a client needs of its room: the version it has seen and the shared top snapshot.

    A protocol rather than the hub's ``Room`` so that the dependency points one way (the hub
    knows its clients; a client only uses these two).
    """

    @property
    def version(self) -> int:
        """The newest change version the room has seen."""
        ...

    async def top_snapshot(self, window: str, top_count: int) -> SharedTop:
        """The top ``top_count`` of ``window`` at least as new as :attr:`version`."""
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
    plain: str


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
    """A subscriber: receives states from its room and runs its own send/receive loops."""

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
        # plain attributes, not properties: the fan-out reads them for every client
        self.user_id = subscription.user_id
        self.top_count = subscription.top_count
        self.room: SubscribedRoom | None = None
        self._settings = settings
        self._repository = repository
        self._writer = wire.frame_writer(websocket)
        self._loop = asyncio.get_running_loop()
        self._interval_s = 1.0 / settings.notify_max_hz
        self._next_send_at = 0.0  # loop time before which no frame may be sent (rate limit)
        self._controls: collections.deque[str] = collections.deque()
        self._pending: _Pending | None = None
        self._resync = True  # the first frame is a snapshot
        self._wakeup = asyncio.Event()
        self._busy = False  # the sender took work and has not sent it yet
        self._sending = False  # the sender waits for the socket to take a frame
        self._closed = False
        self._ending: Closing | None = None  # the server ends the connection (see end)
        self.version = 0
        self._sent_top: str | None = None
        self._sent_me: Me | None = None

    # --- called by the room (synchronous: no awaits in the fan-out) -------------------------
    def deliver(
        self,
        version: int,
        top: str,
        me: Me | Unchanged | None,
        emitted_at: datetime,
        plain: str | None = None,
    ) -> bool:
        """The latest state this client should see: written now when the client can take it
        at once, else left to its sender (:meth:`offer`). True when a frame was written.

        ``top`` is the text to send (with the entries' ``previous_rank``), ``plain`` the same
        entries without movement (the snapshot's form; None: ``top`` itself): what the client
        was sent is compared by it, so a top that only has new previous ranks is not news.
        """
        if plain is None:
            plain = top
        if self._closed or version <= self.version:
            return False
        writer = self._writer
        if (
            writer is None
            or self._busy
            or self._pending is not None
            or self._controls
            or self._resync
            or self._loop.time() < self._next_send_at
            or not writer.can_write()
        ):
            self.offer(version, top, me, emitted_at, plain)
            return False
        frame = self._take_update(version, top, me, plain)
        if frame is None:
            return False
        writer.write(wire.text_frame(frame))
        self._next_send_at = self._loop.time() + self._interval_s
        return True

    def offer(
        self,
        version: int,
        top: str,
        me: Me | Unchanged | None,
        emitted_at: datetime,
        plain: str | None = None,
    ) -> None:
        """The latest state this client should see; sent by its sender when it can."""
        if self._closed or version <= self.version:
            return
        if plain is None:
            plain = top
        if self._pending is not None:
            metrics.UPDATES_DROPPED.labels("slow" if self._sending else "rate").inc()
        elif plain == self._sent_top and (isinstance(me, Unchanged) or me == self._sent_me):
            return
        self._pending = _Pending(version, top, me, emitted_at, plain)
        self._wakeup.set()

    def request_resync(self) -> None:
        """Send a fresh snapshot next (client asked, or its ``current`` window rolled over)."""
        self._resync = True
        self._wakeup.set()

    def end(self, closing: Closing) -> None:
        """Close this connection with ``closing`` (its competition was deleted): the sender
        stops and :meth:`serve` returns it."""
        self._ending = closing
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
        while True:
            if self._ending is not None:
                return self._ending
            if not (self._controls or self._resync or self._pending):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delay = self._next_send_at - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._busy = True
            try:
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
                sent = await self._send(frame)
            finally:
                self._busy = False
            if sent is False:
                return None  # the client is gone
            if isinstance(sent, Closing):
                return sent
            metrics.messages_sent(kind).inc()
            if emitted_at is not None:
                metrics.CHANGE_AGE.observe(max(time.time() - emitted_at.timestamp(), 0.0))
            self._next_send_at = self._loop.time() + self._interval_s

    async def _send(self, frame: str) -> Closing | bool:
        """Send one frame: True when sent, False when the client is gone, or why to close.

        Written directly when the socket takes it at once (the frame bytes are cached, so a
        snapshot or update shared by many clients is encoded once); otherwise through ASGI,
        waiting at most ``PODIUM_WS_SEND_TIMEOUT`` for a slow socket to drain.
        """
        writer = self._writer
        if writer is not None and writer.can_write():
            writer.write(wire.text_frame(frame))
            return True
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
            return False
        finally:
            self._sending = False
        return True

    async def _next_frame(self) -> tuple[str | None, str, datetime | None]:
        if self._controls:
            frame = self._controls.popleft()
            return frame, "error" if frame.startswith('{"type":"error"') else "pong", None
        if self._resync:
            self._resync = False
            return await self._snapshot(), "snapshot", None
        pending, self._pending = self._pending, None
        if pending is None:
            return None, "update", None
        update = self._take_update(pending.version, pending.top, pending.me, pending.plain)
        return update, "update", pending.emitted_at

    def _take_update(
        self, version: int, top: str, me: Me | Unchanged | None, plain: str | None = None
    ) -> str | None:
        """The update frame taking this client from what it was sent to ``(top, me)`` at
        ``version``, recorded as sent; None when it already has all of it (or newer).
        ``plain`` is ``top`` without movement (see :meth:`deliver`)."""
        if version <= self.version:
            return None
        if plain is None:
            plain = top
        new_top = None if plain == self._sent_top else top
        with_me = self.user_id is not None and not isinstance(me, Unchanged)
        me_state = me if isinstance(me, Me) else None
        if with_me and me_state == self._sent_me:
            with_me = False
        self.version = version
        if new_top is None and not with_me:
            return None
        if new_top is not None:
            self._sent_top = plain
        previous_me = self._sent_me
        if with_me:
            self._sent_me = me_state
        if with_me or new_top is None:
            return protocol.update_frame(version, new_top, me_state, with_me, previous_me)
        return protocol.top_update_frame(version, new_top)

    async def _snapshot(self) -> str:
        subscription = self.subscription
        room = self.room
        if room is None:
            raise RuntimeError("a client is served only once it joined its room")
        try:
            shared = await room.top_snapshot(self.window, subscription.top_count)
            users = (
                await self._repository.ranks(
                    subscription.competition, self.window, [subscription.user_id]
                )
                if subscription.user_id is not None
                else {}
            )
        except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise SnapshotUnavailableError(str(error)) from error
        self.version = max(self.version, shared.version)
        if self._pending is not None and self._pending.version <= self.version:
            self._pending = None
        self._sent_top = shared.top
        if subscription.user_id is None:
            return protocol.top_snapshot_frame(
                subscription.competition.id, self.window, self.version, shared.top
            )
        me = protocol.me_of(users.get(subscription.user_id))
        self._sent_me = me
        return protocol.snapshot_frame(
            subscription.competition.id, self.window, self.version, shared.top, me, True
        )


class SnapshotUnavailableError(Exception):
    """Redis or PostgreSQL did not answer while building a snapshot."""
