"""One client: a WebSocket (collab/wire.py) bound to the hub, its limits and its room.

Everything here is synchronous and runs on the event loop, called from the transport's
callbacks: a frame is checked (rate limits), then handed to the room, which applies it and
writes the resulting frames to the other members' transports before the next frame is read.
The only task a connection ever owns is its admission (hooks, authentication, the document
load), which ends when it joins its room.

Fan-out writes with `send_frame`, which never waits: the transport's buffer is this client's
outbound queue, and a client whose buffer would grow past `outbound_queue_bytes` is closed
with 1013 instead of slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .errors import CloseCode, CollabError, InvalidDocumentName
from .hooks import ConnectionInfo
from .limits import TokenBucket
from .wire import Request, WebSocketProtocol

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .hub import Hub
    from .room import Room

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class Connection(WebSocketProtocol):
    __slots__ = (
        "_admission",
        "_endpoint",
        "_ip_counted",
        "_updates",
        "byte_bucket",
        "client",
        "close_code",
        "close_reason",
        "closing",
        "document",
        "expires_at",
        "hub",
        "id",
        "info",
        "ip",
        "last_received",
        "last_sent",
        "max_bytes",
        "message_bucket",
        "on_close",
        "pending",
        "pending_bytes",
        "pending_updates",
        "read_only",
        "room",
        "started",
    )

    def __init__(self, endpoint: Endpoint, hub: Hub) -> None:
        assert endpoint.options is not None
        super().__init__(endpoint.options)
        self._endpoint = endpoint
        self.hub = hub
        self.id = next(_ids)
        self.document = ""
        self.ip = "?"
        self.client = "?"
        self.info: ConnectionInfo | None = None
        self.read_only = False  # copied from info.read_only once authenticated
        self.expires_at: float | None = None  # wall-clock time the token expires
        self.room: Room | None = None  # set once admitted (authenticated and joined)
        self.pending: list[bytes] | None = None  # frames received before that
        self.pending_bytes = 0
        self.pending_updates = 0  # updates of this client still waiting for a dependency
        self.message_bucket: TokenBucket | None = None
        self.byte_bucket: TokenBucket | None = None
        self.max_bytes = hub.settings.outbound_queue_bytes
        self.closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_received = self.last_sent = self.started = time.monotonic()
        self._ip_counted = False
        self._admission: asyncio.Task[None] | None = None
        self._updates: list[bytes] | None = None  # sync updates read in this go, not yet handled
        # Called once, synchronously, when the connection starts closing (room detaches it).
        self.on_close: list[Any] = []

    def __repr__(self) -> str:
        return f"<Connection #{self.id} {self.client} {self.document!r}>"

    def __hash__(self) -> int:
        return self.id

    # -- opening -------------------------------------------------------------------------------

    def accept_request(self, request: Request) -> None:
        from .endpoint import check_request

        check_request(self.hub, request, self._endpoint.root_path)

    def opened(self, request: Request) -> None:
        from .endpoint import admit, document_name

        endpoint, hub = self._endpoint, self.hub
        endpoint.connections.add(self)
        self.ip = endpoint.client_ip(request)
        port = request.client[1] if request.client else 0
        self.client = f"{self.ip}:{port}"
        query = parse_qsl(request.query, keep_blank_values=True)
        token = next((v for k, v in query if k == "token"), None)
        try:
            self.document = document_name(request.path, endpoint.root_path)
        except InvalidDocumentName as exc:
            self.close(exc.code, exc.reason)
            return
        params = {k: v for k, v in query if k != "token"}
        self.info = ConnectionInfo(self.id, self.document, self.client, request.headers, params)
        if not hub.accepting:
            self.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        refused = hub.ip_limits.attempt(self.ip)
        if refused:
            self.close(CloseCode.POLICY_VIOLATION, refused)
            return
        s = hub.settings
        self.message_bucket = TokenBucket(s.rate_messages_per_s, s.rate_messages_burst)
        self.byte_bucket = TokenBucket(s.rate_bytes_per_s, s.rate_bytes_burst)
        hub.ip_limits.opened(self.ip)
        self._ip_counted = True
        self.pending = []
        self._admission = asyncio.get_running_loop().create_task(admit(self, token))

    def admitted(self, room: Room) -> None:
        """Joined: handle, in order, what arrived during admission."""
        self._admission = None
        self.room = room
        pending, self.pending, self.pending_bytes = self.pending or [], None, 0
        for message in pending:
            if not self._handle(message):
                return

    # -- reading -------------------------------------------------------------------------------

    def message_received(self, data: bytes) -> None:
        if self.closing:
            return
        if not self.message_bucket.take() or not self.byte_bucket.take(len(data)):  # type: ignore[union-attr]
            self.fail(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        self.last_received = time.monotonic()
        if self.room is not None:
            if data[:2] == b"\x00\x02" and not self.read_only:
                # A sync update: held until the end of this read, so that a burst of them is
                # applied as one (Room.handle_updates). Anything else goes after them, in order.
                if self._updates is None:
                    self._updates = [data]
                else:
                    self._updates.append(data)
                return
            if self._updates is not None:
                self._flush_updates()
            self._handle(data)
            return
        pending = self.pending
        if pending is None:  # refused before admission began (the close is on its way)
            return
        pending.append(data)
        self.pending_bytes += len(data)
        s = self.hub.settings
        if len(pending) > s.pre_auth_max_messages or self.pending_bytes > s.pre_auth_max_bytes:
            self.close(CloseCode.POLICY_VIOLATION, "too much data before authentication")

    def batch_end(self) -> None:
        if self._updates is not None:
            self._flush_updates()

    def _flush_updates(self) -> None:
        updates, self._updates = self._updates, None
        assert updates is not None and self.room is not None
        if len(updates) == 1:
            self._handle(updates[0])
        else:
            self._guarded(self.room.handle_updates, updates)

    def text_received(self, data: bytes) -> None:
        self.fail(CloseCode.UNSUPPORTED_DATA, "text frames are not supported")

    def _handle(self, data: bytes) -> bool:
        """Handle one message of an admitted connection; False once the connection is closing."""
        return self._guarded(self.room.handle, data)  # type: ignore[union-attr]

    def _guarded(self, handler: Callable[[Connection, Any], None], argument: Any) -> bool:
        """Run a room handler; what it raises closes this connection (and only this one)."""
        try:
            handler(self, argument)
        except CollabError as exc:
            log.info("%r: %s (closing %d)", self, exc.reason, exc.code)
            self.close(exc.code, exc.reason)
        except Exception:
            log.exception("%r: error handling a message", self)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        return not self.closing

    # -- writing -------------------------------------------------------------------------------

    def send_nowait(self, message: bytes) -> None:
        """Send one message; close the connection with 1013 if it cannot keep up."""
        if not self.closing:
            self.send_frame(self.encode(message))

    def send_frame(self, data: bytes) -> None:
        """Write a frame built by `encode` (or wire.frame when not compressing)."""
        if self.closing:
            return
        transport = self.transport
        assert transport is not None
        buffered = transport.get_write_buffer_size()
        if buffered and buffered + len(data) > self.max_bytes:
            log.info("%r: %d bytes unsent; closing 1013", self, buffered)
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        transport.write(data)
        self.last_sent = time.monotonic()

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Start closing: detach from the room (synchronously), send the close frame."""
        if not self.closing:
            self._closing(code, reason)
        super().close(code, reason)

    def shutdown(self) -> None:
        """uvicorn's shutdown (our drain has normally closed everybody with 1001 before)."""
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def peer_closing(self, code: int, reason: str) -> None:
        if not self.closing:
            self._closing(code, reason)

    def _closing(self, code: int, reason: str) -> None:
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self.pending = None
        if self._admission is not None:
            self._admission.cancel()
            self._admission = None
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback(self)

    def closed(self, code: int, reason: str) -> None:
        if not self.closing:
            self._closing(code, reason)  # the peer vanished (1006)
        hub = self.hub
        self._endpoint.connections.discard(self)
        if self._ip_counted:
            hub.ip_limits.closed(self.ip)
        hub.leave(self.room, self)
        log.info(
            "%r closed with %s %s after %.1f s",
            self,
            self.close_code,
            self.close_reason,
            time.monotonic() - self.started,
        )
        if self._ip_counted and self.info is not None:  # admission began: hooks saw it
            hub.disconnected(self.document, self.info, self.close_code, self.close_reason)
