"""One socket: its limits, what it holds before its session is admitted, and its closing.

`BaseConnection` is what every kind of socket does the same way: rate limits (1008), the
pre-auth buffer and its caps, handing messages to its session (collab/session.py), and the
bookkeeping of its end. `Connection` is the fast path's socket: RFC 6455 on the raw transport
(collab/wire.py) that uvicorn hands over for an upgrade (collab/endpoint.py). The ASGI path's
socket is collab/asgi_endpoint.py's `AsgiConnection`.

Everything here is synchronous and runs on the event loop, called from the transport's
callbacks: a frame is checked (rate limits), then handed to the session's room, which applies it
and writes the resulting frames to the other members' transports before the next frame is read.
A fast-path connection owns no task: its session owns its admission (hooks, authentication, the
document load), which ends when it joins its room.

Fan-out writes with `send_frame`, which never waits: the transport's buffer is this client's
outbound queue, and a client whose buffer would grow past `outbound_queue_bytes` is closed
with 1013 instead of slowing anyone else down. The limit counts what is queued beyond the
biggest single frame waiting: a joiner of a big document still taking in its sync answer (the
whole document in one frame) is not a slow consumer because a keystroke queues behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import logs
from .admission import ROUTE_PREFIX, Admission, is_hocuspocus_path
from .errors import CloseCode, CollabError
from .limits import TokenBucket
from .protocols.hocuspocus import Multiplexer
from .room import DEFLATE_FRAME, PLAIN_FRAME
from .session import Session
from .wire import Request, WebSocketProtocol, WireOptions

log = logging.getLogger(__name__)


class BaseConnection:
    """The part of a socket that does not depend on how its frames travel (a mixin: the
    subclass declares these slots and implements the socket's half: framing, encode,
    send_frame, send_nowait, close, keepalive)."""

    if not TYPE_CHECKING:  # (mypy would refuse the subclasses' slots assigned in here)
        __slots__ = ()

    admission: Admission
    id: int  # the connection id: its session's, and `conn` in every log line about it
    session: Session | None  # from the open, once admission began (until then: refused)
    active: Session | None  # the session, once it joined its room
    pending: list[bytes] | None  # messages received before that
    pending_bytes: int
    message_bucket: TokenBucket
    byte_bucket: TokenBucket
    client: str
    closing: bool
    close_code: int | None
    close_reason: str
    last_received: float
    last_sent: float
    started: float
    bytes_in: int  # message bytes received (the admin page's per-connection counts)
    bytes_out: int  # frame bytes handed to the transport
    # The Hocuspocus protocol's documents on this socket (/hocuspocus), None on /ws.
    mux: Multiplexer | None

    def _init_base(self, admission: Admission) -> None:
        self.admission = admission
        self.id = admission.new_id()
        self.mux = None
        self.session = None
        self.active = None
        self.pending = None
        self.pending_bytes = 0
        self.client = "?"
        self.closing = False
        self.close_code = None
        self.close_reason = ""
        self.last_received = self.last_sent = self.started = time.monotonic()
        self.bytes_in = self.bytes_out = 0

    def __repr__(self) -> str:
        session = self.session
        if session is None:
            kind = " hocuspocus" if self.mux is not None else ""
            return f"<{type(self).__name__} #{self.id} {self.client}{kind}>"
        return f"<{type(self).__name__} #{session.id} {self.client} {session.document!r}>"

    def log_context(self, **fields: Any) -> dict[str, Any]:
        """The `extra=` of a log line about this connection (logs.context)."""
        session = self.session
        if session is not None:
            return session.log_context(**fields)
        return logs.context(self.id, client=None if self.client == "?" else self.client, **fields)

    # What the subclass implements (session.Socket: what a session needs of its socket).
    framing: int

    def encode(self, message: bytes) -> bytes:
        raise NotImplementedError

    def send_frame(self, data: bytes) -> None:
        raise NotImplementedError

    def send_nowait(self, message: bytes) -> None:
        raise NotImplementedError

    def close(self, code: int, reason: str = "") -> None:
        raise NotImplementedError

    def keepalive(self, now: float) -> None:
        raise NotImplementedError

    def authenticated(self, session: Session) -> None:
        """The hooks let the session in: nothing to say on y-websocket."""

    # -- opening -------------------------------------------------------------------------------

    def _open(
        self, raw_name: str, query: str, headers: Mapping[str, str], ip: str, port: int
    ) -> None:
        """The socket is open (101 sent, or accepted): ask admission for the document."""
        self.client = f"{ip}:{port}"
        try:
            session = self.admission.open(self, raw_name, query, headers, ip, port)
        except CollabError as exc:
            self.close(exc.code, exc.reason)
            return
        self._limit_rates()
        self.session = session
        self.pending = []

    def _open_hocuspocus(self, query: str, headers: Mapping[str, str], ip: str, port: int) -> None:
        """The socket is open on /hocuspocus: its documents come and go in its messages."""
        self.client = f"{ip}:{port}"
        self._limit_rates()
        self.mux = Multiplexer(self, query, headers, ip, port)

    def _limit_rates(self) -> None:
        s = self.admission.settings
        self.message_bucket = TokenBucket(s.rate_messages_per_s, s.rate_messages_burst)
        self.byte_bucket = TokenBucket(s.rate_bytes_per_s, s.rate_bytes_burst)

    def joined(self, session: Session) -> None:
        """Admitted: handle, in order, what arrived during admission."""
        self.active = session
        pending, self.pending, self.pending_bytes = self.pending or [], None, 0
        for message in pending:
            if not session.receive(message):
                return

    # -- reading -------------------------------------------------------------------------------

    def message_received(self, data: bytes) -> None:
        """One binary message (the ASGI path; the fast path batches sync updates first)."""
        if self.closing:
            return
        if not self.message_bucket.take() or not self.byte_bucket.take(len(data)):
            self.fail(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        self.last_received = time.monotonic()
        self.bytes_in += len(data)
        session = self.active
        if session is not None:
            session.receive(data)
        elif self.mux is not None:
            self.mux.received(data)
        else:
            self._hold(data)

    def _hold(self, data: bytes) -> None:
        """Keep a message that arrived before the session joined its room (within the caps)."""
        pending = self.pending
        if pending is None:  # refused before admission began (the close is on its way)
            return
        pending.append(data)
        self.pending_bytes += len(data)
        s = self.admission.settings
        if len(pending) > s.pre_auth_max_messages or self.pending_bytes > s.pre_auth_max_bytes:
            self.close(CloseCode.POLICY_VIOLATION, "too much data before authentication")

    def text_received(self, data: bytes) -> None:
        self.fail(CloseCode.UNSUPPORTED_DATA, "text frames are not supported")

    def fail(self, code: int, reason: str) -> None:
        """A client that broke the rules: close."""
        self.close(code, reason)

    # -- closing -------------------------------------------------------------------------------

    def _closing(self, code: int, reason: str) -> None:
        """Starting to close (ours or the peer's): the session leaves its room at once."""
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self.pending = None
        self.active = None
        if self.session is not None:
            self.session.detach()
        if self.mux is not None:
            self.mux.detach_all()

    def _ended(self, code: int, reason: str) -> None:
        """The socket is gone; `code` is what ended it (1006: the peer vanished)."""
        if not self.closing:
            self._closing(code, reason)
        if log.isEnabledFor(logging.INFO):
            duration = time.monotonic() - self.started
            log.info(
                "%r closed with %s %s after %.1f s",
                self,
                self.close_code,
                self.close_reason,
                duration,
                extra=self.log_context(
                    code=self.close_code,
                    reason=self.close_reason,
                    duration_ms=round(duration * 1000),
                ),
            )
        if self.session is not None:
            self.admission.closed(self.session, self.close_code, self.close_reason)
        if self.mux is not None:
            self.mux.ended(self.close_code, self.close_reason)


class Listener(Protocol):
    """What a fast-path Connection needs of the server side that made it (endpoint.Endpoint)."""

    connections: set[Any]  # uvicorn's server_state.connections: shut down with the server
    root_path: str

    def client_ip(self, request: Request) -> str: ...


class Connection(WebSocketProtocol, BaseConnection):
    """The fast path's socket (collab/wire.py underneath)."""

    __slots__ = (
        "_listener",
        "_updates",
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

    def __init__(self, options: WireOptions, admission: Admission, listener: Listener) -> None:
        super().__init__(options)
        self._init_base(admission)
        self._listener = listener
        self.framing = PLAIN_FRAME
        self.max_bytes = admission.settings.outbound_queue_bytes
        self.big_frame = 0  # the biggest frame written since the buffer was last empty
        self._updates: list[bytes] | None = None  # sync updates read in this go, not yet handled

    __repr__ = BaseConnection.__repr__  # (WebSocketProtocol's comes first)
    log_context = BaseConnection.log_context

    # -- opening -------------------------------------------------------------------------------

    def accept_request(self, request: Request) -> None:
        self.admission.check_request(request, self._listener.root_path, self.id)

    def opened(self, request: Request) -> None:
        listener = self._listener
        listener.connections.add(self)
        if self.deflate:
            self.framing = DEFLATE_FRAME
        root = listener.root_path + ROUTE_PREFIX
        path = request.path
        port = request.client[1] if request.client else 0
        ip = listener.client_ip(request)
        if is_hocuspocus_path(path, listener.root_path):
            self._open_hocuspocus(request.query, request.headers, ip, port)
            return
        raw_name = path[len(root) + 1 :] if path.startswith(root + "/") else ""
        self._open(raw_name, request.query, request.headers, ip, port)

    # -- reading -------------------------------------------------------------------------------

    def message_received(self, data: bytes) -> None:
        if self.closing:
            return
        if not self.message_bucket.take() or not self.byte_bucket.take(len(data)):
            self.fail(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        self.last_received = time.monotonic()
        self.bytes_in += len(data)
        session = self.active
        if session is None:
            if self.mux is not None:
                self.mux.received(data)
            else:
                self._hold(data)
        elif data[:2] == b"\x00\x02" and not session.read_only:
            # A sync update: held until the end of this read, so that a burst of them is
            # applied as one (Room.handle_updates). Anything else goes after them, in order.
            if self._updates is None:
                self._updates = [data]
            else:
                self._updates.append(data)
        else:
            if self._updates is not None:
                self._flush_updates()
                if self.closing:  # one of them was refused: nothing after it is handled
                    return
            session.receive(data)

    def batch_end(self) -> None:
        if self._updates is not None:
            self._flush_updates()

    def _flush_updates(self) -> None:
        updates, self._updates = self._updates, None
        session = self.active
        if session is None or updates is None:  # closed within this read
            return
        if len(updates) == 1:
            session.receive(updates[0])
        else:
            session.receive_updates(updates)

    def text_received(self, data: bytes) -> None:
        BaseConnection.text_received(self, data)  # (WebSocketProtocol's hooks come first)

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
        size = len(data)
        if not buffered:
            self.big_frame = size
        elif buffered + size > self.max_bytes + self.big_frame:
            log.info(
                "%r: %d bytes unsent; closing 1013",
                self,
                buffered,
                extra=self.log_context(code=CloseCode.TRY_AGAIN_LATER),
            )
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        elif size > self.big_frame:
            self.big_frame = size
        transport.write(data)
        self.bytes_out += size
        self.last_sent = time.monotonic()

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Start closing: detach from the room (synchronously), send the close frame."""
        if not self.closing:
            self._closing(code, reason)
        WebSocketProtocol.close(self, code, reason)

    def shutdown(self) -> None:
        """uvicorn's shutdown (our drain has normally closed everybody with 1001 before)."""
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def peer_closing(self, code: int, reason: str) -> None:
        if not self.closing:
            # Updates that came in the same read as the close frame were sent before it: the
            # client's last keystrokes, applied (and stored) before it leaves.
            self._flush_updates()
        if not self.closing:
            self._closing(code, reason)

    def closed(self, code: int, reason: str) -> None:
        self._listener.connections.discard(self)
        if not self.closing:
            self._flush_updates()  # (what it sent before vanishing is kept, as on a close)
        self._ended(code, reason)
