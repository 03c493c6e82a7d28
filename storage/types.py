"""Plain data passed across the store boundary."""

from __future__ import annotations

from typing import NamedTuple


class StoreError(Exception):
    """The store could not do what was asked; the message never contains document content."""


class PendingUpdate(NamedTuple):
    name: str
    data: bytes
    created_at_ms: int


class StoredDocument(NamedTuple):
    snapshot: bytes | None
    updates: list[bytes]  # the log after the snapshot, in arrival order
    last_id: int

    @property
    def log_bytes(self) -> int:
        return sum(len(u) for u in self.updates)

    @property
    def empty(self) -> bool:
        return self.snapshot is None and not self.updates


class DocumentInfo(NamedTuple):
    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    log_rows: int


class CompactResult(NamedTuple):
    name: str
    rows: int
    bytes_before: int
    bytes_after: int
    seconds: float
