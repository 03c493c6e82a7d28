"""Admission: from a WebSocket that asks for a document to a session in its room.

Both kinds of socket go through here (the fast path, collab/connection.py, and the ASGI path,
collab/asgi_endpoint.py), so the rules are written once:

- before the upgrade (fast path) or before accept (ASGI): the route and the Origin allowlist,
  refused with an HTTP status (404, 403), since nothing a browser could act on is lost;
- once open: the document name (4404), shutting down (1001), the per-IP limits (1008), then a
  `Session` is made and its admission runs in a task the session owns: on_connect and
  on_authenticate under `auth_timeout_s` (4408), the join (1013 when full, 1011 when the load
  fails). When no extension has an on_connect or on_authenticate hook and the room is open
  (or is a new document's, which the store can tell without waiting: Hub.open_now), nothing
  needs to await: the session joins from a callback in the same loop turn, with no task (a
  connection storm's common case). Every refusal after the upgrade is a close code on that one
  socket: accept first, then close, since a close before accept reaches a browser as 1006
  with no reason;
- when the socket is gone: leave the room, give the address's slot back, run on_disconnect.

The socket keeps what the client sends meanwhile (up to the pre-auth caps) and hands it to the
session, in order, once it has joined (`Socket.joined`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import parse_qsl, unquote_to_bytes

import anyio

from . import logs
from .errors import CloseCode, CollabError, InvalidDocumentName
from .hooks import (
    ConnectionInfo,
    HookName,
    OnAuthenticatePayload,
    OnConnectPayload,
    OnStatelessPayload,
    reject_from,
)
from .hub import Hub
from .limits import IpLimits
from .room import Room
from .session import Session, Socket
from .settings import Settings
from .wire import HttpRefusal, Request

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 512
# The hooks whose payload carries the connection's ConnectionInfo.
CONNECTION_HOOKS: tuple[HookName, ...] = (
    "on_connect",
    "on_authenticate",
    "on_change",
    "on_disconnect",
    "on_stateless",
)
NO_HEADERS: Mapping[str, str] = MappingProxyType({})
ROUTE_PREFIX = "/ws"
HOCUSPOCUS_ROUTE = "/hocuspocus"  # the Hocuspocus protocol (collab/protocols/hocuspocus.py)


def is_hocuspocus_path(path: str, root_path: str = "") -> bool:
    """Whether `path` (under the mount prefix `root_path`) is the Hocuspocus route."""
    route = root_path + HOCUSPOCUS_ROUTE
    return path == route or path == route + "/"


def parse_name(raw: str) -> str:
    """The document name from its percent-encoded form in the URL: strictly UTF-8, not empty,
    at most MAX_NAME_BYTES, no control characters."""
    try:
        name = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDocumentName("document name is not valid UTF-8") from None
    return check_name(name)


def check_name(name: str) -> str:
    """`name` if it is a valid document name (InvalidDocumentName, 4404, if not): not empty,
    at most MAX_NAME_BYTES, no control characters."""
    if not name:
        raise InvalidDocumentName("empty document name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidDocumentName(f"document name longer than {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidDocumentName("document name contains control characters")
    return name


def document_name(raw_path: str, root_path: str = "") -> str:
    """The document name: the URL path after /ws/, percent-decoded, strictly UTF-8."""
    root = root_path + ROUTE_PREFIX
    if raw_path.startswith(root):
        raw_path = raw_path[len(root) :]
    return parse_name(raw_path[1:] if raw_path.startswith("/") else raw_path)


class Admission:
    """The door of one server process: one per app, made by its lifespan."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.settings = settings
        self._hub = hub
        self._hooks = hub.hooks
        self._ids = itertools.count(1)
        self._origins = settings.origins
        self.ip_limits = IpLimits(
            settings.max_connections_per_ip, settings.max_connect_attempts_per_ip
        )
        self._pruned = time.monotonic()

    def new_id(self) -> int:
        """A connection id, unique in this process: taken when a socket is made, so that the
        log lines of one refused before it has a session carry it too."""
        return next(self._ids)

    # -- before the upgrade --------------------------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers always send Origin; other clients usually none, and are let through."""
        return not self._origins or origin is None or origin in self._origins

    def check_request(self, request: Request, root_path: str, conn_id: int = 0) -> None:
        """The fast path, before the 101: the route and the Origin allowlist (HttpRefusal)."""
        root = root_path + ROUTE_PREFIX
        path = request.path
        if (
            path != root
            and not path.startswith(root + "/")
            and not is_hocuspocus_path(path, root_path)
        ):
            raise HttpRefusal(404, "no WebSocket route here: connect to /ws/<document name>")
        origin = request.header("origin")
        if not self.origin_allowed(origin):
            log.info(
                "refused origin %r from %s",
                (origin or "")[:100],
                request.client,
                extra=logs.context(conn_id),
            )
            raise HttpRefusal(403, "origin not allowed")

    # -- open ----------------------------------------------------------------------------------

    def open(
        self,
        socket: Socket,
        raw_name: str,
        query: str,
        headers: Mapping[str, str],
        ip: str,
        port: int,
    ) -> Session:
        """A socket is open and asks for the document `raw_name` (percent-encoded): its session,
        with its admission under way. Raises a CollabError (its close code) to refuse it."""
        document = parse_name(raw_name)
        pairs = parse_qsl(query, keep_blank_values=True)
        token = next((v for k, v in pairs if k == "token"), None)
        params = {k: v for k, v in pairs if k != "token"}
        return self._start(socket, document, token, params, headers, ip, port)

    def open_document(
        self,
        socket: Socket,
        document: str,
        token: str | None,
        query: str,
        headers: Mapping[str, str],
        ip: str,
        port: int,
    ) -> Session:
        """A multiplexing socket (the Hocuspocus protocol) asks for `document` (its name as
        the protocol carries it, not percent-encoded) with `token` from its own message (the
        URL's `?token=` when it brought none): its session, with its admission under way. Every
        document counts as a connection for the per-IP limits and in the hub."""
        check_name(document)
        pairs = parse_qsl(query, keep_blank_values=True)
        if not token:
            token = next((v for k, v in pairs if k == "token"), None)
        params = {k: v for k, v in pairs if k != "token"}
        return self._start(socket, document, token, params, headers, ip, port)

    def stateless(self, session: Session, payload: str) -> None:
        """A stateless message from `session`'s client: on_stateless, in the background."""
        self._hooks.enqueue(
            "on_stateless", OnStatelessPayload(session.document, payload, session.info)
        )

    def _start(
        self,
        socket: Socket,
        document: str,
        token: str | None,
        params: dict[str, str],
        headers: Mapping[str, str],
        ip: str,
        port: int,
    ) -> Session:
        if not self._hooks_see_connections():
            headers = NO_HEADERS  # (nothing could read them: a kilobyte or two less per socket)
        info = ConnectionInfo(socket.id, document, f"{ip}:{port}", headers, params)
        if not self._hub.accepting:
            raise CollabError("server shutting down", CloseCode.GOING_AWAY)
        self._prune()
        refused = self.ip_limits.attempt(ip)
        if refused:
            raise CollabError(refused, CloseCode.POLICY_VIOLATION)
        self.ip_limits.opened(ip)
        session = Session(socket, info, ip)
        counts = self._hub.counts
        if counts is not None:
            counts.opened[socket.framing] += 1
        if self._hooks_at_door():
            session.admit_with(self._admit(session, token))
        else:  # nothing to await unless the document must be loaded first: no task
            session.admit_soon(self._admit_now)
        return session

    def _hooks_see_connections(self) -> bool:
        """Whether a hook is given connections (ConnectionInfo, the request's headers in it)."""
        return any(self._hooks.has(name) for name in CONNECTION_HOOKS)

    def _hooks_at_door(self) -> bool:
        """Whether an extension has a say in who comes in (on_connect, on_authenticate)."""
        return self._hooks.has("on_connect") or self._hooks.has("on_authenticate")

    def admit_address(self, ip: str) -> None:
        """A socket of another route (/signal) from `ip`: the per-IP limits apply to it too
        (CollabError 1008); `release_address` gives the slot back."""
        self._prune()
        refused = self.ip_limits.attempt(ip)
        if refused:
            raise CollabError(refused, CloseCode.POLICY_VIOLATION)
        self.ip_limits.opened(ip)

    def release_address(self, ip: str) -> None:
        self.ip_limits.closed(ip)

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned >= 1.0:
            self._pruned = now
            self.ip_limits.prune()

    def _admit_now(self, session: Session) -> None:
        """Admission when no hook has a say (called soon after the open, once the socket has
        its session): into its room at once, the same loop turn, when the room is open or can be
        made without waiting (Hub.open_now); else by the task that waits for it (`_admit`)."""
        room = self._hub.open_now(session.document)
        if room is None:
            session.admit_with(self._admit(session, None))
            return
        started = time.perf_counter()
        session.authenticated()
        try:
            self._hub.join_loaded(room, session)
        except CollabError as exc:
            self._refused(session, exc)
            return
        self._entered(session, room, started)

    async def _admit(self, session: Session, token: str | None) -> None:
        """Hooks, authentication, join; then the socket hands over what arrived meanwhile."""
        started = time.perf_counter()
        try:
            await self._authenticate(session, token)
            room = await self._hub.join(session.document, session)
        except CollabError as exc:
            self._refused(session, exc)
            return
        self._entered(session, room, started)

    def _refused(self, session: Session, exc: CollabError) -> None:
        log.info(
            "%r refused: %s (%d)",
            session,
            exc.reason,
            exc.code,
            extra=session.log_context(code=exc.code, reason=exc.reason),
        )
        session.close(exc.code, exc.reason)

    def _entered(self, session: Session, room: Room, started: float) -> None:
        """`session` joined `room` (unless it is closing meanwhile): hand it what it sent."""
        hub = self._hub
        if session.closing:
            hub.leave(room, session)
            return
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%r joined (%d members%s)",
                session,
                len(room.members),
                ", read-only" if session.read_only else "",
                extra=session.log_context(read_only=session.read_only),
            )
        if hub.counts is not None:
            hub.counts.observe("handshake", time.perf_counter() - started)
        session.joined(room)

    async def _authenticate(self, session: Session, token: str | None) -> None:
        info = session.info
        if not self._hooks_at_door():  # (nothing that could time out)
            session.authenticated()
            return
        try:
            with anyio.fail_after(self.settings.auth_timeout_s):
                await self._hooks.connect(OnConnectPayload(info.document, info))
                await self._hooks.authenticate(OnAuthenticatePayload(info.document, token, info))
        except TimeoutError:
            raise CollabError("authentication timed out", CloseCode.IDLE_TIMEOUT) from None
        except Exception as exc:
            raise reject_from(exc, session.log_context()) from None
        session.authenticated()

    # -- closed --------------------------------------------------------------------------------

    def closed(self, session: Session, code: int | None, reason: str) -> None:
        """The session's socket is gone: leave the room, free the address's slot, and let
        on_disconnect know (every session made here went through the hooks)."""
        self._hub.leave(session.room, session)
        self.ip_limits.closed(session.ip)
        counts = self._hub.counts
        if counts is not None:
            key = code if code is not None else -1
            counts.closed[key] = counts.closed.get(key, 0) + 1
        self._hub.disconnected(session.document, session.info, code, reason)
