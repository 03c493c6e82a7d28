"""SqliteAppender: appends and live compactions on a SQLite file, each one sqlite3 call.

Through SQLAlchemy and aiosqlite a commit took ~4 ms of CPU (pool checkout, BEGIN, the document
ids, INSERT, UPDATE, COMMIT, the pool's reset: each a compiled statement and a round trip
between the event loop and aiosqlite's thread); at the commit window's 20 commits a second that
was most of the server's CPU in the fanout bench. Here a commit is one sqlite3 call, ~30 µs of
CPU for a typical batch (bench/store_cpu.py), less than handing it to a worker thread costs
(~190 µs through anyio). The statements are storage/statements.py's, compiled once to SQLite's
text (`sqlite_sql`): the same ones SqlStore runs through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from . import statements as q
from .base import CompactionRaced, LiveDocument, PendingUpdate
from .engine import SQLITE_BUSY_TIMEOUT_MS, sqlite_pragmas
from .outbox import (
    Claimed,
    Defer,
    EventSettings,
    Mark,
    NewEvent,
    authors_by_document,
    claimed_delivery,
    deferred,
    mark_of,
    next_mark,
)

_SQLITE = sqlite.dialect(paramstyle="qmark")


def sqlite_sql(statement: ClauseElement, params: tuple[str, ...]) -> str:
    """`statement` as SQLite's text for the stdlib sqlite3, which passes its parameters by
    position: `params`, their names in that order (checked)."""
    compiled = statement.compile(dialect=_SQLITE)
    assert isinstance(compiled, SQLCompiler)
    constants = sorted(name for name, value in compiled.params.items() if value is not None)
    if constants:
        raise ValueError(f"constants passed as parameters {constants}: use literal_column")
    if tuple(compiled.positiontup or ()) != params:
        raise ValueError(f"the statement takes {compiled.positiontup}, not {params}")
    return str(compiled)


class Positional(NamedTuple):
    """A statement whose SQL holds constants SQLAlchemy binds as parameters (LIMIT, OFFSET, a
    literal compared with): its SQLite text, its parameters' names in order and the
    constants' values; `args` puts the others' values among them."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]

    def args(self, **values: Any) -> tuple[Any, ...]:
        return tuple(values[n] if n in values else self.constants[n] for n in self.names)


def positional(statement: ClauseElement, params: tuple[str, ...]) -> Positional:
    """`statement` for sqlite3 with `params` (checked: every other parameter is a constant)."""
    compiled = statement.compile(dialect=_SQLITE)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    constants = {n: v for n, v in compiled.params.items() if n not in params}
    if set(names) - set(params) - set(constants) or set(params) - set(names):
        raise ValueError(f"the statement takes {names}, not {params}")
    if any(v is None for v in constants.values()):
        raise ValueError(f"parameters without a value: {sorted(constants)}")
    return Positional(str(compiled), names, constants)


class OutboxSql(NamedTuple):
    """The outbox's statements the finalizer runs (storage/outbox.py), as sqlite3 runs them."""

    due_marks: Positional
    claim_mark: Positional
    next_mark_due: Positional
    insert_event: Positional
    delete_mark: Positional
    release_mark: Positional
    last_change: Positional


@cache
def outbox_statements() -> OutboxSql:
    return OutboxSql(
        due_marks=positional(q.DUE_MARKS, ("now", "limit")),
        claim_mark=positional(q.CLAIM_MARK, ("until", "doc", "now")),
        next_mark_due=positional(q.NEXT_MARK_DUE, ("now",)),
        insert_event=positional(
            q.INSERT_EVENT, ("event_id", "type", "document", "created_at_ms", "body")
        ),
        delete_mark=positional(q.DELETE_MARK, ("document", "revision")),
        release_mark=positional(q.RELEASE_MARK, ("doc",)),
        last_change=positional(q.LAST_CHANGE, ("document",)),
    )


class DeliverySql(NamedTuple):
    """A sink's delivery loop's statements (storage/outbox.py), as sqlite3 runs them."""

    sink: Positional
    new_for_sink: Positional
    insert_delivery: Positional
    advance_sink: Positional
    due: Positional
    claim: Positional
    settle: Positional
    next_due: Positional


@cache
def delivery_statements() -> DeliverySql:
    return DeliverySql(
        sink=positional(q.SINK, ("sink",)),
        new_for_sink=positional(q.NEW_FOR_SINK, ("after", "limit")),
        insert_delivery=positional(
            q.INSERT_DELIVERY, ("sink", "event_seq", "document", "now", "last_error")
        ),
        advance_sink=positional(q.ADVANCE_SINK, ("sink", "seq")),
        due=positional(q.due_deliveries(False), ("sink", "now", "limit")),
        claim=positional(q.CLAIM_DELIVERY, ("delivery_id", "now", "until")),
        settle=positional(
            q.SETTLE_DELIVERY,
            ("delivery_id", "status", "attempts", "next_attempt_ms", "last_error", "now"),
        ),
        next_due=positional(q.NEXT_DUE, ("sink", "now")),
    )


def _named_rows(cursor: sqlite3.Cursor) -> list[SimpleNamespace]:
    """A cursor's rows with their columns as attributes, as SQLAlchemy's rows have them (the
    outbox's row readers, `mark_of`, `claimed_delivery`, take either)."""
    columns = [d[0] for d in cursor.description]
    return [SimpleNamespace(**dict(zip(columns, row, strict=True))) for row in cursor.fetchall()]


# What a live compaction did: (rows folded, bytes before, the new snapshot's through id).
LiveCompaction = tuple[int, int, int]


class SqliteSql(NamedTuple):
    """The statements this path runs, as sqlite3 runs them."""

    document_id: str
    insert_document: str
    insert_update: str
    touch_document: str
    log_sizes: str
    snapshot_sizes: str
    delete_log_through: str
    upsert_snapshot: str
    mark: str
    insert_mark: str
    extend_mark: str
    extend_mark_anonymous: str


@cache
def sqlite_statements() -> SqliteSql:
    return SqliteSql(
        document_id=sqlite_sql(q.DOCUMENT_ID, ("name",)),
        insert_document=sqlite_sql(q.insert_document("sqlite"), ("name", "stamp", "stamp")),
        insert_update=sqlite_sql(q.INSERT_UPDATE, ("doc_id", "data", "created_at_ms", "author")),
        touch_document=sqlite_sql(q.TOUCH_DOCUMENT, ("stamp", "doc_id")),
        log_sizes=sqlite_sql(q.LOG_SIZES, ("doc_id",)),
        snapshot_sizes=sqlite_sql(q.SNAPSHOT_SIZES, ("doc_id",)),
        delete_log_through=sqlite_sql(q.DELETE_LOG_THROUGH, ("doc_id", "through_id")),
        upsert_snapshot=sqlite_sql(
            q.upsert_snapshot("sqlite"),
            ("doc_id", "data", "through_id", "folded_updates", "created_at_ms"),
        ),
        mark=sqlite_sql(q.MARK, ("document",)),
        insert_mark=sqlite_sql(
            q.INSERT_MARK, ("document", "stamp", "due_at_ms", "users", "created")
        ),
        extend_mark=sqlite_sql(q.EXTEND_MARK, ("due_at_ms", "users", "doc")),
        extend_mark_anonymous=sqlite_sql(
            q.EXTEND_MARK_ANONYMOUS, ("due_at_ms", "max_wait_ms", "doc")
        ),
    )


class SqliteAppender:
    """The append path on a SQLite file: the whole transaction in one sqlite3 call.

    A small batch commits right on the event loop (`append_now`), provided it can take SQLite's
    write lock at once and no checkpoint runs in it (WAL mode, synchronous=NORMAL: a commit
    writes the WAL, no fsync); a large batch, a busy database and the periodic WAL checkpoint go
    to a worker thread. The events finalizer's few statements (claim the due marks, read the
    last document.changed, write the events and delete the mark) run here too when the
    connection is free at once, else through the engine. Reading, compaction by replay and
    everything else stay on the SQLAlchemy engine; the two connections share the file (WAL),
    and the saver never runs an append and a compaction at once.
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
        self._sql = sqlite_statements()
        self._since_checkpoint = 0
        self.events: EventSettings | None = None  # (the store's) None: no marks written

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
        # On the event loop a busy database is never waited for (the batch goes to a thread):
        # only a worker thread's BEGIN waits (see _begun).
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    @property
    def checkpoint_due(self) -> bool:
        return self._since_checkpoint >= self.CHECKPOINT_EVERY

    def checkpoint(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._since_checkpoint = 0

    # -- reading -----------------------------------------------------------------------------

    def document_id_now(self, name: str) -> int | None:
        """The id of document `name` read on the calling thread (0: there is none), or None when
        that would wait: the connection is in use in a thread, or the database is locked."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            conn = self._conn = self._conn or self._connect()
            if conn.in_transaction:
                return None
            try:  # (busy_timeout is 0 here, see _begun: a locked database answers at once)
                row = conn.execute(self._sql.document_id, (name,)).fetchone()
            except sqlite3.OperationalError:
                return None
        finally:
            self._lock.release()
        return int(row[0]) if row is not None else 0

    # -- appending ---------------------------------------------------------------------------

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

    def _write(self, conn: sqlite3.Connection, batch: Sequence[PendingUpdate], stamp: int) -> None:
        """The rest of the transaction after BEGIN IMMEDIATE (the lock is held)."""
        sql = self._sql
        with self._committing(conn):
            found: dict[str, int] = {}
            created: set[str] = set()
            for name in sorted({u.name for u in batch}):
                doc_id = self._ids.get(name)
                if doc_id is None:
                    if conn.execute(sql.insert_document, (name, stamp, stamp)).rowcount == 1:
                        created.add(name)
                    doc_id = int(conn.execute(sql.document_id, (name,)).fetchone()[0])
                found[name] = doc_id
            conn.executemany(
                sql.insert_update,
                [(found[u.name], u.data, u.created_at_ms, u.author) for u in batch],
            )
            conn.executemany(sql.touch_document, [(stamp, i) for i in found.values()])
            if self.events is not None:
                self._write_marks(conn, batch, created, stamp, self.events)
        # Cached once committed (a rolled-back insert must not leave a stale id behind).
        for name, doc_id in found.items():
            self._ids.setdefault(name, doc_id)

    def _write_marks(
        self,
        conn: sqlite3.Connection,
        batch: Sequence[PendingUpdate],
        created: set[str],
        stamp: int,
        config: EventSettings,
    ) -> None:
        """The documents' change marks (storage/outbox.py), in the append's transaction."""
        sql = self._sql
        authors = authors_by_document(batch)
        for name in sorted(authors):
            if not authors[name] and name not in created:
                # Nobody known wrote: extend the mark in one statement (next_mark's due time,
                # the users as they are), if there is one.
                due, extend = stamp + config.debounce_ms, sql.extend_mark_anonymous
                if conn.execute(extend, (due, config.max_wait_ms, name)).rowcount == 1:
                    continue
            found = conn.execute(sql.mark, (name,)).fetchone()
            insert, p = next_mark(found, authors[name], name in created, stamp, config)
            if insert:
                conn.execute(
                    sql.insert_mark, (name, stamp, p["due_at_ms"], p["users"], p["created"])
                )
            else:
                conn.execute(sql.extend_mark, (p["due_at_ms"], p["users"], name))

    # -- the outbox's marks and events (the finalizer's, storage/outbox.py) -------------------
    #
    # Each is a few small statements: on the event loop when the lock is free at once (None
    # when it is not: the caller goes through the engine), as an append is, instead of a
    # round trip per statement through SQLAlchemy and aiosqlite's thread.

    def claim_due_marks_now(
        self, now: int, hold_ms: int, limit: int, defer: Defer | None = None
    ) -> tuple[list[Mark], int | None] | None:
        """OutboxTables.claim_due_marks in one transaction on this connection, or None."""
        sql = outbox_statements()
        with self._begun(wait=False) as conn:
            if conn is None:
                return None
            claimed: list[Mark] = []
            with self._committing(conn):
                due = conn.execute(sql.due_marks.sql, sql.due_marks.args(now=now, limit=limit))
                rows = _named_rows(due)
                for row in rows:
                    if deferred(defer, row.document, int(row.due_at_ms), now):
                        continue
                    args = sql.claim_mark.args(doc=row.document, now=now, until=now + hold_ms)
                    if conn.execute(sql.claim_mark.sql, args).rowcount == 1:
                        claimed.append(mark_of(row))
                if rows:
                    return claimed, None
                found = conn.execute(sql.next_mark_due.sql, sql.next_mark_due.args(now=now))
                earliest = found.fetchone()[0]
        return claimed, None if earliest is None else int(earliest)

    def finish_mark_now(self, mark: Mark, events: Sequence[NewEvent]) -> bool | None:
        """OutboxTables.finish_mark in one transaction on this connection, or None."""
        sql = outbox_statements()
        with self._begun(wait=False) as conn:
            if conn is None:
                return None
            with self._committing(conn):
                conn.executemany(
                    sql.insert_event.sql, [sql.insert_event.args(**e._asdict()) for e in events]
                )
                args = sql.delete_mark.args(document=mark.document, revision=mark.revision)
                if conn.execute(sql.delete_mark.sql, args).rowcount == 1:
                    return True
                conn.execute(sql.release_mark.sql, sql.release_mark.args(doc=mark.document))
                return False

    def last_change_now(self, document: str) -> tuple[str | None] | None:
        """(the body of `document`'s newest document.changed, None when it has none), or None
        when this connection is busy (a commit in a thread)."""
        row = self._read_now(outbox_statements().last_change, document=document)
        if row is False:
            return None
        return (None if row is None else str(row[0]),)

    def _read_now(self, statement: Positional, **args: Any) -> Any:
        """`statement`'s first row (None if it has none) read on this connection, or False when
        the connection is taken or SQLite busy."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            conn = self._conn = self._conn or self._connect()
            try:
                return conn.execute(statement.sql, statement.args(**args)).fetchone()
            except sqlite3.OperationalError:  # (busy: the engine's connection waits)
                return False
        finally:
            self._lock.release()

    # -- a sink's deliveries (storage/outbox.py's DeliveryFastPath) ----------------------------

    def fill_deliveries_now(self, sink: str, now: int, limit: int) -> int | None:
        """OutboxTables.fill_deliveries in one transaction on this connection, or None."""
        sql = delivery_statements()
        with self._begun(wait=False) as conn:
            if conn is None:
                return None
            with self._committing(conn):
                through = conn.execute(sql.sink.sql, sql.sink.args(sink=sink)).fetchone()
                if through is None or through[0] is None:
                    return 0
                args = sql.new_for_sink.args(after=through[0], limit=limit)
                rows = conn.execute(sql.new_for_sink.sql, args).fetchall()
                if not rows:
                    return 0
                conn.executemany(
                    sql.insert_delivery.sql,
                    [
                        sql.insert_delivery.args(
                            sink=sink, event_seq=seq, document=document, now=now, last_error=None
                        )
                        for seq, document in rows
                    ],
                )
                advance = sql.advance_sink.args(sink=sink, seq=rows[-1][0])
                conn.execute(sql.advance_sink.sql, advance)
                return len(rows)

    def claim_deliveries_now(
        self, sink: str, now: int, hold_ms: int, limit: int, skip: Sequence[str]
    ) -> list[Claimed] | None:
        """OutboxTables.claim_deliveries in one transaction on this connection, or None."""
        sql = delivery_statements()
        with self._begun(wait=False) as conn:
            if conn is None:
                return None
            claimed: list[Claimed] = []
            with self._committing(conn):
                due = sql.due.args(sink=sink, now=now, limit=limit + len(skip))
                for row in _named_rows(conn.execute(sql.due.sql, due)):
                    if row.document in skip or len(claimed) >= limit:
                        continue
                    args = sql.claim.args(delivery_id=row.id, now=now, until=now + hold_ms)
                    if conn.execute(sql.claim.sql, args).rowcount == 1:
                        claimed.append(claimed_delivery(row))
            return claimed

    def settle_delivery_now(self, params: dict[str, Any]) -> bool | None:
        """OutboxTables.settle_delivery in one transaction on this connection (True), or
        None."""
        sql = delivery_statements().settle
        with self._begun(wait=False) as conn:
            if conn is None:
                return None
            with self._committing(conn):
                conn.execute(sql.sql, sql.args(**params))
            return True

    def next_due_now(self, sink: str, now: int) -> tuple[int | None] | None:
        """(OutboxTables.next_due's answer,), or None when this connection is busy."""
        row = self._read_now(delivery_statements().next_due, sink=sink, now=now)
        if row is False:
            return None
        return (None if row is None or row[0] is None else int(row[0]),)

    # -- live compaction ---------------------------------------------------------------------

    def compact_live_now(
        self, name: str, live: LiveDocument, data: bytes, stamp: int
    ) -> tuple[bool, LiveCompaction | None]:
        """compact_live on the calling thread if that is quick (as append_now): (True, its
        result), or (False, None) when it is not and compact_live must run in a thread."""
        if live.rows > self.NOW_MAX_COMPACT_ROWS or len(data) > self.NOW_MAX_COMPACT_BYTES:
            return False, None
        with self._begun(wait=False) as conn:
            if conn is None:
                return False, None
            return True, self._compact_live(conn, name, live, data, stamp)

    def compact_live(
        self, name: str, live: LiveDocument, data: bytes, stamp: int
    ) -> LiveCompaction | None:
        """Replace the log of `name` by the snapshot `data` (`live` encoded) if the store holds
        nothing else (LiveDocument.accounts_for), in one transaction. (rows, bytes before, new
        through id), or None when it does not."""
        with self._begun(wait=True) as conn:
            assert conn is not None
            return self._compact_live(conn, name, live, data, stamp)

    def _compact_live(
        self, conn: sqlite3.Connection, name: str, live: LiveDocument, data: bytes, stamp: int
    ) -> LiveCompaction | None:
        """The rest of compact_live after BEGIN IMMEDIATE (the lock is held)."""
        sql = self._sql
        with self._committing(conn):
            doc_id = self._ids.get(name)
            if doc_id is None:
                found = conn.execute(sql.document_id, (name,)).fetchone()
                doc_id = None if found is None else int(found[0])
            count, last, log_bytes = conn.execute(sql.log_sizes, (doc_id,)).fetchone()
            snap = conn.execute(sql.snapshot_sizes, (doc_id,)).fetchone()
            through, folded, snap_bytes = snap if snap is not None else (0, 0, 0)
            if doc_id is None or count == 0 or not live.accounts_for(count, through):
                return None  # (the transaction wrote nothing)
            deleted = conn.execute(sql.delete_log_through, (doc_id, last)).rowcount
            if deleted != count:
                raise CompactionRaced(f"update log of {name!r} changed during compaction; retry")
            conn.execute(sql.upsert_snapshot, (doc_id, data, last, folded + count, stamp))
        return count, int(log_bytes) + int(snap_bytes or 0), int(last)

    # -- transactions ------------------------------------------------------------------------

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
                conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                finally:
                    conn.execute("PRAGMA busy_timeout=0")
                yield conn
                return
            try:  # (busy_timeout is 0: locked by someone else, we go to the thread at once)
                conn.execute("BEGIN IMMEDIATE")
                began = True
            except sqlite3.OperationalError:
                began = False
            yield conn if began else None
        finally:
            self._lock.release()

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
