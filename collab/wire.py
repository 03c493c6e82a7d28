"""RFC 6455 on a raw asyncio transport: the server side of a WebSocket, and nothing else.

Under `collab serve`, collab/front.py hands the transport of an upgrade request to this class
with the request's bytes as they came; otherwise uvicorn parses the request and, for an upgrade,
hands the transport over (`uvicorn.Config(ws=...)`), replaying the request head. Either way the
head is parsed here (`Request`). This layer exists because the generic ASGI WebSocket stack costs
more per connection and per message than everything else the server does (profiled in
docs/benchmarks.md): an ASGI message dict, an asyncio.Queue, a task and a send() await per frame
and per recipient, ~20 KB of objects per idle connection. Here a frame is parsed and handed to
`message_received` synchronously from `data_received`; a message for many recipients is framed
once (`encode`) and the same bytes are written to each transport; the transport's buffer is the
outbound queue; keepalive pings are driven by one ticker for all connections (`keepalive`), so
an idle connection owns no task and no timer.

What is implemented: the opening handshake (version 13, GET, key checks; HTTP 400/404/405/426
for a bad one, and whatever status `accept_request` returns), binary and text messages, any
fragmentation, ping/pong, the closing handshake with close-code and UTF-8 validation, a
message size limit (1009 as soon as a header announces too much), and permessage-deflate
(RFC 7692) when enabled, negotiated without context takeover in either direction so that a
broadcast is compressed once for all its recipients. Subprotocols are not negotiated (the
y-websocket protocol has none).

Masking uses websockets' C `apply_mask` (websockets comes with uvicorn[standard]).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import struct
import time
import zlib
from typing import Any

from websockets.speedups import apply_mask

log = logging.getLogger(__name__)
access = logging.getLogger("collab.access")  # one line per upgrade, as uvicorn's for HTTP


def _addr(request: Request) -> str:
    return f"{request.client[0]}:{request.client[1]}" if request.client else "?"


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Close codes a peer may send (RFC 6455 7.4; 1012–1014 registered since).
_VALID_CLOSE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

# Frames handled per data_received before the other connections get a turn (see _resume).
FRAMES_PER_TURN = 32
# How long a closing connection may take to answer our close frame before it is cut.
CLOSE_TIMEOUT_S = 10.0

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_unpack_short = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from


def frame(payload: bytes, opcode: int = OP_BINARY, rsv1: bool = False) -> bytes:
    """One unmasked, final frame (what a server sends)."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return _pack_short(first, 126, n) + payload
    return _pack_long(first, 127, n) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    data = reason.encode("utf-8")
    if len(data) > 123:  # a control frame carries at most 125 bytes
        data = data[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + data


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


class Deflate:
    """permessage-deflate with no context takeover either way: stateless per message."""

    RESPONSE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    @staticmethod
    def offered(header: str) -> bool:
        # Any offer is acceptable: we accept it with both no_context_takeover parameters and
        # default window bits, which every client must support (RFC 7692 7.1).
        for offer in header.split(","):
            params = [p.strip().lower() for p in offer.split(";")]
            if params[0] != "permessage-deflate":
                continue
            names = {p.split("=", 1)[0].strip() for p in params[1:]}
            # A client that asks for a smaller server window than zlib's 15 bits, which every
            # connection's frames share, cannot be served: skip that offer. =15 is the default.
            if any(
                p.split("=", 1)[0].strip() == "server_max_window_bits"
                and p.split("=", 1)[-1].strip().strip('"') != "15"
                for p in params[1:]
            ):
                continue
            if names <= {
                "server_no_context_takeover",
                "client_no_context_takeover",
                "client_max_window_bits",
                "server_max_window_bits",
            }:
                return True
        return False

    @staticmethod
    def compress(payload: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
        data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data

    @staticmethod
    def decompress(payload: bytes, limit: int) -> bytes:
        d = zlib.decompressobj(-15)
        data = d.decompress(payload + b"\x00\x00\xff\xff", limit + 1)
        if len(data) > limit:
            raise OverflowError
        return data


class Request:
    """The request head (as the client sent it, or as uvicorn replays it), parsed."""

    __slots__ = ("client", "headers", "method", "path", "query")

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def __init__(self, head: bytes, client: tuple[str, int] | None) -> None:
        lines = head.split(b"\r\n")
        method, _, rest = lines[0].partition(b" ")
        target = rest.rpartition(b" ")[0]
        path, _, query = target.partition(b"?")
        self.method = method.decode("latin-1")
        self.path = path.decode("latin-1")  # still percent-encoded
        self.query = query.decode("latin-1")
        self.client = client
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(b":")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            # Repeated headers join with ", " (RFC 9110 5.3), as Starlette's Headers would.
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class HttpRefusal(Exception):
    """Refuse the upgrade with an HTTP response (status, message)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _http_response(status: int, message: str, headers: dict[str, str]) -> bytes:
    body = (message + "\n").encode("utf-8")
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [
        "content-type: text/plain; charset=utf-8",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def check_handshake(request: Request) -> str:
    """Validate an upgrade request; the Sec-WebSocket-Accept value, or HttpRefusal."""
    if request.method != "GET":
        raise HttpRefusal(405, "a WebSocket upgrade must be a GET", {"allow": "GET"})
    if request.header("sec-websocket-version") != "13":
        raise HttpRefusal(
            426, "unsupported WebSocket version (13 only)", {"sec-websocket-version": "13"}
        )
    key = request.header("sec-websocket-key")
    if key is None:
        raise HttpRefusal(400, "missing Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HttpRefusal(400, "invalid Sec-WebSocket-Key: not base64 of 16 bytes")
    return accept_key(key)


class WebSocketProtocol(asyncio.Protocol):
    """One server-side WebSocket. Subclasses implement the four hooks at the bottom.

    `close(code, reason)` starts the closing handshake; the peer's close or its disappearance
    ends it, and `closed(code, reason)` runs exactly once, when the transport is gone.
    """

    __slots__ = (
        "__weakref__",
        "_buf",
        "_close_sent",
        "_close_timer",
        "_closed_code",
        "_closed_reason",
        "_deflate",
        "_frag",
        "_frag_compressed",
        "_frag_opcode",
        "_handshake_done",
        "_paused",
        "_ping_sent",
        "_resume_handle",
        "_sent",
        "last_heard",
        "options",
        "transport",
    )

    def __init__(self, options: WireOptions) -> None:
        self.options = options
        self.transport: asyncio.Transport | None = None
        self._sent: tuple[int, str] | None = None  # the close code and reason we sent
        self._buf: bytes | bytearray = b""
        self._handshake_done = False
        self._frag: bytearray | None = None  # the fragmented message in progress
        self._frag_opcode = 0
        self._frag_compressed = False
        self._deflate = False
        self._close_sent = False
        self._closed_code: int | None = None  # set once the closing handshake is over
        self._closed_reason = ""
        self._close_timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._resume_handle: asyncio.Handle | None = None
        self._ping_sent: float | None = None
        self.last_heard = time.monotonic()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self._handshake_done:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 65536:
                    self._refuse(HttpRefusal(400, "request head too large"))
                return
            head, rest = bytes(self._buf[:end]), self._buf[end + 4 :]
            self._buf = b""
            self._handshake(head)
            if rest and self._handshake_done:
                self.data_received(bytes(rest))
            return
        if self._buf:
            if isinstance(self._buf, bytes):
                self._buf = bytearray(self._buf)
            self._buf += data
        else:
            self._buf = data
        if not self._paused:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self._closed_code is None:
            self._closed_code = 1006  # no closing handshake: the connection was lost
        if self._handshake_done:
            self.closed(self._closed_code, self._closed_reason)
        else:
            self.refused()

    def pause_writing(self) -> None:
        pass  # the buffer's size is checked by whoever writes (send_frame's callers)

    def resume_writing(self) -> None:
        pass

    # -- handshake -----------------------------------------------------------------------------

    def _peer(self) -> tuple[str, int] | None:
        assert self.transport is not None
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return (str(peer[0]), int(peer[1]))
        return None

    def _handshake(self, head: bytes) -> None:
        assert self.transport is not None
        try:
            request = Request(head, self._peer())
            accept = check_handshake(request)
            self.accept_request(request)
        except HttpRefusal as refusal:
            access.info(
                '%s - "WebSocket %s" %d %s',
                _addr(request),
                request.target,
                refusal.status,
                refusal.message,
                extra=self.log_context(status=refusal.status),
            )
            self._refuse(refusal)
            return
        except Exception:
            log.exception("error accepting a WebSocket")
            self._refuse(HttpRefusal(500, "internal error"))
            return
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "upgrade: websocket",
            "connection: Upgrade",
            f"sec-websocket-accept: {accept}",
        ]
        offer = request.header("sec-websocket-extensions")
        if self.options.deflate and offer and Deflate.offered(offer):
            self._deflate = True
            lines.append(f"sec-websocket-extensions: {Deflate.RESPONSE}")
        # The 101 goes out at the end of this loop turn, with what is written meanwhile (the
        # sync step 1 of an admission that needs no task) in the same send(): see _Corked.
        transport = self.transport
        corked = _Corked(self, transport, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.transport = corked  # type: ignore[assignment]
        if access.isEnabledFor(logging.INFO):  # (its arguments cost a few µs per connection)
            access.info(
                '%s - "WebSocket %s" 101',
                _addr(request),
                request.target,
                extra=self.log_context(status=101),
            )
        self._handshake_done = True
        self.last_heard = time.monotonic()
        try:
            self.opened(request)
        finally:  # (after what the opening scheduled: its admission writes into the cork)
            asyncio.get_running_loop().call_soon(corked.flush)

    def _refuse(self, refusal: HttpRefusal) -> None:
        assert self.transport is not None
        self.transport.write(_http_response(refusal.status, refusal.message, refusal.headers))
        self.transport.close()

    # -- reading -------------------------------------------------------------------------------

    def _parse(self) -> None:
        with memoryview(self._buf) as view:
            self._parse_view(view)

    def _parse_view(self, view: memoryview) -> None:
        buf = self._buf
        pos = 0
        end = len(buf)
        handled = 0
        limit = self.options.max_message_bytes
        while end - pos >= 2 and self._closed_code is None:
            if handled >= FRAMES_PER_TURN:
                # Let every other connection, the saver and the ticker run before the rest
                # of what this one sent: a client flooding us cannot starve the others.
                self._paused = True
                assert self.transport is not None
                self.transport.pause_reading()
                self._resume_handle = asyncio.get_running_loop().call_soon(self._resume)
                break
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 6
            if length == 126:
                if end - pos < 8:
                    break
                length = _unpack_short(buf, pos + 2)[0]
                header = 8
            elif length == 127:
                if end - pos < 14:
                    break
                length = _unpack_long(buf, pos + 2)[0]
                header = 14
            opcode = b0 & 0x0F
            if not b1 & 0x80:
                self.fail(1002, "client frames must be masked")
                return
            if b0 & 0x30 or (b0 & 0x40 and not (self._deflate and opcode in (1, 2))):
                self.fail(1002, "reserved bits set")
                return
            if opcode >= OP_CLOSE:
                if opcode > OP_PONG:
                    self.fail(1002, f"reserved opcode {opcode}")
                    return
                if length > 125 or not b0 & 0x80:
                    self.fail(1002, "control frames must be final and at most 125 bytes")
                    return
            elif opcode > OP_BINARY:
                self.fail(1002, f"reserved opcode {opcode}")
                return
            else:
                in_message = len(self._frag) if self._frag is not None else 0
                if length + in_message > limit:
                    self.fail(1009, "message too big")
                    return
            if end - pos < header + length:
                break
            start = pos + header
            # Unmasked straight from the buffer: the payload is copied once, by apply_mask.
            payload = apply_mask(view[start : start + length], bytes(view[start - 4 : start]))
            pos = start + length
            handled += 1
            self._frame(b0, opcode, payload)
        if pos >= end or self._closed_code is not None:
            self._buf = b""
        elif pos:
            self._buf = buf[pos:]
        if handled:
            self.batch_end()

    def _resume(self) -> None:
        self._resume_handle = None
        self._paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._parse()

    def _frame(self, b0: int, opcode: int, payload: bytes) -> None:
        fin = b0 & 0x80
        if opcode in (OP_BINARY, OP_TEXT):
            if self._frag is not None:
                self.fail(1002, "new message while a fragmented one is in progress")
                return
            compressed = bool(b0 & 0x40)
            if not fin:
                self._frag = bytearray(payload)
                self._frag_opcode = opcode
                self._frag_compressed = compressed
                return
            self._message(opcode, payload, compressed)
        elif opcode == OP_CONT:
            if self._frag is None:
                self.fail(1002, "continuation frame without a message")
                return
            if b0 & 0x40:
                self.fail(1002, "reserved bits set")
                return
            self._frag += payload
            if fin:
                data, self._frag = bytes(self._frag), None
                self._message(self._frag_opcode, data, self._frag_compressed)
        elif opcode == OP_PING:
            self.last_heard = time.monotonic()
            if not self._close_sent:
                assert self.transport is not None
                self.transport.write(frame(payload, OP_PONG))
        elif opcode == OP_PONG:
            self.last_heard = time.monotonic()
            self._ping_sent = None
        else:
            self._peer_close(payload)

    def _message(self, opcode: int, payload: bytes, compressed: bool) -> None:
        if self._close_sent:
            return  # after our close frame, data is read and dropped (RFC 6455 1.4)
        if compressed:
            try:
                payload = Deflate.decompress(payload, self.options.max_message_bytes)
            except OverflowError:
                self.fail(1009, "message too big")
                return
            except zlib.error:
                self.fail(1007, "invalid compressed data")
                return
        self.last_heard = time.monotonic()
        if opcode == OP_TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "invalid UTF-8 in a text message")
                return
            self.text_received(payload)
        else:
            self.message_received(payload)

    def _peer_close(self, payload: bytes) -> None:
        code, reason = 1005, ""
        if len(payload) == 1:
            self.fail(1002, "invalid close frame")
            return
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
                self.fail(1002, f"invalid close code {code}")
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "invalid UTF-8 in the close reason")
                return
        assert self.transport is not None
        if not self._close_sent:
            # Echo the code (RFC 6455 5.5.1); the peer's close ends the handshake either way.
            self._close_sent = True
            self.transport.write(frame(payload[:2], OP_CLOSE))
            self._closed_code, self._closed_reason = code, reason
            self.peer_closing(code, reason)
        elif self._closed_code is None:
            self._closed_code, self._closed_reason = self._sent or (code, reason)
        self.transport.close()

    # -- writing and closing -------------------------------------------------------------------

    def encode(self, message: bytes, opcode: int = OP_BINARY) -> bytes:
        """The frame of a binary (or text) message for this connection, compressed if
        negotiated."""
        if self._deflate:
            return frame(Deflate.compress(message), opcode, rsv1=True)
        return frame(message, opcode)

    @property
    def deflate(self) -> bool:
        return self._deflate

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake: send our close frame; the peer has 10 s to answer."""
        if self._close_sent or self.transport is None or self.transport.is_closing():
            return
        self._close_sent = True
        self._sent = (code, reason)
        self.transport.write(frame(close_payload(code, reason), OP_CLOSE))
        self._frag = None
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._abort)

    def fail(self, code: int, reason: str) -> None:
        """A protocol error: send the close frame, stop handling what the peer sends, and end
        our side of TCP (RFC 6455 7.1.7).

        What the peer still sends (what it wrote before it read our close frame, and its own
        close frame) is read and dropped until it closes its side, as the `ws` library does, or
        the close timer aborts. A socket closed with data unread is reset by the kernel, and a
        browser that meets the reset before it has read our close frame reports 1006, not our
        code: half of the time, when a message followed the refused one."""
        context = self.log_context(code=code, reason=reason)
        log.info("%r: %s (closing %d)", self, reason, code, extra=context)
        self.batch_end()  # what came before the error is handled, not lost
        self.close(code, reason)
        self._buf = b""
        self._closed_code, self._closed_reason = code, reason  # (nothing more is parsed)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()  # after the close frame; the peer's EOF then closes it
            else:
                transport.close()

    def _abort(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            if self._closed_code is None:
                self._closed_code, self._closed_reason = self._sent or (1006, "")
            self.transport.abort()

    def keepalive(self, now: float) -> None:
        """Called periodically: ping a connection that has been quiet; drop one that stays so."""
        interval = self.options.ping_interval_s
        if not interval or self._close_sent or self.transport is None:
            return
        if self._ping_sent is not None:
            if now - self._ping_sent > self.options.ping_timeout_s:
                log.info(
                    "%r: no pong in %.1f s; closing 1011",
                    self,
                    self.options.ping_timeout_s,
                    extra=self.log_context(code=1011),
                )
                self.close(1011, "keepalive ping timeout")
                self._closed_code, self._closed_reason = 1011, "keepalive ping timeout"
                self.transport.abort()
        elif now - self.last_heard >= interval:
            self._ping_sent = now
            self.transport.write(frame(int(now * 1000).to_bytes(8, "big"), OP_PING))

    # -- for subclasses ------------------------------------------------------------------------

    def accept_request(self, request: Request) -> None:
        """Before the 101: raise HttpRefusal to refuse the upgrade."""

    def opened(self, request: Request) -> None:
        """After the 101 was written."""

    def message_received(self, data: bytes) -> None:
        """A complete binary message."""

    def text_received(self, data: bytes) -> None:
        """A complete text message (valid UTF-8)."""

    def batch_end(self) -> None:
        """The messages received in one go have all been handed over (see message_received)."""

    def peer_closing(self, code: int, reason: str) -> None:
        """The peer sent a close frame (already answered)."""

    def closed(self, code: int, reason: str) -> None:
        """The transport is gone; `code` is what ended it (1006 if there was no handshake)."""

    def refused(self) -> None:
        """The transport is gone and the handshake never completed."""

    def log_context(self, **fields: Any) -> dict[str, Any]:
        """The `extra=` of a log line about this connection (collab.connection adds its id)."""
        return fields

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._peer()}>"


class _Corked:
    """A socket's transport in the loop turn of its 101: what is written meanwhile is joined to
    the 101 and sent with it when the turn ends (`flush`, scheduled right after whatever the
    opening scheduled, such as its admission), one send() where there were two or three. A
    close or an abort flushes first; everything else is the transport's."""

    __slots__ = ("chunks", "protocol", "transport")

    def __init__(self, protocol: WebSocketProtocol, transport: Any, head: bytes) -> None:
        self.protocol = protocol
        self.transport = transport
        self.chunks = [head]

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def get_write_buffer_size(self) -> int:
        return int(self.transport.get_write_buffer_size()) + sum(map(len, self.chunks))

    def flush(self) -> None:
        current: object = self.protocol.transport
        if current is not self:  # (flushed already, by a close)
            return
        self.protocol.transport = self.transport
        if not self.transport.is_closing():
            self.transport.write(b"".join(self.chunks))
        self.chunks = []

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.flush()
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class WireOptions:
    """The WebSocket settings of one server, shared by its connections."""

    __slots__ = ("deflate", "max_message_bytes", "ping_interval_s", "ping_timeout_s")

    def __init__(self, settings: Any) -> None:
        self.max_message_bytes: int = settings.max_message_bytes
        self.ping_interval_s: float = settings.ws_ping_interval_s
        self.ping_timeout_s: float = settings.ws_ping_timeout_s
        self.deflate: bool = settings.ws_per_message_deflate
