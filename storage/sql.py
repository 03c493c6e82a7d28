"""SqlStore: the update log, snapshots and compaction, on any SQLAlchemy async engine.

Every statement is storage/statements.py's. On a SQLite file, appends and live compactions run
them through the stdlib sqlite3 instead (storage/sqlite.py: SqliteAppender), for speed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import anyio
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import statements as q
from .base import (
    CompactionRaced,
    CompactResult,
    DocumentInfo,
    LiveDocument,
    PendingUpdate,
    Refold,
    StoredDocument,
    now_ms,
)
from .engine import make_engine
from .fold import restore
from .history import HistoryTables
from .models import Base
from .outbox import EventSettings, OutboxTables, new_event, write_marks
from .sqlite import SqliteAppender

log = logging.getLogger(__name__)


SCHEMA_LOCK = 0x636F6C6C6162  # "collab": the advisory lock held while creating tables
APPEND_LOCK = SCHEMA_LOCK + 1  # held by each append transaction (PostgreSQL)
# SCHEMA_LOCK + 2: history.py's VERSION_LOCK


async def open_store(url: str) -> SqlStore:
    """Create the store for a SQLAlchemy URL and make sure its tables exist."""
    store = SqlStore.from_url(url)
    await store.open()
    return store


class SqlStore(OutboxTables, HistoryTables):
    """A DocumentStore on SQLite or PostgreSQL. One instance per process; safe to share.

    `fast_path`: on a SQLite file, appends and live compactions go through SqliteAppender (the
    default); False keeps everything on the engine (tests hold the two paths to each other).
    """

    def __init__(self, engine: AsyncEngine, fast_path: bool = True) -> None:
        self.engine = engine
        self._ids: dict[str, int] = {}
        self._dialect = engine.dialect.name
        self._insert_document = q.insert_document(self._dialect)
        self._upsert_snapshot = q.upsert_snapshot(self._dialect)
        self._insert_client = q.insert_client(self._dialect)
        self._appender = SqliteAppender.for_engine(engine, self._ids) if fast_path else None
        self._outbox_fast = self._appender
        self._delivery_fast = self._appender

    def configure_events(self, settings: EventSettings | None) -> None:
        self.events = settings
        if self._appender is not None:
            self._appender.events = settings

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        return cls(make_engine(url))

    async def open(self) -> None:
        """Create the tables if they are missing. Processes starting together on an empty
        database (`collab serve --workers N`) would race in create_all, which checks for each
        table and then creates it: the loser failed with "table ... already exists". Each takes
        the database's write lock first, so they take turns and the later ones find the tables:
        an advisory lock on PostgreSQL; on SQLite, BEGIN IMMEDIATE (the write lock at once,
        waiting out the busy timeout for another writer), with create_all inside that
        transaction (sqlite3 would otherwise run its DDL outside any transaction).

        On a new SQLite file one race remains, before that: the first connections all switch
        the file to WAL (engine.py's PRAGMA journal_mode=WAL), and SQLite answers "database is
        locked" at once, without the busy timeout, to one that comes while another switches.
        Once the file is in WAL mode that cannot happen again, so trying again is enough.

        A database made by an older version gains what it lacks: the new tables (create_all)
        and the column collab_updates.author (_migrate), under the same lock."""
        for attempt in range(5):
            try:
                async with self.engine.begin() as conn:
                    if self._dialect == "postgresql":
                        await conn.execute(q.ADVISORY_XACT_LOCK, {"key": SCHEMA_LOCK})
                    elif self._dialect == "sqlite":
                        await conn.exec_driver_sql("BEGIN IMMEDIATE")
                    await conn.run_sync(Base.metadata.create_all)
                    await conn.run_sync(_migrate)
                return
            except OperationalError as exc:
                if "database is locked" not in str(exc.orig) or attempt == 4:
                    raise
                log.info("opening the database: %s; trying again", exc.orig)
                await anyio.sleep(0.05 * (attempt + 1))

    async def close(self) -> None:
        if self._appender is not None:
            await anyio.to_thread.run_sync(self._appender.close)
        await self.engine.dispose()

    # -- reading -----------------------------------------------------------------------------

    async def load(self, name: str, after_id: int = 0) -> StoredDocument:
        """Snapshot + log; with `after_id`, only what came after that row (the snapshot too, if
        a compaction has folded rows past it since)."""
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return StoredDocument(None, [], 0)
            stored, _ = await self._read(conn, doc_id, after_id)
        return stored

    def missing_now(self, name: str) -> bool:
        """True when the store certainly holds no document `name`, read on the calling thread
        without waiting (SQLite's file: one indexed read on the appender's connection, where a
        load through the engine takes a pool checkout and round trips to aiosqlite's thread);
        False when it holds one, or cannot tell now (then `load` tells)."""
        if self._appender is None or name in self._ids:
            return False
        found = self._appender.document_id_now(name)
        if found:
            self._ids[name] = found
        return found == 0

    async def count_documents(self) -> int:
        """How many documents the store holds (the metrics' gauge)."""
        async with self.engine.connect() as conn:
            return int((await conn.execute(q.COUNT_DOCUMENTS)).scalar_one())

    async def ping(self) -> None:
        """One trivial query on a connection of the engine's (raises when the store does not
        answer): what /readyz asks of the store."""
        async with self.engine.connect() as conn:
            await conn.execute(q.PING)

    async def list_documents(
        self, prefix: str = "", limit: int | None = None, after: str | None = None
    ) -> list[DocumentInfo]:
        """Documents by name in byte order: those whose name starts with `prefix`, after the
        name `after` (the last one of the previous page), at most `limit`."""
        stmt = q.list_documents(self._dialect, bool(prefix), after is not None, limit is not None)
        params = {"prefix": prefix, "after": after, "limit": limit}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt, {k: v for k, v in params.items() if v})).all()
        return [
            DocumentInfo(
                r.name,
                r.created_at_ms,
                r.updated_at_ms,
                int(r.snapshot_bytes) + int(r.log_bytes),
                int(r.log_rows),
                int(r.versions),
            )
            for r in rows
        ]

    # -- writing -----------------------------------------------------------------------------

    async def append(self, batch: Sequence[PendingUpdate]) -> None:
        """Commit every update of the batch, for any number of documents, in one transaction."""
        if not batch:
            return
        stamp = now_ms()
        appender = self._appender
        if appender is not None:
            if not appender.append_now(batch, stamp):
                await anyio.to_thread.run_sync(appender.append, batch, stamp)
            if appender.checkpoint_due:
                await anyio.to_thread.run_sync(appender.checkpoint)
            return
        async with self.engine.begin() as conn:
            if self._dialect == "postgresql":
                # Appends from all processes take turns, so update ids become visible in
                # increasing order: a reader that has seen id N never later finds a committed
                # row below N (sequence values are taken at insert, transactions commit in any
                # order). The PostgreSQL bus reads "rows after the last one seen" and relies on it.
                await conn.execute(q.ADVISORY_XACT_LOCK, {"key": APPEND_LOCK})
            # Sorted: processes creating the same new documents at once must take their row locks
            # in the same order, or PostgreSQL sees a deadlock (set order differs per process).
            ids: dict[str, int] = {}
            created: set[str] = set()
            for name in sorted({u.name for u in batch}):
                known = await self._find_id(conn, name) is not None
                ids[name] = await self._ensure_id(conn, name, stamp)
                if not known:
                    created.add(name)  # (or another process did, meanwhile: said twice)
            await conn.execute(
                q.INSERT_UPDATE,
                [
                    {
                        "doc_id": ids[u.name],
                        "data": u.data,
                        "created_at_ms": u.created_at_ms,
                        "author": u.author,
                    }
                    for u in batch
                ],
            )
            await conn.execute(
                q.TOUCH_DOCUMENT, [{"doc_id": i, "stamp": stamp} for i in ids.values()]
            )
            if self.events is not None:
                await write_marks(conn, batch, created, stamp, self.events)

    async def import_update(self, name: str, data: bytes, author: str | None = "import") -> None:
        await self.append([PendingUpdate(name, data, now_ms(), author)])

    async def delete(self, name: str, by: Sequence[str] = ()) -> bool:
        """Delete `name`: its log, snapshot, versions and clients; False if it did not exist.
        With events on, a `document.deleted` event (naming `by`) is written in the same
        transaction, after the changes not yet made into events."""
        await self._settle_changes(name)
        async with self.engine.begin() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return False
            if self.events is not None:
                await self._lock_events(conn)
                await conn.execute(q.DROP_MARK, {"document": name})
                await conn.execute(
                    q.INSERT_EVENT, new_event("document.deleted", name, by)._asdict()
                )
            for statement in (
                q.DELETE_LOG,
                q.DELETE_SNAPSHOT,
                q.DELETE_VERSIONS,
                q.DELETE_CLIENTS,
                q.DELETE_DOCUMENT,
            ):
                await conn.execute(statement, {"doc_id": doc_id})
        self._ids.pop(name, None)
        self._event_written()
        return True

    # -- compaction --------------------------------------------------------------------------

    async def compact(
        self, name: str, live: LiveDocument | None = None, keep: Refold | None = None
    ) -> CompactResult | None:
        """Fold the snapshot and every logged update into one new snapshot, in one transaction.

        Only the rows that were read are deleted (checked by count), so an update appended by
        another process meanwhile is never lost: the transaction rolls back instead.

        With `live` (the server's document in memory), when the store holds exactly the rows
        and snapshot it describes, the new snapshot is the live document's state: no replay.
        Replaying costs yrs time that grows with the document for every row (100,000 small
        edits: ~0.4 ms each by the end), in a thread that holds the GIL; the live state
        encodes in milliseconds. On a SQLite file that case is one call into SqliteAppender,
        not a dozen round trips through aiosqlite, each waiting for a turn of an event loop
        that a flood of edits keeps busy while commits queue behind.
        A replay hands `keep` to fold (subdocument options, see storage.Refold).
        """
        started = time.perf_counter()
        result = None
        if live is not None and self._appender is not None:
            result = await self._compact_live_sqlite(name, live, started)
            # None: the store holds something the live document does not account for: replay.
        if result is None:
            result = await self._compact_read(name, live, keep, started)
        return _logged(result) if result is not None else None

    async def _compact_read(
        self, name: str, live: LiveDocument | None, keep: Refold | None, started: float
    ) -> CompactResult | None:
        """The compaction through the engine: read snapshot + log, fold them (or take the live
        document's state, if it accounts for them), replace them; None if the log is empty."""
        async with self.engine.begin() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return None
            stored, folded = await self._read(conn, doc_id)
            if not stored.updates:
                return None
            if live is not None and live.accounts_for(len(stored.updates), stored.snapshot_through):
                data, use_live = live.encode(), True
            else:
                data, use_live = await restore(stored, keep), False
            await self._replace_log(conn, name, doc_id, stored, folded, data)
        before = stored.log_bytes + len(stored.snapshot or b"")
        seconds = time.perf_counter() - started
        rows = len(stored.updates)
        return CompactResult(name, rows, before, len(data), seconds, stored.last_id, use_live)

    async def _compact_live_sqlite(
        self, name: str, live: LiveDocument, started: float
    ) -> CompactResult | None:
        """The live compaction in one sqlite3 transaction (on the event loop when it is small,
        as commits are); None when the store holds more than `live` accounts for."""
        assert self._appender is not None
        appender, data, stamp = self._appender, live.encode(), now_ms()
        ran, done = appender.compact_live_now(name, live, data, stamp)
        if not ran:
            done = await anyio.to_thread.run_sync(appender.compact_live, name, live, data, stamp)
        if done is None:
            return None
        rows, before, through = done
        seconds = time.perf_counter() - started
        return CompactResult(name, rows, before, len(data), seconds, through, True)

    async def _replace_log(
        self,
        conn: AsyncConnection,
        name: str,
        doc_id: int,
        stored: StoredDocument,
        folded: int,
        data: bytes,
    ) -> None:
        """Delete the rows `stored` holds and store `data` as the snapshot through the last one;
        StoreError (the transaction rolls back) if other rows went meanwhile."""
        through = {"doc_id": doc_id, "through_id": stored.last_id}
        deleted = await conn.execute(q.DELETE_LOG_THROUGH, through)
        if deleted.rowcount != len(stored.updates):
            raise CompactionRaced(f"update log of {name!r} changed during compaction; retry")
        snapshot = {"data": data, "folded_updates": folded + len(stored.updates)}
        await conn.execute(
            self._upsert_snapshot, {**through, **snapshot, "created_at_ms": now_ms()}
        )

    # -- helpers -----------------------------------------------------------------------------

    async def _read(
        self, conn: AsyncConnection, doc_id: int, after_id: int = 0
    ) -> tuple[StoredDocument, int]:
        """The snapshot and the log after `after_id` (the snapshot only if it holds rows past
        it), and how many updates the snapshot has folded.

        The log is read before the snapshot: under READ COMMITTED a compaction that commits in
        between then yields a newer snapshot (a superset), never an older one with rows missing.
        """
        key = {"doc_id": doc_id}
        rows = (await conn.execute(q.LOG_AFTER, {**key, "after_id": after_id})).all()
        snap = (await conn.execute(q.SNAPSHOT, key)).first()
        if snap is not None and snap.through_id <= after_id:
            snap = None  # already seen everything it holds
        updates = [bytes(r.data) for r in rows]
        through = snap.through_id if snap is not None else 0
        last_id = max(rows[-1].id if rows else 0, through, after_id)
        snapshot = bytes(snap.data) if snap is not None else None
        folded = snap.folded_updates if snap is not None else 0
        return StoredDocument(snapshot, updates, last_id, through), folded

    async def _find_id(self, conn: AsyncConnection, name: str) -> int | None:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        found = (await conn.execute(q.DOCUMENT_ID, {"name": name})).scalar()
        if found is not None:
            self._ids[name] = found
        return found

    async def _ensure_id(self, conn: AsyncConnection, name: str, stamp: int) -> int:
        found = await self._find_id(conn, name)
        if found is not None:
            return found
        await conn.execute(self._insert_document, {"name": name, "stamp": stamp})
        found = (await conn.execute(q.DOCUMENT_ID, {"name": name})).scalar_one()
        # Not cached here: the transaction may still roll back. The next lookup caches it.
        return int(found)


def _migrate(conn: Connection) -> None:
    """Bring a database made by an older version up to date (create_all added the tables)."""
    columns = {c["name"] for c in inspect(conn).get_columns("collab_updates")}
    if "author" not in columns:
        log.info("adding column collab_updates.author")
        conn.execute(q.ADD_UPDATE_AUTHOR)


def _logged(result: CompactResult) -> CompactResult:
    log.info(
        "compacted %r: %d rows, %d -> %d bytes in %.1f ms%s",
        result.name,
        result.rows,
        result.bytes_before,
        result.bytes_after,
        result.seconds * 1000,
        " (from the live document)" if result.live else "",
    )
    return result
