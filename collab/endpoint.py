"""The fast path's WebSocket route: what uvicorn calls for an upgrade.

uvicorn is configured with `ws=Endpoint(app)`: for every upgrade request it calls the endpoint,
which returns a `Connection` (collab/connection.py), our RFC 6455 on the raw transport. uvicorn
then never calls the ASGI app for an upgrade: under `collab serve` the app's standard ASGI
WebSocket route (collab/asgi_endpoint.py) is there but unused. What happens to a connection
(the checks before the 101, admission, the close codes) is collab/admission.py's.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from starlette.applications import Starlette

from .admission import Admission
from .connection import Connection
from .wire import Request, WireOptions


class Endpoint:
    """The `ws` protocol factory uvicorn calls for each upgrade; one per server."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.connections: set[Any] = set()  # uvicorn's server_state.connections
        self.options: WireOptions | None = None
        self.root_path = ""
        self._proxy_headers = False
        self._trusted: list[Any] = []
        self._trust_all = False

    def __call__(
        self, config: Any, server_state: Any, app_state: Any, _loop: Any = None
    ) -> Connection:
        admission = admission_of(self.app)
        if self.options is None:
            self.options = WireOptions(admission.settings)
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
        return Connection(self.options, admission, self)

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


def admission_of(app: Starlette) -> Admission:
    """The app's admission, made by its lifespan (collab/app.py)."""
    admission: Admission = app.state.admission
    return admission


def uvicorn_ws(config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> Connection:
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
