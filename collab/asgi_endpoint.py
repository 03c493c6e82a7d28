"""The standard ASGI WebSocket route: /ws/<name> under any ASGI server.

`collab serve` does not use it: there uvicorn hands every upgrade to our own RFC 6455
(collab/endpoint.py), the fast path, and never calls the app for one. Everywhere else (the app
mounted in a FastAPI or Starlette app, `uvicorn collab.asgi:app` with uvicorn's own WebSocket
implementation, hypercorn, granian...) the server speaks the protocol and calls this route, which
behaves the same: the Origin allowlist before accept (HTTP 403), then accept, then everything
collab/admission.py decides and collab/connection.py's limits, with the same close codes.

What differs, because ASGI does it so:
- each socket has a writer task draining a bounded queue: fan-out appends to it without
  waiting, the server's `send` waits for the client (flow control), and a client with more than
  `outbound_queue_bytes` queued is closed with 1013;
- messages are handled one at a time (the fast path merges a burst of updates);
- the server frames, compresses, pings and limits the size of what it reads itself (configure
  it: uvicorn's --ws-max-size, hypercorn's websocket_max_message_size); a message over
  `max_message_bytes` that it let through is refused here with 1009;
- the client's address is the one the server gives (its own proxy-header settings apply, not
  `trusted_proxies`), and its own shutdown closes its sockets with its code (uvicorn: 1012).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote, unquote

import anyio
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send

from . import logs
from .admission import HOCUSPOCUS_ROUTE, ROUTE_PREFIX, Admission
from .connection import BaseConnection
from .errors import CloseCode
from .room import BARE_MESSAGE

log = logging.getLogger(__name__)

# How long the client has to answer our close before we stop waiting for it.
CLOSE_TIMEOUT_S = 10.0


def websocket_routes() -> list[BaseRoute]:
    """The routes create_app adds: /ws (an empty name: 4404), /ws/<name>, and /hocuspocus (the
    Hocuspocus protocol: the documents are named in its messages)."""
    endpoint = AsgiEndpoint()
    return [
        WebSocketRoute(ROUTE_PREFIX, endpoint),
        WebSocketRoute(ROUTE_PREFIX + "/{name:path}", endpoint),
        WebSocketRoute(HOCUSPOCUS_ROUTE, AsgiEndpoint(hocuspocus=True)),
    ]


class AsgiEndpoint:
    """The raw ASGI app behind the routes (no Starlette WebSocket object per message)."""

    def __init__(self, *, hocuspocus: bool = False) -> None:
        self.hocuspocus = hocuspocus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission: Admission = scope["app"].state.admission
        if (await receive())["type"] != "websocket.connect":
            return
        headers = request_headers(scope)
        client = scope.get("client") or ("?", 0)
        origin = headers.get("origin")
        if not admission.origin_allowed(origin):
            log.info(
                "refused origin %r from %s",
                (origin or "")[:100],
                client,
                extra=logs.context(admission.new_id(), client=f"{client[0]}:{client[1]}"),
            )
            await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})  # 403
            return
        try:
            await send({"type": "websocket.accept"})
        except OSError:  # gone before the 101 (uvicorn's ClientDisconnected is an OSError)
            return
        conn = AsgiConnection(admission, receive, send)
        query = scope.get("query_string", b"").decode("latin-1")
        name = None if self.hocuspocus else raw_name(scope)
        await conn.run(name, query, headers, str(client[0]), int(client[1]))


def request_headers(scope: Scope) -> dict[str, str]:
    """Lower-case names; a repeated header joined with ", " (as the fast path's Request)."""
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def raw_name(scope: Scope) -> str:
    """The document name as the client sent it, still percent-encoded (so that "a%2Fb" stays
    one name and invalid UTF-8 is refused, not replaced): the suffix of `raw_path` that
    decodes to the name the router matched. Without a raw_path, the matched name re-encoded."""
    name: str = scope.get("path_params", {}).get("name", "")
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        text = raw.decode("latin-1")
        start = len(text)
        while (start := text.rfind("/", 0, start)) >= 0:
            candidate = text[start + 1 :]
            if unquote(candidate, errors="replace") == name:
                return candidate
    return quote(name, safe="/")


class AsgiConnection(BaseConnection):
    """One socket of the ASGI path: its session's frames go through a bounded queue that a
    writer task drains into the server's `send`."""

    __slots__ = (
        "_close",
        "_queue",
        "_queued",
        "_read_scope",
        "_receive",
        "_send",
        "_wake",
        "active",
        "admission",
        "big_frame",
        "byte_bucket",
        "bytes_in",
        "bytes_out",
        "client",
        "close_code",
        "close_reason",
        "closing",
        "framing",
        "id",
        "last_received",
        "last_sent",
        "max_bytes",
        "message_bucket",
        "mux",
        "pending",
        "pending_bytes",
        "session",
        "started",
    )

    def __init__(self, admission: Admission, receive: Receive, send: Send) -> None:
        self._init_base(admission)
        self._receive = receive
        self._send = send
        self.framing = BARE_MESSAGE  # the server frames what we send
        self.max_bytes = admission.settings.outbound_queue_bytes
        self.big_frame = 0  # the biggest frame queued since the queue was last empty
        self._queue: deque[bytes] = deque()
        self._queued = 0  # bytes in _queue
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None  # our close, once decided
        self._read_scope: anyio.CancelScope | None = None

    async def run(
        self, raw_name: str | None, query: str, headers: Mapping[str, str], ip: str, port: int
    ) -> None:
        """Accepted: open (`raw_name` None: the Hocuspocus protocol), read until the client or
        we close, then end."""
        if raw_name is None:
            self._open_hocuspocus(query, headers, ip, port)
        else:
            self._open(raw_name, query, headers, ip, port)
        code, reason = 1006, ""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write)
                code, reason = await self._read()
                tg.cancel_scope.cancel()
        finally:
            self._ended(code, reason)

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> tuple[int, str]:
        """Until the server says the socket is gone: its close code and reason (1006 if the
        client never answered our close)."""
        limit = self.admission.settings.max_message_bytes
        receive = self._receive
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            if self._close is not None:  # refused as it opened
                scope.deadline = anyio.current_time() + CLOSE_TIMEOUT_S
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("bytes")
                    if data is None:
                        self.text_received((message.get("text") or "").encode())
                    elif len(data) > limit:
                        self.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                    else:
                        self.message_received(data)
                elif kind == "websocket.disconnect":
                    return int(message.get("code") or 1005), str(message.get("reason") or "")
        return 1006, ""

    # -- writing -------------------------------------------------------------------------------

    def encode(self, message: bytes) -> bytes:
        return message  # the server frames it

    def send_nowait(self, message: bytes) -> None:
        self.send_frame(message)

    def send_frame(self, data: bytes) -> None:
        """Queue a message for the writer; close with 1013 if the client cannot keep up."""
        if self.closing:
            return
        queued = self._queued
        size = len(data)
        if not queued:
            self.big_frame = size  # (the limit counts what waits beyond the biggest frame)
        elif queued + size > self.max_bytes + self.big_frame:
            log.info(
                "%r: %d bytes unsent; closing 1013",
                self,
                queued,
                extra=self.log_context(code=CloseCode.TRY_AGAIN_LATER),
            )
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        elif size > self.big_frame:
            self.big_frame = size
        self._queue.append(data)
        self._queued = queued + size
        self.bytes_out += size
        self._wake.set()
        self.last_sent = time.monotonic()

    async def _write(self) -> None:
        queue, send = self._queue, self._send
        try:
            while True:
                while queue:
                    data = queue.popleft()
                    self._queued -= len(data)
                    await send({"type": "websocket.send", "bytes": data})
                if self._close is not None:
                    code, reason = self._close
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                self._wake.clear()
                await self._wake.wait()
        except Exception as exc:  # the client is gone (the server tells the reader too)
            log.debug("%r: send failed: %r", self, exc, extra=self.log_context())

    def keepalive(self, now: float) -> None:
        """The server pings (its own settings), not the ticker."""

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Start closing: leave the room now; the writer sends what is queued, then the close
        (a slow consumer's queue is dropped: it could not take it anyway)."""
        if not self.closing:
            self._closing(code, reason)
        if self._close is not None:
            return
        self._close = (code, reason)
        if code == CloseCode.TRY_AGAIN_LATER:
            self._queue.clear()
            self._queued = 0
        self._wake.set()
        if self._read_scope is not None:
            self._read_scope.deadline = anyio.current_time() + CLOSE_TIMEOUT_S
