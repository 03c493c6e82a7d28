"""Every statement the store runs, written once, in SQLAlchemy Core against models.py's tables.

Two paths run them. SqlStore (sql.py) executes them on its engine, on SQLite or PostgreSQL.
SqliteAppender (sqlite.py), the fast path for appends and live compactions on a SQLite file,
runs the same statements through the stdlib sqlite3, compiled once to SQLite's text
(sqlite.py's `sqlite_sql`). So a change to a table or a statement here reaches both paths; no
statement on the tables is written anywhere else (only transaction control and PRAGMAs are).

Parameters are named (`bindparam`). SqlStore passes them by name; sqlite3 takes them by
position (a dict costs it measurably more per statement), in the order `sqlite_sql` is told and
checks against the compiled statement, so a change here that moves them fails at once. A
statement the fast path runs must not carry a constant as a parameter (SQLAlchemy makes one of
a Python literal, and sqlite3 would not be given it): write `literal_column("0")`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .models import Base, Client, Document, Snapshot, Update, Version

# An INSERT that can say ON CONFLICT.
DialectInsert = sqlite.Insert | postgresql.Insert

# -- documents ---------------------------------------------------------------------------------

# The id of a document: name.
DOCUMENT_ID = select(Document.id).where(Document.name == bindparam("name"))

# A document changed: its updated_at_ms is stamp (every document of a batch: executemany).
TOUCH_DOCUMENT = (
    update(Document)
    .where(Document.id == bindparam("doc_id"))
    .values(updated_at_ms=bindparam("stamp"))
)


def insert_document(dialect: str) -> DialectInsert:
    """A new document: name, created and updated at stamp; nothing if the name exists (another
    process created it meanwhile)."""
    return (
        _insert(dialect, Document)
        .values(
            name=bindparam("name"),
            created_at_ms=bindparam("stamp"),
            updated_at_ms=bindparam("stamp"),
        )
        .on_conflict_do_nothing(index_elements=[Document.name])
    )


DELETE_DOCUMENT = delete(Document).where(Document.id == bindparam("doc_id"))

# Name, times, snapshot and log sizes and version count of documents, by name (byte order).
_log_sizes = (
    select(
        Update.document_id,
        func.coalesce(func.sum(func.length(Update.data)), 0).label("n"),
        func.count().label("rows"),
    )
    .group_by(Update.document_id)
    .subquery()
)
_version_counts = (
    select(Version.document_id, func.count().label("versions"))
    .group_by(Version.document_id)
    .subquery()
)


def list_documents(
    dialect: str, prefix: bool, after: bool, limit: bool
) -> Select[*tuple[Any, ...]]:
    """Documents ordered by name in byte order (PostgreSQL: COLLATE "C"), for pagination.
    Parameters, each when asked for: prefix (names that start with it, case-sensitively), after
    (names after it), limit."""
    name = Document.name.collate("C") if dialect == "postgresql" else Document.name
    stmt: Select[*tuple[Any, ...]] = (
        select(
            Document.name,
            Document.created_at_ms,
            Document.updated_at_ms,
            func.coalesce(func.length(Snapshot.data), 0).label("snapshot_bytes"),
            func.coalesce(_log_sizes.c.n, 0).label("log_bytes"),
            func.coalesce(_log_sizes.c.rows, 0).label("log_rows"),
            func.coalesce(_version_counts.c.versions, 0).label("versions"),
        )
        .outerjoin(Snapshot, Snapshot.document_id == Document.id)
        .outerjoin(_log_sizes, _log_sizes.c.document_id == Document.id)
        .outerjoin(_version_counts, _version_counts.c.document_id == Document.id)
        .order_by(name)
    )
    if prefix:  # (not LIKE: SQLite's is case-insensitive, and _ and % would need escaping)
        head = func.substr(Document.name, 1, func.length(bindparam("prefix", type_=String)))
        stmt = stmt.where(head == bindparam("prefix", type_=String))
    if after:
        stmt = stmt.where(name > bindparam("after", type_=String))
    if limit:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


# -- the log -----------------------------------------------------------------------------------

# One update: doc_id, data, created_at_ms (a batch: executemany).
INSERT_UPDATE = insert(Update).values(
    document_id=bindparam("doc_id"),
    data=bindparam("data"),
    created_at_ms=bindparam("created_at_ms"),
    author=bindparam("author"),
)

# (id, data) of the rows of doc_id after after_id, in arrival order.
LOG_AFTER = (
    select(Update.id, Update.data)
    .where(Update.document_id == bindparam("doc_id"), Update.id > bindparam("after_id"))
    .order_by(Update.id)
)

# (rows, last id, bytes) of the log of doc_id, without reading it.
LOG_SIZES = select(
    func.count(),
    func.max(Update.id),
    func.coalesce(func.sum(func.length(Update.data)), literal_column("0")),
).where(Update.document_id == bindparam("doc_id"))

# The rows of doc_id up to through_id (a compaction folded them).
DELETE_LOG_THROUGH = delete(Update).where(
    Update.document_id == bindparam("doc_id"), Update.id <= bindparam("through_id")
)

DELETE_LOG = delete(Update).where(Update.document_id == bindparam("doc_id"))

# -- snapshots ---------------------------------------------------------------------------------

# (data, through_id, folded_updates) of the snapshot of doc_id.
SNAPSHOT = select(Snapshot.data, Snapshot.through_id, Snapshot.folded_updates).where(
    Snapshot.document_id == bindparam("doc_id")
)

# (through_id, folded_updates, bytes) of the snapshot of doc_id, without reading it.
SNAPSHOT_SIZES = select(
    Snapshot.through_id, Snapshot.folded_updates, func.length(Snapshot.data)
).where(Snapshot.document_id == bindparam("doc_id"))

DELETE_SNAPSHOT = delete(Snapshot).where(Snapshot.document_id == bindparam("doc_id"))

_SNAPSHOT_FIELDS = ("data", "through_id", "folded_updates", "created_at_ms")


def upsert_snapshot(dialect: str) -> DialectInsert:
    """The snapshot of doc_id: data, through_id, folded_updates, created_at_ms; replaced if the
    document has one."""
    stmt = _insert(dialect, Snapshot).values(
        document_id=bindparam("doc_id"), **{f: bindparam(f) for f in _SNAPSHOT_FIELDS}
    )
    return stmt.on_conflict_do_update(
        index_elements=[Snapshot.document_id], set_={f: stmt.excluded[f] for f in _SNAPSHOT_FIELDS}
    )


# -- clients ---------------------------------------------------------------------------------


def insert_client(dialect: str) -> DialectInsert:
    """Client id client_id of doc_id was first seen writing as author at stamp; nothing if it
    is known already (the first writer wins). Many at once: executemany."""
    return (
        _insert(dialect, Client)
        .values(
            document_id=bindparam("doc_id"),
            client_id=bindparam("client_id"),
            author=bindparam("author"),
            first_seen_ms=bindparam("stamp"),
        )
        .on_conflict_do_nothing(index_elements=[Client.document_id, Client.client_id])
    )


# (client_id, author) of every client id known to have written doc_id.
CLIENTS = select(Client.client_id, Client.author).where(Client.document_id == bindparam("doc_id"))

DELETE_CLIENTS = delete(Client).where(Client.document_id == bindparam("doc_id"))

# -- versions ----------------------------------------------------------------------------------

# A version of doc_id: created_at_ms, kind, label, authors (JSON), data, state_vector.
INSERT_VERSION = insert(Version).values(
    document_id=bindparam("doc_id"),
    created_at_ms=bindparam("created_at_ms"),
    kind=bindparam("kind"),
    label=bindparam("label"),
    authors=bindparam("authors"),
    data=bindparam("data"),
    state_vector=bindparam("state_vector"),
)

# What describes a version (VersionInfo), without its data.
_VERSION_INFO = (
    Version.id,
    Version.created_at_ms,
    Version.kind,
    Version.label,
    Version.authors,
    func.length(Version.data).label("size_bytes"),
)

# The versions of doc_id with an id below before_id, newest first, at most limit.
LIST_VERSIONS = (
    select(*_VERSION_INFO)
    .where(Version.document_id == bindparam("doc_id"), Version.id < bindparam("before_id"))
    .order_by(Version.id.desc())
    .limit(bindparam("limit", type_=Integer))
)

# How many versions doc_id has.
COUNT_VERSIONS = select(func.count()).where(Version.document_id == bindparam("doc_id"))

# Version version_id of doc_id, with its data.
VERSION = select(*_VERSION_INFO, Version.data).where(
    Version.document_id == bindparam("doc_id"), Version.id == bindparam("version_id")
)

# The newest version of doc_id, with its state vector.
LATEST_VERSION = (
    select(*_VERSION_INFO, Version.state_vector)
    .where(Version.document_id == bindparam("doc_id"))
    .order_by(Version.id.desc())
    .limit(1)
)

# The authors (JSON) of version version_id.
SET_VERSION_AUTHORS = (
    update(Version)
    .where(Version.id == bindparam("version_id"))
    .values(authors=bindparam("authors"))
)

# Version version_id of doc_id (retention; many: executemany).
DELETE_VERSION = delete(Version).where(
    Version.document_id == bindparam("doc_id"), Version.id == bindparam("version_id")
)

DELETE_VERSIONS = delete(Version).where(Version.document_id == bindparam("doc_id"))

# -- schema changes ----------------------------------------------------------------------------

# Databases created before collab_updates.author existed (SqlStore.open adds it when missing).
ADD_UPDATE_AUTHOR = text("ALTER TABLE collab_updates ADD COLUMN author TEXT")

# -- PostgreSQL --------------------------------------------------------------------------------

# A lock held until the transaction ends: key.
ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def _insert(dialect: str, table: type[Base]) -> DialectInsert:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL's for any other database)."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)
