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

import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from pycrdt import Doc, get_state, get_update, merge_updates

from storage import (
    CompactResult,
    DocumentInfo,
    DocumentStore,
    OutboxTables,
    PendingUpdate,
    VersionInfo,
    fold_async,
    new_event,
)

from . import changes, comments, content, edits, steps
from .access import EVERYTHING, Access
from .authorship import update_clients
from .comments import Comment
from .content import Format, doc_of
from .errors import CloseCode, CollabError, DocumentNotFound, VersionNotFound
from .subdocs import SubdocOptions, keep_options
from .validate import validate_state_vector, validate_update
from .ydoc import captured

T = TypeVar("T")


class LiveRoom(Protocol):
    """What the service uses of a room the server holds (collab.room.Room)."""

    @property
    def members(self) -> Mapping[Any, None]: ...
    def encode_update(self, state: bytes | None = None) -> bytes: ...
    def apply_server_update(self, update: bytes, author: str | None = None) -> None: ...
    def send_stateless(
        self, payload: str, *, only: int | None = None, exclude: int | None = None
    ) -> int: ...


class LiveRooms(Protocol):
    """What the service uses of the running server's room registry (collab.hub.Hub)."""

    @property
    def accepting(self) -> bool: ...
    def room(self, name: str) -> LiveRoom | None: ...
    async def open(self, name: str) -> LiveRoom: ...
    async def evict(
        self, name: str, code: int, reason: str, then: Callable[[], Awaitable[T]]
    ) -> T: ...
    async def take_version(self, name: str, kind: str, label: str | None) -> VersionInfo: ...
    async def persisted(self, name: str) -> None: ...
    def sessions(self, name: str) -> list[ConnectionSummary]: ...
    def close_sessions(self, name: str, code: int, reason: str, only: int | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    """One connection as an operator sees it (the admin API): who, from where, how, since
    when (unix ms), how many bytes each way."""

    id: int
    document: str
    user: str | None
    address: str
    protocol: str  # "websocket", "websocket+deflate" (the fast path), "asgi"; "hocuspocus..."
    since_ms: int
    bytes_in: int
    bytes_out: int
    read_only: bool


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    """One document, as listed. `online`: connections to it in this process (0 without a
    server)."""

    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    online: int
    versions: int = 0  # stored versions
    log_rows: int = 0  # updates in its log, not yet compacted into its snapshot


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
            self._summary(d)
            for d in await self.store.list_documents(prefix)
            if access.covers(d.name)
        ]

    async def list_page(
        self,
        access: Access = EVERYTHING,
        prefix: str = "",
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DocumentSummary], str | None]:
        """One page of `list_documents`, by name: at most `limit` documents after `cursor` (the
        previous page's `next_cursor`), and the cursor of the next page (None on the last).
        ValueError for a cursor this did not make."""
        after = decode_cursor(cursor) if cursor else None
        found: list[DocumentInfo] = []
        while len(found) <= limit:
            batch = await self.store.list_documents(prefix, limit=limit + 1, after=after)
            found.extend(d for d in batch if access.covers(d.name))
            if len(batch) < limit + 1:
                break
            after = batch[-1].name
        page = [self._summary(d) for d in found[:limit]]
        more = len(found) > limit
        return page, encode_cursor(page[-1].name) if more and page else None

    async def info(self, name: str) -> DocumentSummary:
        """One document; DocumentNotFound when it is neither stored nor open."""
        # by name, a name comes first among those it is a prefix of
        for found in await self.store.list_documents(name, limit=1):
            if found.name == name:
                return self._summary(found)
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

    async def content(self, name: str, format: Format = "json") -> dict[str, Any]:
        """`{"content": {root: value}, "types": {root: kind}}` (collab/content.py);
        DocumentNotFound when there is no such document."""
        return await steps.run(content.content_steps(await self.read(name), format))

    async def text(self, name: str, field: str) -> str:
        """Text field `field` as a string: DocumentNotFound, FieldNotFound, or
        FieldTypeMismatch when the field is not a text."""
        return await steps.run(content.text_steps(await self.read(name), field))

    async def comments(self, name: str) -> list[Comment]:
        """The comments stored in the document, anchors resolved (collab/comments.py);
        DocumentNotFound when there is no such document."""
        return await steps.run(comments.read_steps(await self.read(name)))

    # -- writing ------------------------------------------------------------------------------

    async def apply_update(self, name: str, update: bytes, author: str | None = "api") -> None:
        """Apply a v1 update, validated as a client's (a ProtocolError when it is not one).

        With a server running, the document is opened if it is not (as a client's join opens
        it) and the update is applied there: its clients see it at once, and it is stored, sent
        to the other processes and seen by on_change (with no connection) like any edit. Without
        one, it is appended to the store.
        """
        validate_update(update)
        if self._rooms is None:
            await self._append(name, update, author)
            return
        room = await self._open(name)
        room.apply_server_update(update, author)
        await self._rooms.persisted(name)

    async def patch(
        self,
        name: str,
        text: Mapping[str, str] | None = None,
        map: Mapping[str, Mapping[str, Any]] | None = None,
        author: str | None = "api",
    ) -> dict[str, Any]:
        """Set text fields by a minimal diff (collab/edits.py: connected users' cursors and
        concurrent edits survive) and map keys (None deletes one), as one edit; the document is
        created when there is none. The new content. FieldTypeMismatch (nothing changed) when a
        field exists with another kind."""

        def edit(doc: Doc[Any]) -> None:
            for field, value in (text or {}).items():
                edits.set_text(doc, field, value)
            for root, mapping in (map or {}).items():
                edits.set_map(doc, root, dict(mapping))

        edited = await self._edit(name, edit, author, create=True)
        return await steps.run(content.content_steps(edited))

    # -- versions -----------------------------------------------------------------------------

    async def versions(
        self, name: str, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[VersionInfo], str | None]:
        """A document's versions, newest first: at most `limit` after `cursor`, and the next
        page's cursor (None on the last). DocumentNotFound when there is no such document."""
        before = _int_cursor(cursor) if cursor else None
        found = await self.store.list_versions(name, limit + 1, before)
        if not found and before is None:
            await self.info(name)  # DocumentNotFound, or a document with no version yet
        page = found[:limit]
        more = len(found) > limit
        return page, encode_cursor(str(page[-1].id)) if more and page else None

    async def create_version(
        self, name: str, label: str | None = None, kind: str = "named"
    ) -> VersionInfo:
        """Store the document's current state as a version now (DocumentNotFound when there is
        no document): from the room when the server holds it, else folded from the store."""
        return await self._take_version(name, label, kind)

    async def _take_version(
        self, name: str, label: str | None, kind: str, editor: str | None = None
    ) -> VersionInfo:
        """`create_version`; without a server, `editor` (who just edited) is among its authors
        (a deletion alone makes no item that would name them)."""
        if self._rooms is not None:
            await self.info(name)
            return await self._rooms.take_version(name, kind, label)
        state = await self.read(name)
        latest = await self.store.latest_version(name)
        authors = set(await self._authors_since(name, latest, state))
        if editor is not None:
            authors.add(editor)
        return await self.store.add_version(
            name, state, get_state(state), kind, label, sorted(authors), now_ms()
        )

    async def version(self, name: str, version_id: int) -> VersionInfo:
        return (await self._load_version(name, version_id))[0]

    async def version_update(self, name: str, version_id: int) -> bytes:
        """The document as it was at that version, as one v1 update."""
        return (await self._load_version(name, version_id))[1]

    async def version_content(
        self, name: str, version_id: int, format: Format = "json"
    ) -> dict[str, Any]:
        """The content at that version, as `content` gives the document's."""
        version = await self.version_update(name, version_id)
        return await steps.run(content.content_steps(version, format))

    async def diff(
        self, name: str, from_id: int, to_id: int | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """What changed in each text field from version `from_id` to version `to_id` (None:
        the document now): collab/changes.py, authors from the store's client ids."""
        old = await self.version_update(name, from_id)
        new = await self.version_update(name, to_id) if to_id is not None else await self.read(name)
        deleters = await self._authors_between(name, from_id, to_id)
        clients = await self.store.clients(name)
        return await _off_loop(changes.diff, old, new, clients, deleters or None)

    async def restore(
        self, name: str, version_id: int, author: str | None = "api"
    ) -> dict[str, VersionInfo]:
        """Make the document look like version `version_id` again, as a new edit that every
        connected client receives (nothing is rewritten): a version of the state before it
        ("restore", "Before restoring version N"), the edit, a version after it ("Restored
        version N"). `{"before": ..., "after": ...}`."""
        old = await self.version_update(name, version_id)
        before = await self.create_version(
            name, f"Before restoring version {version_id}", "restore"
        )
        await self._edit(name, lambda doc: edits.make_like(doc, old), author, create=False)
        after = await self._take_version(name, f"Restored version {version_id}", "restore", author)
        await self._emit(
            "version.restored",
            name,
            [author] if author else [],
            version={"id": after.id, "kind": after.kind, "label": after.label},
            restored={"id": version_id},
        )
        return {"before": before, "after": after}

    async def _emit(self, type: str, name: str, users: list[str], **extra: Any) -> None:
        """Write an event about `name` to the outbox (when the store writes events), with the
        document's state vector now."""
        store = self.store
        if not isinstance(store, OutboxTables) or store.events is None:
            return
        state_vector = get_state(await self.read(name))
        await store.add_event(new_event(type, name, users, state_vector, **extra))

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
        one transaction, and a room that holds the document notices at its next compaction.
        With a server, what its clients sent so far is committed first, so it is folded too."""
        if self._room(name) is not None:
            assert self._rooms is not None
            await self._rooms.persisted(name)
        return await self.store.compact(name, keep=keep_options)

    # -- connections (the server's: none without one) -----------------------------------------

    def connections(self, name: str) -> list[ConnectionSummary]:
        """The connections to a document in this process, by id."""
        return self._rooms.sessions(name) if self._rooms is not None else []

    def users(self, name: str) -> list[str]:
        """Who is connected to a document in this process (their user ids, once each)."""
        return sorted({c.user for c in self.connections(name) if c.user})

    def close_connection(
        self, name: str, connection_id: int, reason: str = "closed by an administrator"
    ) -> bool:
        """Close one connection to a document (CLOSED_BY_ADMIN: clients reconnect): whether it
        was there."""
        if self._rooms is None:
            return False
        code = CloseCode.CLOSED_BY_ADMIN
        return self._rooms.close_sessions(name, code, reason, only=connection_id) > 0

    def close_connections(self, name: str, reason: str = "closed by an administrator") -> int:
        """Close every connection to a document (CLOSED_BY_ADMIN): how many."""
        if self._rooms is None:
            return 0
        return self._rooms.close_sessions(name, CloseCode.CLOSED_BY_ADMIN, reason)

    def send_stateless(
        self, name: str, payload: str, *, only: int | None = None, exclude: int | None = None
    ) -> int:
        """A stateless message (the Hocuspocus protocol's; any string, nothing stored) to the
        clients of an open document in this process that speak that protocol: to connection
        `only`, or to all but `exclude` (ids as `ConnectionInfo.id`). In cluster mode one to
        all (no `only`) reaches the other processes' clients of the document too (the bus).
        How many of this process's clients it reached; 0, and nothing sent anywhere, when the
        document is not open here."""
        room = self._rooms.room(name) if self._rooms is not None else None
        if room is None:
            return 0
        return room.send_stateless(payload, only=only, exclude=exclude)

    # -- internals ----------------------------------------------------------------------------

    async def _open(self, name: str) -> LiveRoom:
        assert self._rooms is not None
        if not self._rooms.accepting:
            raise CollabError("server shutting down", CloseCode.GOING_AWAY)
        return await self._rooms.open(name)

    async def _append(self, name: str, update: bytes, author: str | None) -> None:
        """Store an update (no server): the log row, and who its Yjs clients are."""
        await self.store.append([PendingUpdate(name, update, now_ms(), author)])
        if author is not None:
            writers = {c: author for c in update_clients(update)}
            if writers:
                await self.store.record_clients(name, writers)

    async def _edit(
        self, name: str, edit: Callable[[Doc[Any]], Any], author: str | None, create: bool
    ) -> bytes:
        """Run `edit` on a copy of the document and apply what it changed as one update (to
        the room when the server holds it). The edit runs in a worker thread, off the event
        loop: what clients send meanwhile is concurrent with it, as a client's offline edit
        is, and survives it. The document's state after it."""
        if self._rooms is not None:
            if not create:
                await self.info(name)
            room = await self._open(name)
            update = await _off_loop(_changes_of, room.encode_update(), edit)
            if update is not None:
                room.apply_server_update(update, author)
                await self._rooms.persisted(name)
            return room.encode_update()
        try:
            current = await self.read(name)
        except DocumentNotFound:
            if not create:
                raise
            current = None
        update = await _off_loop(_changes_of, current, edit)
        if update is None:
            assert current is not None  # an edit of nothing changes something or raises
            return current
        await self._append(name, update, author)
        return merge_updates(current, update) if current is not None else update

    async def _load_version(self, name: str, version_id: int) -> tuple[VersionInfo, bytes]:
        found = await self.store.load_version(name, version_id)
        if found is None:
            raise VersionNotFound(f"no version {version_id} of {name!r}")
        return found

    async def _authors_since(
        self, name: str, latest: tuple[VersionInfo, bytes] | None, state: bytes
    ) -> list[str]:
        """Who wrote the document since the latest version (no server: from the store's
        client ids that are new since that version's state vector)."""
        clients = await self.store.clients(name)
        seen = changes.clocks(latest[1]) if latest is not None else {}
        now = changes.clocks(get_state(state))
        return sorted({clients[c] for c, k in now.items() if k > seen.get(c, 0) and c in clients})

    async def _authors_between(self, name: str, from_id: int, to_id: int | None) -> list[str]:
        """The authors the versions after `from_id` (through `to_id`) name."""
        before = to_id + 1 if to_id is not None else None
        authors: set[str] = set()
        for info in await self.store.list_versions(name, 1000, before):
            if info.id <= from_id:
                break
            authors.update(info.authors)
        return sorted(authors)

    def _summary(self, d: DocumentInfo) -> DocumentSummary:
        return DocumentSummary(
            d.name,
            d.created_at_ms,
            d.updated_at_ms,
            d.size_bytes,
            self._online(d.name),
            d.versions,
            d.log_rows,
        )

    def _room(self, name: str) -> LiveRoom | None:
        return self._rooms.room(name) if self._rooms is not None else None

    def _online(self, name: str) -> int:
        room = self._room(name)
        return len(room.members) if room is not None else 0


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run CPU work on a document (diffing, editing a copy) in a worker
    thread. It grows with the document, but a thread spares the event loop little (see
    collab/steps.py, what reading the content does instead)."""
    return await anyio.to_thread.run_sync(partial(fn, *args))


def _changes_of(state: bytes | None, edit: Callable[[Doc[Any]], Any]) -> bytes | None:
    """What `edit` changes in a copy of the document `state` (None: a new one), as one
    update; None when it changes nothing (a deletion alone changes no state vector, so the
    transactions' updates are what tell)."""
    doc = doc_of(state) if state is not None else Doc()
    with captured(doc) as made:
        edit(doc)
    if not made:
        return None
    return made[0] if len(made) == 1 else merge_updates(*made)


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_cursor(value: str) -> str:
    """An opaque page cursor: url-safe base64 of the last name (or id) listed."""
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    if not value:  # ("!" decodes to nothing: no name or id this service handed out)
        raise ValueError("invalid cursor")
    return value


def _int_cursor(cursor: str) -> int:
    value = decode_cursor(cursor)
    # ASCII digits only (str.isdigit takes other scripts' digits too), and within the 63 bits
    # of a stored id: anything else is no id this service handed out.
    if not (value.isascii() and value.isdigit()) or int(value) >= 2**63:
        raise ValueError("invalid cursor")
    return int(value)
