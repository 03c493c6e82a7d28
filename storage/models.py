"""Tables: documents, their append-only update log, and one compacted snapshot per document."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String
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
