"""Persistence for Collab: an append-only update log per document, compacted into snapshots.

This package never imports `collab`: it knows documents as names and updates as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .engine import is_sqlite, make_engine
from .sql import SqlStore, fold, fold_async
from .types import (
    CompactResult,
    DocumentInfo,
    LiveDocument,
    PendingUpdate,
    Refold,
    StoredDocument,
    StoreError,
)

__all__ = [
    "CompactResult",
    "DocumentInfo",
    "DocumentStore",
    "LiveDocument",
    "PendingUpdate",
    "Refold",
    "SqlStore",
    "StoreError",
    "StoredDocument",
    "fold",
    "fold_async",
    "is_sqlite",
    "make_engine",
    "open_store",
]


class DocumentStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def load(self, name: str, after_id: int = 0) -> StoredDocument: ...
    async def append(self, batch: Sequence[PendingUpdate]) -> None: ...
    async def compact(
        self, name: str, live: LiveDocument | None = None, keep: Refold | None = None
    ) -> CompactResult | None: ...
    async def list_documents(self) -> list[DocumentInfo]: ...
    async def delete(self, name: str) -> bool: ...


async def open_store(url: str) -> SqlStore:
    """Create the store for a SQLAlchemy URL and make sure its tables exist."""
    store = SqlStore.from_url(url)
    await store.open()
    return store
