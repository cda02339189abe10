"""Fan-out: change messages in, per-client latest states out.

One :class:`Room` per competition with local subscribers. A change message only records the
newest state per window and wakes the room's worker, so the Kafka tail never waits on a
socket. The worker computes what clients see once per window, not per client: the top slice
as JSON text per distinct ``top`` size, and the rank of every followed user in one Redis call
(a user outside the top N moves when someone passes them, which the message cannot say).
Then it hands each client its state in one synchronous pass; a client that can take it at
once has it written there and then (see :mod:`services.notifier.connection`).

Snapshots are shared the same way: the top a new (or resyncing) client is shown is read from
Redis once per window, top size and room version (:meth:`Room.top_snapshot`), so 10,000
clients connecting at once cost one read, not 30,000 Redis round trips.

A ``deleted`` message (ingest deleted the competition) closes every socket of the
competition with 4404 ``competition deleted``; a room whose competition lookup finds nothing
any more (the message was missed) does the same at its next wake-up.

A ``rebuilt`` message (the ranker rebuilt the competition from PostgreSQL because Redis had
lost some of it) lists no users whose ranks may all have moved: every client of the
competition is sent a fresh snapshot instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from opentelemetry.context import Context, get_current
from redis.exceptions import RedisError

from services.notifier import metrics, protocol
from services.notifier.connection import (
    UNCHANGED,
    ClientConnection,
    Closing,
    SharedTop,
    Unchanged,
)
from services.notifier.protocol import Me
from services.notifier.repository import NotifierRepository
from shared import tracing
from shared.errors import PodiumError
from shared.rank_styles import restyled
from shared.schemas.change_message import ChangeMessage, LeaderboardEntry, WindowChange
from shared.schemas.competition import Competition, ResetSchedule
from shared.teams import team_board_id
from shared.windows import CURRENT, resolve_window

logger = logging.getLogger(__name__)

COMPETITION_DELETED = Closing(protocol.CLOSE_DELETED, "competition deleted", "deleted")


class Room:
    """The subscribers of one competition and the latest change per window."""

    def __init__(self, competition: Competition, repository: NotifierRepository) -> None:
        self.competition = competition
        self.version = 0
        self._repository = repository
        self._windows: dict[str, set[ClientConnection]] = {}
        self._pending: dict[str, WindowChange] = {}
        self._pending_emitted_at = datetime.now(UTC)
        # with tracing on: the context a change message arrived in (the change feed's
        # receive span, in the ranker batch's trace), which the fan-out continues
        self._pending_context: Context | None = None
        self._resync_all = False
        # (window, top size, room version) → the shared top snapshot, and reads in flight
        self._tops: dict[tuple[str, int, int], SharedTop] = {}
        self._top_reads: dict[tuple[str, int, int], asyncio.Task[SharedTop]] = {}
        # per window: the top last pushed (ranked in the competition's style), the ranks of
        # the top pushed before it (user -> rank: the entries' previous_rank) and the texts
        # of the last push per top size (an unchanged top reuses them, so clients skip it)
        self._shown: dict[str, list[LeaderboardEntry]] = {}
        self._previous: dict[str, dict[str, int]] = {}
        self._shown_texts: dict[str, dict[int, str]] = {}
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._work(), name=f"room-{competition.id}")

    @property
    def empty(self) -> bool:
        """Whether no client is subscribed any more."""
        return not any(self._windows.values())

    def add(self, client: ClientConnection) -> None:
        """Subscribe ``client`` to its window."""
        self._windows.setdefault(client.window, set()).add(client)
        client.room = self

    def remove(self, client: ClientConnection) -> None:
        """Unsubscribe ``client``."""
        clients = self._windows.get(client.window)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self._windows[client.window]

    def close_all(self, closing: Closing) -> None:
        """End every subscriber's connection with ``closing`` (each leaves the room as its
        handler returns; the last one out stops the room)."""
        for subscribers in self._windows.values():
            for subscriber in subscribers:
                subscriber.end(closing)

    def push(self, change_message: ChangeMessage) -> None:
        """Record a change message (newer versions only) and wake the worker."""
        if change_message.version <= self.version:
            metrics.CHANGES_APPLIED.labels("stale").inc()
            return
        metrics.CHANGES_APPLIED.labels("applied").inc()
        # Redis already holds this version (the ranker writes before it publishes), so a
        # snapshot read from now on is at least this new.
        self.version = change_message.version
        self._tops.clear()  # a snapshot from now on must be read at this version
        if change_message.rebuilt:
            self._resync_all = True
        for window_change in change_message.windows:
            self._pending[window_change.window] = window_change
        self._pending_emitted_at = change_message.emitted_at
        if tracing.ENABLED:
            self._pending_context = get_current()
        self._wakeup.set()

    async def top_snapshot(self, window: str, top_count: int) -> SharedTop:
        """The top ``top_count`` of ``window``, at least as new as this room's version.

        One Redis read per (window, top size, version), shared by every client that asks
        while it is current. The read runs in a task of its own, so a client leaving
        (cancelled) mid-read does not cancel it for the others.
        """
        key = (window, top_count, self.version)
        shared = self._tops.get(key)
        if shared is not None:
            return shared
        read = self._top_reads.get(key)
        if read is None:
            read = asyncio.create_task(self._read_top(key), name=f"top-{self.competition.id}")
            self._top_reads[key] = read
            read.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(read)

    async def _read_top(self, key: tuple[str, int, int]) -> SharedTop:
        window, top_count, version = key
        standings = await self._repository.standings(
            self.competition, window, top_count, [], known_version=version
        )
        shared = SharedTop(version=standings.version, top=protocol.top_json(standings.top))
        if window not in self._shown:  # what the first update's previous ranks are
            self._shown[window] = standings.top
        if self.version == version:  # else a change arrived meanwhile: read again next time
            self._tops[key] = shared
        return shared

    def _read_done(self, key: tuple[str, int, int], read: asyncio.Task[SharedTop]) -> None:
        self._top_reads.pop(key, None)
        if not read.cancelled():
            read.exception()  # retrieved: its waiters (if any are left) got it

    async def stop(self) -> None:
        """Stop the worker and any snapshot read still running."""
        tasks = [self._worker, *self._top_reads.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            pending, self._pending = self._pending, {}
            version, emitted_at = self.version, self._pending_emitted_at
            await self._refresh_competition()
            self._roll_current_windows()
            if self._resync_all:
                # snapshots are read after this version reached Redis: they include `pending`
                self._resync_all = False
                for subscribers in self._windows.values():
                    for subscriber in subscribers:
                        subscriber.request_resync()
                metrics.REBUILD_RESYNCS.inc()
                continue
            for window, window_change in pending.items():
                clients = self._windows.get(window)
                if clients:
                    try:
                        if tracing.ENABLED:
                            await self._fan_out_traced(
                                window_change, version, emitted_at, list(clients)
                            )
                        else:
                            await self._fan_out(window_change, version, emitted_at, list(clients))
                    except Exception:  # one bad message must not stop the room
                        logger.exception("fan-out failed for %s/%s", self.competition.id, window)

    async def _fan_out_traced(
        self,
        window_change: WindowChange,
        version: int,
        emitted_at: datetime,
        clients: list[ClientConnection],
    ) -> None:
        """:meth:`_fan_out` inside a ``notifier fan-out`` span continuing the change's trace,
        with the size of the fan-out, the frames written at once and the change's age
        (emitted by the ranker -> fan-out start): the slow stage shows in the span's
        attributes."""
        with tracing.tracer().start_as_current_span(
            "notifier fan-out",
            context=self._pending_context,
            attributes={
                "podium.competition_id": self.competition.id,
                "podium.window": window_change.window,
                "podium.version": version,
                "podium.fanout_clients": len(clients),
                "podium.change_age_s": max(time.time() - emitted_at.timestamp(), 0.0),
            },
        ) as span:
            written = await self._fan_out(window_change, version, emitted_at, clients)
            # the rest were handed to their clients' senders (busy or rate-limited)
            span.set_attribute("podium.frames_written_at_once", written)

    async def _refresh_competition(self) -> None:
        """Take the competition as the cache holds it now, so a PATCH of ``rank_style``
        reaches the pushes of clients already connected (within the cache TTL). A lookup
        while the cache is fresh is a dict read; a failing PostgreSQL keeps what the room has.
        """
        try:
            current = await self._repository.competition(self.competition.id)
        except PodiumError as error:
            logger.debug("competition refresh failed for %s: %s", self.competition.id, error)
            return
        if current is None:
            # deleted, and this notifier missed (or has not yet read) the deleted message
            self.close_all(COMPETITION_DELETED)
            return
        if current.rank_style is not self.competition.rank_style:
            # the tops shown are re-ranked in the new style: a style change is no movement
            self._tops.clear()
            self._shown_texts.clear()
            self._shown = {w: restyled(current.rank_style, t) for w, t in self._shown.items()}
            self._previous = {
                window: {entry.user_id: entry.rank for entry in top}
                for window, top in self._shown.items()
            }
        self.competition = current

    def _roll_current_windows(self) -> None:
        """Move ``window=current`` clients to the new period after a reset, with a snapshot."""
        competition = self.competition
        if competition.reset is ResetSchedule.NONE:
            return
        label = resolve_window(competition.reset, CURRENT, datetime.now(UTC), competition.timezone)
        for window, clients in list(self._windows.items()):
            if window == label:
                continue
            for client in [c for c in clients if c.subscription.requested_window == CURRENT]:
                self.remove(client)
                client.window = label
                self.add(client)
                client.request_resync()

    async def _fan_out(
        self,
        window_change: WindowChange,
        version: int,
        emitted_at: datetime,
        clients: list[ClientConnection],
    ) -> int:
        """Hand every client its new state; the number of frames written at once."""
        top = self._movement(window_change)
        previous = self._previous.get(window_change.window, {})
        followed = await self._followed_users(window_change.window, top, clients)
        top_texts = self._shown_texts.setdefault(window_change.window, {})
        plain_texts: dict[int, str] = {}
        emitted_s = emitted_at.timestamp()
        every = metrics.OBSERVE_EVERY
        written = 0
        for client in clients:
            count = client.top_count
            text = top_texts.get(count)
            if text is None:
                text = top_texts[count] = protocol.top_json(top[:count], previous)
            plain = plain_texts.get(count)
            if plain is None:
                plain = plain_texts[count] = protocol.top_json(top[:count])
            me: Me | Unchanged | None = None
            user_id = client.user_id
            if user_id is not None:
                if followed is None or user_id not in followed:
                    me = UNCHANGED
                else:
                    me = protocol.me_of(followed[user_id])
            if client.deliver(version, text, me, emitted_at, plain):
                written += 1
                if written % every == 0:  # one clock read and observation per chunk
                    metrics.CHANGE_AGE.observe(max(time.time() - emitted_s, 0.0), every)
        if written:
            if written % every:
                metrics.CHANGE_AGE.observe(max(time.time() - emitted_s, 0.0), written % every)
            metrics.messages_sent("update").inc(written)
        return written

    def _movement(self, window_change: WindowChange) -> list[LeaderboardEntry]:
        """The change's top ranked in the competition's style; when it differs from the top
        last pushed, that one becomes the previous version (its ranks are the entries'
        ``previous_rank``) and the texts of the last push are dropped."""
        window = window_change.window
        top = restyled(self.competition.rank_style, window_change.top)
        shown = self._shown.get(window)
        if shown != top:
            if shown is not None:
                self._previous[window] = {entry.user_id: entry.rank for entry in shown}
            self._shown[window] = top
            self._shown_texts.pop(window, None)
        return top

    async def _followed_users(
        self, window: str, top: list[LeaderboardEntry], clients: list[ClientConnection]
    ) -> dict[str, LeaderboardEntry | None] | None:
        """Each followed user's entry (None: not ranked); None when Redis did not answer."""
        users = {client.user_id for client in clients if client.user_id is not None}
        if not users:
            return {}
        in_top = {entry.user_id: entry for entry in top}
        found: dict[str, LeaderboardEntry | None] = {
            user: in_top[user] for user in users if user in in_top
        }
        missing = sorted(users - found.keys())
        if missing:
            try:
                ranked = await self._repository.ranks(self.competition, window, missing)
            except (RedisError, OSError) as error:
                logger.warning("rank lookup failed for %s: %s", self.competition.id, error)
                return None
            for user in missing:
                found[user] = ranked.get(user)
        return found


class Hub:
    """Every room of this process, and the connection count."""

    def __init__(self, repository: NotifierRepository, max_connections: int) -> None:
        self._repository = repository
        self._max_connections = max_connections
        self._rooms: dict[str, Room] = {}
        self.connections = 0

    def try_acquire(self) -> bool:
        """Take a connection slot; False when the process is at ``PODIUM_WS_MAX_CONNECTIONS``."""
        if self.connections >= self._max_connections:
            return False
        self.connections += 1
        metrics.CONNECTIONS.set(self.connections)
        return True

    def release(self) -> None:
        """Give a connection slot back."""
        self.connections -= 1
        metrics.CONNECTIONS.set(self.connections)

    def join(self, client: ClientConnection) -> Room:
        """Subscribe ``client``, creating its competition's room when needed."""
        competition = client.subscription.competition
        room = self._rooms.get(competition.id)
        if room is None:
            room = self._rooms[competition.id] = Room(competition, self._repository)
        else:
            room.competition = competition
        room.add(client)
        return room

    async def leave(self, client: ClientConnection) -> None:
        """Unsubscribe ``client``; the last one out stops the room."""
        competition_id = client.subscription.competition.id
        room = self._rooms.get(competition_id)
        if room is None or client.room is not room:
            return
        room.remove(client)
        if room.empty:
            del self._rooms[competition_id]
            await room.stop()

    async def on_change(self, change_message: ChangeMessage) -> None:
        """The change feed's handler: wake the competition's room, if anyone listens here."""
        room = self._rooms.get(change_message.competition_id)
        if change_message.deleted:
            self._repository.forget(change_message.competition_id)
            for closing in (room, self._rooms.get(team_board_id(change_message.competition_id))):
                if closing is not None:  # the competition's room and its team board's
                    closing.close_all(COMPETITION_DELETED)
            return
        if room is not None:
            room.push(change_message)

    async def close(self) -> None:
        """Stop every room (on shutdown)."""
        rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:
            await room.stop()
