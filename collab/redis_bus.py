"""The Redis bus: pub/sub on one channel per document plus a heartbeat channel.

One connection subscribes, another publishes in pipelined batches. When Redis goes away the
process keeps serving its own clients; it reconnects with backoff, subscribes again and tells
the hub, which re-syncs every room by state-vector exchange (pub/sub is at most once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anyio

from .cluster import (
    Handler,
    Outbox,
    connection_errors,
    decode,
    dispatch,
    encode,
    new_process_id,
)

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 100_000
SUBSCRIBE_WAIT_S = 2.0


class RedisBus:
    def __init__(self, url: str, *, prefix: str = "collab:", process_id: bytes | None = None):
        self.url = url
        self.process_id = process_id or new_process_id()
        self.connected = False
        self._prefix = prefix.encode()
        self._doc_prefix = self._prefix + b"doc:"
        self._heartbeat = self._prefix + b"hb"
        self._documents: set[str] = set()
        # (channel, envelope) to publish, or (b"", channel) to unsubscribe, in order
        self._outbox: Outbox[tuple[bytes, bytes]] = Outbox(OUTBOX_LIMIT)
        self._pubsub: Any = None
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._subscribed_at_start: list[bytes] = []

    def channel(self, document: str) -> bytes:
        return self._doc_prefix + document.encode("utf-8")

    # -- the hub's side ----------------------------------------------------------------------

    def publish(self, document: str | None, kind: int, payload: bytes) -> None:
        if not self.connected:
            return  # stale by the time Redis is back; the reconnect resync covers it
        channel = self._heartbeat if document is None else self.channel(document)
        self._outbox.put((channel, encode(kind, self.process_id, payload)))

    async def join(self, document: str) -> None:
        self._documents.add(document)
        pubsub = self._pubsub
        if not self.connected or pubsub is None:
            return
        channel = self.channel(document)
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        try:
            await pubsub.subscribe(channel)
            with anyio.move_on_after(SUBSCRIBE_WAIT_S):
                await confirmed.wait()
        except Exception as exc:  # the connection dropped: the reconnect subscribes again
            log.debug("subscribe %r failed: %r", document, exc)
        finally:
            self._confirmed.pop(channel, None)

    def leave(self, document: str) -> None:
        self._documents.discard(document)
        if self.connected:
            self._outbox.put((b"", self.channel(document)))

    # -- the connection ----------------------------------------------------------------------

    async def run(self, handler: Handler, on_connected: Callable[[], None]) -> None:
        import redis.asyncio as redis

        backoff = 0.1
        while True:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
            publisher = redis.Redis.from_url(self.url, socket_connect_timeout=2)
            try:
                pubsub = client.pubsub()
                channels = [self._heartbeat, *(self.channel(d) for d in self._documents)]
                self._subscribed_at_start = list(channels)
                await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._publish_forever, publisher, pubsub)
                    await self._listen(pubsub, handler, on_connected, len(channels))
            except (OSError, redis.RedisError, BaseExceptionGroup) as exc:
                # Errors from the listener or the publisher arrive wrapped in an ExceptionGroup
                # by the task group: only connection trouble is ours to absorb.
                lost = connection_errors(exc, (OSError, redis.RedisError))
                if self.connected:
                    log.warning("lost the Redis bus (%s); serving local clients only", lost)
                else:
                    log.debug("Redis bus unavailable: %r", lost)
            finally:
                was_connected = self.connected
                self.connected = False
                self._pubsub = None
                self._outbox.clear()
                with anyio.CancelScope(shield=True):
                    for c in (client, publisher):
                        with anyio.move_on_after(1):
                            await c.aclose()
            if was_connected:
                backoff = 0.1
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _listen(
        self, pubsub: Any, handler: Handler, on_connected: Callable[[], None], expected: int
    ) -> None:
        confirmed = 0
        subscribed = expected
        async for message in pubsub.listen():
            kind = message["type"]
            channel: bytes = message["channel"]
            if kind == "subscribe":
                waiter = self._confirmed.get(channel)
                if waiter is not None:
                    waiter.set()
                confirmed += 1
                if confirmed == subscribed and not self.connected:
                    # Documents opened while we were connecting were not in the first list.
                    wanted = {self.channel(d) for d in self._documents}
                    missing = wanted - set(self._subscribed_at_start)
                    if missing:
                        subscribed += len(missing)
                        self._subscribed_at_start.extend(missing)
                        await pubsub.subscribe(*missing)
                        continue
                    self.connected = True
                    log.info("connected to the Redis bus (%d channels)", confirmed)
                    on_connected()
                continue
            if kind != "message":
                continue
            envelope = decode(message["data"])
            if envelope is None or envelope.sender == self.process_id:
                continue
            document = None
            if channel.startswith(self._doc_prefix):
                document = channel[len(self._doc_prefix) :].decode("utf-8", "replace")
            dispatch(handler, document, envelope)

    async def _publish_forever(self, publisher: Any, pubsub: Any) -> None:
        async for batch in self._outbox.batches(1000):
            pipe = publisher.pipeline(transaction=False)
            unsubscribe = []
            for channel, data in batch:
                if channel:
                    pipe.publish(channel, data)
                else:
                    unsubscribe.append(data)
            await pipe.execute()
            if unsubscribe:
                await pubsub.unsubscribe(*unsubscribe)

    async def close(self) -> None:
        """Give what is queued (a BYE) a moment to go out, then stop publishing."""
        if self.connected:
            await self._outbox.flushed(0.5)
        self.connected = False
