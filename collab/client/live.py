"""A live document: a pycrdt `Doc` kept in sync with a Collab server over the y-websocket protocol.

One LiveDocument is one document on one server, open for the duration of an `async with`. It
keeps a WebSocket open, sends each local change of `doc` as it is made and applies each remote
one; it carries awareness both ways (pycrdt's `Awareness`: the bot's name and cursor, the other
users' states); and when the network or the server goes away it reconnects with backoff and
resyncs through the two sync steps, as y-websocket's browser provider does, so nothing made
offline is lost. A close code that means "do not come back" (4401, 4403, 4404, a refused message)
ends it: the body of the `async with` is cancelled and `DocumentClosed` raised from it.

Why not pycrdt's `Provider` (which pycrdt-websocket builds on): it runs one channel once (no
reconnect, no close codes) and reads only sync messages (no awareness), which is most of what a
client needs here; the sync steps themselves are a dozen lines over collab.protocol.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pycrdt import Awareness, Doc, Text, TransactionEvent

from .. import protocol as p
from ..ystructs import read_update
from .errors import DocumentClosed

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

# Close codes after which coming back cannot help (collab/errors.py CloseCode): no or a bad
# token, not allowed, no such document (or deleted), and messages the server refused.
FINAL_CLOSE_CODES = frozenset({1002, 1003, 1009, 4401, 4403, 4404})
# HTTP statuses of a refused WebSocket handshake that mean the same (a proxy or a hook in front).
_FINAL_HTTP = {401: 4401, 403: 4403, 404: 4404}


def websocket_url(base_url: str, name: str, token: str | None = None) -> str:
    """`http://host:port[/prefix]` -> `ws://host:port[/prefix]/ws/<name>[?token=...]`."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/ws/" + quote(name, safe="/")
    query = "token=" + quote(token, safe="") if token else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


class LiveDocument:
    """`async with client.open(name) as live:` -> `live.doc` (a pycrdt Doc), `live.awareness`.

    `await live.synced()` waits for the first (or, after a reconnect, the next) full sync with
    the server; `await live.sent()` for every local change so far to be on the socket;
    `await live.wait_until(predicate)` for any condition on the document, re-checked on each
    remote change, awareness change and connection event.
    """

    def __init__(
        self,
        base_url: str,
        name: str,
        *,
        token: str | None = None,
        doc: Doc[Any] | None = None,
        min_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        keepalive_s: float = 15.0,
    ) -> None:
        self.name = name
        self.url = websocket_url(base_url, name, token)
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.awareness = Awareness(self.doc)
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        # The server closes a connection that sent no message for a while (4408, its
        # idle_timeout_s, 60 s by default): a bot that only listens sends an empty awareness
        # update (the server's own heartbeat message) when it has sent nothing this long.
        self.keepalive_s = keepalive_s
        self.received = 0  # messages received over every connection
        self.connected = False
        self.is_synced = False
        self.connections = 0  # successful connections so far (1 + reconnects)
        self.remote_changes = 0  # remote updates that changed the document, so far
        self.error: DocumentClosed | None = None
        self._outbox: MemoryObjectSendStream[bytes] | None = None
        self._queued = 0  # messages in the outbox of the current connection
        self._last_sent = 0.0
        self._applying = False  # a remote update is being applied (not ours to send back)
        self._closing = False
        self._changed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._ws: ClientConnection | None = None
        self._subs: tuple[Any, str] | None = None

    def __repr__(self) -> str:
        state = "synced" if self.is_synced else "connected" if self.connected else "offline"
        return f"<LiveDocument {self.name!r} {state}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> LiveDocument:
        import websockets  # noqa: F401  (fail here, not in a task, when it is missing)

        self._subs = (
            self.doc.observe(self._on_doc_change),
            self.awareness.observe(self._on_awareness),
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        await self._tg.start(self.awareness.start)  # renews our state, expires silent peers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None and self._subs is not None
        try:
            if exc_type is None and self.error is None:
                await self._leave()
        finally:
            self._closing = True
            self._tg.cancel_scope.cancel()
            # The task group is given cancellations (its own: the server ended the document;
            # or an outer one, a timeout, which goes on out) but not the body's errors, which
            # it would wrap in an ExceptionGroup: those come out as they are.
            body_error = isinstance(exc, Exception)
            if body_error:
                exc_type, exc, tb = None, None, None
            handled = await self._tg.__aexit__(exc_type, exc, tb) and not body_error
            self.doc.unobserve(self._subs[0])
            self.awareness.unobserve(self._subs[1])
        if self.error is not None:
            raise self.error
        return handled

    async def _leave(self, timeout_s: float = 5.0) -> None:
        """A clean goodbye: pending changes out, our awareness state removed, a close frame."""
        with anyio.move_on_after(timeout_s):
            self.awareness.set_local_state(None)  # the "null" entry y-websocket sends on close
            await self.sent()
            if self._ws is not None:
                self._closing = True
                await self._ws.close()

    # -- waiting -----------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; re-checked on every remote change, awareness change
        and connection event. No deadline of its own: wrap it in `anyio.fail_after`."""
        while not predicate():
            if self.error is not None:
                raise self.error
            await self._changed.wait()

    async def synced(self) -> None:
        """Wait until the document holds everything the server has (after a reconnect: again)."""
        await self.wait_until(lambda: self.is_synced)

    async def changed(self) -> None:
        """Wait for the next remote change to the document (from now on)."""
        seen = self.remote_changes
        await self.wait_until(lambda: self.remote_changes > seen)

    async def sent(self) -> None:
        """Wait until every local change made so far is on the socket, or (when the connection
        dropped meanwhile) left for the resync of the next connection to carry."""
        await self.wait_until(lambda: self._queued == 0)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- local changes out -------------------------------------------------------------------

    def _queue(self, message: bytes) -> None:
        if self._outbox is None:
            return  # offline: the next connection's sync steps carry the change
        self._queued += 1
        self._outbox.send_nowait(message)

    def _on_doc_change(self, event: TransactionEvent) -> None:
        # pycrdt calls this for transactions that changed something only: a remote update
        # that brought nothing new (a resync's step 2) is no change.
        if self._applying:
            self.remote_changes += 1
        else:
            self._queue(p.update_message(event.update))
        self._notify()

    def _on_awareness(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        if topic != "update":
            return
        changes, origin = change
        me = self.awareness.client_id
        ids = changes["added"] + changes["updated"] + changes["removed"]
        # Our own changes; and a peer's removal of our state, which Awareness answers by
        # keeping it at the next clock: that must reach the others (y-protocols does the same).
        if origin == "local" or me in ids:
            self._queue(p.awareness_message(self.awareness.encode_awareness_update([me])))
        self._notify()

    # -- the connection ----------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and reconnect with exponential backoff (with jitter) until closed."""
        from websockets import ConnectionClosed, InvalidHandshake, InvalidStatus, connect

        failures = 0
        while not self._closing:
            code, reason = 1006, ""
            try:
                async with connect(
                    self.url,
                    max_size=None,
                    open_timeout=self.open_timeout_s,
                    ping_interval=self.ping_interval_s,
                ) as ws:
                    failures = 0
                    await self._serve(ws)
                    received = ws.protocol.close_rcvd
                    if received is not None:
                        code, reason = received.code, received.reason
            except InvalidStatus as exc:
                status = exc.response.status_code
                code, reason = _FINAL_HTTP.get(status, 1006), f"HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                pass
            if self._closing:
                return
            if code in FINAL_CLOSE_CODES:
                self.error = DocumentClosed(code, reason)
                self._notify()
                assert self._tg is not None
                self._tg.cancel_scope.cancel()  # ends the `async with` body: __aexit__ raises
                return
            delay = min(self.max_backoff_s, self.min_backoff_s * 2**failures)
            failures += 1
            await anyio.sleep(delay * random.uniform(0.5, 1.0))

    async def _serve(self, ws: ClientConnection) -> None:
        from websockets import ConnectionClosed

        outbox, pending = anyio.create_memory_object_stream[bytes](math.inf)
        self._ws, self._outbox, self._queued = ws, outbox, 0
        self._last_sent = anyio.current_time()
        self.connected = True
        self.connections += 1
        self._queue(p.sync_step1(self.doc.get_state()))
        if self.awareness.get_local_state() is not None:
            me = self.awareness.client_id
            self._queue(p.awareness_message(self.awareness.encode_awareness_update([me])))
        self._notify()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, ws, pending)
                tg.start_soon(self._keepalive)
                try:
                    async for message in ws:
                        if isinstance(message, bytes):
                            self.received += 1
                            self._handle(message)
                except ConnectionClosed:
                    pass
                tg.cancel_scope.cancel()
        finally:
            self._disconnected()

    async def _writer(
        self, ws: ClientConnection, pending: MemoryObjectReceiveStream[bytes]
    ) -> None:
        from websockets import ConnectionClosed

        async with pending:
            async for message in pending:
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    return
                self._queued -= 1
                self._last_sent = anyio.current_time()
                if self._queued == 0:
                    self._notify()

    async def _keepalive(self) -> None:
        while True:
            due = self._last_sent + self.keepalive_s
            now = anyio.current_time()
            if now >= due:
                self._queue(p.HEARTBEAT_MESSAGE)
                due = now + self.keepalive_s
            await anyio.sleep(due - now)

    def _disconnected(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
        self._ws, self._outbox, self._queued = None, None, 0
        self.connected = self.is_synced = False
        # As y-websocket does: the peers' states are gone with the connection (they come back
        # with the next one); ours stays.
        me = self.awareness.client_id
        others = [cid for cid in self.awareness.states if cid != me]
        if others:
            self.awareness.remove_awareness_states(others, "connection")
        self._notify()

    def _handle(self, message: bytes) -> None:
        kind = message[0]
        if kind == p.MSG_SYNC:
            sync = p.parse_sync(message)
            if sync.kind == p.SYNC_STEP1:
                self._queue(p.sync_step2(self.doc.get_update(sync.payload)))
                return
            self._applying = True
            try:
                self.doc.apply_update(sync.payload)
            finally:
                self._applying = False
            if sync.kind == p.SYNC_STEP2:
                self.is_synced = True
            self._notify()
        elif kind == p.MSG_AWARENESS:
            self.awareness.apply_awareness_update(p.parse_awareness(message), "remote")
        elif kind == p.MSG_QUERY_AWARENESS:
            ids = list(self.awareness.states)
            self._queue(p.awareness_message(self.awareness.encode_awareness_update(ids)))

    # -- awareness helpers -------------------------------------------------------------------

    def peers(self) -> dict[int, dict[str, Any]]:
        """The other clients' awareness states, by Yjs client id."""
        me = self.awareness.client_id
        return {cid: s for cid, s in self.awareness.states.items() if cid != me}

    def set_cursor(self, field: str, anchor: int, head: int | None = None) -> None:
        """Show our cursor (a selection from `anchor` to `head`) in the Y.Text root `field`, as
        y-codemirror.next and the other Yjs editor bindings read it: relative positions, so it
        stays on the same characters while others type. Indexes count characters of
        `str(text)` (not pycrdt's UTF-8 bytes)."""
        head = anchor if head is None else head
        self.set_presence(
            cursor={
                "anchor": relative_position(self.doc, field, anchor),
                "head": relative_position(self.doc, field, head),
            }
        )

    def set_presence(self, **fields: Any) -> None:
        """Set fields of our awareness state (e.g. `user={"name": "bot"}`, `cursor=...`)."""
        state = dict(self.awareness.get_local_state() or {})
        state.update(json.loads(json.dumps(fields)))  # JSON values only, as peers parse them
        self.awareness.set_local_state(state)


def relative_position(doc: Doc[Any], field: str, index: int) -> dict[str, Any]:
    """A Yjs relative position (as JSON: what `Y.createRelativePositionFromJSON` reads) for the
    character index `index` of the Y.Text root `field`: the id of the item there, or the end of
    the text.

    How: insert a character at that index into a scratch copy of the document and read the
    insert's right origin, which is Yjs's own answer to "which item is at this index" (in UTF-16
    clocks, whatever the characters). pycrdt's StickyIndex would be the direct way, but
    pycrdt 0.14 mixes its UTF-8 offsets with UTF-16 clocks there (wrong ids, and a panic near the
    end, for any text that is not ASCII). The copy costs O(document): fine for a bot's cursor.
    """
    content = str(doc.get(field, type=Text))
    offset = len(content[:index].encode("utf-8"))  # pycrdt's Text counts UTF-8 bytes
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    captured: list[bytes] = []
    subscription = scratch.observe(lambda event: captured.append(event.update))
    scratch.get(field, type=Text).insert(offset, "\ufffc")
    scratch.unobserve(subscription)
    ours = [s for s in read_update(captured[0]).structs if s.client == scratch.client_id]
    right = ours[0].right_origin if ours else None
    if right is None:  # the end of the text
        return {"type": None, "tname": field, "item": None, "assoc": 0}
    item = {"client": right[0], "clock": right[1]}
    return {"type": None, "tname": None, "item": item, "assoc": 0}
