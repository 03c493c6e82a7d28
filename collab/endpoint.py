"""The WebSocket route: origin check, accept, admit (limits, hooks, auth, join), read frames.

Every failure becomes a close code on this one connection (accept first, then close: a close
before accept reaches a browser as 1006 with no reason). The one exception is a forbidden
Origin, refused with HTTP 403 before the upgrade. The room and every other connection carry on.

Frames that arrive while a connection is being admitted are kept (up to the pre-auth caps) and
handled in order once it has joined its room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
from starlette.websockets import WebSocket

from .connection import Connection
from .errors import (
    CloseCode,
    CollabError,
    InvalidDocumentName,
    MessageTooBig,
    UnsupportedData,
)
from .hooks import OnAuthenticatePayload, OnConnectPayload, OnDisconnectPayload, reject_from
from .hub import Hub
from .limits import TokenBucket

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 512
ROUTE_PREFIX = "/ws"
# Frames one connection may handle in a row before letting the other tasks run.
YIELD_EVERY = 16
# How long a closing connection may take to get its close frame out before we let it go.
CLOSE_DEADLINE_S = 10.0


def document_name(scope: MutableMapping[str, Any]) -> str:
    """The document name: the URL path after /ws/, percent-decoded, strictly UTF-8."""
    raw = scope.get("raw_path")
    if raw is not None:
        try:
            path = unquote_to_bytes(bytes(raw).decode("latin-1")).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDocumentName("document name is not valid UTF-8") from None
    else:
        path = scope["path"]
    root = scope.get("root_path", "") + ROUTE_PREFIX
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


async def websocket_endpoint(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    settings = hub.settings
    origins = settings.origins
    if origins and ws.headers.get("origin") is not None and ws.headers["origin"] not in origins:
        log.info("refused origin %r from %s", ws.headers["origin"][:100], ws.client)
        await ws.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403, no upgrade
        return
    await ws.accept()
    try:
        name = document_name(ws.scope)
    except InvalidDocumentName as exc:
        await ws.close(exc.code, exc.reason)
        return
    if not hub.accepting:
        await ws.close(CloseCode.GOING_AWAY, "server shutting down")
        return
    conn = Connection(
        ws,
        name,
        max_messages=settings.outbound_queue_messages,
        max_bytes=settings.outbound_queue_bytes,
    )
    refused = hub.ip_limits.attempt(conn.ip)
    if refused:
        await ws.close(CloseCode.POLICY_VIOLATION, refused)
        return
    conn.message_bucket = TokenBucket(settings.rate_messages_per_s, settings.rate_messages_burst)
    conn.byte_bucket = TokenBucket(settings.rate_bytes_per_s, settings.rate_bytes_burst)
    hub.ip_limits.opened(conn.ip)
    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run_writer)
            tg.start_soon(_admit, hub, conn, ws.query_params.get("token"))
            await _read(ws, conn, settings.max_message_bytes, settings)
            if conn.closing:
                with anyio.move_on_after(CLOSE_DEADLINE_S):
                    await conn.writer_done.wait()
            tg.cancel_scope.cancel()
    finally:
        hub.ip_limits.closed(conn.ip)
        hub.leave(conn.room, conn)
        log.info(
            "%r closed with %s %s after %.1f s",
            conn,
            conn.close_code,
            conn.close_reason or "",
            time.monotonic() - started,
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await hub.hooks.disconnect(
                OnDisconnectPayload(name, conn.info, conn.close_code, conn.close_reason)
            )


async def _admit(hub: Hub, conn: Connection, token: str | None) -> None:
    """Hooks, authentication, join; then handle what arrived meanwhile, in order."""
    info = conn.info
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
        return
    log.info(
        "%r joined (%d members%s)", conn, len(room.members), ", read-only" if conn.read_only else ""
    )
    conn.room = room
    pending, conn.pending, conn.pending_bytes = conn.pending, [], 0
    for message in pending:
        if not _handle(conn, message):
            return


def _handle(conn: Connection, data: bytes) -> bool:
    """Handle one frame of an admitted connection; False once the connection is closing."""
    try:
        conn.room.handle(conn, data)  # type: ignore[union-attr]
    except CollabError as exc:
        log.info("%r: %s (closing %d)", conn, exc.reason, exc.code)
        conn.close(exc.code, exc.reason)
    except Exception:
        log.exception("%r: error handling a message", conn)
        conn.close(CloseCode.INTERNAL_ERROR, "internal error")
    return not conn.closing


async def _read(ws: WebSocket, conn: Connection, max_bytes: int, settings: Any) -> None:
    receive = ws.receive
    messages = conn.message_bucket
    payload_bytes = conn.byte_bucket
    assert messages is not None and payload_bytes is not None
    handled = 0
    while not conn.closing:
        handled += 1
        if handled % YIELD_EVERY == 0:
            # uvicorn's receive() does not suspend while frames are queued: without this one
            # fast client would starve the saver, the ticker and every other connection.
            await anyio.lowlevel.checkpoint()
        message = await receive()
        if message["type"] == "websocket.disconnect":
            conn.peer_closed(message.get("code", CloseCode.NORMAL))
            return
        data = message.get("bytes")
        try:
            if data is None:
                raise UnsupportedData("text frames are not supported")
            if len(data) > max_bytes:
                raise MessageTooBig("message too big")
            if not messages.take() or not payload_bytes.take(len(data)):
                raise CollabError("rate limit exceeded", CloseCode.POLICY_VIOLATION)
        except CollabError as exc:
            log.info("%r: %s (closing %d)", conn, exc.reason, exc.code)
            conn.close(exc.code, exc.reason)
            return
        conn.last_received = time.monotonic()
        if conn.room is None:
            conn.pending.append(data)
            conn.pending_bytes += len(data)
            if (
                len(conn.pending) > settings.pre_auth_max_messages
                or conn.pending_bytes > settings.pre_auth_max_bytes
            ):
                conn.close(CloseCode.POLICY_VIOLATION, "too much data before authentication")
                return
        elif not _handle(conn, data):
            return
