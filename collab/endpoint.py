"""The fast path's WebSocket route: what uvicorn calls for an upgrade.

uvicorn is configured with `ws=Endpoint(app)`: for every upgrade request it calls the endpoint,
which returns a `Connection` (collab/connection.py), our RFC 6455 on the raw transport. uvicorn
then never calls the ASGI app for an upgrade: under `collab serve` the app's standard ASGI
WebSocket route (collab/asgi_endpoint.py) is there but unused. What happens to a connection
(the checks before the 101, admission, the close codes) is collab/admission.py's.

uvicorn makes the protocol before it replays the request head to it, so what it gets is an
`Upgrade`, which reads the request line and hands the transport to the socket of that route:
a `Connection` for /ws, a `SignalConnection` for /signal (collab/protocols/signal_socket.py).
Under `collab serve` most upgrades never reach uvicorn's parser: collab/front.py reads the head
and asks `protocol_for` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any

from starlette.applications import Starlette

from .admission import Admission
from .connection import Connection
from .protocols.signal_socket import SignalConnection
from .protocols.signaling import ROUTE as SIGNAL_ROUTE
from .protocols.signaling import Signaling
from .wire import Request, WebSocketProtocol, WireOptions


class Endpoint:
    """The `ws` protocol factory uvicorn calls for each upgrade; one per server."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.connections: set[Any] = set()  # uvicorn's server_state.connections
        self.options: WireOptions | None = None
        self.signal_options: WireOptions | None = None
        self.root_path = ""
        self._proxy_headers = False
        self._trusted: list[Any] = []
        self._trust_all = False

    def __call__(
        self, config: Any, server_state: Any, app_state: Any, _loop: Any = None
    ) -> Upgrade:
        self.ready(config, server_state)
        return Upgrade(self)

    def ready(self, config: Any, server_state: Any) -> None:
        """Read what the sockets need from the app and uvicorn's config, on the first upgrade
        (the app's admission exists once its lifespan has started)."""
        if self.options is None:
            admission = admission_of(self.app)
            self.options = WireOptions(admission.settings)
            self.signal_options = WireOptions(admission.settings)
            self.signal_options.max_message_bytes = admission.settings.signal_max_message_bytes
            self.connections = server_state.connections
            self.root_path = config.root_path or ""
            self._proxy_headers = bool(config.proxy_headers)
            allowed = config.forwarded_allow_ips
            entries = allowed if isinstance(allowed, list) else str(allowed or "").split(",")
            for entry in (e.strip() for e in entries):
                if entry == "*":
                    self._trust_all = True
                elif entry:
                    # A unix socket path or a name is nothing a TCP peer can match.
                    with contextlib.suppress(ValueError):
                        self._trusted.append(ipaddress.ip_network(entry, strict=False))

    def protocol_for(self, path: str) -> WebSocketProtocol:
        """The socket for an upgrade to `path` (its request target without the query)."""
        assert self.options is not None and self.signal_options is not None
        if path == self.root_path + SIGNAL_ROUTE:
            signaling: Signaling = self.app.state.signaling
            return SignalConnection(self.signal_options, signaling, self)
        return Connection(self.options, admission_of(self.app), self)

    def _is_trusted(self, host: str) -> bool:
        if self._trust_all:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def client_ip(self, request: Request) -> str:
        """The client's address; behind a trusted proxy, from X-Forwarded-For (as uvicorn)."""
        peer = request.client[0] if request.client else "?"
        forwarded = request.header("x-forwarded-for")
        if not (self._proxy_headers and forwarded and self._is_trusted(peer)):
            return peer
        hosts = [h.strip() for h in forwarded.split(",") if h.strip()]
        for host in reversed(hosts):
            if not self._is_trusted(host):
                return host
        return hosts[0] if hosts else peer


class Upgrade(asyncio.Protocol):
    """What uvicorn is handed for an upgrade: on the request head (which uvicorn replays at
    once) it puts the socket of that route in its place on the transport."""

    __slots__ = ("_endpoint", "_transport")

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        line = data.split(b"\r\n", 1)[0].split(b" ")
        target = line[1].decode("latin-1") if len(line) > 2 else ""
        protocol = self._endpoint.protocol_for(target.split("?", 1)[0])
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)


def admission_of(app: Starlette) -> Admission:
    """The app's admission, made by its lifespan (collab/app.py)."""
    admission: Admission = app.state.admission
    return admission


def uvicorn_ws(config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> Upgrade:
    """For `uvicorn module:app --ws collab.endpoint:uvicorn_ws`: finds the app made by
    create_app inside uvicorn's middleware and serves its /ws like `collab serve` does."""
    endpoint = getattr(config, "_collab_endpoint", None)
    if endpoint is None:
        app = config.loaded_app
        while not isinstance(app, Starlette) and hasattr(app, "app"):
            app = app.app
        if not isinstance(app, Starlette):
            raise RuntimeError("collab.endpoint:uvicorn_ws serves an app made by create_app()")
        endpoint = config._collab_endpoint = Endpoint(app)
    return endpoint(config, server_state, app_state, _loop)
