"""Tables: documents, their append-only update log, one compacted snapshot per document, the Yjs
client ids that wrote each document, its versions (stored states), and the outbox of change events
(marks of changes not yet made into events, events, sinks, deliveries)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "collab_documents"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class Update(Base):
    """One row per Yjs v1 update, in arrival order (by id, never by timestamp)."""

    __tablename__ = "collab_updates"
    # AUTOINCREMENT: SQLite must never reuse the id of a compacted (deleted) row, or a new update
    # would look already folded into the snapshot (its id <= through_id).
    __table_args__ = (
        Index("ix_collab_updates_document_id_id", "document_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        Id, ForeignKey("collab_documents.id", ondelete="CASCADE")
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Who sent it: a user id, "api", "import", ...; NULL when unknown (anonymous, older rows).
    # Databases made before this column existed get it in SqlStore.open().
    author: Mapped[str | None] = mapped_column(Text, nullable=True)


class Snapshot(Base):
    """The state of a document folded from every update up to and including `through_id`."""

    __tablename__ = "collab_snapshots"

    document_id: Mapped[int] = mapped_column(
        Id, ForeignKey("collab_documents.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    through_id: Mapped[int] = mapped_column(BigInteger)
    folded_updates: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Client(Base):
    """Which Yjs client ids wrote a document, and who they were (the first writer seen).

    Every item of a Yjs document carries its client id, and this survives compaction: it is how
    a diff names the author of an insertion (an item's ID.client -> author).
    """

    __tablename__ = "collab_clients"

    document_id: Mapped[int] = mapped_column(
        Id, ForeignKey("collab_documents.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    author: Mapped[str] = mapped_column(Text)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)


class Version(Base):
    """A stored state of a document: the full v1 update at that moment, never compacted away.

    `kind` is "auto", "named" or "restore"; `authors` a JSON list of the author ids who edited
    since the previous version; `state_vector` the state's, to tell whether a document changed
    since its latest version without decoding `data`.
    """

    __tablename__ = "collab_versions"
    __table_args__ = (
        Index("ix_collab_versions_document_id_id", "document_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        Id, ForeignKey("collab_documents.id", ondelete="CASCADE")
    )
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    authors: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    state_vector: Mapped[bytes] = mapped_column(LargeBinary)


class EventMark(Base):
    """A document with committed changes not yet made into a `document.changed` event (the
    outbox's coalescing: written in the transaction that commits the updates, so a crash
    loses no change; made into events by the server's finalizer once `due_at_ms` passed).

    `users` is a JSON list of who wrote them; `created` says the document's row was created by
    them (a `document.created` event goes first); `revision` counts the commits that touched
    the mark (the finalizer deletes it only if no commit came after it read it); a finalizer
    holds it until `claimed_until_ms`."""

    __tablename__ = "collab_event_marks"

    document: Mapped[str] = mapped_column(String(512), primary_key=True)
    first_at_ms: Mapped[int] = mapped_column(BigInteger)
    due_at_ms: Mapped[int] = mapped_column(BigInteger)
    users: Mapped[str] = mapped_column(Text)
    created: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(BigInteger)
    claimed_until_ms: Mapped[int] = mapped_column(BigInteger)


class OutboxEvent(Base):
    """One event, immutable once written: `body` is the JSON every sink sends. `seq` orders
    the outbox: rows become visible in seq order (PostgreSQL: the writers take turns)."""

    __tablename__ = "collab_events"
    __table_args__ = (
        Index("ix_collab_events_document_seq", "document", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    document: Mapped[str] = mapped_column(String(512))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)


class Sink(Base):
    """A sink known to the outbox, and the last event whose deliveries to it exist."""

    __tablename__ = "collab_sinks"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    through_seq: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Delivery(Base):
    """One event's delivery to one sink: "pending" (retried at `next_attempt_ms`, held by a
    process until `claimed_until_ms`), "delivered" or "failed"."""

    __tablename__ = "collab_deliveries"
    __table_args__ = (
        Index("ix_collab_deliveries_sink_status_next", "sink", "status", "next_attempt_ms"),
        Index("ix_collab_deliveries_sink_document_seq", "sink", "document", "event_seq"),
        Index("ix_collab_deliveries_event_seq", "event_seq"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sink: Mapped[str] = mapped_column(String(512))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    document: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    claimed_until_ms: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
