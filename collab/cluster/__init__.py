"""Cluster mode: processes that hold the same document exchange its updates and awareness.

A bus carries envelopes on one channel per document, plus heartbeats on a shared channel:

    [version][kind][process id: 16 bytes][payload]

    UPDATE     a Yjs update a local client made (the origin process persists it)
    AWARENESS  an awareness update from a local client (owned by the origin process)
    SYNC       the sender's state vector; a holder answers with an UPDATE of what the sender
               lacks, and (flag byte 1) with a SYNC of its own so the exchange goes both ways
    HEARTBEAT  "I am alive" (shared channel), once a tick; BYE "I am stopping"
    COMMITTED  "I committed new rows of this document's log" (the PostgreSQL bus, whose
               updates travel through the log rather than the bus)
    BATCH      several envelopes of one sender on one channel, in order, as one message (the
               Redis bus: one PUBLISH, and one copy of it back to us, instead of one per update);
               its payload is [kind][length: var uint][payload], repeated
    SIGNAL     a y-webrtc signalling message published here (shared channel): [topic: var
               bytes][the JSON text]; every process hands it to its subscribers of the topic
    STATELESS  a Hocuspocus stateless message the server sent to all of a document's clients
               (DocumentService.send_stateless): the UTF-8 text; each holder sends it to its
               own Hocuspocus clients of the document (a peer that knows no such kind ignores it)
    PART       one part of a message too big for one message of the bus (the PostgreSQL bus: a
               NOTIFY carries 8,000 bytes): [message number][part][parts] (var uints), then
               its share of the message's bytes; the bus puts each sender's parts back
               together, in order, and handles the whole (a peer that knows no PART ignores it)

Delivery is at most once (Redis pub/sub, PostgreSQL NOTIFY), so nothing relies on it: a process
that opens a document, or reconnects to the bus, exchanges state vectors for every room it holds;
so it does for a document whose subscription was confirmed late, and with a peer it hears from
again after it took it for gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio

from ..errors import ProtocolError
from ..protocol import read_var_bytes, write_var_uint

log = logging.getLogger(__name__)
T = TypeVar("T")

VERSION = 1
UPDATE, AWARENESS, SYNC, HEARTBEAT, BYE, COMMITTED, BATCH, SIGNAL = 1, 2, 3, 4, 5, 6, 7, 8
STATELESS, PART = 9, 10
# What only the other holders of a document hear: a bus publishes none of it where no other
# process holds the document (the state exchange covers whoever opens it later).
FOR_HOLDERS = frozenset((UPDATE, AWARENESS, STATELESS))
PID_BYTES = 16


def new_process_id() -> bytes:
    return os.urandom(PID_BYTES)


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: int
    sender: bytes
    payload: bytes


def encode(kind: int, sender: bytes, payload: bytes) -> bytes:
    return bytes((VERSION, kind)) + sender + payload


def decode(data: bytes) -> Envelope | None:
    """None for anything that is not a well-formed envelope of this version."""
    if len(data) < 2 + PID_BYTES or data[0] != VERSION:
        return None
    return Envelope(data[1], data[2 : 2 + PID_BYTES], data[2 + PID_BYTES :])


def encode_batch(sender: bytes, items: Sequence[tuple[int, bytes]]) -> bytes:
    """One message for `items` (kind, payload): a plain envelope when there is one, so what a
    process sends at a time stays readable by a peer without BATCH (which ignores the kind)."""
    if len(items) == 1:
        kind, payload = items[0]
        return encode(kind, sender, payload)
    parts = [bytes((VERSION, BATCH)), sender]
    for kind, payload in items:
        parts += (bytes((kind,)), write_var_uint(len(payload)), payload)
    return b"".join(parts)


def decode_all(data: bytes) -> list[Envelope]:
    """The envelopes in a message, a BATCH unpacked; [] for anything malformed."""
    envelope = decode(data)
    if envelope is None:
        return []
    if envelope.kind != BATCH:
        return [envelope]
    sender, body, pos = envelope.sender, envelope.payload, 0
    out = []
    try:
        while pos < len(body):
            kind = body[pos]
            payload, pos = read_var_bytes(body, pos + 1)
            out.append(Envelope(kind, sender, payload))
    except ProtocolError:
        return []
    return out


# (document name or None for the shared channel, envelope)
Handler = Callable[[str | None, Envelope], None]


class Bus(Protocol):
    """What the hub needs from a bus. Every method returns at once; none raises when the broker
    is away (messages are dropped and the rooms resync when it is back).

    The handler gets every other process's messages, and this process's own HEARTBEATs when
    they come back: the hub measures its peers' silence in them (the bus's time) rather than
    by the clock, which runs on when we read late."""

    process_id: bytes
    connected: bool

    async def run(
        self,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        """Connect, keep reconnecting, deliver messages; call on_connected after each (re)connect
        once every joined channel is subscribed, and after dropping messages (Outbox), and
        on_subscribed(document) when a join gave up waiting and its subscription is confirmed
        later: each time, messages were lost and the hub exchanges state again."""

    async def join(self, document: str) -> None:
        """Subscribe to a document's channel; returns once messages for it will be delivered,
        or at once when the broker is away (on_connected will follow), or after a bounded
        wait (on_subscribed will follow): whatever was published there meanwhile is lost."""

    def leave(self, document: str) -> None: ...

    def publish(self, document: str | None, kind: int, payload: bytes) -> None: ...

    async def close(self) -> None: ...


def dispatch(handler: Handler, document: str | None, envelope: Envelope) -> None:
    """Hand a message to the hub; a failure is logged and never reaches the bus connection."""
    try:
        handler(document, envelope)
    except Exception:
        log.exception("bus message for %r failed", document)


class Outbox(Generic[T]):
    """What a bus has yet to send: filled without awaiting, drained in batches by its
    publisher task, bounded (beyond `limit` new items are dropped and counted: see
    overflowed())."""

    def __init__(self, limit: int = 100_000) -> None:
        self.items: deque[T] = deque()
        self.limit = limit
        self.dropped = 0
        self._dropped_before = 0  # what overflowed() has already reported
        self.cleared = 0  # items forgotten by `clear` (for the metrics: dropped too)
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Event()

    def __len__(self) -> int:
        return len(self.items)

    def put(self, item: T) -> None:
        if len(self.items) >= self.limit:
            self.dropped += 1
            return
        self.items.append(item)
        self._wakeup.set()

    def clear(self) -> None:
        """Forget what is queued (a bus that lost its connection: it resyncs on the next)."""
        self.cleared += len(self.items)
        self.items.clear()
        self._dropped_before = self.dropped

    def overflowed(self) -> bool:
        """True once, when items were dropped and what is queued has gone out: what was
        dropped reached no one, and the bus must have the rooms exchange state again."""
        if self.items or self.dropped == self._dropped_before:
            return False
        log.warning("the bus fell behind: %d messages dropped", self.dropped - self._dropped_before)
        self._dropped_before = self.dropped
        return True

    async def batches(self, size: int) -> AsyncIterator[list[T]]:
        items = self.items
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._flushed.clear()
            while items:
                yield [items.popleft() for _ in range(min(len(items), size))]
            self._flushed.set()

    async def flushed(self, wait_s: float) -> None:
        """Wait (bounded) until what is queued now has been sent."""
        if self.items:
            with anyio.move_on_after(wait_s):
                await self._flushed.wait()


def connection_errors(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException:
    """`exc` if it is (or is a group of nothing but) connection errors of `kinds`; re-raise
    anything else, so a bug is never mistaken for a broker going away."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kinds)
        if rest is not None:
            raise rest
        assert matched is not None
        return matched.exceptions[0]
    return exc
