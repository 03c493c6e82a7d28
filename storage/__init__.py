"""Persistence for Collab: an append-only update log per document, compacted into snapshots.

This package never imports `collab`: it knows documents as names and updates as bytes.

    base.py        the DocumentStore protocol and the records that cross it
    models.py      the tables
    statements.py  every statement on them, once (SQLAlchemy Core)
    engine.py      the async engine for a URL (SQLite, PostgreSQL)
    sql.py         SqlStore: the store on the engine
    history.py     SqlStore's clients (Yjs client id -> author) and versions (stored states)
    outbox.py      SqlStore's outbox: change marks, events, sinks and their deliveries
    sqlite.py      SqliteAppender: appends and live compactions on a SQLite file, via sqlite3
    fold.py        snapshot + log -> one update (fold, restore)
"""

from __future__ import annotations

from .base import (
    CompactionRaced,
    CompactResult,
    DocumentInfo,
    DocumentStore,
    LiveDocument,
    PendingUpdate,
    Refold,
    StoredDocument,
    StoreError,
    VersionInfo,
)
from .engine import async_url, is_sqlite, is_supported, make_engine
from .fold import fold, fold_async, restore
from .outbox import (
    Claimed,
    DeliveryRow,
    EventSettings,
    Mark,
    NewEvent,
    OutboxTables,
    StoredEvent,
    new_event,
)
from .sql import SqlStore, open_store

__all__ = [
    "Claimed",
    "CompactResult",
    "CompactionRaced",
    "DeliveryRow",
    "DocumentInfo",
    "DocumentStore",
    "EventSettings",
    "LiveDocument",
    "Mark",
    "NewEvent",
    "OutboxTables",
    "PendingUpdate",
    "Refold",
    "SqlStore",
    "StoreError",
    "StoredDocument",
    "StoredEvent",
    "VersionInfo",
    "async_url",
    "fold",
    "fold_async",
    "is_sqlite",
    "is_supported",
    "make_engine",
    "new_event",
    "open_store",
    "restore",
]
