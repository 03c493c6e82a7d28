"""The room registry: each document is loaded once however many join at once, and unloaded
only when it is empty, fully committed and past its grace period.

The hub owns the long-lived tasks (the saver, document loads, the once-a-second ticker that sends
heartbeats, closes idle connections and expires awareness) through the task group it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pycrdt import Doc

from storage import DocumentStore, StoredDocument, fold_async

from . import cluster
from .cluster import Bus, Envelope
from .errors import CloseCode, CollabError, DocumentLoadError
from .hooks import (
    ConnectionInfo,
    Extension,
    HookRunner,
    OnChangePayload,
    OnDisconnectPayload,
    OnLoadDocumentPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from .room import Member, Room, apply_update
from .saver import Saver
from .session import Session
from .settings import Settings
from .subdocs import SubdocOptions

log = logging.getLogger(__name__)

TICK_S = 1.0


async def restore(stored: StoredDocument, subdocs: SubdocOptions | None = None) -> Doc[Any]:
    """Snapshot + log tail -> Doc. A long tail is folded off the event loop into one update.
    `subdocs` learns the options of the subdocuments it holds, as stored."""
    doc: Doc[Any] = Doc()
    base = [stored.snapshot] if stored.snapshot else []
    watching = subdocs.watch(doc) if subdocs is not None else None
    try:
        if len(stored.updates) > 64:
            apply_update(doc, await fold_async(base, stored.updates))
        else:
            with doc.transaction():
                for update in (*base, *stored.updates):
                    apply_update(doc, update)
    finally:
        if watching is not None:
            doc.unobserve(watching)
    if subdocs is not None and subdocs.added:
        subdocs.added = False
        await subdocs.learn_stored([*base, *stored.updates])
    return doc


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        task_group: TaskGroup,
        extensions: Sequence[Extension] = (),
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self._peers: dict[bytes, int] = {}  # cluster peers -> _bus_ticks when last heard
        self._bus_ticks = 0  # our own heartbeats heard back from the bus (see _heard_self)
        self._bus_ticked_at = -1e9  # when the last one counted came back (time.monotonic())
        self._process_id = bus.process_id if bus is not None else b""
        self._bus_backlog: dict[str, list[tuple[str, Envelope]]] = {}
        self.hooks = HookRunner(extensions)
        self.store = store
        self._tg = task_group
        self.saver = Saver(
            store,
            commit_window_ms=settings.commit_window_ms,
            compact_after_rows=settings.compact_after_rows,
            compact_after_bytes=settings.compact_after_bytes,
            live_compaction=bus is None,
        )
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self.connections: set[Session] = set()  # every session in a room
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self._accepting = True
        self.flush_failed = False  # set when shutdown could not commit everything in time
        self.loads = 0  # documents loaded from the store since start (a test observes it)
        if self.hooks.has("on_store_document"):
            self.saver.on_committed.append(self._stored)
        if bus is not None and getattr(bus, "wants_commits", False):
            self.saver.on_committed.append(self._announce_commit)
        self._on_change = self._changed if self.hooks.has("on_change") else None
        ping = settings.ws_ping_interval_s
        # Keepalive pings ride on the ticker: it must tick a few times per ping interval.
        self.tick_s = min(TICK_S, max(0.05, ping / 4)) if ping > 0 else TICK_S

    def start(self) -> None:
        self._tg.start_soon(self.saver.run)
        self._tg.start_soon(self._tick_forever)
        self._tg.start_soon(self.hooks.run_background)
        if self.bus is not None:
            self._tg.start_soon(
                self.bus.run, self._on_bus, self._on_bus_connected, self._on_bus_subscribed
            )

    def _stored(self, room: Room, count: int) -> None:
        self.hooks.enqueue("on_store_document", OnStoreDocumentPayload(room.name, count))

    def _changed(self, room: Room, conn: Member | None, update: bytes) -> None:
        info = conn.info if conn is not None else None
        self.hooks.enqueue("on_change", OnChangePayload(room.name, update, info))

    # -- joining and leaving -----------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once shutdown began: new connections are refused with 1001."""
        return self._accepting

    async def join(self, name: str, conn: Session) -> Room:
        room = self.rooms.get(name)
        if room is None:
            future = self._loading.get(name)
            if (
                future is None
                and len(self.rooms) + len(self._loading) >= self.settings.max_documents
            ):
                raise CollabError("server full: too many open documents", CloseCode.TRY_AGAIN_LATER)
            if future is None:
                future = asyncio.get_running_loop().create_future()
                self._loading[name] = future
                # The hub owns the load, so a first joiner that disconnects cannot cancel it
                # for the others waiting on the same document.
                self._tg.start_soon(self._load, name, future)
            room = await asyncio.shield(future)
        if conn.closing:
            return room
        if len(room.members) >= self.settings.max_connections_per_document:
            raise CollabError("document full: too many connections", CloseCode.TRY_AGAIN_LATER)
        self.connections.add(conn)
        self._no_connections.clear()
        room.add(conn)
        return room

    def disconnected(
        self, document: str, info: ConnectionInfo, code: int | None, reason: str
    ) -> None:
        """A connection is gone: run on_disconnect in the background (bounded to 5 s)."""
        if not self.hooks.has("on_disconnect"):
            return
        payload = OnDisconnectPayload(document, info, code, reason)
        try:
            self._tg.start_soon(self._run_disconnect, payload)
        except RuntimeError:  # the hub has stopped
            log.info("on_disconnect skipped for %s: the server has stopped", info.client)

    async def _run_disconnect(self, payload: OnDisconnectPayload) -> None:
        with anyio.move_on_after(5):
            await self.hooks.disconnect(payload)

    def leave(self, room: Room | None, conn: Session) -> None:
        if room is not None:
            room.remove(conn)
        self.connections.discard(conn)
        if not self.connections:
            self._no_connections.set()

    async def _load(self, name: str, future: asyncio.Future[Room]) -> None:
        started = time.perf_counter()
        if self.bus is not None:
            # Subscribe before reading the store, keeping what arrives meanwhile: nothing another
            # process applies between our read and our subscription is missed.
            self._bus_backlog[name] = []
            await self.bus.join(name)
        try:
            stored = await self.store.load(name)
            subdocs = SubdocOptions()
            doc = await restore(stored, subdocs)
            seeded = await self._run_load_hooks(name, doc, stored.empty)
        except Exception:
            log.exception("loading %r failed", name)
            self._bus_backlog.pop(name, None)
            if self.bus is not None:
                self.bus.leave(name)
            future.set_exception(DocumentLoadError("could not load document"))
            future.exception()  # mark retrieved: joiners may all have gone
            del self._loading[name]
            return
        room = Room(
            name,
            doc,
            self.saver.record,
            awareness_timeout_s=self.settings.awareness_timeout_s,
            read_only_awareness=self.settings.read_only_awareness,
            on_change=self._on_change,
            publish=self._publish if self.bus is not None else None,
            log_rows=len(stored.updates),
            log_bytes=stored.log_bytes,
            subdocs=subdocs,
        )
        room.last_row_id = stored.last_id
        room.snapshot_through = stored.snapshot_through
        self.rooms[name] = room
        del self._loading[name]
        self.loads += 1
        for update in seeded:  # what on_load_document hooks wrote is persisted like any edit
            self.saver.record(room, update)
            self._publish(room, cluster.UPDATE, update)
        if self.bus is not None:
            for _, envelope in self._bus_backlog.pop(name, []):
                self._on_room_message(room, envelope)
            # Ask the processes that hold this document for what is in their memory only.
            self.bus.publish(name, cluster.SYNC, b"\x01" + doc.get_state())
        future.set_result(room)
        log.info(
            "loaded %r: snapshot %d bytes + %d updates (%d bytes) in %.1f ms",
            name,
            len(stored.snapshot or b""),
            len(stored.updates),
            stored.log_bytes,
            (time.perf_counter() - started) * 1000,
        )
        if (
            len(stored.updates) > self.settings.compact_after_rows
            or stored.log_bytes > self.settings.compact_after_bytes
        ):
            self.saver.request_compaction(room)

    async def _run_load_hooks(self, name: str, doc: Doc[Any], is_new: bool) -> list[bytes]:
        if not self.hooks.has("on_load_document"):
            return []
        seeded: list[bytes] = []
        subscription = doc.observe(lambda event: seeded.append(event.update))
        try:
            await self.hooks.load_document(OnLoadDocumentPayload(name, doc, is_new))
        finally:
            doc.unobserve(subscription)
        return seeded

    # -- housekeeping ------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await anyio.sleep(self.tick_s)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        s = self.settings
        heartbeat_due = now - s.heartbeat_s + self.tick_s
        idle_cutoff = now - s.idle_timeout_s
        wall = time.time()
        for session in list(self.connections):  # pings, token expiry, idle timeout, heartbeat
            session.tick(now, wall, idle_cutoff, heartbeat_due)
        for name, room in list(self.rooms.items()):
            room.expire_awareness()
            if (
                not room.members
                and room.empty_since is not None
                and now - room.empty_since >= s.unload_grace_s
                and room.clean
            ):
                del self.rooms[name]
                room.close()
                log.info("unloaded %r", name)
                if self.bus is not None:
                    self.bus.leave(name)
                self.hooks.enqueue("on_unload_document", OnUnloadDocumentPayload(name))
        if self.bus is not None:  # (silent peers are judged when this comes back: _heard_self)
            self.bus.publish(None, cluster.HEARTBEAT, b"")

    # -- cluster -----------------------------------------------------------------------------

    def _announce_commit(self, room: Room, count: int) -> None:
        assert self.bus is not None
        self.bus.publish(room.name, cluster.COMMITTED, b"")

    async def _fetch_rows(self, room: Room) -> None:
        """Read what other processes committed to this document's log since we last looked."""
        room.fetch_again = False
        try:
            stored = await self.store.load(room.name, after_id=room.last_row_id)
            for update in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
                room.apply_remote_update(update, b"")
            room.last_row_id = max(room.last_row_id, stored.last_id)
        except Exception:
            log.exception("reading new rows of %r failed", room.name)
        finally:
            room.fetching = False
        if room.fetch_again and self.rooms.get(room.name) is room:
            room.fetching = True
            self._tg.start_soon(self._fetch_rows, room)

    def _publish(self, room: Room, kind: int, payload: bytes) -> None:
        if self.bus is not None:
            self.bus.publish(room.name, kind, payload)

    def _on_bus_connected(self) -> None:
        """After (re)connecting (or losing messages): exchange state vectors and cursors for
        every room we hold. (The peers' silence is not counted while we were away: the bus's
        ticks stopped too.)"""
        assert self.bus is not None
        for name, room in self.rooms.items():
            self.bus.publish(name, cluster.SYNC, b"\x01" + room.doc.get_state())

    def _on_bus_subscribed(self, document: str) -> None:
        """Our subscription to a document's channel was confirmed after its load went on
        without it: the answers to the load's state exchange may have been published before
        we listened. Exchange again (a room still loading exchanges at the end of its load)."""
        assert self.bus is not None
        room = self.rooms.get(document)
        if room is not None:
            self.bus.publish(document, cluster.SYNC, b"\x01" + room.doc.get_state())

    def _on_bus(self, document: str | None, envelope: Envelope) -> None:
        sender = envelope.sender
        if document is None and sender == self._process_id:
            if envelope.kind == cluster.HEARTBEAT:
                self._heard_self()
            return
        known = sender in self._peers
        self._peers[sender] = self._bus_ticks
        if not known and envelope.kind != cluster.BYE:
            # New, or back after we took it for gone (and dropped its cursors): exchange
            # state with it, whatever its first message is (an update as well as a heartbeat).
            log.info("cluster peer %s is here", sender.hex()[:8])
            self._on_bus_connected()
        if document is None:
            if envelope.kind == cluster.BYE:
                self._peer_gone(sender)
            return
        room = self.rooms.get(document)
        if room is None:
            backlog = self._bus_backlog.get(document)
            if backlog is not None:
                backlog.append((document, envelope))
            return
        self._on_room_message(room, envelope)

    def _on_room_message(self, room: Room, envelope: Envelope) -> None:
        assert self.bus is not None
        kind, payload = envelope.kind, envelope.payload
        if kind == cluster.UPDATE:
            room.apply_remote_update(payload, envelope.sender)
        elif kind == cluster.COMMITTED:
            if room.fetching:
                room.fetch_again = True
            else:
                room.fetching = True
                self._tg.start_soon(self._fetch_rows, room)
        elif kind == cluster.AWARENESS:
            room.apply_remote_awareness(payload, envelope.sender)
        elif kind == cluster.SYNC and payload:
            diff = room.encode_update(payload[1:])
            if diff != b"\x00\x00":
                self.bus.publish(room.name, cluster.UPDATE, diff)
            if payload[0] == 1:
                self.bus.publish(room.name, cluster.SYNC, b"\x00" + room.doc.get_state())
                states = room.local_awareness()
                if states is not None:
                    self.bus.publish(room.name, cluster.AWARENESS, states)

    def _heard_self(self) -> None:
        """Our own heartbeat (one a tick) is back from the bus: the bus's clock ticked. A peer
        not heard for more ticks than the peer timeout lasts is gone.

        Silence is counted in the bus's ticks, not the clock's seconds: when we read late (our
        loop saturated or stalled, a backlog in the socket) our heartbeats come back late too,
        behind the peers' ones, and while Redis is away nothing ticks at all. Heartbeats that
        come back in a burst count once: we are reading a backlog, or Redis is running what
        queued up while it stalled, in an order of its own (ours first, perhaps: the peers'
        ones from the same seconds are right behind)."""
        now = time.monotonic()
        if now - self._bus_ticked_at < self.tick_s / 2:
            return
        self._bus_ticked_at = now
        self._bus_ticks += 1
        limit = self._bus_ticks - self.settings.peer_timeout_s / self.tick_s
        for pid in [pid for pid, heard in self._peers.items() if heard < limit]:
            self._peer_gone(pid)

    def _peer_gone(self, pid: bytes) -> None:
        if self._peers.pop(pid, None) is None:
            return
        log.info("cluster peer %s is gone", pid.hex()[:8])
        for room in self.rooms.values():
            room.remove_peer(pid)
            if pid in room.remote_peers:
                # It may have died before committing what it sent us: keep it durable here.
                room.remote_peers.discard(pid)
                self.saver.record(room, room.encode_update())

    # -- shutdown ----------------------------------------------------------------------------

    async def close_all(self, code: int, reason: str, wait_s: float) -> None:
        """Stop accepting, close every connection, wait (bounded) for their handlers to end."""
        self._accepting = False
        for conn in list(self.connections):
            conn.close(code, reason)
        with anyio.move_on_after(wait_s):
            await self._no_connections.wait()

    async def shutdown(self) -> None:
        """Close everyone with 1001 and flush every dirty room, within the shutdown deadline."""
        deadline = self.settings.shutdown_timeout_s
        started = time.perf_counter()
        with anyio.CancelScope(shield=True):
            await self.close_all(CloseCode.GOING_AWAY, "server shutting down", min(2.0, deadline))
            for room in self.rooms.values():
                if room.remote_peers:
                    # A peer may have died without committing what it sent us, and we may be
                    # leaving before its heartbeat times out: store our full state (harmless
                    # if it is all stored already).
                    room.remote_peers.clear()
                    self.saver.record(room, room.encode_update())
            with anyio.move_on_after(max(0.5, deadline - (time.perf_counter() - started))) as scope:
                await self.saver.flush()
            for name in self.rooms:  # the rooms still open are unloaded by the exit
                self.hooks.enqueue("on_unload_document", OnUnloadDocumentPayload(name))
            await self.hooks.drain(1.0)
            if self.bus is not None:
                self.bus.publish(None, cluster.BYE, b"")
                with anyio.move_on_after(0.5):
                    await self.bus.close()
        dirty = [r.name for r in self.rooms.values() if r.committed != r.appended]
        if scope.cancelled_caught or dirty:
            self.flush_failed = True
            log.error("shutdown deadline passed with %d dirty documents", len(dirty))
        else:
            log.info(
                "flushed %d documents in %.0f ms",
                len(self.rooms),
                (time.perf_counter() - started) * 1000,
            )
