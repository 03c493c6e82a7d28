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

from . import protocol as p
from .connection import Connection
from .errors import CloseCode, CollabError, DocumentLoadError
from .hooks import (
    Extension,
    HookRunner,
    OnChangePayload,
    OnLoadDocumentPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from .limits import IpLimits
from .room import Room, apply_update
from .saver import Saver
from .settings import Settings

log = logging.getLogger(__name__)

TICK_S = 1.0


async def restore(stored: StoredDocument) -> Doc[Any]:
    """Snapshot + log tail -> Doc. A long tail is folded off the event loop into one update."""
    doc: Doc[Any] = Doc()
    if len(stored.updates) > 64:
        base = [stored.snapshot] if stored.snapshot else []
        apply_update(doc, await fold_async(base, stored.updates))
        return doc
    with doc.transaction():
        if stored.snapshot:
            apply_update(doc, stored.snapshot)
        for update in stored.updates:
            apply_update(doc, update)
    return doc


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        task_group: TaskGroup,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self.settings = settings
        self.hooks = HookRunner(extensions)
        self.ip_limits = IpLimits(
            settings.max_connections_per_ip, settings.max_connect_attempts_per_ip
        )
        self.store = store
        self._tg = task_group
        self.saver = Saver(
            store,
            commit_window_ms=settings.commit_window_ms,
            compact_after_rows=settings.compact_after_rows,
            compact_after_bytes=settings.compact_after_bytes,
        )
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self.connections: set[Connection] = set()
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self.accepting = True
        self.flush_failed = False  # set when shutdown could not commit everything in time
        self.loads = 0  # documents loaded from the store since start (a test observes it)
        if self.hooks.has("on_store_document"):
            self.saver.on_committed.append(self._stored)
        self._on_change = self._changed if self.hooks.has("on_change") else None

    def start(self) -> None:
        self._tg.start_soon(self.saver.run)
        self._tg.start_soon(self._tick_forever)
        self._tg.start_soon(self.hooks.run_background)

    def _stored(self, room: Room, count: int) -> None:
        self.hooks.enqueue("on_store_document", OnStoreDocumentPayload(room.name, count))

    def _changed(self, room: Room, conn: Connection | None, update: bytes) -> None:
        info = conn.info if conn is not None else None
        self.hooks.enqueue("on_change", OnChangePayload(room.name, update, info))

    # -- joining and leaving -----------------------------------------------------------------

    async def join(self, name: str, conn: Connection) -> Room:
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

    def leave(self, room: Room | None, conn: Connection) -> None:
        if room is not None:
            room.remove(conn)
        self.connections.discard(conn)
        if not self.connections:
            self._no_connections.set()

    async def _load(self, name: str, future: asyncio.Future[Room]) -> None:
        started = time.perf_counter()
        try:
            stored = await self.store.load(name)
            doc = await restore(stored)
            seeded = await self._run_load_hooks(name, doc, stored.empty)
        except Exception:
            log.exception("loading %r failed", name)
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
            log_rows=len(stored.updates),
            log_bytes=stored.log_bytes,
        )
        self.rooms[name] = room
        del self._loading[name]
        self.loads += 1
        for update in seeded:  # what on_load_document hooks wrote is persisted like any edit
            self.saver.record(room, update)
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
            await anyio.sleep(TICK_S)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        s = self.settings
        heartbeat_due = now - s.heartbeat_s + TICK_S
        idle_cutoff = now - s.idle_timeout_s
        wall = time.time()
        for conn in list(self.connections):
            if conn.expires_at is not None and wall >= conn.expires_at:
                conn.close(CloseCode.UNAUTHORIZED, "token expired")
            elif conn.last_received < idle_cutoff:
                conn.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
            elif conn.last_sent <= heartbeat_due:
                conn.send_nowait(p.HEARTBEAT_MESSAGE)
        for name, room in list(self.rooms.items()):
            room.expire_awareness()
            if (
                not room.members
                and room.empty_since is not None
                and now - room.empty_since >= s.unload_grace_s
                and room.clean
            ):
                del self.rooms[name]
                log.info("unloaded %r", name)
                self.hooks.enqueue("on_unload_document", OnUnloadDocumentPayload(name))
        self.ip_limits.prune()

    # -- shutdown ----------------------------------------------------------------------------

    async def close_all(self, code: int, reason: str, wait_s: float) -> None:
        """Stop accepting, close every connection, wait (bounded) for their handlers to end."""
        self.accepting = False
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
            with anyio.move_on_after(max(0.5, deadline - (time.perf_counter() - started))) as scope:
                await self.saver.flush()
            await self.hooks.drain(1.0)
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
