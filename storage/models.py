"""Tables: documents, their append-only update log, one compacted snapshot per document, the Yjs
client ids that wrote each document, and its versions (stored states)."""

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
