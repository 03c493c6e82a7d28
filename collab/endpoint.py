"""The WebSocket route: accept, validate the name, join the room, read until closed.

Every failure becomes a close code on this one connection (accept first, then close: a close
before accept reaches a browser as 1006 with no reason). The room and every other connection
carry on.
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
from .hub import Hub
from .room import Room

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 512
ROUTE_PREFIX = "/ws"
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
    await ws.accept()
    try:
        name = document_name(ws.scope)
    except InvalidDocumentName as exc:
        await ws.close(exc.code, exc.reason)
        return
    if not hub.accepting:
        await ws.close(CloseCode.GOING_AWAY, "server shutting down")
        return
    settings = hub.settings
    conn = Connection(
        ws,
        name,
        max_messages=settings.outbound_queue_messages,
        max_bytes=settings.outbound_queue_bytes,
    )
    room: Room | None = None
    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run_writer)
            try:
                room = await hub.join(name, conn)
            except CollabError as exc:
                conn.close(exc.code, exc.reason)
            else:
                log.info("%r joined (%d members)", conn, len(room.members))
                await _read(ws, conn, room, settings.max_message_bytes)
            if conn.closing:
                with anyio.move_on_after(CLOSE_DEADLINE_S):
                    await conn.writer_done.wait()
            tg.cancel_scope.cancel()
    finally:
        hub.leave(room, conn)
        log.info(
            "%r closed with %s %s after %.1f s",
            conn,
            conn.close_code,
            conn.close_reason or "",
            time.monotonic() - started,
        )


async def _read(ws: WebSocket, conn: Connection, room: Room, max_bytes: int) -> None:
    receive = ws.receive
    handle = room.handle
    while not conn.closing:
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
            conn.last_received = time.monotonic()
            handle(conn, data)
        except CollabError as exc:
            log.info("%r: %s (closing %d)", conn, exc.reason, exc.code)
            conn.close(exc.code, exc.reason)
        except Exception:
            log.exception("%r: error handling a message", conn)
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")
