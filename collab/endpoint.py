"""The WebSocket route: what uvicorn calls for an upgrade, the checks before the 101, admission.

uvicorn is configured with `ws=Endpoint(app)`: for every upgrade request it calls the endpoint,
which returns a `Connection` (collab/connection.py) bound to the hub. Every failure becomes a
close code on that one connection (accept first, then close: a close before accept reaches a
browser as 1006 with no reason). The exceptions are refused before the upgrade with an HTTP
status: a forbidden Origin (403), a path outside /ws (404), a malformed handshake (400/426).
The room and every other connection carry on.

Frames that arrive while a connection is being admitted are kept (up to the pre-auth caps) and
handled in order once it has joined its room.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import anyio
from starlette.applications import Starlette

from .connection import Connection
from .errors import CloseCode, CollabError, InvalidDocumentName
from .hooks import OnAuthenticatePayload, OnConnectPayload, reject_from
from .wire import HttpRefusal, Request, WireOptions

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 512
ROUTE_PREFIX = "/ws"


def document_name(raw_path: str, root_path: str = "") -> str:
    """The document name: the URL path after /ws/, percent-decoded, strictly UTF-8."""
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDocumentName("document name is not valid UTF-8") from None
    root = root_path + ROUTE_PREFIX
    if path.startswith(root):
        path = path[len(root) :]
    name = path[1:] if path.startswith("/") else path
    if not name:
        raise InvalidDocumentName("empty document name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidDocumentName(f"document name longer than {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidDocumentName("document name contains control characters")
    return name


def check_request(hub: Hub, request: Request, root_path: str) -> None:
    """Before the 101: the route and the Origin allowlist (HttpRefusal)."""
    root = root_path + ROUTE_PREFIX
    if request.path != root and not request.path.startswith(root + "/"):
        raise HttpRefusal(404, "no WebSocket route here: connect to /ws/<document name>")
    origins = hub.settings.origins
    origin = request.header("origin")
    if origins and origin is not None and origin not in origins:
        log.info("refused origin %r from %s", origin[:100], request.client)
        raise HttpRefusal(403, "origin not allowed")


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
        hub: Hub = self.app.state.hub
        if self.options is None:
            self.options = WireOptions(hub.settings)
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
        return Connection(self, hub)

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


async def admit(conn: Connection, token: str | None) -> None:
    """Hooks, authentication, join; then handle what arrived meanwhile, in order."""
    hub = conn.hub
    info = conn.info
    assert info is not None
    try:
        try:
            with anyio.fail_after(hub.settings.auth_timeout_s):
                await hub.hooks.connect(OnConnectPayload(conn.document, info))
                await hub.hooks.authenticate(OnAuthenticatePayload(conn.document, token, info))
        except TimeoutError:
            raise CollabError("authentication timed out", CloseCode.IDLE_TIMEOUT) from None
        except Exception as exc:
            raise reject_from(exc) from None
        conn.read_only = info.read_only
        expires = info.context.get("token_expires_at")
        conn.expires_at = float(expires) if isinstance(expires, int | float) else None
        room = await hub.join(conn.document, conn)
    except CollabError as exc:
        log.info("%r refused: %s (%d)", conn, exc.reason, exc.code)
        conn.close(exc.code, exc.reason)
        return
    if conn.closing:
        hub.leave(room, conn)
        return
    log.info(
        "%r joined (%d members%s)", conn, len(room.members), ", read-only" if conn.read_only else ""
    )
    conn.admitted(room)


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
