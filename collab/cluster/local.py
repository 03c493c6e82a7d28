"""The local bus: the `--workers` processes of one machine, relayed by their supervisor
(collab/workers.py) over a Unix socket each. No broker, no network.

The supervisor routes every connection it can name a document for to the worker that owns the
document (a stable hash of its name), so a document is normally open in one worker only and this
bus carries nothing for it. A document reaches a second worker only by a socket the supervisor
could not route by it: the Hocuspocus protocol's /hocuspocus (many documents on one socket),
a keep-alive HTTP connection whose later request names another document. Then the two workers
exchange its updates here, as processes do over Redis (collab/cluster/sync.py).

What a worker sends costs nothing while a document is its alone: the supervisor knows who joined
which channel and tells a worker when a document it holds gains a second holder (SHARED) and when
it is alone again (ALONE). Until told SHARED, a worker publishes nothing FOR_HOLDERS there.
Nothing is lost by that: a worker that joins publishes a SYNC with its state vector right after,
and the supervisor relays it after the SHARED it sent the other holders (one ordered stream per
worker), so their answer carries everything it lacks.

Frames, both ways: [length: u32, of what follows][op: u8][name length: u16][name][data]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

from . import FOR_HOLDERS, Handler, decode_all, dispatch, encode, new_process_id

log = logging.getLogger(__name__)

# worker -> supervisor
JOIN, LEAVE, PUBLISH = 1, 2, 3
# supervisor -> worker
JOINED, SHARED, ALONE, MESSAGE = 11, 12, 13, 14
# The shared channel's name (heartbeats, BYE, signalling): no document has an empty name.
ALL = b""

HEADER = struct.Struct("!IBH")
JOIN_WAIT_S = 2.0
WRITE_BUFFER_LIMIT = 64 * 1024 * 1024  # beyond this, messages are dropped (and the rooms resync)


def frame(op: int, name: bytes, data: bytes = b"") -> bytes:
    return HEADER.pack(3 + len(name) + len(data), op, len(name)) + name + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes, bytes]:
    """(op, name, data, the whole frame as read) from the stream; IncompleteReadError at EOF."""
    head = await reader.readexactly(HEADER.size)
    length, op, name_length = HEADER.unpack(head)
    body = await reader.readexactly(length - 3)
    return op, body[:name_length], body[name_length:], head + body


class LocalBus:
    """A worker's end of the supervisor's relay (the `Bus` protocol)."""

    def __init__(self, sock: socket.socket, process_id: bytes | None = None) -> None:
        self.process_id = process_id or new_process_id()
        self.connected = False
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._documents: set[str] = set()
        self._shared: set[str] = set()  # documents another worker holds too
        self._joining: dict[str, asyncio.Future[None]] = {}
        self._pending: list[bytes] = []  # frames to write at the end of this loop turn
        self._overflowed = False
        self._on_connected: Callable[[], None] | None = None
        self.published = 0
        self.dropped = 0
        self.unsent = 0  # FOR_HOLDERS envelopes of documents no other worker holds

    def message_counts(self) -> tuple[int, int]:
        return self.published, self.dropped

    # -- the hub's side ----------------------------------------------------------------------

    def publish(self, document: str | None, kind: int, payload: bytes) -> None:
        if not self.connected:
            return
        if document is None:
            name = ALL
        elif document in self._shared:
            name = document.encode("utf-8")
        elif kind in FOR_HOLDERS:
            self.unsent += 1
            return
        else:
            name = document.encode("utf-8")
        self.published += 1
        self._send(frame(PUBLISH, name, encode(kind, self.process_id, payload)))

    async def join(self, document: str) -> None:
        self._documents.add(document)
        if not self.connected:
            return
        waiter = self._joining.get(document)
        if waiter is None:
            waiter = self._joining[document] = asyncio.get_running_loop().create_future()
            self._send(frame(JOIN, document.encode("utf-8")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), JOIN_WAIT_S)

    def leave(self, document: str) -> None:
        self._documents.discard(document)
        self._shared.discard(document)
        if self.connected:
            self._send(frame(LEAVE, document.encode("utf-8")))

    async def close(self) -> None:
        self._flush()
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 0.5)
        self.connected = False

    # -- the connection ----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        writer = self._writer
        if not pending or writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            # The supervisor (or the other worker behind it) does not keep up: drop, and have
            # the rooms exchange state once it does.
            self.dropped += len(pending)
            if not self._overflowed:
                log.warning("the local bus fell behind: dropping messages")
            self._overflowed = True
            return
        writer.write(b"".join(pending))
        if self._overflowed and self._on_connected is not None:
            self._overflowed = False
            self._on_connected()

    async def run(
        self,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self._on_connected = on_connected
        for document in self._documents:  # opened before we were connected
            self._send(frame(JOIN, document.encode("utf-8")))
        self.connected = True
        on_connected()
        try:
            while True:
                op, name, data, _ = await read_frame(reader)
                if op == MESSAGE:
                    channel = name.decode("utf-8", "replace") if name else None
                    for envelope in decode_all(data):
                        dispatch(handler, channel, envelope)
                    continue
                document = name.decode("utf-8", "replace")
                if op == SHARED:
                    if document in self._documents:
                        self._shared.add(document)
                elif op == ALONE:
                    self._shared.discard(document)
                elif op == JOINED:
                    if data == b"\x01" and document in self._documents:
                        self._shared.add(document)
                    waiter = self._joining.pop(document, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
        except (asyncio.IncompleteReadError, OSError):
            log.warning("the supervisor's bus closed: serving local clients only")
        finally:
            self.connected = False
            self._shared.clear()
