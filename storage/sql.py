"""SqlStore: the update log, snapshots and compaction, on any SQLAlchemy async engine."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .base import (
    CompactResult,
    DocumentInfo,
    LiveDocument,
    PendingUpdate,
    Refold,
    StoredDocument,
    StoreError,
)
from .engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, sqlite_pragmas
from .fold import fold_async
from .models import Base, Document, Snapshot, Update

log = logging.getLogger(__name__)


SCHEMA_LOCK = 0x636F6C6C6162  # "collab": the advisory lock held while creating tables
APPEND_LOCK = SCHEMA_LOCK + 1  # held by each append transaction (PostgreSQL)


def now_ms() -> int:
    return int(time.time() * 1000)


async def open_store(url: str) -> SqlStore:
    """Create the store for a SQLAlchemy URL and make sure its tables exist."""
    store = SqlStore.from_url(url)
    await store.open()
    return store


class SqlStore:
    """A DocumentStore on SQLite or PostgreSQL. One instance per process; safe to share."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._ids: dict[str, int] = {}
        self._appender = SqliteAppender.for_engine(engine, self._ids)

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
        Once the file is in WAL mode that cannot happen again, so trying again is enough."""
        from sqlalchemy.exc import OperationalError

        for attempt in range(5):
            try:
                async with self.engine.begin() as conn:
                    dialect = self.engine.dialect.name
                    if dialect == "postgresql":
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK}
                        )
                    elif dialect == "sqlite":
                        await conn.exec_driver_sql("BEGIN IMMEDIATE")
                    await conn.run_sync(Base.metadata.create_all)
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
        a compaction has folded rows past it since).

        The log is read before the snapshot: under READ COMMITTED a compaction that commits in
        between then yields a newer snapshot (a superset), never an older one with rows missing.
        """
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return StoredDocument(None, [], 0)
            rows = (
                await conn.execute(
                    select(Update.id, Update.data)
                    .where(Update.document_id == doc_id, Update.id > after_id)
                    .order_by(Update.id)
                )
            ).all()
            snap = (
                await conn.execute(
                    select(Snapshot.data, Snapshot.through_id).where(Snapshot.document_id == doc_id)
                )
            ).first()
        if snap is not None and snap.through_id <= after_id:
            snap = None  # already seen everything it holds
        updates = [bytes(r.data) for r in rows]
        last_id = max(rows[-1].id if rows else 0, snap.through_id if snap else 0, after_id)
        through = snap.through_id if snap else 0
        return StoredDocument(bytes(snap.data) if snap else None, updates, last_id, through)

    async def list_documents(self) -> list[DocumentInfo]:
        log_bytes = (
            select(
                Update.document_id,
                func.coalesce(func.sum(func.length(Update.data)), 0).label("n"),
                func.count().label("rows"),
            )
            .group_by(Update.document_id)
            .subquery()
        )
        query = (
            select(
                Document.name,
                Document.created_at_ms,
                Document.updated_at_ms,
                func.coalesce(func.length(Snapshot.data), 0).label("snapshot_bytes"),
                func.coalesce(log_bytes.c.n, 0).label("log_bytes"),
                func.coalesce(log_bytes.c.rows, 0).label("log_rows"),
            )
            .outerjoin(Snapshot, Snapshot.document_id == Document.id)
            .outerjoin(log_bytes, log_bytes.c.document_id == Document.id)
            .order_by(Document.updated_at_ms.desc())
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DocumentInfo(
                r.name,
                r.created_at_ms,
                r.updated_at_ms,
                int(r.snapshot_bytes) + int(r.log_bytes),
                int(r.log_rows),
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
            if self.engine.dialect.name == "postgresql":
                # Appends from all processes take turns, so update ids become visible in
                # increasing order: a reader that has seen id N never later finds a committed
                # row below N (sequence values are taken at insert, transactions commit in any
                # order). The PostgreSQL bus reads "rows after the last one seen" and relies on it.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
            # Sorted: processes creating the same new documents at once must take their row locks
            # in the same order, or PostgreSQL sees a deadlock (set order differs per process).
            ids = {
                name: await self._ensure_id(conn, name, stamp)
                for name in sorted({u.name for u in batch})
            }
            await conn.execute(
                Update.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {"document_id": ids[u.name], "data": u.data, "created_at_ms": u.created_at_ms}
                    for u in batch
                ],
            )
            await conn.execute(
                update(Document)
                .where(Document.id.in_(list(ids.values())))
                .values(updated_at_ms=stamp)
            )

    async def import_update(self, name: str, data: bytes) -> None:
        await self.append([PendingUpdate(name, data, now_ms())])

    async def delete(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return False
            await conn.execute(delete(Update).where(Update.document_id == doc_id))
            await conn.execute(delete(Snapshot).where(Snapshot.document_id == doc_id))
            await conn.execute(delete(Document).where(Document.id == doc_id))
        self._ids.pop(name, None)
        return True

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
        encodes in milliseconds. On a SQLite file that case is one call into a worker thread
        (SqliteAppender.compact_live), not a dozen round trips through aiosqlite, each waiting
        for a turn of an event loop that a flood of edits keeps busy while commits queue behind.
        A replay hands `keep` to fold (subdocument options, see storage.Refold).
        """
        started = time.perf_counter()
        if live is not None and self._appender is not None:
            data = live.encode()
            appender = self._appender
            ran, done = appender.compact_live_now(name, live.rows, live.through_id, data)
            if not ran:
                done = await anyio.to_thread.run_sync(
                    appender.compact_live, name, live.rows, live.through_id, data
                )
            if done is not None:
                folded, log_bytes, through = done
                return _logged(
                    CompactResult(
                        name, folded, log_bytes, len(data), time.perf_counter() - started,
                        through, True,
                    )
                )  # fmt: skip
            # The store holds something the live document does not account for: replay.
        async with self.engine.begin() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return None
            # The log before the snapshot, as load() reads them: if another process's
            # compaction commits in between, the snapshot is newer (a superset) and the count
            # check below rolls this one back; the other way round its rows would be lost.
            rows = (
                await conn.execute(
                    select(Update.id, Update.data)
                    .where(Update.document_id == doc_id)
                    .order_by(Update.id)
                )
            ).all()
            snap = (
                await conn.execute(
                    select(Snapshot.data, Snapshot.folded_updates, Snapshot.through_id).where(
                        Snapshot.document_id == doc_id
                    )
                )
            ).first()
            if not rows:
                return None
            through_id = rows[-1].id
            before = sum(len(r.data) for r in rows) + (len(snap.data) if snap else 0)
            use_live = (
                live is not None
                and live.rows == len(rows)
                and live.through_id == (snap.through_id if snap else 0)
            )
            if use_live:
                assert live is not None
                data = live.encode()
            else:
                data = await fold_async(
                    [bytes(snap.data)] if snap else [], [bytes(r.data) for r in rows], keep
                )
            deleted = await conn.execute(
                delete(Update).where(Update.document_id == doc_id, Update.id <= through_id)
            )
            if deleted.rowcount != len(rows):
                raise StoreError(f"update log of {name!r} changed during compaction; retry")
            folded = (snap.folded_updates if snap else 0) + len(rows)
            values = {
                "data": data,
                "through_id": through_id,
                "folded_updates": folded,
                "created_at_ms": now_ms(),
            }
            await conn.execute(self._upsert_snapshot(doc_id, values))
        return _logged(
            CompactResult(
                name, len(rows), before, len(data), time.perf_counter() - started, through_id,
                use_live,
            )
        )  # fmt: skip

    # -- helpers -----------------------------------------------------------------------------

    def _upsert_snapshot(self, doc_id: int, values: dict[str, object]):  # type: ignore[no-untyped-def]
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        stmt = dialect.insert(Snapshot).values(document_id=doc_id, **values)
        return stmt.on_conflict_do_update(index_elements=[Snapshot.document_id], set_=values)

    async def _find_id(self, conn: AsyncConnection, name: str) -> int | None:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        found = (await conn.execute(select(Document.id).where(Document.name == name))).scalar()
        if found is not None:
            self._ids[name] = found
        return found

    async def _ensure_id(self, conn: AsyncConnection, name: str, stamp: int) -> int:
        found = await self._find_id(conn, name)
        if found is not None:
            return found
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        await conn.execute(
            dialect.insert(Document)
            .values(name=name, created_at_ms=stamp, updated_at_ms=stamp)
            .on_conflict_do_nothing(index_elements=[Document.name])
        )
        found = (await conn.execute(select(Document.id).where(Document.name == name))).scalar_one()
        # Not cached here: the transaction may still roll back. The next lookup caches it.
        return int(found)


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


class SqliteAppender:
    """The append path on a SQLite file: the whole transaction in one sqlite3 call.

    Through SQLAlchemy and aiosqlite a commit took ~4 ms of CPU (pool checkout, BEGIN, the
    document ids, INSERT, UPDATE, COMMIT, the pool's reset: each a compiled statement and a
    round trip between the event loop and aiosqlite's thread); at the commit window's 20
    commits a second that was most of the server's CPU in the fanout bench. Here a commit is
    one sqlite3 call: ~55 µs of CPU for a typical batch (/tmp/exp/app.py), less than handing
    it to a worker thread costs (~190 µs through anyio). So a small batch commits right on
    the event loop (`append_now`), provided it can take SQLite's write lock at once and no
    checkpoint runs in it (WAL mode, synchronous=NORMAL: a commit writes the WAL, no fsync);
    a large batch, a busy database and the periodic WAL checkpoint go to a worker thread.
    Reading, compaction and everything else stay on the SQLAlchemy engine; the two connections
    share the file (WAL), and the saver never runs an append and a compaction at once.
    """

    # What may commit on the event loop: beyond this a batch goes to a thread.
    NOW_MAX_ROWS = 256
    NOW_MAX_BYTES = 256 * 1024
    # What a live compaction may do on the event loop (a few ms at most).
    NOW_MAX_COMPACT_ROWS = 10_000
    NOW_MAX_COMPACT_BYTES = 4 * 1024 * 1024
    # Commits between WAL checkpoints (the appender's connection never checkpoints on its own).
    CHECKPOINT_EVERY = 200

    def __init__(self, path: str, ids: dict[str, int]) -> None:
        self.path = path
        self._ids = ids  # the store's name -> id cache
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        t_doc, t_upd = Document.__tablename__, Update.__tablename__
        self._select_id = f"SELECT id FROM {t_doc} WHERE name = ?"
        self._insert_doc = (
            f"INSERT INTO {t_doc} (name, created_at_ms, updated_at_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING"
        )
        self._insert = f"INSERT INTO {t_upd} (document_id, data, created_at_ms) VALUES (?, ?, ?)"
        self._touch = f"UPDATE {t_doc} SET updated_at_ms = ? WHERE id = ?"
        self._since_checkpoint = 0

    @classmethod
    def for_engine(cls, engine: AsyncEngine, ids: dict[str, int]) -> SqliteAppender | None:
        url = engine.url
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:") or url.query:
            return None  # URI or options we do not parse: keep to the engine
        return cls(str(Path(database).expanduser()), ids)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we say BEGIN and COMMIT ourselves
            check_same_thread=False,
        )
        sqlite_pragmas(conn)
        # Checkpoints (which fsync) run in a worker thread, see checkpoint(); not in a commit.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    @property
    def checkpoint_due(self) -> bool:
        return self._since_checkpoint >= self.CHECKPOINT_EVERY

    def checkpoint(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._since_checkpoint = 0

    def append_now(self, batch: Sequence[PendingUpdate], stamp: int) -> bool:
        """Commit on the calling thread if that is quick; False: call append() in a thread."""
        if len(batch) > self.NOW_MAX_ROWS or sum(len(u.data) for u in batch) > self.NOW_MAX_BYTES:
            return False
        with self._begun(wait=False) as conn:
            if conn is None:
                return False
            self._write(conn, batch, stamp)
            return True

    def append(self, batch: Sequence[PendingUpdate], stamp: int) -> None:
        with self._begun(wait=True) as conn:
            assert conn is not None
            self._write(conn, batch, stamp)

    @contextlib.contextmanager
    def _begun(self, wait: bool) -> Iterator[sqlite3.Connection | None]:
        """The connection inside BEGIN IMMEDIATE, with the appender's lock held. wait=False
        (on the event loop): None at once if the lock or SQLite's write lock is taken."""
        if not self._lock.acquire(blocking=wait):
            yield None
            return
        try:
            conn = self._conn = self._conn or self._connect()
            if wait:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                return
            conn.execute("PRAGMA busy_timeout=0")  # locked by someone else: go to the thread
            try:
                conn.execute("BEGIN IMMEDIATE")
                began = True
            except sqlite3.OperationalError:
                began = False
            finally:
                conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            yield conn if began else None
        finally:
            self._lock.release()

    def _write(self, conn: sqlite3.Connection, batch: Sequence[PendingUpdate], stamp: int) -> None:
        """The rest of the transaction after BEGIN IMMEDIATE (the lock is held)."""
        with self._committing(conn):
            found: dict[str, int] = {}
            for name in sorted({u.name for u in batch}):
                doc_id = self._ids.get(name)
                if doc_id is None:
                    conn.execute(self._insert_doc, (name, stamp, stamp))
                    doc_id = int(conn.execute(self._select_id, (name,)).fetchone()[0])
                found[name] = doc_id
            conn.executemany(
                self._insert, [(found[u.name], u.data, u.created_at_ms) for u in batch]
            )
            conn.executemany(self._touch, [(stamp, i) for i in found.values()])
        # Cached once committed (a rolled-back insert must not leave a stale id behind).
        for name, doc_id in found.items():
            self._ids.setdefault(name, doc_id)

    def compact_live_now(
        self, name: str, rows: int, through_id: int, data: bytes
    ) -> tuple[bool, tuple[int, int, int] | None]:
        """compact_live on the calling thread if that is quick (as append_now): (True, its
        result), or (False, None) when it is not and compact_live must run in a thread."""
        if rows > self.NOW_MAX_COMPACT_ROWS or len(data) > self.NOW_MAX_COMPACT_BYTES:
            return False, None
        with self._begun(wait=False) as conn:
            if conn is None:
                return False, None
            return True, self._compact_live(conn, name, rows, through_id, data)

    def compact_live(
        self, name: str, rows: int, through_id: int, data: bytes
    ) -> tuple[int, int, int] | None:
        """Replace the log of `name` by the snapshot `data` if the store holds exactly `rows`
        log rows after a snapshot through `through_id` (see storage.LiveDocument), in one
        transaction. (rows, bytes before, new through id), or None when it does not."""
        with self._begun(wait=True) as conn:
            assert conn is not None
            return self._compact_live(conn, name, rows, through_id, data)

    def _compact_live(
        self, conn: sqlite3.Connection, name: str, rows: int, through_id: int, data: bytes
    ) -> tuple[int, int, int] | None:
        """The rest of compact_live after BEGIN IMMEDIATE (the lock is held)."""
        t_upd, t_snap = Update.__tablename__, Snapshot.__tablename__
        with self._committing(conn):
            doc_id = self._ids.get(name)
            if doc_id is None:
                found = conn.execute(self._select_id, (name,)).fetchone()
                doc_id = None if found is None else int(found[0])
            count, last, log_bytes = conn.execute(
                f"SELECT count(*), max(id), coalesce(sum(length(data)), 0) FROM {t_upd} "
                "WHERE document_id = ?",
                (doc_id,),
            ).fetchone()
            snap = conn.execute(
                f"SELECT through_id, folded_updates, length(data) FROM {t_snap} "
                "WHERE document_id = ?",
                (doc_id,),
            ).fetchone()
            through, folded, snap_bytes = snap if snap is not None else (0, 0, 0)
            if doc_id is None or count == 0 or count != rows or through != through_id:
                return None  # (the transaction wrote nothing)
            deleted = conn.execute(
                f"DELETE FROM {t_upd} WHERE document_id = ? AND id <= ?", (doc_id, last)
            ).rowcount
            if deleted != count:
                raise StoreError(f"update log of {name!r} changed during compaction; retry")
            conn.execute(
                f"INSERT INTO {t_snap} (document_id, data, through_id, folded_updates, "
                "created_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (document_id) DO UPDATE "
                "SET data = excluded.data, through_id = excluded.through_id, "
                "folded_updates = excluded.folded_updates, "
                "created_at_ms = excluded.created_at_ms",
                (doc_id, data, last, folded + count, now_ms()),
            )
        return count, int(log_bytes) + int(snap_bytes or 0), int(last)

    @contextlib.contextmanager
    def _committing(self, conn: sqlite3.Connection) -> Iterator[None]:
        """COMMIT what the block did (after BEGIN IMMEDIATE), or ROLLBACK if it raised."""
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._since_checkpoint += 1

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
