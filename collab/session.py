"""One socket in one document (Hocuspocus calls it Connection, its socket ClientConnection).

A `Session` is what a Room sees as a member (room.Member): who it is (`ConnectionInfo`),
whether it may write, when its token expires, how many of its updates wait for a dependency.
It is made by admission (collab/admission.py) once a socket asks for a document, and joins the
room when the hooks have let it in. Its socket is either kind (`Socket` below): the fast path's
`Connection` (collab/connection.py) or the ASGI path's (collab/asgi_endpoint.py). A y-websocket
socket carries one session; the Hocuspocus protocol multiplexes documents over one socket, and
gives each of its documents a `Channel` (collab/protocols/hocuspocus.py) as the session's
socket.

The hot path does not go through the session: `send_frame`, `encode` and `send_nowait` are the
socket's own bound methods, copied onto the session when it is made, so a broadcast writes
straight into each member's socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from . import logs
from . import protocol as p
from .authorship import author_of
from .counts import REFUSED_INVALID, REFUSED_PENDING
from .documents import ConnectionSummary
from .errors import CloseCode, CollabError
from .hooks import ConnectionInfo
from .room import (
    BARE_MESSAGE,
    DEFLATE_FRAME,
    HOCUSPOCUS_OFFSET,
    PER_MEMBER,
    PLAIN_FRAME,
    Room,
    TooManyPending,
)

log = logging.getLogger(__name__)


class Socket(Protocol):
    """What a session needs of the socket that carries it."""

    id: int  # the connection id (Admission.new_id), the session's too

    framing: int  # room.PLAIN_FRAME, DEFLATE_FRAME, BARE_MESSAGE (or a Hocuspocus kind)

    @property
    def closing(self) -> bool: ...

    @property
    def last_received(self) -> float:
        """time.monotonic() of the last message from the client."""
        ...

    @property
    def last_sent(self) -> float:
        """And of the last one to it."""
        ...

    @property
    def started(self) -> float:
        """time.monotonic() when it opened."""
        ...

    @property
    def bytes_in(self) -> int:
        """Message bytes received."""
        ...

    @property
    def bytes_out(self) -> int:
        """Bytes sent (framed, as written)."""
        ...

    def encode(self, message: bytes) -> bytes: ...

    def send_frame(self, data: bytes) -> None: ...

    def send_nowait(self, message: bytes) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def keepalive(self, now: float) -> None:
        """The ticker's turn: ping a quiet client, drop one that stopped answering."""
        ...

    def authenticated(self, session: Session) -> None:
        """The hooks let `session` in (the Hocuspocus protocol answers with its scope)."""
        ...

    def joined(self, session: Session) -> None:
        """`session` is in its room: hand it what arrived meanwhile."""
        ...


PROTOCOLS = {
    DEFLATE_FRAME: "websocket+deflate",
    BARE_MESSAGE: "asgi",
    HOCUSPOCUS_OFFSET + PLAIN_FRAME: "hocuspocus",
    HOCUSPOCUS_OFFSET + DEFLATE_FRAME: "hocuspocus+deflate",
    HOCUSPOCUS_OFFSET + BARE_MESSAGE: "hocuspocus+asgi",
    PER_MEMBER: "hocuspocus",
}


class Session:
    __slots__ = (
        "_admission",
        "author",
        "encode",
        "expires_at",
        "framing",
        "id",
        "info",
        "ip",
        "pending_updates",
        "read_only",
        "room",
        "send_frame",
        "send_nowait",
        "socket",
    )

    def __init__(self, socket: Socket, info: ConnectionInfo, ip: str) -> None:
        self.socket = socket
        self.id = info.id
        self.info = info
        self.ip = ip
        self.read_only = False  # info.read_only, once authenticated
        self.author: str | None = None  # who writes through it, once authenticated
        self.expires_at: float | None = None  # wall-clock time the token expires
        self.room: Room | None = None  # once admitted
        self.pending_updates = 0  # updates still waiting for a dependency (Room._check_pending)
        self._admission: asyncio.Task[None] | asyncio.Handle | None = None
        # The hot path writes straight into the socket (see the module's docstring).
        self.framing = socket.framing
        self.encode: Callable[[bytes], bytes] = socket.encode
        self.send_frame: Callable[[bytes], None] = socket.send_frame
        self.send_nowait: Callable[[bytes], None] = socket.send_nowait

    def __repr__(self) -> str:
        return f"<Session #{self.id} {self.info.client} {self.info.document!r}>"

    @property
    def document(self) -> str:
        return self.info.document

    def log_context(self, **fields: Any) -> dict[str, Any]:
        """The `extra=` of a log line about this session's connection (logs.context)."""
        info = self.info
        return logs.context(
            self.id, document=info.document, user=self.author, client=info.client, **fields
        )

    @property
    def closing(self) -> bool:
        return self.socket.closing

    # -- admission -----------------------------------------------------------------------------

    def admit_with(self, admission: Coroutine[Any, Any, None]) -> None:
        """Run `admission` (hooks, authentication, join) in a task this session owns: closing
        the session cancels it."""
        self._admission = asyncio.get_running_loop().create_task(admission)

    def admit_soon(self, admission: Callable[[Session], None]) -> None:
        """Run `admission(self)` soon, in this loop turn, with no task (nothing to await);
        closing the session before then cancels it."""
        self._admission = asyncio.get_running_loop().call_soon(admission, self)

    def authenticated(self) -> None:
        """The hooks are done with `info`: take what they decided."""
        self.read_only = self.info.read_only
        self.author = author_of(self.info.context)
        expires = self.info.context.get("token_expires_at")
        self.expires_at = float(expires) if isinstance(expires, int | float) else None
        self.socket.authenticated(self)

    def joined(self, room: Room) -> None:
        """Admitted into `room` (which has sent us its sync step 1)."""
        self._admission = None
        self.room = room
        self.socket.joined(self)

    # -- messages ------------------------------------------------------------------------------

    def receive(self, message: bytes) -> bool:
        """Handle one message in the room; False once the session is closing."""
        return self._guarded(self.room.handle, message)  # type: ignore[union-attr]

    def receive_updates(self, messages: list[bytes]) -> bool:
        """Sync updates the client sent back to back, applied as one (Room.handle_updates)."""
        return self._guarded(self.room.handle_updates, messages)  # type: ignore[union-attr]

    def _guarded(self, handler: Callable[[Session, Any], None], argument: Any) -> bool:
        """Run a room handler; what it raises closes this session (and only this one)."""
        try:
            handler(self, argument)
        except CollabError as exc:
            log.info(
                "%r: %s (closing %d)",
                self,
                exc.reason,
                exc.code,
                extra=self.log_context(code=exc.code, reason=exc.reason),
            )
            self._count_refusal(exc, argument)
            self.close(exc.code, exc.reason)
        except Exception:
            log.exception(
                "%r: error handling a message",
                self,
                extra=self.log_context(code=CloseCode.INTERNAL_ERROR),
            )
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        return not self.socket.closing

    def _count_refusal(self, exc: CollabError, argument: Any) -> None:
        """An update (or a burst of them: a list) refused with a close: count why."""
        counts = self.room.counts if self.room is not None else None
        if counts is None:
            return
        burst = isinstance(argument, list)  # (receive_updates: sync updates only)
        if burst or (argument[:1] == b"\x00" and argument[1:2] in (b"\x01", b"\x02")):
            reason = REFUSED_PENDING if isinstance(exc, TooManyPending) else REFUSED_INVALID
            counts.refused[reason] += 1

    def add_pending(self, edits: int) -> int:
        self.pending_updates += edits
        return self.pending_updates

    # -- the ticker ----------------------------------------------------------------------------

    def tick(self, now: float, wall: float, idle_cutoff: float, heartbeat_due: float) -> None:
        """Once a tick: keepalive pings, token expiry (4401), idle timeout (4408), heartbeat."""
        socket = self.socket
        socket.keepalive(now)
        if socket.closing:
            return
        if self.expires_at is not None and wall >= self.expires_at:
            self.close(CloseCode.UNAUTHORIZED, "token expired")
        elif socket.last_received < idle_cutoff:
            self.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
        elif socket.last_sent <= heartbeat_due:
            socket.send_nowait(p.HEARTBEAT_MESSAGE)

    def summary(self) -> ConnectionSummary:
        socket = self.socket
        opened = time.time() - (time.monotonic() - socket.started)
        return ConnectionSummary(
            self.id,
            self.info.document,
            self.author,
            self.info.client,
            PROTOCOLS.get(self.framing, "websocket"),
            int(opened * 1000),
            socket.bytes_in,
            socket.bytes_out,
            self.read_only,
        )

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Close this session: with one session per socket, the socket (a Hocuspocus channel
        decides whether the code ends its document alone or the whole socket)."""
        self.socket.close(code, reason)

    def detach(self) -> None:
        """The socket is closing: stop admission, leave the room (its cursors go at once)."""
        if self._admission is not None:
            self._admission.cancel()
            self._admission = None
        if self.room is not None:
            self.room.remove(self)
