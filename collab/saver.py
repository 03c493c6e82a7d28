"""Group commit: one writer path per process, so SQLite never reports "database is locked".

Every room hands its updates to the one Saver. The saver commits whatever has arrived, for every
document, in one transaction, at most `commit_window_ms` after the oldest of those updates
arrived (it gathers for 80 % of the window, which leaves the rest for the commit itself: on
SQLite a typical commit takes ~0.1 ms, see storage.sqlite.SqliteAppender; fewer, larger commits
cost less CPU per update). Compaction runs on the same path, between commits. A failed commit
is retried with backoff and nothing is dropped: the documents concerned stay dirty, so they
are never unloaded.

The saver keeps its own account of each open document's log (`DocumentLog`: what was handed
over, what is committed, how far the log has grown since the last snapshot); the hub asks it
whether a document is clean before unloading it (`is_clean`), and the documents service waits
for an update it applied to be committed (`wait_committed`).

Each update carries its author (the connection's user id, "api", ...) into the log. After a
commit the saver learns which Yjs client ids the authors wrote with (collab/authorship.py) and
stores the ones new to the document (`store.record_clients`): off the rooms' hot path, and one
small write per new (document, client id), not per update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import anyio

from storage import (
    CompactionRaced,
    DocumentStore,
    LiveDocument,
    PendingUpdate,
    StoredDocument,
)

from .authorship import update_clients
from .counts import Counts
from .subdocs import keep_options

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 5000
MAX_BATCH_BYTES = 8 * 1024 * 1024


# The part of the commit window spent gathering a batch.
GATHER = 0.8

# When a log is compacted (Saver._past_threshold). A compaction encodes and writes the whole
# document, so past `compact_after_rows` rows it waits until the log weighs `compact_log_share`
# of the snapshot: its cost per logged byte then stays the same whatever the document's size
# (one typist in a 1M-character document used to pay a 1 MB encoding and write every 1,000
# keystrokes). A log of MAX_ROWS_FACTOR x `compact_after_rows` rows, or of
# `compact_after_bytes`, is compacted whatever its share: a cold load replays at most that.
MAX_ROWS_FACTOR = 10

# Called with (document name, how many client edits were just committed for it).
CommitListener = Callable[[str, int], None]
# A watcher of one document's commits: (the state vector of everything committed, None) after
# each commit of its updates, (None, the error) after a commit of them failed (it is retried).
CommitWatcher = Callable[[bytes | None, str | None], None]


class DocumentLog:
    """The saver's account of one open document's update log. Written by the saver only;
    others read it (through `Saver.log`)."""

    __slots__ = (
        "appended",
        "authors",
        "clients",
        "committed",
        "compacting",
        "log_bytes",
        "log_rows",
        "name",
        "snapshot_bytes",
        "snapshot_through",
        "state",
        "state_vector",
    )

    def __init__(
        self,
        name: str,
        state: Callable[[], bytes],
        stored: StoredDocument,
        state_vector: Callable[[], bytes] | None = None,
    ) -> None:
        self.name = name
        self.state = state  # the document as one update: a snapshot of the live document
        self.state_vector = state_vector  # the live document's state vector
        self.appended = 0  # updates handed to the saver
        self.committed = 0  # of those, committed to the store
        self.log_rows = len(stored.updates)  # rows in the store's log since the last snapshot
        self.log_bytes = stored.log_bytes
        self.snapshot_through = stored.snapshot_through  # the snapshot holds the log up to here
        self.snapshot_bytes = len(stored.snapshot or b"")  # its size (the compaction trigger)
        self.compacting = False
        self.clients: set[int] = set()  # Yjs client ids whose author is stored
        self.authors: set[str] = set()  # who wrote what was committed since `take_authors`

    @property
    def clean(self) -> bool:
        """Everything handed over is committed and no compaction is running."""
        return self.committed == self.appended and not self.compacting


class Saver:
    def __init__(
        self,
        store: DocumentStore,
        *,
        commit_window_ms: int,
        compact_after_rows: int,
        compact_after_bytes: int,
        compact_log_share: float = 0.0,
        live_compaction: bool = True,
        counts: Counts | None = None,
    ) -> None:
        self.store = store
        self.counts = counts  # commit latency, batch sizes, compactions (None: metrics off)
        # Snapshots from the room's document when the store holds only what it knows of (see
        # storage.LiveDocument); off in cluster mode, where other processes append too.
        self.live_compaction = live_compaction
        self.window = commit_window_ms / 1000
        self.compact_after_rows = compact_after_rows
        self.compact_after_bytes = compact_after_bytes
        self.compact_log_share = compact_log_share
        self._logs: dict[str, DocumentLog] = {}  # the open documents
        # (its log, row, how many client edits the row holds: coalesced updates count as many)
        self._pending: list[tuple[DocumentLog, PendingUpdate, int]] = []
        self._pending_bytes = 0
        self._first_at = 0.0
        self._wakeup = asyncio.Event()
        self._hurry = asyncio.Event()  # cut the gathering wait short (flush, full batch)
        self._idle = asyncio.Event()
        self._idle.set()
        self._commit_done = asyncio.Event()  # set (and replaced) after each commit
        self._new_clients: dict[str, dict[int, str]] = {}  # to store: name -> client -> author
        self._compact_queue: dict[str, DocumentLog] = {}
        self.on_committed: list[CommitListener] = []
        self._watchers: dict[str, set[CommitWatcher]] = {}  # document -> its commit watchers
        self.commits = 0
        self.failures = 0
        self.recorded = 0  # updates handed to the saver since start
        self.committed = 0  # of those, committed

    @property
    def backlog(self) -> int:
        return len(self._pending)

    # -- the open documents ------------------------------------------------------------------

    def open(
        self,
        name: str,
        state: Callable[[], bytes],
        stored: StoredDocument,
        state_vector: Callable[[], bytes] | None = None,
    ) -> None:
        """A document was loaded as `stored`; `state()` encodes its live document (for a
        compaction that snapshots it), `state_vector()` its state vector (for the commit
        watchers). Compacts it soon if its log is already long."""
        doc_log = self._logs[name] = DocumentLog(name, state, stored, state_vector)
        if self._past_threshold(doc_log):
            self._queue_compaction(doc_log)

    def close(self, name: str) -> None:
        """The document is unloaded (clean): forget its log. A compaction already queued for
        it still runs (the store checks what it holds against the counts)."""
        self._logs.pop(name, None)

    def log(self, name: str) -> DocumentLog:
        """The account of an open document's log (read-only)."""
        return self._logs[name]

    def is_clean(self, name: str) -> bool:
        """Whether everything recorded for `name` is committed and it is not being compacted
        (true for a document the saver does not hold)."""
        doc_log = self._logs.get(name)
        return doc_log is None or doc_log.clean

    def take_authors(self, name: str) -> set[str]:
        """Who wrote what was committed for `name` since the last call (for a version)."""
        doc_log = self._logs.get(name)
        if doc_log is None:
            return set()
        authors, doc_log.authors = doc_log.authors, set()
        return authors

    async def wait_committed(self, name: str) -> None:
        """Wait until everything recorded for `name` so far is committed (at once if nothing
        waits; a commit that fails is retried, so this waits as long: callers bound it)."""
        doc_log = self._logs.get(name)
        if doc_log is None:
            return
        target = doc_log.appended
        while doc_log.committed < target and self._logs.get(name) is doc_log:
            self._hurry.set()
            self._wakeup.set()
            done = self._commit_done
            await done.wait()

    def watch(self, name: str, watcher: CommitWatcher) -> Callable[[], None]:
        """Tell `watcher` about every commit of `name`'s updates from now on (see
        CommitWatcher); returns the function that stops it."""
        self._watchers.setdefault(name, set()).add(watcher)

        def stop() -> None:
            watchers = self._watchers.get(name)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[name]

        return stop

    def committed_state_vector(self, name: str) -> bytes | None:
        """The state vector of what is committed of an open document when all of it is (None
        while something waits, or when the saver does not hold it)."""
        doc_log = self._logs.get(name)
        if doc_log is None or doc_log.state_vector is None or doc_log.committed != doc_log.appended:
            return None
        return doc_log.state_vector()

    def dirty(self) -> list[str]:
        """The open documents with updates not committed yet."""
        return [d.name for d in self._logs.values() if d.committed != d.appended]

    def _past_threshold(self, doc_log: DocumentLog) -> bool:
        """Whether the log is due for a compaction (see MAX_ROWS_FACTOR)."""
        rows, after = doc_log.log_rows, self.compact_after_rows
        if rows <= after:
            return doc_log.log_bytes > self.compact_after_bytes
        return (
            rows > after * MAX_ROWS_FACTOR
            or doc_log.log_bytes > self.compact_after_bytes
            or doc_log.log_bytes >= doc_log.snapshot_bytes * self.compact_log_share
        )

    # -- recording -----------------------------------------------------------------------------

    def record(self, name: str, data: bytes, edits: int = 1, author: str | None = None) -> None:
        """Called by a room for each update to persist (`edits` merged into it, written by
        `author`, None when unknown); never awaits."""
        if not self._pending:
            self._first_at = time.monotonic()
            self._wakeup.set()
        self._idle.clear()
        doc_log = self._logs[name]
        doc_log.appended += 1
        self.recorded += edits
        update = PendingUpdate(name, data, int(time.time() * 1000), author)
        self._pending.append((doc_log, update, edits))
        self._pending_bytes += len(data)
        if len(self._pending) >= MAX_BATCH_ROWS or self._pending_bytes >= MAX_BATCH_BYTES:
            self._hurry.set()

    def request_compaction(self, name: str) -> None:
        """Compact an open document's log soon (between commits)."""
        self._queue_compaction(self._logs[name])

    def compact_tails(self) -> None:
        """Compact soon every open document with rows in its log (a clean shutdown: the next
        load reads one snapshot instead of replaying a tail into a big document)."""
        for doc_log in self._logs.values():
            if doc_log.log_rows:
                self._queue_compaction(doc_log)

    def _queue_compaction(self, doc_log: DocumentLog) -> None:
        if doc_log.name not in self._compact_queue:
            self._compact_queue[doc_log.name] = doc_log
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
                    # (a timer that ends the wait: cheaper than a cancel scope, 20 times a second)
                    timer = asyncio.get_running_loop().call_later(delay, self._hurry.set)
                    try:
                        await self._hurry.wait()
                    finally:
                        timer.cancel()
                self._hurry.clear()
                if not await self._commit():
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    self._wakeup.set()
                    continue
                backoff = 0.05
            if self._new_clients:
                await self._store_clients()
            if self._compact_queue:
                await self._compact_next()
            if self._pending or self._compact_queue:
                self._wakeup.set()
            else:
                self._idle.set()

    async def _commit(self) -> bool:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        first_at = self._first_at  # when the oldest of the batch arrived
        started = time.perf_counter()
        # What each watched document's batch commits: everything it has applied (a room hands
        # over each update as it applies it), so the live state vector now.
        watched = self._watched_states(batch) if self._watchers else None
        try:
            with anyio.CancelScope(shield=True):
                await self.store.append([update for _, update, _ in batch])
        except Exception as exc:
            self.failures += 1
            if self.counts is not None:
                self.counts.count("store_errors", "commit")
            log.exception("commit of %d updates failed; will retry", len(batch))
            if watched:
                self._tell_watchers({name: None for name in watched}, f"commit failed: {exc}")
            self._pending = batch + self._pending
            self._pending_bytes = sum(len(u.data) for _, u, _ in self._pending)
            self._first_at = time.monotonic()
            return False
        self.commits += 1
        self.committed += sum(edits for _, _, edits in batch)
        if self.counts is not None:
            self._count_commit(batch, first_at)
        counts: dict[DocumentLog, list[int]] = {}  # log -> [rows, edits]
        for doc_log, update, edits in batch:
            count = counts.setdefault(doc_log, [0, 0])
            count[0] += 1
            count[1] += edits
            doc_log.log_bytes += len(update.data)
            if update.author is not None:
                doc_log.authors.add(update.author)
                self._learn_clients(doc_log, update)
        for doc_log, (rows, edits) in counts.items():
            doc_log.committed += rows
            doc_log.log_rows += rows
            if self._past_threshold(doc_log):
                self._queue_compaction(doc_log)
            for callback in self.on_committed:
                callback(doc_log.name, edits)
        if watched:
            self._tell_watchers(watched, None)
        self._commit_done.set()
        self._commit_done = asyncio.Event()
        log.debug(
            "committed %d updates for %d documents in %.1f ms",
            len(batch),
            len(counts),
            (time.perf_counter() - started) * 1000,
        )
        return True

    def _count_commit(
        self, batch: list[tuple[DocumentLog, PendingUpdate, int]], first_at: float
    ) -> None:
        """One commit, for the metrics: its size, how long its oldest update waited to be
        durable (the histogram: one observation per batch), and the sum of every row's wait
        in ms (the admin overview's mean)."""
        counts = self.counts
        assert counts is not None
        counts.observe("commit_batch", len(batch))
        counts.observe("commit_latency", time.monotonic() - first_at)
        now_ms = int(time.time() * 1000)
        counts.count("commit_rows", "", len(batch))
        counts.count("commit_wait_ms", "", sum(now_ms - u.created_at_ms for _, u, _ in batch))

    def _watched_states(
        self, batch: list[tuple[DocumentLog, PendingUpdate, int]]
    ) -> dict[str, bytes | None]:
        states: dict[str, bytes | None] = {}
        for doc_log, _, _ in batch:
            name = doc_log.name
            if name in self._watchers and name not in states and doc_log.state_vector:
                states[name] = doc_log.state_vector()
        return states

    def _tell_watchers(self, states: dict[str, bytes | None], error: str | None) -> None:
        for name, state in states.items():
            for watcher in list(self._watchers.get(name, ())):
                try:
                    watcher(state, error)
                except Exception:
                    log.exception("a commit watcher of %r failed", name)

    def _learn_clients(self, doc_log: DocumentLog, update: PendingUpdate) -> None:
        """Note the client ids of a committed update that the document's authors do not hold
        yet (an editor's update: one client, three varints to read)."""
        assert update.author is not None
        known = doc_log.clients
        try:
            clients = update_clients(update.data)
        except (IndexError, ValueError):  # (validated before it was applied: not expected)
            log.warning("could not read the client ids of an update to %r", doc_log.name)
            return
        for client in clients:
            if client not in known:
                known.add(client)
                self._new_clients.setdefault(doc_log.name, {}).setdefault(client, update.author)

    async def _store_clients(self) -> None:
        """Store the new (document, client id) -> author pairs; on failure they are forgotten
        by this process (and learnt again from the next update of that client)."""
        new, self._new_clients = self._new_clients, {}
        for name, clients in new.items():
            try:
                with anyio.CancelScope(shield=True):
                    await self.store.record_clients(name, clients)
            except Exception:
                log.exception("storing the client ids of %r failed", name)
                if self.counts is not None:
                    self.counts.count("store_errors", "clients")
                doc_log = self._logs.get(name)
                if doc_log is not None:
                    doc_log.clients.difference_update(clients)

    async def _compact_next(self) -> None:
        name, doc_log = next(iter(self._compact_queue.items()))
        del self._compact_queue[name]
        doc_log.compacting = True
        live = None
        if self.live_compaction:
            live = LiveDocument(doc_log.log_rows, doc_log.snapshot_through, doc_log.state)
        started = time.perf_counter()
        try:
            with anyio.CancelScope(shield=True):
                result = await self.store.compact(name, live, keep=keep_options)
        except CompactionRaced:
            # Another process wrote the same document's log meanwhile (two servers with it
            # open): expected, nothing lost, and it compacts again once due. Not an error.
            log.info("compaction of %r met another writer; it runs again when due", name)
            return
        except Exception:
            log.exception("compaction of %r failed; the log is intact", name)
            if self.counts is not None:
                self.counts.count("store_errors", "compaction")
            return
        finally:
            doc_log.compacting = False
        if self.counts is not None:
            self.counts.count("compactions")
            self.counts.observe("compaction", time.perf_counter() - started)
        # Commits and compactions share this one task, so nothing was appended meanwhile.
        if result is not None:
            doc_log.snapshot_through = result.through_id
            doc_log.snapshot_bytes = result.bytes_after
        doc_log.log_rows = 0
        doc_log.log_bytes = 0

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed (and compactions are done)."""
        if self._pending or self._compact_queue or self._new_clients:
            self._wakeup.set()
            self._hurry.set()
        await self._idle.wait()
