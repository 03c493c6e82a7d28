"""The store's boundary: the DocumentStore protocol and the plain data that crosses it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

# How a caller finishes a snapshot that was folded by replaying updates: given those updates and
# yrs's encoding of the document they make, the snapshot to store. yrs re-encodes a subdocument's
# options as its own, and drops what it has no field for (Yjs's `meta`): collab puts them back
# as the updates had them (collab/subdocs.py). fold calls it only for documents with
# subdocuments.
Refold = Callable[[Sequence[bytes], bytes], bytes]


def now_ms() -> int:
    """The wall clock in milliseconds, as the store stamps rows."""
    return int(time.time() * 1000)


class StoreError(Exception):
    """The store could not do what was asked; the message never contains document content."""


class CompactionRaced(StoreError):
    """A compaction found the update log changed under it (another process compacted or
    appended meanwhile, e.g. two servers with the same document open): it rolled back, nothing
    is lost, and it runs again when the log is next due."""


class PendingUpdate(NamedTuple):
    name: str
    data: bytes
    created_at_ms: int
    author: str | None = None  # who sent it (a user id, "api", "import"); None: unknown


class StoredDocument(NamedTuple):
    snapshot: bytes | None
    updates: list[bytes]  # the log after the snapshot, in arrival order
    last_id: int
    snapshot_through: int = 0  # the last log row the snapshot holds (0: no snapshot)

    @property
    def log_bytes(self) -> int:
        return sum(len(u) for u in self.updates)

    @property
    def parts(self) -> list[bytes]:
        """What makes the document, in the order to apply it: the snapshot, then the log."""
        return [self.snapshot, *self.updates] if self.snapshot else [*self.updates]

    @property
    def empty(self) -> bool:
        return self.snapshot is None and not self.updates


class DocumentInfo(NamedTuple):
    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    log_rows: int
    versions: int = 0  # how many versions are stored


class VersionInfo(NamedTuple):
    """A stored version of a document (its data is loaded apart: load_version)."""

    id: int
    name: str
    created_at_ms: int
    kind: str  # "auto" | "named" | "restore"
    label: str | None
    authors: tuple[str, ...]  # who edited since the previous version
    size_bytes: int


class CompactResult(NamedTuple):
    name: str
    rows: int
    bytes_before: int
    bytes_after: int
    seconds: float
    through_id: int = 0
    live: bool = False  # the snapshot was the caller's live document, not a replay of the log


class LiveDocument(NamedTuple):
    """What a server holding the document in memory knows, for a compaction without a replay.

    If the store holds exactly `rows` log rows after a snapshot through row `through_id`,
    every one of them came from (or went into) the live document, and `encode()` (its full
    state) is a snapshot that holds them all; anything else (rows another writer added, a
    compaction by someone else) falls back to replaying the log.
    """

    rows: int
    through_id: int
    encode: Callable[[], bytes]

    def accounts_for(self, rows: int, through_id: int) -> bool:
        """Whether a store holding `rows` log rows after a snapshot through `through_id` holds
        nothing but what this live document holds (then its state is the new snapshot)."""
        return rows == self.rows and through_id == self.through_id


class DocumentStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def load(self, name: str, after_id: int = 0) -> StoredDocument: ...
    async def append(self, batch: Sequence[PendingUpdate]) -> None: ...
    async def compact(
        self, name: str, live: LiveDocument | None = None, keep: Refold | None = None
    ) -> CompactResult | None: ...
    async def list_documents(
        self, prefix: str = "", limit: int | None = None, after: str | None = None
    ) -> list[DocumentInfo]: ...
    async def delete(self, name: str) -> bool: ...
    # Authorship: which Yjs client ids wrote a document, and who they were.
    async def record_clients(self, name: str, clients: Mapping[int, str]) -> None: ...
    async def clients(self, name: str) -> dict[int, str]: ...
    # Versions: stored states, which compaction never touches.
    async def add_version(
        self,
        name: str,
        data: bytes,
        state_vector: bytes,
        kind: str,
        label: str | None,
        authors: Sequence[str],
        created_at_ms: int,
    ) -> VersionInfo: ...
    async def add_version_if_changed(
        self,
        name: str,
        data: bytes,
        state_vector: bytes,
        kind: str,
        label: str | None,
        authors: Sequence[str],
        created_at_ms: int,
    ) -> VersionInfo | None: ...
    async def list_versions(
        self, name: str, limit: int = 100, before_id: int | None = None
    ) -> list[VersionInfo]: ...
    async def count_versions(self, name: str) -> int: ...
    async def load_version(
        self, name: str, version_id: int
    ) -> tuple[VersionInfo, bytes] | None: ...
    async def latest_version(self, name: str) -> tuple[VersionInfo, bytes] | None: ...
    async def delete_versions(self, name: str, ids: Sequence[int]) -> int: ...
