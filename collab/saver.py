"""Group commit: one writer path per process, so SQLite never reports "database is locked".

Every room hands its updates to the one Saver. The saver commits whatever has arrived, for every
document, in one transaction, at most `commit_window_ms` after the oldest of those updates
arrived (it gathers for 80 % of the window, which leaves the rest for the commit itself: on
SQLite a typical commit takes ~0.1 ms, see storage.sqlite.SqliteAppender; fewer, larger commits
cost less CPU per update). Compaction runs on the same path, between commits. A failed commit
is retried with backoff and nothing is dropped: the rooms concerned stay dirty, so they are
never unloaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import anyio

from storage import DocumentStore, LiveDocument, PendingUpdate

from .room import Room
from .subdocs import keep_options

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 5000
MAX_BATCH_BYTES = 8 * 1024 * 1024


# The part of the commit window spent gathering a batch.
GATHER = 0.8


class Saver:
    def __init__(
        self,
        store: DocumentStore,
        *,
        commit_window_ms: int,
        compact_after_rows: int,
        compact_after_bytes: int,
        live_compaction: bool = True,
    ) -> None:
        self.store = store
        # Snapshots from the room's document when the store holds only what it knows of (see
        # storage.LiveDocument); off in cluster mode, where other processes append too.
        self.live_compaction = live_compaction
        self.window = commit_window_ms / 1000
        self.compact_after_rows = compact_after_rows
        self.compact_after_bytes = compact_after_bytes
        # (room, row, how many client edits the row holds: coalesced updates count as many)
        self._pending: list[tuple[Room, PendingUpdate, int]] = []
        self._pending_bytes = 0
        self._first_at = 0.0
        self._wakeup = asyncio.Event()
        self._hurry = asyncio.Event()  # cut the gathering wait short (flush, full batch)
        self._idle = asyncio.Event()
        self._idle.set()
        self._compact_queue: dict[str, Room] = {}
        self.on_committed: list[Callable[[Room, int], None]] = []
        self.commits = 0
        self.failures = 0
        self.recorded = 0  # updates handed to the saver since start
        self.committed = 0  # of those, committed

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def record(self, room: Room, data: bytes, edits: int = 1) -> None:
        """Called by a room for each update to persist (`edits` merged into it); never awaits."""
        if not self._pending:
            self._first_at = time.monotonic()
            self._wakeup.set()
        self._idle.clear()
        room.appended += 1
        self.recorded += edits
        self._pending.append((room, PendingUpdate(room.name, data, int(time.time() * 1000)), edits))
        self._pending_bytes += len(data)
        if len(self._pending) >= MAX_BATCH_ROWS or self._pending_bytes >= MAX_BATCH_BYTES:
            self._hurry.set()

    def request_compaction(self, room: Room) -> None:
        if room.name not in self._compact_queue:
            self._compact_queue[room.name] = room
            self._idle.clear()
            self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._pending:
                delay = self._first_at + self.window * GATHER - time.monotonic()
                if delay > 0 and not self._hurry.is_set():
                    with anyio.move_on_after(delay):
                        await self._hurry.wait()
                self._hurry.clear()
                if not await self._commit():
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    self._wakeup.set()
                    continue
                backoff = 0.05
            if self._compact_queue:
                await self._compact_next()
            if self._pending or self._compact_queue:
                self._wakeup.set()
            else:
                self._idle.set()

    async def _commit(self) -> bool:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        started = time.perf_counter()
        try:
            with anyio.CancelScope(shield=True):
                await self.store.append([update for _, update, _ in batch])
        except Exception:
            self.failures += 1
            log.exception("commit of %d updates failed; will retry", len(batch))
            self._pending = batch + self._pending
            self._pending_bytes = sum(len(u.data) for _, u, _ in self._pending)
            self._first_at = time.monotonic()
            return False
        self.commits += 1
        self.committed += sum(edits for _, _, edits in batch)
        counts: dict[Room, list[int]] = {}  # room -> [rows, edits]
        for room, update, edits in batch:
            count = counts.setdefault(room, [0, 0])
            count[0] += 1
            count[1] += edits
            room.log_bytes += len(update.data)
        for room, (rows, edits) in counts.items():
            room.committed += rows
            room.log_rows += rows
            if room.log_rows > self.compact_after_rows or room.log_bytes > self.compact_after_bytes:
                self.request_compaction(room)
            for callback in self.on_committed:
                callback(room, edits)
        log.debug(
            "committed %d updates for %d documents in %.1f ms",
            len(batch),
            len(counts),
            (time.perf_counter() - started) * 1000,
        )
        return True

    async def _compact_next(self) -> None:
        name, room = next(iter(self._compact_queue.items()))
        del self._compact_queue[name]
        room.compacting = True
        live = None
        if self.live_compaction:
            live = LiveDocument(room.log_rows, room.snapshot_through, room.encode_update)
        try:
            with anyio.CancelScope(shield=True):
                result = await self.store.compact(name, live, keep=keep_options)
        except Exception:
            log.exception("compaction of %r failed; the log is intact", name)
            return
        finally:
            room.compacting = False
        # Commits and compactions share this one task, so nothing was appended meanwhile.
        if result is not None:
            room.snapshot_through = result.through_id
        room.log_rows = 0
        room.log_bytes = 0

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed (and compactions are done)."""
        if self._pending or self._compact_queue:
            self._wakeup.set()
            self._hurry.set()
        await self._idle.wait()
