"""The first bytes of every connection: a WebSocket upgrade goes straight to our socket, anything
else to uvicorn's HTTP protocol, as if it had been there from the start.

uvicorn makes its HTTP protocol for each accepted connection, parses the request with it
(a Python callback per header, an ASGI scope, flow control), and only then, for an upgrade,
rebuilds the request head and replays it to our WebSocket layer, which parses it again. In a
connection storm that was more than a quarter of the server's CPU per connection (profiled in
bench/profiles.md, `connect10k`): work for a request that our layer reads anyway. `Front` waits
for the request head; when it is a well-formed `GET ... HTTP/1.1` upgrade to `websocket`, it
hands the transport to the socket of the route (`Endpoint.protocol_for`) with the bytes as they
came. Anything else (another method, HTTP/1.0, a body, a head our strict check does not accept,
a head still incomplete after `MAX_HEAD` bytes) goes to uvicorn's protocol with the same bytes,
which does what it always did: serve it, refuse it with 400, or upgrade it after all.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from .endpoint import Endpoint

# A request head we upgrade without uvicorn: the request line, then header lines of a token, a
# colon and a value of visible characters, spaces, tabs and obs-text, as llhttp accepts them.
_HEAD = re.compile(
    rb"GET /[!-~]* HTTP/1\.1\r\n(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t -~\x80-\xff]*\r\n)*"
)
# A head not complete within this many bytes goes to uvicorn (which has its own limits).
MAX_HEAD = 16384


def upgrade_head(buf: bytes, end: int) -> bool:
    """Whether `buf[:end]` (the request head, without its blank line) is a WebSocket upgrade
    that needs nothing of uvicorn: no body, and the `Connection: upgrade` uvicorn asks for."""
    if _HEAD.fullmatch(buf, 0, end + 2) is None:
        return False
    upgrade = connection = b""
    for line in buf[:end].lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"upgrade":
            upgrade = value.strip(b" \t")
        elif name == b"connection":
            connection = value
        elif name in (b"content-length", b"transfer-encoding"):
            return False
    return upgrade == b"websocket" and b"upgrade" in (
        t.strip(b" \t") for t in connection.split(b",")
    )


class Front(asyncio.Protocol):
    """Made by uvicorn for each accepted connection (`uvicorn.Config(http=FrontDoor(...))`)."""

    __slots__ = ("_app_state", "_buf", "_config", "_door", "_loop", "_server_state", "_transport")

    def __init__(
        self, door: FrontDoor, config: Any, server_state: Any, app_state: Any, loop: Any
    ) -> None:
        self._door = door
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._server_state.connections.add(self)  # (uvicorn's shutdown closes it)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn's shutdown: a connection that has not finished its request is closed."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        end = buf.find(b"\r\n\r\n")
        head_end = len(buf) if end < 0 else end
        if buf.count(b"\n", 0, head_end) != buf.count(b"\r\n", 0, head_end):
            pass  # a bare LF in the head: uvicorn's parser decides what it is
        elif end < 0:
            if len(buf) <= MAX_HEAD and (buf.startswith(b"GET ") or b"GET ".startswith(buf)):
                self._buf = buf
                return
        elif upgrade_head(buf, end):
            target = buf[4 : buf.index(b" ", 4)].decode("latin-1")
            self._door.endpoint.ready(self._config, self._server_state)
            self._hand_to(self._door.endpoint.protocol_for(target.split("?", 1)[0]), buf)
            return
        http = self._door.http_class(
            config=self._config,
            server_state=self._server_state,
            app_state=self._app_state,
            _loop=self._loop,
        )
        self._hand_to(http, buf)

    def _hand_to(self, protocol: asyncio.Protocol, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._server_state.connections.discard(self)
        self._buf = b""
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)


class FrontDoor:
    """The `http` protocol factory of `collab serve`'s uvicorn.Config: a `Front` per connection,
    which becomes our WebSocket socket or uvicorn's HTTP protocol (`http_class`)."""

    def __init__(self, endpoint: Endpoint, http_class: Any) -> None:
        self.endpoint = endpoint
        self.http_class = http_class

    def __call__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> Front:
        return Front(self, config, server_state, app_state, _loop)
