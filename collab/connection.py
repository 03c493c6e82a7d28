"""One WebSocket: a bounded outbound queue drained by a single writer, and close(code).

Fan-out calls `send_nowait`, which never awaits: when the queue is full the connection is
closed with 1013 instead of slowing anyone else down. Only the writer task ever awaits this
socket.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from .errors import CloseCode
from .hooks import ConnectionInfo
from .limits import TokenBucket

if TYPE_CHECKING:
    from .room import Room

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class Connection:
    __slots__ = (
        "_peer_gone",
        "_queue",
        "_queued_bytes",
        "_wakeup",
        "_ws",
        "byte_bucket",
        "client",
        "close_code",
        "close_reason",
        "closing",
        "document",
        "expires_at",
        "id",
        "info",
        "ip",
        "last_received",
        "last_sent",
        "max_bytes",
        "max_messages",
        "message_bucket",
        "on_close",
        "pending",
        "pending_bytes",
        "pending_updates",
        "read_only",
        "room",
        "writer_done",
    )

    def __init__(self, ws: WebSocket, document: str, *, max_messages: int, max_bytes: int) -> None:
        self.id = next(_ids)
        self._ws = ws
        self.document = document
        self.ip = ws.client.host if ws.client else "?"
        self.client = f"{self.ip}:{ws.client.port}" if ws.client else "?"
        query = ws.query_params
        self.info = ConnectionInfo(
            self.id,
            document,
            self.client,
            dict(ws.headers),
            {k: v for k, v in query.items() if k != "token"},
        )
        self.read_only = False  # copied from info.read_only once authenticated
        self.expires_at: float | None = None  # wall-clock time the token expires
        self.room: Room | None = None  # set once admitted (authenticated and joined)
        self.pending: list[bytes] = []  # frames received before that
        self.pending_bytes = 0
        self.pending_updates = 0  # updates of this client still waiting for a dependency
        self.message_bucket: TokenBucket | None = None
        self.byte_bucket: TokenBucket | None = None
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.closing = False
        self._peer_gone = False
        self.close_code: int | None = None
        self.close_reason = ""
        now = time.monotonic()
        self.last_received = now
        self.last_sent = now
        self.writer_done = asyncio.Event()
        # Called once, synchronously, when the connection starts closing (room detaches it).
        self.on_close: list[object] = []

    def __repr__(self) -> str:
        return f"<Connection #{self.id} {self.client} {self.document!r}>"

    def __hash__(self) -> int:
        return self.id

    def send_nowait(self, message: bytes) -> None:
        """Queue a message; close the connection with 1013 if it cannot keep up."""
        if self.closing:
            return
        queue = self._queue
        if len(queue) >= self.max_messages or (
            queue and self._queued_bytes + len(message) > self.max_bytes
        ):
            log.info(
                "%r: outbound queue full (%d messages, %d bytes); closing 1013",
                self,
                len(queue),
                self._queued_bytes,
            )
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outbound queue full")
            return
        queue.append(message)
        self._queued_bytes += len(message)
        self.last_sent = time.monotonic()
        self._wakeup.set()

    def close(self, code: int, reason: str = "") -> None:
        """Start closing: drop what is queued, detach from the room, send the close frame."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self._queue.clear()
        self._queued_bytes = 0
        self._wakeup.set()
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback(self)  # type: ignore[operator]

    def peer_closed(self, code: int) -> None:
        """The client closed (or vanished): detach from the room; no close frame to send."""
        self._peer_gone = True
        if not self.closing:
            self.close(code)
        self.close_code = code

    @property
    def queued(self) -> tuple[int, int]:
        return len(self._queue), self._queued_bytes

    async def run_writer(self) -> None:
        """Drain the queue into the socket; after close(), send the close frame and stop."""
        queue = self._queue
        send = self._ws.send_bytes
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while queue:
                    message = queue.popleft()
                    self._queued_bytes -= len(message)
                    await send(message)
                if self.closing:
                    if self._peer_gone:
                        return
                    await self._ws.close(self.close_code or CloseCode.NORMAL, self.close_reason)
                    return
        except (OSError, RuntimeError, WebSocketDisconnect, anyio.BrokenResourceError) as exc:
            # The peer is gone (uvicorn raises ClientDisconnected, an OSError); nothing to do.
            log.debug("%r: send failed: %r", self, exc)
        finally:
            self.writer_done.set()
