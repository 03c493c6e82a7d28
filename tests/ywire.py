"""A y-websocket client for tests, on the `websockets` library and pycrdt.

It does what a browser's WebsocketProvider does (sync step 1/2, updates both ways, awareness with
clocks) and records everything it hears, so tests can wait on conditions instead of sleeping.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import anyio
import websockets
from pycrdt import Array, Doc
from websockets.asyncio.client import ClientConnection

from collab import protocol as p


class YClient:
    def __init__(
        self,
        base_url: str,
        name: str,
        *,
        doc: Doc[Any] | None = None,
        client_id: int | None = None,
        read: bool = True,
        query: str = "",
        compression: str | None = None,
    ) -> None:
        self.url = f"{base_url}/ws/{quote(name, safe='/')}" + (f"?{query}" if query else "")
        self.compression = compression  # "deflate" offers permessage-deflate
        self.name = name
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.client_id = client_id if client_id is not None else random.getrandbits(30)
        self.clock = 0
        self.local_state: dict[str, Any] | None = None
        self.awareness: dict[int, tuple[int, Any]] = {}  # client id -> (clock, state or None)
        # Removals of its own state the server sent (see collab/awareness.py), and whether to
        # answer them as y-protocols does (a test may want to see what a client that does not
        # would get).
        self.reminded = 0
        self.answer_reminders = True
        self.received: list[bytes] = []
        self.synced = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.ws: ClientConnection | None = None
        self._changed = anyio.Event()
        self._remote = False
        self._reading = anyio.Event()
        if read:
            self._reading.set()
        self._tg: Any = None
        self._sending = 0  # local updates whose send task has not finished
        self._sub = self.doc.observe(self._on_local_change)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open_socket(self) -> None:
        """Only the WebSocket handshake (lets tests open many sockets at the same instant)."""
        self.ws = await websockets.connect(
            self.url, max_size=None, compression=self.compression, ping_interval=None
        )

    async def __aenter__(self) -> YClient:
        if self.ws is None:
            await self.open_socket()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._reader)
        await self.send(p.sync_step1(self.doc.get_state()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self.doc.unobserve(self._sub)

    async def close(self) -> None:
        assert self.ws is not None
        await self.ws.close()
        await self.wait_for(lambda: self.close_code is not None)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a crash or a closed laptop lid)."""
        assert self.ws is not None
        self.ws.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading: frames pile up in the socket, as with a frozen or very slow tab."""
        self._reading = anyio.Event()

    def resume_reading(self) -> None:
        self._reading.set()

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: bytes | str) -> None:
        assert self.ws is not None
        await self.ws.send(message)

    def _on_local_change(self, event: Any) -> None:
        if self._remote or self.ws is None:
            return
        self._sending += 1
        self._tg.start_soon(self._send_update, p.update_message(event.update))

    async def _send_update(self, message: bytes) -> None:
        try:
            await self.send(message)
        except websockets.ConnectionClosed:
            pass  # like a provider whose socket dropped: the next sync carries it
        finally:
            self._sending -= 1
            self._notify()

    async def sent(self) -> None:
        """Returns once every local change made so far has been handed to the socket (they
        go out from tasks of their own: a message sent directly could overtake them)."""
        await self.wait_for(lambda: self._sending == 0)

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        self.clock += 1
        self.local_state = state
        await self._send_local_state()

    async def _send_local_state(self) -> None:
        state = self.local_state
        raw = b"null" if state is None else json.dumps(state).encode()
        entry = p.AwarenessEntry(self.client_id, self.clock, raw)
        await self.send(p.awareness_message(p.encode_awareness_update([entry])))

    # -- receiving ---------------------------------------------------------------------------

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                await self._reading.wait()  # a paused client leaves frames unread
                assert isinstance(message, bytes)
                self.received.append(message)
                await self._handle(message)
                self._notify()
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else ""
            self._notify()

    async def _handle(self, message: bytes) -> None:
        if message[0] == p.MSG_SYNC:
            sync = p.parse_sync(message)
            if sync.kind == p.SYNC_STEP1:
                await self.send(p.sync_step2(self.doc.get_update(sync.payload)))
            else:
                self._remote = True
                try:
                    self.doc.apply_update(sync.payload)
                finally:
                    self._remote = False
                if sync.kind == p.SYNC_STEP2:
                    self.synced = True
        elif message[0] == p.MSG_AWARENESS:
            for entry in p.decode_awareness_update(p.parse_awareness(message)):
                known = self.awareness.get(entry.client_id)
                state = None if entry.state == p.NULL_STATE else json.loads(entry.state)
                if (
                    known is None
                    or entry.clock > known[0]
                    or (entry.clock == known[0] and state is None)
                ):
                    if (
                        state is None
                        and entry.client_id == self.client_id
                        and self.local_state is not None
                    ):
                        # y-protocols: never let a remote client remove the local state; say
                        # that it still exists, at the next clock.
                        self.clock = max(self.clock, entry.clock) + 1
                        self.awareness[self.client_id] = (self.clock, self.local_state)
                        self.reminded += 1
                        if self.answer_reminders:
                            await self._send_local_state()
                        continue
                    self.awareness[entry.client_id] = (entry.clock, state)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    def present(self) -> dict[int, Any]:
        return {cid: s for cid, (_, s) in self.awareness.items() if s is not None}


@asynccontextmanager
async def connected(url: str, name: str, doc: Doc[Any] | None = None) -> AsyncIterator[YClient]:
    """A synced YClient that tolerates its server dying under it (tests that kill servers)."""
    client = YClient(url, name, doc=doc)
    await client.__aenter__()
    try:
        await client.wait_for(lambda: client.synced, timeout=10)
        yield client
    finally:
        try:
            await client.__aexit__(None, None, None)
        except* (websockets.ConnectionClosed, OSError):
            # A send raced the server's death. __aexit__ stopped before detaching from the doc,
            # which a reconnecting client may reuse: detach it here.
            client.doc.unobserve(client._sub)


def ids_of(doc: Doc[Any]) -> list[str]:
    """The "ids" array the durability and cluster tests append unique ids to."""
    return [str(v) for v in doc.get("ids", type=Array).to_py()]


async def close_of(
    url: str, *frames: bytes | str, timeout: float = 3, **kw: Any
) -> tuple[int, str]:
    """Connect, send frames, read until the server closes; the close code and reason."""
    async with websockets.connect(url, max_size=None, ping_interval=None, **kw) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            with anyio.fail_after(timeout):
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")
