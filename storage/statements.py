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

from .models import (
    Base,
    Client,
    Delivery,
    Document,
    EventMark,
    OutboxEvent,
    Sink,
    Snapshot,
    Update,
    Version,
)

# An INSERT that can say ON CONFLICT.
DialectInsert = sqlite.Insert | postgresql.Insert

# -- documents ---------------------------------------------------------------------------------

# A trivial query that still reads the store's own table (a readiness probe: collab/api/health.py).
PING = select(Document.id).limit(1)

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


def list_documents(dialect: str, prefix: bool, after: bool, limit: bool) -> Select[Any]:
    """Documents ordered by name in byte order (PostgreSQL: COLLATE "C"), for pagination.
    Parameters, each when asked for: prefix (names that start with it, case-sensitively), after
    (names after it), limit."""
    name = Document.name.collate("C") if dialect == "postgresql" else Document.name
    stmt: Select[Any] = (
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
COUNT_DOCUMENTS = select(func.count()).select_from(Document)

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

# -- the outbox: marks -------------------------------------------------------------------------

# The mark of document (users JSON, first_at_ms, revision), if it has one.
MARK = select(EventMark.users, EventMark.first_at_ms, EventMark.revision).where(
    EventMark.document == bindparam("document")
)

# A new mark: document, first_at_ms (= stamp), due_at_ms, users, created.
INSERT_MARK = insert(EventMark).values(
    document=bindparam("document"),
    first_at_ms=bindparam("stamp"),
    due_at_ms=bindparam("due_at_ms"),
    users=bindparam("users"),
    created=bindparam("created"),
    revision=literal_column("1"),
    claimed_until_ms=literal_column("0"),
)

# More changes for doc's mark: due_at_ms, users.
EXTEND_MARK = (
    update(EventMark)
    .where(EventMark.document == bindparam("doc"))
    .values(
        due_at_ms=bindparam("due_at_ms"),
        users=bindparam("users"),
        revision=EventMark.revision + literal_column("1"),
    )
)

# More changes for doc's mark that no known author wrote (its users stay): due at `due_at_ms`
# or `max_wait_ms` after its first change, whichever comes first (what next_mark computes, in
# one statement: SQLite's two-argument min, for storage/sqlite.py's appender only).
EXTEND_MARK_ANONYMOUS = (
    update(EventMark)
    .where(EventMark.document == bindparam("doc"))
    .values(
        due_at_ms=func.min(
            bindparam("due_at_ms"), EventMark.first_at_ms + bindparam("max_wait_ms")
        ),
        revision=EventMark.revision + literal_column("1"),
    )
)

# Marks due at now and not held, oldest first: limit. On PostgreSQL each is locked as it is
# read, and one a commit holds is skipped (due again after it): commits lock the marks of
# their documents in name order, a claim in due order, and the two orders would deadlock.
# (SQLite renders no FOR UPDATE: its writers take turns anyway.)
DUE_MARKS = (
    select(EventMark)
    .where(EventMark.due_at_ms <= bindparam("now"), EventMark.claimed_until_ms < bindparam("now"))
    .order_by(EventMark.due_at_ms)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)

# doc's mark, due or not (to make it into events before another event of doc).
MARK_ROW = select(EventMark).where(EventMark.document == bindparam("document"))

# Hold doc's mark until `until`, if nobody holds it at now.
CLAIM_MARK = (
    update(EventMark)
    .where(EventMark.document == bindparam("doc"), EventMark.claimed_until_ms < bindparam("now"))
    .values(claimed_until_ms=bindparam("until"))
)

# The mark made into events, unless a commit touched it since (revision).
DELETE_MARK = delete(EventMark).where(
    EventMark.document == bindparam("document"), EventMark.revision == bindparam("revision")
)

# A commit touched it meanwhile: release it, due again (its creation is reported).
RELEASE_MARK = (
    update(EventMark)
    .where(EventMark.document == bindparam("doc"))
    .values(claimed_until_ms=literal_column("0"), created=literal_column("0"))
)

# When the earliest mark not held at now is due.
NEXT_MARK_DUE = select(func.min(EventMark.due_at_ms)).where(
    EventMark.claimed_until_ms < bindparam("now")
)

DROP_MARK = delete(EventMark).where(EventMark.document == bindparam("document"))

COUNT_MARKS = select(func.count()).select_from(EventMark)

# -- the outbox: events ------------------------------------------------------------------------

INSERT_EVENT = insert(OutboxEvent).values(
    event_id=bindparam("event_id"),
    type=bindparam("type"),
    document=bindparam("document"),
    created_at_ms=bindparam("created_at_ms"),
    body=bindparam("body"),
)

_EVENT = (
    OutboxEvent.seq,
    OutboxEvent.event_id,
    OutboxEvent.type,
    OutboxEvent.document,
    OutboxEvent.created_at_ms,
    OutboxEvent.body,
)


def events_after(document: bool, prefix: bool) -> Select[Any]:
    """Events with seq > after, in seq order, at most limit; of document, or of names
    starting with prefix, each when asked for."""
    stmt = select(*_EVENT).where(OutboxEvent.seq > bindparam("after"))
    if document:
        stmt = stmt.where(OutboxEvent.document == bindparam("document"))
    if prefix:
        stmt = stmt.where(
            func.substr(OutboxEvent.document, 1, func.length(bindparam("prefix", type_=String)))
            == bindparam("prefix", type_=String)
        )
    return stmt.order_by(OutboxEvent.seq).limit(bindparam("limit", type_=Integer))


EVENT_SEQ = select(OutboxEvent.seq).where(OutboxEvent.event_id == bindparam("event_id"))
EVENT_BOUNDS = select(func.min(OutboxEvent.seq), func.max(OutboxEvent.seq), func.count())

# The newest document.changed event of document (its body: the state it reported).
LAST_CHANGE = (
    select(OutboxEvent.body)
    .where(OutboxEvent.document == bindparam("document"), OutboxEvent.type == "document.changed")
    .order_by(OutboxEvent.seq.desc())
    .limit(1)
)

# Retention: the seq below which events go (older than before_ms, or beyond the newest
# max_rows); their deliveries go with them.
SEQ_AT_AGE = select(func.max(OutboxEvent.seq)).where(
    OutboxEvent.created_at_ms < bindparam("before_ms")
)
DELETE_EVENTS_THROUGH = delete(OutboxEvent).where(OutboxEvent.seq <= bindparam("seq"))
DELETE_DELIVERIES_THROUGH = delete(Delivery).where(Delivery.event_seq <= bindparam("seq"))

# -- the outbox: sinks and deliveries ----------------------------------------------------------

SINK = select(Sink.through_seq).where(Sink.name == bindparam("sink"))


def insert_sink(dialect: str) -> DialectInsert:
    """A sink known from now on, after event seq; nothing if another process added it."""
    return (
        _insert(dialect, Sink)
        .values(
            name=bindparam("sink"), through_seq=bindparam("seq"), created_at_ms=bindparam("now")
        )
        .on_conflict_do_nothing(index_elements=[Sink.name])
    )


ADVANCE_SINK = (
    update(Sink).where(Sink.name == bindparam("sink")).values(through_seq=bindparam("seq"))
)

# The events after a sink's through_seq (at most limit), to make its deliveries of.
NEW_FOR_SINK = (
    select(OutboxEvent.seq, OutboxEvent.document)
    .where(OutboxEvent.seq > bindparam("after"))
    .order_by(OutboxEvent.seq)
    .limit(bindparam("limit", type_=Integer))
)

INSERT_DELIVERY = insert(Delivery).values(
    sink=bindparam("sink"),
    event_seq=bindparam("event_seq"),
    document=bindparam("document"),
    status="pending",
    attempts=0,
    next_attempt_ms=bindparam("now"),
    claimed_until_ms=0,
    last_error=None,
    created_at_ms=bindparam("now"),
    updated_at_ms=bindparam("now"),
)

_earlier = Delivery.__table__.alias("earlier")
# A delivery no earlier pending delivery of the same sink and document waits before (the order
# per document: only the first pending one of each document may be attempted).
_FIRST_OF_DOCUMENT = ~(
    select(_earlier.c.id)
    .where(
        _earlier.c.sink == Delivery.sink,
        _earlier.c.document == Delivery.document,
        _earlier.c.status == "pending",
        _earlier.c.event_seq < Delivery.event_seq,
    )
    .exists()
)


def due_deliveries(skip_locked: bool) -> Select[Any]:
    """A sink's pending deliveries due at now and not held, each the first pending one of its
    document (in order per document), oldest first, at most limit; PostgreSQL skips rows
    another process is claiming."""
    stmt = (
        select(Delivery.id, Delivery.attempts, Delivery.created_at_ms.label("since_ms"), *_EVENT)
        .join(OutboxEvent, OutboxEvent.seq == Delivery.event_seq)
        .where(
            Delivery.sink == bindparam("sink"),
            Delivery.status == "pending",
            Delivery.next_attempt_ms <= bindparam("now"),
            Delivery.claimed_until_ms < bindparam("now"),
            _FIRST_OF_DOCUMENT,
        )
        .order_by(Delivery.event_seq)
        .limit(bindparam("limit", type_=Integer))
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=Delivery)
    return stmt


# The earliest time one of sink's deliveries that could be claimed (pending, not held at now,
# the first pending one of its document) is due: its loop sleeps until then.
NEXT_DUE = select(func.min(Delivery.next_attempt_ms)).where(
    Delivery.sink == bindparam("sink"),
    Delivery.status == "pending",
    Delivery.claimed_until_ms < bindparam("now"),
    _FIRST_OF_DOCUMENT,
)

CLAIM_DELIVERY = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"), Delivery.claimed_until_ms < bindparam("now"))
    .values(claimed_until_ms=bindparam("until"))
)

# Nothing held any more (a single server starting: whatever held them is gone).
RELEASE_ALL_DELIVERIES = (
    update(Delivery)
    .where(Delivery.claimed_until_ms > literal_column("0"))
    .values(claimed_until_ms=literal_column("0"))
)
RELEASE_ALL_MARKS = (
    update(EventMark)
    .where(EventMark.claimed_until_ms > literal_column("0"))
    .values(claimed_until_ms=literal_column("0"))
)

# Not held any more (an attempt abandoned when the server stops).
RELEASE_DELIVERY = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(claimed_until_ms=literal_column("0"))
)

# The outcome of an attempt: status, attempts, next_attempt_ms, last_error (None: the one
# before stays, so a delivered row still says what failed on the way), now.
SETTLE_DELIVERY = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts"),
        next_attempt_ms=bindparam("next_attempt_ms"),
        last_error=func.coalesce(bindparam("last_error", type_=String), Delivery.last_error),
        claimed_until_ms=0,
        updated_at_ms=bindparam("now"),
    )
)

# Pending again, due now, with the sink's whole time to deliver it again (a retry asked for).
RETRY_DELIVERY = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
        status="pending",
        next_attempt_ms=bindparam("now"),
        claimed_until_ms=0,
        created_at_ms=bindparam("now"),
        updated_at_ms=bindparam("now"),
    )
)

_DELIVERY = (
    Delivery.id,
    Delivery.sink,
    OutboxEvent.event_id,
    OutboxEvent.type,
    Delivery.document,
    Delivery.status,
    Delivery.attempts,
    Delivery.last_error,
    Delivery.created_at_ms,
    Delivery.updated_at_ms,
    Delivery.next_attempt_ms,
)


def list_deliveries(status: bool, document: bool) -> Select[Any]:
    """Deliveries to sinks whose name starts with sink_prefix, id < before, newest first, at
    most limit; of a status, of a document, each when asked for."""
    stmt = (
        select(*_DELIVERY)
        .join(OutboxEvent, OutboxEvent.seq == Delivery.event_seq)
        .where(
            func.substr(Delivery.sink, 1, func.length(bindparam("sink_prefix", type_=String)))
            == bindparam("sink_prefix", type_=String),
            Delivery.id < bindparam("before"),
        )
    )
    if status:
        stmt = stmt.where(Delivery.status == bindparam("status"))
    if document:
        stmt = stmt.where(Delivery.document == bindparam("document"))
    return stmt.order_by(Delivery.id.desc()).limit(bindparam("limit", type_=Integer))


DELIVERY = (
    select(*_DELIVERY)
    .join(OutboxEvent, OutboxEvent.seq == Delivery.event_seq)
    .where(Delivery.id == bindparam("id"))
)

COUNT_DELIVERIES = select(Delivery.status, func.count()).group_by(Delivery.status)

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
