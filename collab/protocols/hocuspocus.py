"""The Hocuspocus protocol (`@hocuspocus/provider` 4.x, Tiptap's backend) at `/hocuspocus`.

One socket carries many documents; every message starts with its document's address (the
message layout: collab/protocols/hocuspocus_codec.py).

After its address a sync, awareness or query-awareness message is byte for byte the
y-websocket message, and a document here is what it is on /ws: the socket's `Multiplexer`
gives each document a `Channel`, which is the socket of a `Session` (collab/session.py) made by
the same admission (hooks, token, limits), in the same room (collab/room.py), with the same
close codes, counters and metrics. A channel puts the address in front of everything the room
sends; the room encodes a broadcast once per framing kind, and the Hocuspocus members of a room
share one (its name), so fan-out still frames once (`room.HOCUSPOCUS_OFFSET`). A session-aware
address is one member's own (`room.PER_MEMBER`).

What the provider expects, and how it is answered:
- A document opens with its Auth message (what came before it is held, within the pre-auth
  caps per document). The token goes to on_authenticate; success answers Authenticated with
  the scope ("readonly" when a hook made the connection read-only), refusal PermissionDenied
  with the reason, and the socket stays open for its other documents.
- Each sync step 2 and update is answered with SyncStatus: 1 once applied (read-only: 1 only
  for a step 2 that adds nothing, as the provider's reconnect sends), 0 when dropped. A step 1
  is answered with our step 2, preceded by our step 1 except for the first (the join already
  sent one), as Hocuspocus does so `forceSync` settles.
- A code that concerns one document (4401/4403/4404, 1002/1003, 1000) ends that document alone
  with a Close message carrying the reason; any other (4000, 4408, 1001, 1008, 1011, 1013)
  closes the socket with the code, since the provider reconnects (and re-opens every document)
  only when its socket closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

from .. import protocol as p
from ..errors import CloseCode, CollabError, ProtocolError
from ..room import HOCUSPOCUS_OFFSET, PER_MEMBER
from .hocuspocus_codec import (
    AUTH,
    AUTH_TOKEN,
    AWARENESS,
    CLOSE,
    PING,
    PONG,
    PONG_MESSAGE,
    QUERY_AWARENESS,
    SESSION_SEPARATOR,
    STATELESS,
    SYNC,
    adds_nothing,
    authenticated_message,
    close_message,
    parse_envelope,
    permission_denied_message,
    read_var_string,
    sync_status_message,
    var_string,
)

if TYPE_CHECKING:
    from ..admission import Admission
    from ..session import Session

log = logging.getLogger(__name__)

# Documents one socket may have waiting for authentication at once, and open in all.
MAX_PENDING_DOCUMENTS: Final = 100
MAX_DOCUMENTS: Final = 1000

# Close codes that end one document (a Close message), not the socket.
DOCUMENT_CODES: Final = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.NOT_FOUND,
    }
)


# -- the socket's side ------------------------------------------------------------------------


class Host(Protocol):
    """What the multiplexer needs of its socket (collab.connection.BaseConnection)."""

    id: int
    admission: Admission
    framing: int
    closing: bool
    last_received: float
    last_sent: float
    started: float
    bytes_in: int
    bytes_out: int

    def encode(self, message: bytes) -> bytes: ...

    def send_frame(self, data: bytes) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def keepalive(self, now: float) -> None: ...


class Multiplexer:
    """The documents of one /hocuspocus socket, by address; routes each message to its own."""

    __slots__ = ("channels", "closed", "headers", "host", "ip", "port", "query")

    def __init__(
        self, host: Host, query: str, headers: Mapping[str, str], ip: str, port: int
    ) -> None:
        self.host = host
        self.query = query
        self.headers = headers
        self.ip = ip
        self.port = port
        self.channels: dict[str, Channel] = {}
        # Documents we closed (a Close or a PermissionDenied was sent): the provider stays
        # attached and keeps sending for them until it opens them again with an Auth.
        self.closed: set[str] = set()

    def received(self, data: bytes) -> None:
        """One binary message from the client (the socket checked its rate limits)."""
        if len(data) == 1:  # connection-level Ping / Pong
            if data[0] == PING:
                self.host.send_frame(self.host.encode(PONG_MESSAGE))
            elif data[0] != PONG:
                self.host.close(CloseCode.PROTOCOL_ERROR, "malformed message")
            return
        try:
            key, kind, pos = parse_envelope(data)
        except CollabError as exc:
            self.host.close(exc.code, exc.reason)
            return
        channel = self.channels.get(key)
        if channel is None:
            if kind == CLOSE or (kind != AUTH and key in self.closed):
                return  # a document we closed: dropped until it is opened again
            channel = self._open(key)
            if channel is None:
                return
        channel.received(kind, data, pos)

    def _open(self, key: str) -> Channel | None:
        if len(self.channels) >= MAX_DOCUMENTS:
            self.host.close(CloseCode.POLICY_VIOLATION, "too many documents on one connection")
            return None
        waiting = sum(1 for c in self.channels.values() if c.session is None or not c.joined_)
        if waiting >= MAX_PENDING_DOCUMENTS:
            self.host.close(
                CloseCode.POLICY_VIOLATION, "too many documents awaiting authentication"
            )
            return None
        channel = Channel(self, key)
        self.channels[key] = channel
        self.closed.discard(key)
        return channel

    def forget(self, channel: Channel) -> None:
        """`channel`'s document was closed (not the socket)."""
        if self.channels.get(channel.key) is channel:
            del self.channels[channel.key]
            if len(self.closed) < MAX_DOCUMENTS:
                self.closed.add(channel.key)

    def detach_all(self) -> None:
        """The socket is closing: every document leaves its room at once."""
        for channel in self.channels.values():
            channel.detach()

    def ended(self, code: int | None, reason: str) -> None:
        """The socket is gone: each document's session ends with its code."""
        channels, self.channels = self.channels, {}
        for channel in channels.values():
            channel.ended(code, reason)


class Channel:
    """One document on a /hocuspocus socket: the socket of its `Session` (session.Socket)."""

    __slots__ = (
        "_closed",
        "_join_step1",
        "address",
        "encode",
        "framing",
        "host",
        "id",
        "joined_",
        "key",
        "mux",
        "name",
        "pending",
        "pending_bytes",
        "send_frame",
        "session",
    )

    def __init__(self, mux: Multiplexer, key: str) -> None:
        host = mux.host
        self.mux = mux
        self.host = host
        self.key = key
        self.name = key.partition(SESSION_SEPARATOR)[0]
        self.address = address = var_string(key)
        self.id = host.admission.new_id()
        self.session: Session | None = None  # once its Auth message arrived
        self.joined_ = False  # the session is in its room
        self.pending: list[tuple[int, bytes, int]] = []  # what came before that
        self.pending_bytes = 0
        self._closed = False
        self._join_step1 = False  # the join sent our step 1: the client's next needs no other
        self.encode: Callable[[bytes], bytes]
        self.send_frame: Callable[[bytes], None]
        if SESSION_SEPARATOR in key:
            # This member's bytes are its own: the room hands over the bare message.
            self.framing = PER_MEMBER
            self.encode = _same
            self.send_frame = self.send_nowait
        else:
            # Every Hocuspocus member of the room has this address: one encoding for them all.
            self.framing = HOCUSPOCUS_OFFSET + host.framing
            encode = host.encode
            self.encode = lambda message: encode(address + message)
            self.send_frame = host.send_frame

    def __repr__(self) -> str:
        return f"<Channel #{self.id} {self.name!r} of {self.host!r}>"

    # -- session.Socket ------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closed or self.host.closing

    @property
    def last_received(self) -> float:
        return self.host.last_received

    @property
    def last_sent(self) -> float:
        return self.host.last_sent

    @property
    def started(self) -> float:
        return self.host.started

    @property
    def bytes_in(self) -> int:
        return self.host.bytes_in

    @property
    def bytes_out(self) -> int:
        return self.host.bytes_out

    def send_nowait(self, message: bytes) -> None:
        if not self.closing:
            host = self.host
            host.send_frame(host.encode(self.address + message))

    def keepalive(self, now: float) -> None:
        self.host.keepalive(now)

    def authenticated(self, session: Session) -> None:
        self._send(authenticated_message(self.address, session.read_only))

    def joined(self, session: Session) -> None:
        self.joined_ = True
        self._join_step1 = True
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        for kind, data, pos in pending:
            if self.closing:
                return
            self._handle(session, kind, data, pos)

    def close(self, code: int, reason: str = "") -> None:
        """A code about this document alone ends it with a Close message (PermissionDenied
        while it was being admitted); any other closes the socket (see the module docstring)."""
        if self.closing:
            return
        if code not in DOCUMENT_CODES and (self.joined_ or code != CloseCode.IDLE_TIMEOUT):
            self.host.close(code, reason)
            return
        if self.joined_:
            self._send(close_message(self.address, reason))
        else:
            self._send(permission_denied_message(self.address, reason or "permission-denied"))
        self._closed = True
        self.mux.forget(self)
        self.detach()
        session = self.session
        if session is not None:
            log.info(
                "%r closed with %s %s",
                session,
                code,
                reason,
                extra=session.log_context(code=code, reason=reason),
            )
            self.host.admission.closed(session, code, reason)

    # -- the multiplexer's side ----------------------------------------------------------------

    def received(self, kind: int, data: bytes, pos: int) -> None:
        session = self.session
        if session is None:
            if kind == AUTH:
                self._authenticate(data, pos)
            else:
                self._hold(kind, data, pos)
        elif not self.joined_:
            if kind != AUTH:
                self._hold(kind, data, pos)
        else:
            self._handle(session, kind, data, pos)

    def _authenticate(self, data: bytes, pos: int) -> None:
        mux, host = self.mux, self.host
        try:
            if data[pos : pos + 1] != bytes((AUTH_TOKEN,)):
                raise ProtocolError("expected a token")
            token, pos = read_var_string(data, pos + 1)
            if pos < len(data):
                read_var_string(data, pos)  # the provider's version: not needed
        except CollabError as exc:
            host.close(exc.code, exc.reason)
            return
        try:
            self.session = host.admission.open_document(
                self, self.name, token or None, mux.query, mux.headers, mux.ip, mux.port
            )
        except CollabError as exc:
            if exc.code in DOCUMENT_CODES:
                self._send(permission_denied_message(self.address, exc.reason))
                mux.forget(self)
                self._closed = True
            else:
                host.close(exc.code, exc.reason)

    def _hold(self, kind: int, data: bytes, pos: int) -> None:
        """Keep a message that came before this document was admitted (within the caps)."""
        self.pending.append((kind, data, pos))
        self.pending_bytes += len(data)
        s = self.host.admission.settings
        if len(self.pending) > s.pre_auth_max_messages or self.pending_bytes > s.pre_auth_max_bytes:
            self.host.close(CloseCode.POLICY_VIOLATION, "too much data before authentication")

    def _handle(self, session: Session, kind: int, data: bytes, pos: int) -> None:
        if kind == SYNC:
            self._sync(session, data, pos)
        elif kind in (AWARENESS, QUERY_AWARENESS):
            session.receive(data[pos - 1 :])  # the y-websocket message, type byte and all
        elif kind == STATELESS:
            try:
                payload, end = read_var_string(data, pos)
                if end != len(data):
                    raise ProtocolError("trailing bytes after stateless message")
            except CollabError as exc:
                self.close(exc.code, exc.reason)
                return
            self.host.admission.stateless(session, payload)
        elif kind == CLOSE:
            self.close(CloseCode.NORMAL, "provider_initiated")
        elif kind == AUTH:
            # A token sent again (Hocuspocus' onTokenSync): not supported, the first one holds.
            log.debug("%r: a second token ignored", session, extra=session.log_context())
        else:
            # A newer provider's message: ignored, as Hocuspocus does with what it does not know.
            log.debug("%r: message type %d ignored", session, kind, extra=session.log_context())

    def _sync(self, session: Session, data: bytes, pos: int) -> None:
        message = data[pos - 1 :]  # [0, step, varBytes]: the y-websocket sync message
        step = message[1] if len(message) > 1 else -1
        room = session.room
        assert room is not None
        if step == p.SYNC_STEP1:
            if self._join_step1:
                self._join_step1 = False
            else:
                self.send_nowait(p.sync_step1(room.doc.get_state()))
            session.receive(message)
            return
        if step not in (p.SYNC_STEP2, p.SYNC_UPDATE):
            session.receive(message)  # refused there (unknown sync message type)
            return
        applied = True
        if session.read_only:
            applied = False
            if step == p.SYNC_STEP2:
                try:
                    update = p.parse_sync(message).payload
                    applied = adds_nothing(room.encode_update(), update)
                except CollabError as exc:
                    self.close(exc.code, exc.reason)
                    return
        if session.receive(message):
            self._send(sync_status_message(self.address, applied))

    def _send(self, message: bytes) -> None:
        if not self.host.closing:
            self.host.send_frame(self.host.encode(message))

    def detach(self) -> None:
        """Leave the room (and stop an admission under way)."""
        self.pending = []
        if self.session is not None:
            self.session.detach()

    def ended(self, code: int | None, reason: str) -> None:
        """The socket is gone: the session ends with the socket's code."""
        if self._closed:
            return
        self._closed = True
        if self.session is not None:
            self.host.admission.closed(self.session, code, reason)


def _same(message: bytes) -> bytes:
    return message
