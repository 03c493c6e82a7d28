"""The room registry: each document is loaded once however many join at once, and unloaded
only when it is empty, fully committed and past its grace period.

The hub owns the long-lived tasks (the saver, the cluster's bus, document loads, the ticker)
through the task group it is given. The ticker's jobs, once a tick, each a method of its own:
keepalive, idle timeout and token expiry of every connection; awareness expiry; unloading;
pruning the per-IP limits; the cluster's heartbeat. The cluster (collab.cluster.sync) hears
from the hub when a document loads and unloads; it is None for a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from pycrdt import Doc

from storage import DocumentStore, StoredDocument, VersionInfo
from storage import restore as restore_stored

from . import logs
from .cluster import Bus
from .cluster.sync import ClusterSync, PeerLoad
from .counts import Counts
from .documents import ConnectionSummary
from .errors import CloseCode, CollabError, DocumentLoadError
from .history import History
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
from .room import Member, Room
from .saver import Saver
from .session import Session
from .settings import Settings
from .subdocs import SubdocOptions
from .view import DocumentView
from .ydoc import apply_update, captured

log = logging.getLogger(__name__)

TICK_S = 1.0
T = TypeVar("T")
# Told (document, the connection's author or None, True on joining / False on leaving).
PresenceListener = Callable[[str, str | None, bool], None]


def _view(room: Room) -> DocumentView:
    """A read-only view of the room's live document, for the background hooks."""
    return DocumentView(room.name, room.encode_update, room.doc.get_state)


async def restore(stored: StoredDocument, subdocs: SubdocOptions | None = None) -> Doc[Any]:
    """Snapshot + log tail -> Doc. A long tail is folded off the event loop into one update.
    `subdocs` learns the options of the subdocuments it holds, as stored."""
    doc: Doc[Any] = Doc()
    watching = subdocs.watch(doc) if subdocs is not None else None
    try:
        if len(stored.updates) > 64:
            apply_update(doc, await restore_stored(stored))
        else:
            with doc.transaction():
                for update in stored.parts:
                    apply_update(doc, update)
    finally:
        if watching is not None:
            doc.unobserve(watching)
    if subdocs is not None and subdocs.added:
        subdocs.added = False
        await subdocs.learn_stored(stored.parts)
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
        ping = settings.ws_ping_interval_s
        # Keepalive pings ride on the ticker: it must tick a few times per ping interval.
        self.tick_s = min(TICK_S, max(0.05, ping / 4)) if ping > 0 else TICK_S
        # What the rooms, admission, saver and hooks count (collab/metrics.py reads it).
        self.counts = Counts() if settings.metrics else None
        self.hooks = HookRunner(extensions, counts=self.counts)
        self.store = store
        self._tg = task_group
        self.saver = Saver(
            store,
            commit_window_ms=settings.commit_window_ms,
            compact_after_rows=settings.compact_after_rows,
            compact_after_bytes=settings.compact_after_bytes,
            compact_log_share=settings.compact_log_share,
            live_compaction=bus is None,
            counts=self.counts,
        )
        self.rooms: dict[str, Room] = {}
        self.history = History(settings, store, self.saver, task_group, self.rooms.get)
        self.on_presence: list[PresenceListener] = []  # (the change feed's user events)
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._evicting: dict[str, anyio.Event] = {}  # documents being closed (see evict)
        self.connections: set[Session] = set()  # every session in a room
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self._accepting = True
        self.flush_failed = False  # set when shutdown could not commit everything in time
        self.loads = 0  # documents loaded from the store since start (a test observes it)
        self.started_at = time.time()
        if self.hooks.has("on_store_document"):
            self.saver.on_committed.append(self._stored)
        self.cluster = self._join_cluster(bus) if bus is not None else None
        self._on_change = self._changed if self.hooks.has("on_change") else None

    def _join_cluster(self, bus: Bus) -> ClusterSync:
        cluster = ClusterSync(
            bus,
            store=self.store,
            record=self.saver.record,
            task_group=self._tg,
            tick_s=self.tick_s,
            peer_timeout_s=self.settings.peer_timeout_s,
        )
        if cluster.wants_commits:  # the PostgreSQL bus: updates travel as committed rows
            self.saver.on_committed.append(cluster.committed)
        cluster.load = self.load  # told to the other processes in each heartbeat
        return cluster

    def start(self) -> None:
        self._tg.start_soon(self.saver.run)
        self._tg.start_soon(self._tick_forever)
        self._tg.start_soon(self.hooks.run_background)
        if self.cluster is not None:
            self._tg.start_soon(self.cluster.run)

    def _stored(self, name: str, count: int) -> None:
        room = self.rooms.get(name)
        if room is None:  # (a room unloads only once all is committed: not expected)
            return
        payload = OnStoreDocumentPayload(name, count, _view(room))
        self.hooks.enqueue("on_store_document", payload)

    def _changed(self, room: Room, conn: Member | None, update: bytes) -> None:
        info = conn.info if conn is not None else None
        self.hooks.enqueue("on_change", OnChangePayload(room.name, update, info, _view(room)))

    # -- joining and leaving -----------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once shutdown began: new connections are refused with 1001."""
        return self._accepting

    def room(self, name: str) -> Room | None:
        """The room of a document held in memory, or None."""
        return self.rooms.get(name)

    async def open(self, name: str) -> Room:
        """The room of `name`, loaded once however many ask at once (joiners, the documents
        service); one opened for no connection unloads after its grace, like an emptied one."""
        while True:
            evicting = self._evicting.get(name)
            if evicting is not None:
                await evicting.wait()
                continue
            room = self.rooms.get(name)
            if room is not None:
                return room
            future = self._loading.get(name)
            if future is None:
                if len(self.rooms) + len(self._loading) >= self.settings.max_documents:
                    raise CollabError(
                        "server full: too many open documents", CloseCode.TRY_AGAIN_LATER
                    )
                future = asyncio.get_running_loop().create_future()
                self._loading[name] = future
                # The hub owns the load, so a first joiner that disconnects cannot cancel it
                # for the others waiting on the same document.
                self._tg.start_soon(self._load, name, future)
            await asyncio.shield(future)  # then look again: an eviction may have begun

    def joinable(self, name: str) -> Room | None:
        """The room of `name` if a joiner can enter it now, without waiting: loaded and not
        being evicted (`join_loaded`); None when joining it must wait (`join`)."""
        if name in self._evicting:
            return None
        return self.rooms.get(name)

    def open_now(self, name: str) -> Room | None:
        """The room of `name` without waiting, or None when `open` must wait for it: a room
        that is `joinable`, or a new document's, made at once when the store can tell without
        waiting that it holds no `name` (SqlStore.missing_now: one indexed read on SQLite) and
        nothing else is to be awaited (no on_load_document hook, no cluster)."""
        room = self.joinable(name)
        if (
            room is not None
            or name in self._loading
            or name in self._evicting
            or self.cluster is not None
            or self.hooks.has("on_load_document")
            or len(self.rooms) + len(self._loading) >= self.settings.max_documents
        ):
            return room
        missing_now = getattr(self.store, "missing_now", None)
        if missing_now is None:
            return None
        started = time.perf_counter()
        if not missing_now(name):
            return None
        stored = StoredDocument(None, [], 0)
        room = self._room(name, Doc(), SubdocOptions())
        self._opened(room, stored, [])
        self._loaded(room, stored, started)
        return room

    async def join(self, name: str, conn: Session) -> Room:
        return self.join_loaded(await self.open(name), conn)

    def join_loaded(self, room: Room, conn: Session) -> Room:
        """`conn` joins `room`, which is open (`open` or `joinable` returned it just now)."""
        if conn.closing:
            return room
        if len(room.members) >= self.settings.max_connections_per_document:
            raise CollabError("document full: too many connections", CloseCode.TRY_AGAIN_LATER)
        self.connections.add(conn)
        self._no_connections.clear()
        room.add(conn)
        for listener in self.on_presence:
            listener(room.name, conn.author, True)
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
            log.info(
                "on_disconnect skipped for %s: the server has stopped",
                info.client,
                extra=logs.context(info.id, document=document, client=info.client, code=code),
            )

    async def _run_disconnect(self, payload: OnDisconnectPayload) -> None:
        with anyio.move_on_after(5):
            await self.hooks.disconnect(payload)

    def leave(self, room: Room | None, conn: Session) -> None:
        if room is not None:
            room.remove(conn)
            for listener in self.on_presence:
                listener(room.name, conn.author, False)
        self.connections.discard(conn)
        if not self.connections:
            self._no_connections.set()

    async def evict(self, name: str, code: int, reason: str, then: Callable[[], Awaitable[T]]) -> T:
        """Close a document's connections with `code`, commit what they sent, unload it, and
        run `then` (e.g. the store's delete) before anyone can open it again: joiners wait,
        then load what the store has by then."""
        while (earlier := self._evicting.get(name)) is not None:
            await earlier.wait()
        gate = self._evicting[name] = anyio.Event()
        try:
            loading = self._loading.get(name)
            if loading is not None:
                with contextlib.suppress(DocumentLoadError):
                    await asyncio.shield(loading)
            room = self.rooms.get(name)
            if room is not None:
                await self._unload_now(room, code, reason)
            return await then()
        finally:
            del self._evicting[name]
            gate.set()

    async def _unload_now(self, room: Room, code: int, reason: str) -> None:
        for conn in list(room.members):
            conn.close(code, reason)  # detached from the room at once: nothing more applied
        with anyio.move_on_after(self.settings.shutdown_timeout_s):
            await self.saver.flush()
        if not self.saver.is_clean(room.name):
            raise CollabError("could not commit the last edits", CloseCode.TRY_AGAIN_LATER)
        if self.rooms.get(room.name) is room:  # (the ticker may have unloaded it meanwhile)
            self._unload(room.name, "evicted")

    async def _load(self, name: str, future: asyncio.Future[Room]) -> None:
        started = time.perf_counter()
        # In cluster mode, subscribe before reading the store (see collab.cluster.sync).
        publisher = await self.cluster.subscribe(name) if self.cluster is not None else None
        try:
            stored = await self.store.load(name)
            subdocs = SubdocOptions()
            doc = await restore(stored, subdocs)
            seeded = await self._run_load_hooks(name, doc, stored.empty)
        except Exception:
            log.exception("loading %r failed", name, extra={"document": name})
            if self.counts is not None:
                self.counts.count("load_errors")
            self._load_failed(name, future)
            return
        room = self._room(name, doc, subdocs, publisher)
        self._opened(room, stored, seeded)
        future.set_result(room)
        self._loaded(room, stored, started)

    def _room(
        self, name: str, doc: Doc[Any], subdocs: SubdocOptions, publisher: Any = None
    ) -> Room:
        return Room(
            name,
            doc,
            self.saver.record,
            awareness_timeout_s=self.settings.awareness_timeout_s,
            read_only_awareness=self.settings.read_only_awareness,
            on_change=self._on_change,
            publish=publisher,
            subdocs=subdocs,
            counts=self.counts,
        )

    def _loaded(self, room: Room, stored: StoredDocument, started: float) -> None:
        """Count and log the load of `room` (begun at perf_counter() `started`)."""
        name = room.name
        if self.counts is not None:
            self.counts.observe("load", time.perf_counter() - started)
        took_ms = (time.perf_counter() - started) * 1000
        log.info(
            "loaded %r: snapshot %d bytes + %d updates (%d bytes) in %.1f ms",
            name,
            len(stored.snapshot or b""),
            len(stored.updates),
            stored.log_bytes,
            took_ms,
            extra={"document": name, "duration_ms": round(took_ms, 1)},
        )

    def _opened(self, room: Room, stored: StoredDocument, seeded: list[bytes]) -> None:
        """`room` holds the document read as `stored`; on_load_document hooks wrote `seeded`."""
        name = room.name
        self.saver.open(name, room.encode_update, stored, room.doc.get_state)
        self.rooms[name] = room
        self._loading.pop(name, None)  # (not there when open_now made it)
        self.loads += 1
        for update in seeded:  # what on_load_document hooks wrote is persisted like any edit
            self.saver.record(name, update)
        self.history.loaded(name, bool(stored.updates))
        if self.cluster is not None:
            self.cluster.loaded(room, stored, seeded)

    def _load_failed(self, name: str, future: asyncio.Future[Room]) -> None:
        if self.cluster is not None:
            self.cluster.unloaded(name)
        future.set_exception(DocumentLoadError("could not load document"))
        future.exception()  # mark retrieved: joiners may all have gone
        del self._loading[name]

    async def _run_load_hooks(self, name: str, doc: Doc[Any], is_new: bool) -> list[bytes]:
        if not self.hooks.has("on_load_document"):
            return []
        with captured(doc) as seeded:
            await self.hooks.load_document(OnLoadDocumentPayload(name, doc, is_new))
        return seeded

    # -- versions and durability (for the documents service) -----------------------------------

    async def take_version(self, name: str, kind: str, label: str | None = None) -> VersionInfo:
        """Store a version of `name` now ("named" or "restore"): its live state when it is open
        here, else what the store holds (DocumentNotFound when nothing)."""
        return await self.history.take(name, kind, label)

    async def persisted(self, name: str) -> None:
        """Wait until everything applied to `name`'s room so far is committed to the store."""
        await self.saver.wait_committed(name)

    # -- for operators (the admin API, through the documents service) ------------------------

    def load(self) -> dict[str, int]:
        """This process's load: connections, rooms, when it started (unix ms)."""
        return {
            "connections": len(self.connections),
            "rooms": len(self.rooms),
            "started_at_ms": int(self.started_at * 1000),
        }

    def sessions(self, name: str) -> list[ConnectionSummary]:
        """The connections to `name` in this process, by id."""
        room = self.rooms.get(name)
        members = [m for m in room.members if isinstance(m, Session)] if room is not None else []
        return sorted((m.summary() for m in members), key=lambda s: s.id)

    def close_sessions(self, name: str, code: int, reason: str, only: int | None = None) -> int:
        """Close the connections to `name` (or only the one whose id is `only`): how many."""
        room = self.rooms.get(name)
        if room is None:
            return 0
        closing = [m for m in room.members if isinstance(m, Session) and only in (None, m.id)]
        for session in closing:
            session.close(code, reason)
        return len(closing)

    def processes(self) -> list[PeerLoad] | None:
        """The cluster's processes and their load (None without a bus)."""
        return self.cluster.processes() if self.cluster is not None else None

    # -- housekeeping ------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await anyio.sleep(self.tick_s)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        self._check_connections(now)
        self._expire_awareness()
        self._unload_idle(now)
        self.history.tick(now)
        if self.cluster is not None:
            self.cluster.tick()

    def _check_connections(self, now: float) -> None:
        """Keepalive pings; close expired tokens (4401) and idle connections (4408); send a
        heartbeat where nothing was sent for a while."""
        s = self.settings
        heartbeat_due = now - s.heartbeat_s + self.tick_s
        idle_cutoff = now - s.idle_timeout_s
        wall = time.time()
        for session in list(self.connections):  # pings, token expiry, idle timeout, heartbeat
            session.tick(now, wall, idle_cutoff, heartbeat_due)

    def _expire_awareness(self) -> None:
        for room in self.rooms.values():
            room.expire_awareness()

    def _unload_idle(self, now: float) -> None:
        """Unload the rooms empty for longer than the grace period, once all is committed."""
        grace = self.settings.unload_grace_s
        for name, room in list(self.rooms.items()):
            if (
                not room.members
                and room.empty_since is not None
                and now - room.empty_since >= grace
                and self.saver.is_clean(name)
            ):
                self._unload(name)

    def _unload(self, name: str, why: str = "idle") -> None:
        if why == "evicted":  # (deleted: no version of it)
            self.history.forget(name)
        else:
            self.history.unloading(self.rooms[name])
        del self.rooms[name]
        self.saver.close(name)
        if self.cluster is not None:
            self.cluster.unloaded(name)
        log.info("unloaded %r: %s", name, why, extra={"document": name})
        self.hooks.enqueue("on_unload_document", OnUnloadDocumentPayload(name))

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
            if self.cluster is not None:
                self.cluster.keep_peers_edits()
            with anyio.move_on_after(max(0.5, deadline - (time.perf_counter() - started))) as scope:
                await self.saver.flush()
            with anyio.move_on_after(max(0.5, deadline - (time.perf_counter() - started))):
                await self.history.close(list(self.rooms.values()))
            if not scope.cancelled_caught:  # a restart loads one snapshot, not a log tail
                self.saver.compact_tails()
                with anyio.move_on_after(max(0.5, deadline - (time.perf_counter() - started))):
                    await self.saver.flush()
            for name in self.rooms:  # the rooms still open are unloaded by the exit
                self.hooks.enqueue("on_unload_document", OnUnloadDocumentPayload(name))
            await self.hooks.drain(1.0)
            if self.cluster is not None:
                await self.cluster.close()
        dirty = self.saver.dirty()
        if scope.cancelled_caught or dirty:
            self.flush_failed = True
            log.error("shutdown deadline passed with %d dirty documents", len(dirty))
        else:
            took_ms = (time.perf_counter() - started) * 1000
            log.info(
                "flushed %d documents in %.0f ms",
                len(self.rooms),
                took_ms,
                extra={"duration_ms": round(took_ms, 1)},
            )
