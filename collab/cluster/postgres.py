"""The PostgreSQL bus, for deployments that run PostgreSQL and nothing else.

NOTIFY carries only small messages: "document X has new committed rows" (COMMITTED), awareness,
state vectors, heartbeats. The update bytes travel in the update log itself: a process that holds
X reads the rows after the last one it has seen (or the newer snapshot, if a compaction folded
them meanwhile). So an update reaches other processes only once it is committed: latency is the
commit window plus a query, in exchange for no extra moving part (and no 8,000-byte limit).

A message that does not fit one NOTIFY (a y-webrtc offer, a room's cursors at once, a long
stateless message) goes as PART envelopes, one NOTIFY each, up to MAX_MESSAGE bytes; `Parts`
puts them back together. A sender's notifications arrive in the order it sent them, so a part
out of turn means one was lost, and the message with it (at most once, as every message here).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

from ..errors import ProtocolError
from ..protocol import read_var_bytes, read_var_uint, var_bytes, write_var_uint
from . import (
    HEARTBEAT,
    PART,
    UPDATE,
    Handler,
    Outbox,
    connection_errors,
    decode,
    dispatch,
    encode,
    new_process_id,
)

log = logging.getLogger(__name__)

CHANNEL = "collab_bus"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8,000 bytes per NOTIFY payload
# A message's bytes one PART carries: base64 makes 5,925 bytes 7,900 characters, less the
# part's own envelope (36 bytes at most).
PART_BYTES = 5_880
MAX_MESSAGE = 1 << 20  # a larger message is not sent (too_big); 179 NOTIFYs at most
MAX_PARTS = -(-MAX_MESSAGE // PART_BYTES)


class Parts:
    """The messages being put back together from their PARTs, one per sender at most (its
    parts come in order). `add` returns a message once its last part is there."""

    def __init__(self) -> None:
        self._open: dict[bytes, tuple[int, int, list[bytes]]] = {}  # sender -> number, of, parts

    def __len__(self) -> int:
        return len(self._open)

    def add(self, sender: bytes, payload: bytes) -> bytes | None:
        try:
            number, pos = read_var_uint(payload, 0)
            index, pos = read_var_uint(payload, pos)
            count, pos = read_var_uint(payload, pos)
        except ProtocolError:
            return None
        found = self._open.pop(sender, None)
        if index == 0 and 0 < count <= MAX_PARTS:
            found = (number, count, [])  # (what was open lost a part: it is forgotten)
        elif found is None or found[0] != number or len(found[2]) != index:
            return None  # a part went missing: the rest of this message is dropped
        found[2].append(payload[pos:])
        if len(found[2]) == found[1]:
            return b"".join(found[2])
        self._open[sender] = found
        return None

    def clear(self) -> None:
        self._open.clear()


def notification_head(document: str | None) -> bytes:
    """What a notification's bytes start with: its document (a room's channel) or none (the
    shared channel), read back by PgBus._handle."""
    return var_bytes((document or "").encode()) + bytes([document is not None])


def parts_of(sender: bytes, number: int, message: bytes) -> list[bytes]:
    """`message` (a notification's bytes) as PART envelopes' notification bytes."""
    count = -(-len(message) // PART_BYTES)
    head = notification_head(None)  # the parts travel on the shared channel
    return [
        head
        + encode(
            PART,
            sender,
            write_var_uint(number)
            + write_var_uint(index)
            + write_var_uint(count)
            + message[index * PART_BYTES : (index + 1) * PART_BYTES],
        )
        for index in range(count)
    ]


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _queue_notification(
    received: asyncio.Queue[str], _conn: Any, _pid: int, _channel: str, payload: str
) -> None:
    received.put_nowait(payload)


class PgBus:
    wants_commits = True  # the hub announces committed rows (COMMITTED) instead of UPDATEs

    def __init__(self, dsn: str, *, process_id: bytes | None = None) -> None:
        self.dsn = dsn
        self.process_id = process_id or new_process_id()
        self.connected = False
        self._outbox: Outbox[str] = Outbox()
        self.too_big = 0
        self.published = 0  # notifications handed to the publisher (for the metrics)
        self._messages_in_parts = 0  # the number of the last one sent in parts
        self._parts = Parts()

    def publish(self, document: str | None, kind: int, payload: bytes) -> None:
        if kind == UPDATE or not self.connected:
            return  # updates travel as committed rows, announced by COMMITTED
        message = notification_head(document) + encode(kind, self.process_id, payload)
        text = base64.b64encode(message).decode("ascii")
        if len(text) <= MAX_PAYLOAD:
            self._outbox.put(text)
            self.published += 1
        elif len(message) <= MAX_MESSAGE:
            self._messages_in_parts += 1
            for part in parts_of(self.process_id, self._messages_in_parts, message):
                self._outbox.put(base64.b64encode(part).decode("ascii"))
                self.published += 1
        else:
            self.too_big += 1

    def message_counts(self) -> tuple[int, int]:
        """(notifications published, dropped: too big, outbox overflow, lost with a
        connection) since start."""
        box = self._outbox
        return self.published, self.too_big + box.dropped + box.cleared

    async def join(self, document: str) -> None:
        pass  # one channel for every document: nothing to subscribe

    def leave(self, document: str) -> None:
        pass

    async def run(
        self,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        """(on_subscribed is never called: one channel, listened to before on_connected.)"""
        import asyncpg

        backoff = 0.1
        while True:
            conn: Any = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())

                received: asyncio.Queue[str] = asyncio.Queue()  # (see _receive_forever)
                await conn.add_listener(CHANNEL, partial(_queue_notification, received))
                self.connected = True
                backoff = 0.1
                log.info("connected to the PostgreSQL bus")
                on_connected()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._publish_forever, conn, on_connected)
                    tg.start_soon(self._receive_forever, handler, received)
                    await lost.wait()
                    tg.cancel_scope.cancel()
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                BaseExceptionGroup,
            ) as exc:
                kinds = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
                log.warning(
                    "PostgreSQL bus unavailable (%s); serving local clients only",
                    connection_errors(exc, kinds),
                )
            finally:
                self.connected = False
                self._outbox.clear()
                self._parts.clear()  # (what was sent meanwhile is lost: the rooms resync)
                if conn is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                        await conn.close()
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _receive_forever(self, handler: Handler, received: asyncio.Queue[str]) -> None:
        """Hand each notification to the handler in this task, in order. asyncpg calls its
        listeners from the event loop outside any task, and there, when sniffio is installed
        (httpx 0.27 and many other packages bring it), anyio finds no async library: the
        handler's `start_soon` raised, and every update from the other processes was lost."""
        while True:
            self._receive(handler, await received.get())

    def _receive(self, handler: Handler, payload: str) -> None:
        try:
            self._handle(handler, base64.b64decode(payload))
        except ValueError:  # (not base64)
            return

    def _handle(self, handler: Handler, message: bytes) -> None:
        try:
            name, pos = read_var_bytes(message, 0)
            has_document = message[pos] == 1
            envelope = decode(message[pos + 1 :])
        except Exception:
            return
        if envelope is not None and envelope.kind == PART:
            if envelope.sender != self.process_id:
                whole = self._parts.add(envelope.sender, envelope.payload)
                if whole is not None:
                    self._handle(handler, whole)
            return
        if envelope is None or (
            envelope.sender == self.process_id and (has_document or envelope.kind != HEARTBEAT)
        ):
            return  # our own, but for our heartbeats (see collab.cluster.Bus)
        dispatch(handler, name.decode("utf-8", "replace") if has_document else None, envelope)

    async def _publish_forever(self, conn: Any, on_connected: Callable[[], None]) -> None:
        async for batch in self._outbox.batches(500):
            await conn.executemany("SELECT pg_notify($1, $2)", [(CHANNEL, text) for text in batch])
            if self._outbox.overflowed():
                on_connected()

    async def close(self) -> None:
        if self.connected:
            await self._outbox.flushed(0.5)
        self.connected = False
