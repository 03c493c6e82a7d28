"""The PostgreSQL bus, for deployments that run PostgreSQL and nothing else.

NOTIFY carries only small messages: "document X has new committed rows" (COMMITTED), awareness,
state vectors, heartbeats. The update bytes travel in the update log itself: a process that holds
X reads the rows after the last one it has seen (or the newer snapshot, if a compaction folded
them meanwhile). So an update reaches other processes only once it is committed: latency is the
commit window plus a query, in exchange for no extra moving part (and no 8,000-byte limit).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

import anyio

from ..protocol import read_var_bytes, var_bytes
from . import (
    HEARTBEAT,
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


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PgBus:
    wants_commits = True  # the hub announces committed rows (COMMITTED) instead of UPDATEs

    def __init__(self, dsn: str, *, process_id: bytes | None = None) -> None:
        self.dsn = dsn
        self.process_id = process_id or new_process_id()
        self.connected = False
        self._outbox: Outbox[str] = Outbox()
        self.too_big = 0
        self.published = 0  # notifications handed to the publisher (for the metrics)

    def publish(self, document: str | None, kind: int, payload: bytes) -> None:
        if kind == UPDATE or not self.connected:
            return  # updates travel as committed rows, announced by COMMITTED
        body = var_bytes((document or "").encode()) + bytes([document is not None])
        text = base64.b64encode(body + encode(kind, self.process_id, payload)).decode("ascii")
        if len(text) > MAX_PAYLOAD:
            self.too_big += 1
            return
        self.published += 1
        self._outbox.put(text)

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

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    self._receive(handler, payload)

                await conn.add_listener(CHANNEL, on_notify)
                self.connected = True
                backoff = 0.1
                log.info("connected to the PostgreSQL bus")
                on_connected()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._publish_forever, conn, on_connected)
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
                if conn is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                        await conn.close()
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _receive(self, handler: Handler, payload: str) -> None:
        try:
            body = base64.b64decode(payload)
            name, pos = read_var_bytes(body, 0)
            has_document = body[pos] == 1
            envelope = decode(body[pos + 1 :])
        except Exception:
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
