"""The Redis bus: pub/sub on one channel per document plus a heartbeat channel.

One connection subscribes and reads, another publishes. When Redis goes away the process keeps
serving its own clients; it reconnects with backoff, subscribes again and tells the hub, which
re-syncs every room by state-vector exchange (pub/sub is at most once).

The bus runs beside every update's fan-out, so what it costs per update counts:
- it talks to redis-py's connections (hiredis parses), not to its PubSub and Pipeline objects,
  whose retry, timeout and telemetry wrappers cost more per message than the message;
- RESP2: redis-py's RESP3 parsers format every pushed message for a debug log line;
- what the hub queued in one loop turn goes out in one write, one PUBLISH per channel (several
  envelopes for one channel travel as one BATCH), so Redis sends us back one copy per
  channel, not one per update (we subscribe to the channels we publish on), and that copy is
  dropped by its sender id before anything is decoded;
- the replies to PUBLISH are read by a task of their own: the publisher never waits for them;
- a document no other process holds costs nothing: the replies tell when a PUBLISH reached
  only ourselves, and then updates stay here until another process opens the document (_drain).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from . import (
    FOR_HOLDERS,
    PID_BYTES,
    Handler,
    Outbox,
    connection_errors,
    decode_all,
    dispatch,
    encode_batch,
    new_process_id,
)

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 100_000
SUBSCRIBE_WAIT_S = 2.0
SILENCE_S = 5.0
LEAVE = 0  # an outbox item of this kind unsubscribes from its channel


class RedisBus:
    def __init__(self, url: str, *, prefix: str = "collab:", process_id: bytes | None = None):
        self.url = url
        self.process_id = process_id or new_process_id()
        self.connected = False
        self._prefix = prefix.encode()
        self._doc_prefix = self._prefix + b"doc:"
        self._heartbeat = self._prefix + b"hb"
        self._documents: set[str] = set()
        # (channel, kind, payload) to publish, or (channel, LEAVE, b"") to unsubscribe, in order
        self._outbox: Outbox[tuple[bytes, int, bytes]] = Outbox(OUTBOX_LIMIT)
        self._sub: Any = None  # the subscribing connection, once it is up
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._subscribed_at_start: list[bytes] = []
        self._alive = False  # heard anything on the subscribing connection lately
        # Channels where our last PUBLISH reached no other process (see _drain): their envelopes
        # FOR_HOLDERS are not sent, until another process speaks there.
        self._alone: set[bytes] = set()
        self._subscribed: set[bytes] = set()  # confirmed by Redis
        self._late: set[bytes] = set()  # joined without waiting for Redis to confirm
        self._sent = 0  # PUBLISHes sent on this connection
        self._inflight: deque[tuple[bytes, int, bool]] = deque()  # (channel, number, subscribed)
        self._spoken: dict[bytes, int] = {}  # channel -> _sent when another process last spoke
        self._counts_all = False  # PUBLISH's reply counts every subscriber (not a cluster)
        self.refused = 0  # PUBLISHes Redis answered with an error
        self.unsent = 0  # FOR_HOLDERS envelopes no other process was listening for
        self.published = 0  # envelopes handed to the publisher (for the metrics)

    def channel(self, document: str) -> bytes:
        return self._doc_prefix + document.encode("utf-8")

    def document(self, channel: bytes) -> str | None:
        if channel.startswith(self._doc_prefix):
            return channel[len(self._doc_prefix) :].decode("utf-8", "replace")
        return None

    # -- the hub's side ----------------------------------------------------------------------

    def publish(self, document: str | None, kind: int, payload: bytes) -> None:
        if not self.connected:
            return  # stale by the time Redis is back; the reconnect resync covers it
        channel = self._heartbeat if document is None else self.channel(document)
        if channel in self._alone and kind in FOR_HOLDERS:
            self.unsent += 1
            return
        self.published += 1
        self._outbox.put((channel, kind, payload))

    def message_counts(self) -> tuple[int, int]:
        """(envelopes published, envelopes dropped: outbox overflow, lost with a connection,
        refused by Redis) since start."""
        box = self._outbox
        return self.published, box.dropped + box.cleared + self.refused

    async def join(self, document: str) -> None:
        self._documents.add(document)
        sub = self._sub
        if not self.connected or sub is None or not sub.is_connected:
            return  # (a send on a closed connection would open a new, unsubscribed one)
        channel = self.channel(document)
        self._alone.discard(channel)
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        try:
            await sub.send_command("SUBSCRIBE", channel, check_health=False)
            with anyio.move_on_after(SUBSCRIBE_WAIT_S):
                await confirmed.wait()
            if not confirmed.is_set():
                # Redis is slow (or the subscribing connection is): what is published there
                # before it confirms never reaches us, the answers to the hub's first state
                # exchange included. The hub repeats the exchange then (on_subscribed).
                log.info("subscribing to %r takes long: going on without it", document)
                self._late.add(channel)
        except Exception as exc:  # the connection dropped: the reconnect subscribes again
            log.debug("subscribe %r failed: %r", document, exc)
        finally:
            self._confirmed.pop(channel, None)

    def leave(self, document: str) -> None:
        self._documents.discard(document)
        channel = self.channel(document)
        self._alone.discard(channel)
        self._subscribed.discard(channel)
        self._late.discard(channel)
        self._spoken.pop(channel, None)
        if self.connected:
            self._outbox.put((channel, LEAVE, b""))

    # -- the connection ----------------------------------------------------------------------

    async def run(
        self,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        """Connect, serve, and when Redis goes away, reconnect with backoff, forever."""
        import redis.asyncio as redis

        backoff = 0.1
        while True:
            # protocol 2: see the module's docstring; make_connection: no pool, our two only
            pool: Any = redis.ConnectionPool.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=None, protocol=2
            )
            sub, pub = pool.make_connection(), pool.make_connection()
            try:
                await self._serve(sub, pub, handler, on_connected, on_subscribed)
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
                await self._disconnected(sub, pub)
            if was_connected:
                backoff = 0.1
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _serve(
        self,
        sub: Any,
        pub: Any,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        """One connection's life: connect both, subscribe, then listen, publish, drain the
        replies and watch for silence until something fails."""
        with anyio.fail_after(SILENCE_S):  # TimeoutError is an OSError
            await sub.connect()
            await pub.connect()
            self._counts_all = await counts_all_subscribers(pub)
        channels = [self._heartbeat, *(self.channel(d) for d in self._documents)]
        self._subscribed_at_start = list(channels)
        await sub.send_command("SUBSCRIBE", *channels, check_health=False)
        self._sub = sub
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._publish_forever, pub, sub, on_connected)
            tg.start_soon(self._drain, pub)
            tg.start_soon(self._watch, sub)
            await self._listen(sub, handler, on_connected, on_subscribed, len(channels))

    async def _disconnected(self, sub: Any, pub: Any) -> None:
        """Forget what held for that connection only, and close both sockets."""
        self.connected = False
        self._sub = None
        self._outbox.clear()
        for state in (
            self._alone,
            self._subscribed,
            self._late,  # (on_connected follows the reconnect)
            self._inflight,
            self._spoken,
        ):
            state.clear()
        self._sent = 0
        with anyio.CancelScope(shield=True):
            for c in (sub, pub):
                with anyio.move_on_after(1):
                    await c.disconnect()

    async def _listen(
        self,
        sub: Any,
        handler: Handler,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[str], None],
        expected: int,
    ) -> None:
        subscribed = [0, expected]  # confirmed, asked for
        own, heartbeat = self.process_id, self._heartbeat
        while True:
            reply = await sub.read_response()
            self._alive = True
            if not isinstance(reply, list) or len(reply) != 3:
                continue
            kind, channel, data = reply
            if kind == b"message":
                if data[2 : 2 + PID_BYTES] == own:
                    # Our own, back from Redis (the sender id is at the same place in a BATCH):
                    # dropped, but for our heartbeats, by which the hub knows how late we read.
                    if channel == heartbeat:
                        for envelope in decode_all(data):
                            dispatch(handler, None, envelope)
                    continue
                self._spoken[channel] = self._sent
                self._alone.discard(channel)  # before the hub answers, perhaps with an UPDATE
                document = self.document(channel)
                for envelope in decode_all(data):
                    dispatch(handler, document, envelope)
            elif kind == b"subscribe":
                await self._on_subscribed(sub, channel, subscribed, on_connected)
                if channel in self._late:  # a join() stopped waiting for this: now it is live
                    self._late.discard(channel)
                    document = self.document(channel)
                    if self.connected and document in self._documents:
                        on_subscribed(document)

    async def _on_subscribed(
        self, sub: Any, channel: bytes, subscribed: list[int], on_connected: Callable[[], None]
    ) -> None:
        self._subscribed.add(channel)
        waiter = self._confirmed.get(channel)
        if waiter is not None:
            waiter.set()
        subscribed[0] += 1
        if subscribed[0] != subscribed[1] or self.connected:
            return
        # Documents opened while we were connecting were not in the first list.
        wanted = {self.channel(d) for d in self._documents}
        missing = wanted - set(self._subscribed_at_start)
        if missing:
            subscribed[1] += len(missing)
            self._subscribed_at_start.extend(missing)
            await sub.send_command("SUBSCRIBE", *missing, check_health=False)
            return
        self.connected = True
        log.info("connected to the Redis bus (%d channels)", subscribed[0])
        on_connected()

    async def _publish_forever(self, pub: Any, sub: Any, on_connected: Callable[[], None]) -> None:
        sender = self.process_id
        async for batch in self._outbox.batches(1000):
            # One PUBLISH per channel, sent where the channel's last item was: what one channel
            # carries keeps its order, and a BYE (queued last) still goes out last.
            grouped: dict[bytes, list[tuple[int, bytes]]] = {}
            leave = []
            for channel, kind, payload in batch:
                if kind == LEAVE:
                    leave.append(channel)
                    continue
                items = grouped.pop(channel, None) or []
                items.append((kind, payload))
                grouped[channel] = items
            if grouped:
                commands = [
                    (b"PUBLISH", channel, encode_batch(sender, items))
                    for channel, items in grouped.items()
                ]
                for channel in grouped:
                    self._sent += 1
                    self._inflight.append((channel, self._sent, channel in self._subscribed))
                await pub.send_packed_command(pub.pack_commands(commands), check_health=False)
            # a document opened again since it was left stays subscribed
            leave = [c for c in leave if self.document(c) not in self._documents]
            if leave:
                await sub.send_command("UNSUBSCRIBE", *leave, check_health=False)
            if self._outbox.overflowed():
                on_connected()

    async def _watch(self, sub: Any) -> None:
        """Reconnect when the subscribing connection brought nothing for SILENCE_S, not even the
        answer to a PING: a partitioned or stopped Redis shows no error of its own, and the
        connections have no socket timeout (it would cost a timer per message)."""
        from redis.exceptions import TimeoutError

        while True:
            self._alive = False
            await anyio.sleep(SILENCE_S / 2)
            if self._alive:
                continue
            await sub.send_command("PING", check_health=False)
            await anyio.sleep(SILENCE_S / 2)
            if not self._alive:
                raise TimeoutError(f"nothing from Redis in {SILENCE_S:g} s")

    async def _drain(self, pub: Any) -> None:
        """Read the replies to our PUBLISHes apart from sending them, so the publisher never
        waits for Redis; warn once if Redis refuses them (an ACL, say).

        A reply counts the subscribers the message reached. When that is no other process (1
        with us subscribed, 0 without), everything we publish there is only our own echo: the
        channel is alone, and its FOR_HOLDERS envelopes stay here until another process speaks
        on it. Nothing is lost by that: a process starts listening to a document only to open
        it (or after a reconnect), and then publishes a SYNC once it listens, whose answer
        carries everything it lacks, our awareness states included. A reply to a PUBLISH sent
        before another process last spoke there is stale, and ignored. A Redis Cluster counts
        only the subscribers of the node it ran on: there every channel is taken as shared."""
        from redis.exceptions import ResponseError

        while True:
            try:
                reply = await pub.read_response()
            except ResponseError as exc:
                reply = None
                self.refused += 1
                if self.refused == 1:
                    log.warning("Redis refuses what the bus publishes: %s", exc)
            channel, number, subscribed = self._inflight.popleft()
            if isinstance(reply, int) and channel != self._heartbeat:
                self._counted(channel, number, subscribed, reply)

    def _counted(self, channel: bytes, number: int, subscribed: bool, reached: int) -> None:
        if reached > subscribed:
            self._alone.discard(channel)
        elif (
            self._counts_all
            and number > self._spoken.get(channel, 0)  # sent after the others last spoke
            and channel in self._subscribed  # (still)
        ):
            self._alone.add(channel)

    async def close(self) -> None:
        """Give what is queued (a BYE) a moment to go out, then stop publishing."""
        if self.connected:
            await self._outbox.flushed(0.5)
        self.connected = False


async def counts_all_subscribers(conn: Any) -> bool:
    """Whether PUBLISH's reply on this connection counts every subscriber: yes, unless the
    server is a Redis Cluster node (or will not say)."""
    from redis.exceptions import ResponseError

    try:
        await conn.send_command("INFO", "cluster", check_health=False)
        info = await conn.read_response()
    except ResponseError:
        return False
    return isinstance(info, bytes) and b"cluster_enabled:0" in info
