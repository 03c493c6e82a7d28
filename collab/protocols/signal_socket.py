"""The two sockets of /signal: the fast path's (`collab serve`: RFC 6455 on the raw transport,
collab/wire.py) and the standard ASGI route's (any ASGI server, a mounted app). Each hands
messages to the protocol (collab/protocols/signaling.py) and sends text frames for it; the
rules (scope, limits, relay) are the protocol's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

import anyio
from starlette.types import Receive, Scope, Send

from ..errors import CloseCode, CollabError
from ..wire import OP_TEXT, HttpRefusal, Request, WebSocketProtocol, WireOptions
from .signaling import Signaling, SignalPeer

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


class Listener(Protocol):
    """What the fast path's socket needs of the endpoint that made it (endpoint.Endpoint)."""

    connections: set[Any]
    root_path: str

    def client_ip(self, request: Request) -> str: ...


class SignalConnection(WebSocketProtocol):
    """A /signal socket on the fast path."""

    __slots__ = ("_listener", "closing", "id", "max_bytes", "peer", "signaling")

    def __init__(self, options: WireOptions, signaling: Signaling, listener: Listener) -> None:
        super().__init__(options)
        self.signaling = signaling
        self._listener = listener
        self.id = signaling.new_id()
        self.peer: SignalPeer | None = None
        self.closing = False
        self.max_bytes = signaling.settings.outbound_queue_bytes

    def accept_request(self, request: Request) -> None:
        if not self.signaling.origin_allowed(request.header("origin")):
            raise HttpRefusal(403, "origin not allowed")

    def opened(self, request: Request) -> None:
        self._listener.connections.add(self)
        port = request.client[1] if request.client else 0
        ip = self._listener.client_ip(request)
        try:
            self.peer = self.signaling.open(self, request.query, request.headers, ip, port)
        except CollabError as exc:
            self.close(exc.code, exc.reason)

    def message_received(self, data: bytes) -> None:
        if self.peer is not None and not self.closing:
            self.signaling.receive(self.peer, data)

    text_received = message_received

    def send_text(self, data: bytes) -> None:
        transport = self.transport
        if self.closing or transport is None:
            return
        buffered = transport.get_write_buffer_size()
        if buffered and buffered + len(data) > self.max_bytes:
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        transport.write(self.encode(data, OP_TEXT))

    def close(self, code: int, reason: str = "") -> None:
        self._closing(code, reason)
        WebSocketProtocol.close(self, code, reason)

    def _closing(self, code: int | None, reason: str) -> None:
        if not self.closing:
            self.closing = True
            if self.peer is not None:
                self.signaling.closed(self.peer, code, reason)

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def peer_closing(self, code: int, reason: str) -> None:
        self._closing(code, reason)

    def closed(self, code: int, reason: str) -> None:
        self._listener.connections.discard(self)
        self._closing(code, reason)

    def __repr__(self) -> str:
        return f"<SignalConnection #{self.id}>"


class AsgiSignal:
    """The raw ASGI app of the route /signal (a class: Starlette calls a plain function with
    a WebSocket object)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(scope, receive, send)


async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
    signaling: Signaling = scope["app"].state.signaling
    if (await receive())["type"] != "websocket.connect":
        return
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if not signaling.origin_allowed(headers.get("origin")):
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})  # 403
        return
    try:
        await send({"type": "websocket.accept"})
    except OSError:
        return
    client = scope.get("client") or ("?", 0)
    query = scope.get("query_string", b"").decode("latin-1")
    await AsgiSignalConnection(signaling, send).run(
        receive, query, headers, str(client[0]), int(client[1])
    )


class AsgiSignalConnection:
    """A /signal socket of the ASGI path: text messages through a bounded queue that a writer
    task drains into the server's `send` (as collab/asgi_endpoint.py's sockets)."""

    def __init__(self, signaling: Signaling, send: Send) -> None:
        self.signaling = signaling
        self.id = signaling.new_id()
        self._send = send
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._read_scope: anyio.CancelScope | None = None
        self.peer: SignalPeer | None = None
        self.max_bytes = signaling.settings.outbound_queue_bytes

    async def run(
        self, receive: Receive, query: str, headers: dict[str, str], ip: str, port: int
    ) -> None:
        try:
            self.peer = self.signaling.open(self, query, headers, ip, port)
        except CollabError as exc:
            self.close(exc.code, exc.reason)
        code, reason = 1006, ""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write)
                code, reason = await self._read(receive)
                tg.cancel_scope.cancel()
        finally:
            if self.peer is not None:
                self.signaling.closed(self.peer, code, reason)

    async def _read(self, receive: Receive) -> tuple[int, str]:
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            if self._close is not None:
                scope.deadline = anyio.current_time() + CLOSE_TIMEOUT_S
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get("bytes")
                    if data is None:
                        data = (message.get("text") or "").encode("utf-8")
                    if self.peer is not None and self._close is None:
                        self.signaling.receive(self.peer, data)
                elif message["type"] == "websocket.disconnect":
                    return int(message.get("code") or 1005), str(message.get("reason") or "")
        return 1006, ""

    def send_text(self, data: bytes) -> None:
        if self._close is not None:
            return
        if self._queued and self._queued + len(data) > self.max_bytes:
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        self._queue.append(data)
        self._queued += len(data)
        self._wake.set()

    async def _write(self) -> None:
        queue, send = self._queue, self._send
        try:
            while True:
                while queue:
                    data = queue.popleft()
                    self._queued -= len(data)
                    await send({"type": "websocket.send", "text": data.decode("utf-8")})
                if self._close is not None:
                    code, reason = self._close
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                self._wake.clear()
                await self._wake.wait()
        except Exception as exc:  # the client is gone (the reader hears it too)
            log.debug("signal socket #%d: send failed: %r", self.id, exc)

    def keepalive(self, now: float) -> None:
        """The ASGI server pings."""

    def close(self, code: int, reason: str = "") -> None:
        if self._close is not None:
            return
        self._close = (code, reason)
        if self.peer is not None:
            self.signaling.closed(self.peer, code, reason)
        if code == CloseCode.TRY_AGAIN_LATER:
            self._queue.clear()
            self._queued = 0
        self._wake.set()
        if self._read_scope is not None:
            self._read_scope.deadline = anyio.current_time() + CLOSE_TIMEOUT_S
