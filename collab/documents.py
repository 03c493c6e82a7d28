"""`DocumentService`: the one door to the documents, for the HTTP API, the CLI, extensions and
the coming admin page and SDK.

It works over a store alone (the CLI, with no server running) or over a store and the running
server's rooms (the hub). With rooms, a document loaded in memory is the truth: reads see its
uncommitted edits, an update is applied to it (sent to its clients, stored, announced to the
other processes, seen by on_change) and a delete first closes its connections. Without rooms
everything goes to the store directly.

It does not check who may do what: callers do (the API with `access_of`, the CLI is run by
whoever owns the database). `list(access=...)` filters by an `Access` for them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pycrdt import get_update

from storage import CompactResult, DocumentStore, PendingUpdate, fold_async

from .access import EVERYTHING, Access
from .errors import CloseCode, CollabError, DocumentNotFound
from .subdocs import SubdocOptions, keep_options
from .validate import validate_state_vector, validate_update

T = TypeVar("T")


class LiveRoom(Protocol):
    """What the service uses of a room the server holds (collab.room.Room)."""

    @property
    def members(self) -> Mapping[Any, None]: ...
    def encode_update(self, state: bytes | None = None) -> bytes: ...
    def apply_server_update(self, update: bytes) -> None: ...


class LiveRooms(Protocol):
    """What the service uses of the running server's room registry (collab.hub.Hub)."""

    @property
    def accepting(self) -> bool: ...
    def room(self, name: str) -> LiveRoom | None: ...
    async def open(self, name: str) -> LiveRoom: ...
    async def evict(
        self, name: str, code: int, reason: str, then: Callable[[], Awaitable[T]]
    ) -> T: ...


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    """One document, as listed. `online`: connections to it in this process (0 without a
    server)."""

    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    online: int


class DocumentService:
    def __init__(self, store: DocumentStore, rooms: LiveRooms | None = None) -> None:
        self.store = store
        self._rooms = rooms

    # -- reading ------------------------------------------------------------------------------

    async def list_documents(
        self, access: Access = EVERYTHING, prefix: str = ""
    ) -> list[DocumentSummary]:
        """The stored documents whose name starts with `prefix` and that `access` covers, by
        name (byte order)."""
        return [
            DocumentSummary(
                d.name, d.created_at_ms, d.updated_at_ms, d.size_bytes, self._online(d.name)
            )
            for d in await self.store.list_documents(prefix)
            if access.covers(d.name)
        ]

    async def info(self, name: str) -> DocumentSummary:
        """One document; DocumentNotFound when it is neither stored nor open."""
        for summary in await self.list_documents(prefix=name):
            if summary.name == name:
                return summary
        if self._room(name) is not None:  # opened, nothing committed yet
            return DocumentSummary(name, 0, 0, 0, self._online(name))
        raise DocumentNotFound(f"no document named {name!r}")

    async def read(self, name: str, state_vector: bytes | None = None) -> bytes:
        """The document as one v1 update; with `state_vector`, only what a peer holding that
        state lacks. DocumentNotFound when it is neither stored nor open; a ProtocolError for
        a malformed state vector."""
        if state_vector is not None:
            validate_state_vector(state_vector)
        room = self._room(name)
        if room is not None:
            return room.encode_update(state_vector)
        stored = await self.store.load(name)
        if stored.empty:
            raise DocumentNotFound(f"no document named {name!r}")
        base = [stored.snapshot] if stored.snapshot else []
        update = await fold_async(base, stored.updates, keep_options)
        if state_vector is None:
            return update
        options = SubdocOptions()  # yrs re-encodes subdocuments' options: put them back
        options.learn_from(update)
        return options.reinstate(get_update(update, state_vector))

    # -- writing ------------------------------------------------------------------------------

    async def apply_update(self, name: str, update: bytes) -> None:
        """Apply a v1 update, validated as a client's (a ProtocolError when it is not one).

        With a server running, the document is opened if it is not (as a client's join opens
        it) and the update is applied there: its clients see it at once, and it is stored, sent
        to the other processes and seen by on_change (with no connection) like any edit. Without
        one, it is appended to the store.
        """
        validate_update(update)
        if self._rooms is None:
            await self.store.append([PendingUpdate(name, update, int(time.time() * 1000))])
            return
        if not self._rooms.accepting:
            raise CollabError("server shutting down", CloseCode.GOING_AWAY)
        room = await self._rooms.open(name)
        room.apply_server_update(update)

    async def delete(
        self, name: str, code: int = CloseCode.NOT_FOUND, reason: str = "document deleted"
    ) -> bool:
        """Delete a document: close its connections with `code` and `reason` (4404 by default:
        our editor does not reconnect), commit what they sent, drop it from memory and from the
        store. Whether there was anything to delete.

        Nobody can open the document while this runs (a join waits, then finds it empty). In
        cluster mode, other processes that hold it keep their copy in memory (and store what
        their clients write next).
        """
        if self._rooms is None:
            return await self.store.delete(name)
        was_open = self._room(name) is not None
        stored = await self._rooms.evict(name, code, reason, lambda: self.store.delete(name))
        return stored or was_open

    async def compact(self, name: str) -> CompactResult | None:
        """Fold a document's log into its snapshot (None when there was nothing to fold); a
        StoreError when the store cannot. Safe beside a running server: the store compacts in
        one transaction, and a room that holds the document notices at its next compaction."""
        return await self.store.compact(name, keep=keep_options)

    # -- internals ----------------------------------------------------------------------------

    def _room(self, name: str) -> LiveRoom | None:
        return self._rooms.room(name) if self._rooms is not None else None

    def _online(self, name: str) -> int:
        room = self._room(name)
        return len(room.members) if room is not None else 0
