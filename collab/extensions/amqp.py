"""RabbitMQ sink: every event of the change feed, published to a durable topic exchange.

Switched on by COLLAB_AMQP_URL (`amqp://user:pass@host:5672/vhost`); the exchange is
COLLAB_AMQP_EXCHANGE (default `collab.events`, declared durable, type topic). Each event is one
persistent message, routing key `<type>.<document name>` (`document.changed.team/notes`), the
body the event's JSON (docs/events.md), `message_id` its id. `deliver` returns only once the
broker confirmed the message (publisher confirms), so the outbox marks an event delivered only
when RabbitMQ has it on disk (for a durable queue bound to the exchange); a nack, a lost
connection or a confirm that does not come in time raises, and the feed retries that event.

The connection is our own rather than aio-pika's `connect_robust`: a robust connection restores
itself on a fixed interval in the background but fails publishes meanwhile anyway, so the sink
would still need to see the loss; here a failed publish drops the connection, and the next
delivery reconnects (one attempt at a time for all documents, at most one per `_backoff_s` while
the broker stays away, doubling up to RECONNECT_MAX_S), while the feed's own backoff spaces the
events' retries.

Unroutable messages (no queue bound yet) are dropped by RabbitMQ and still confirmed: that is
a topic exchange's publish/subscribe contract. Bind your queue first, or give the exchange an
alternate exchange (docs/events.md, "RabbitMQ").

aio-pika (the `amqp` extra) is imported where it is used, so app.py can ask `from_settings`
on every start without it installed; `collab.extras.check` names the extra when
COLLAB_AMQP_URL needs it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import anyio

from collab.hooks import Extension, OnStartupPayload
from collab.settings import Settings

if TYPE_CHECKING:
    from aio_pika import Message
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

log = logging.getLogger(__name__)

MAX_ROUTING_KEY_BYTES = 255  # AMQP 0-9-1: a shortstr
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0


class SinkEvent(Protocol):
    """What the sink reads of a `collab.events.Event` (structurally: extensions import only the
    public API, and the event classes are not part of it yet)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def document(self) -> str: ...
    @property
    def time_ms(self) -> int: ...
    @property
    def body(self) -> bytes: ...


class SinkClosed(RuntimeError):
    """The server is stopping: this delivery is left to the next start."""


def routing_key(event_type: str, document: str) -> str:
    """`<type>.<name>`; a name too long for AMQP's 255 bytes is cut (on a character boundary)
    and followed by `~` and 16 hex of its SHA-256, so distinct names keep distinct keys. The
    whole name is always in the body and the `collab-document` header."""
    key = f"{event_type}.{document}"
    raw = key.encode()
    if len(raw) <= MAX_ROUTING_KEY_BYTES:
        return key
    suffix = "~" + hashlib.sha256(document.encode()).hexdigest()[:16]
    head = raw[: MAX_ROUTING_KEY_BYTES - len(suffix)].decode(errors="ignore")
    return head + suffix


def message_of(event: SinkEvent) -> Message:
    import aio_pika

    return aio_pika.Message(
        event.body,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.id,
        type=event.type,
        app_id="collab",
        timestamp=datetime.fromtimestamp(event.time_ms / 1000, UTC),
        headers={
            "collab-event-type": event.type,
            "collab-document": event.document,
            "collab-time-ms": event.time_ms,
        },
    )


def safe_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path or '/'}"


class AmqpSink:
    """One exchange on one broker; `deliver` publishes one event and waits for its confirm."""

    def __init__(
        self,
        url: str,
        exchange: str = "collab.events",
        *,
        max_in_flight: int = 64,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not exchange:
            raise ValueError("the AMQP exchange needs a name (COLLAB_AMQP_EXCHANGE)")
        self.name = f"amqp:{exchange}"
        self.max_in_flight = max_in_flight
        self.url = url
        self.exchange_name = exchange
        self.timeout_s = timeout_s  # one attempt, connecting included (Sink's optional one)
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self._lock = anyio.Lock()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._closed = False
        self._attempts = 0  # connect attempts so far (a waiter sees whether one ran meanwhile)
        self._last_error = ""
        self._retry_at = 0.0  # monotonic: no new attempt before this while the broker is away
        self._backoff_s = RECONNECT_MIN_S

    @property
    def connected(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def deliver(self, event: SinkEvent) -> None:
        """Publish and wait for the broker's confirm, connecting first if need be: all within
        `timeout_s` (the feed reads it: it gives up on an attempt 5 s after that)."""
        import aio_pika

        exchange: AbstractExchange | None = None
        try:
            with anyio.fail_after(self.timeout_s):
                exchange = await self._ready()
                await exchange.publish(
                    message_of(event),
                    routing_key(event.type, event.document),
                    mandatory=False,  # unroutable: dropped and confirmed, as topic exchanges do
                )
        except aio_pika.exceptions.DeliveryError as exc:  # a nack: the channel stays usable
            raise RuntimeError(f"RabbitMQ refused the message: {exc}") from exc
        except TimeoutError as exc:
            if exchange is None:
                raise ConnectionError(
                    f"no connection to {self._where()} within {self.timeout_s:g} s"
                ) from exc
            await self._drop(exchange)  # (a blocked or dead connection: a new one next time)
            raise ConnectionError(
                f"publish to {self._where()}: no confirm within {self.timeout_s:g} s"
            ) from exc
        except Exception as exc:
            if exchange is None:
                raise  # _ready's own: cannot connect, or the sink is closed
            await self._drop(exchange)  # a lost connection or channel
            raise ConnectionError(
                f"publish to {self._where()} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def connect(self) -> None:
        """Connect now (the deliveries would otherwise connect on the first event)."""
        await self._ready()

    async def close(self) -> None:
        """Close the connection; deliveries from now on raise SinkClosed."""
        async with self._lock:
            self._closed = True
            connection = self._forget()
        if connection is not None:
            await _close_quietly(connection)

    async def _ready(self) -> AbstractExchange:
        """The declared exchange on an open channel, connecting first when needed: one attempt
        at a time; a caller that waited for another's failed attempt gets its error."""
        exchange = self._exchange
        if exchange is not None and self.connected and not self._closed:
            return exchange
        seen = self._attempts
        async with self._lock:
            if self._closed:
                raise SinkClosed(f"{self.name}: the server is stopping")
            exchange = self._exchange
            if exchange is not None and self.connected:
                return exchange
            if self._attempts != seen and self._last_error:
                raise ConnectionError(self._last_error)
            if (wait := self._retry_at - time.monotonic()) > 0:
                raise ConnectionError(f"{self._last_error} (next attempt in {wait:.2f} s)")
            return await self._connect()

    async def _connect(self) -> AbstractExchange:
        """Under the lock: a new connection, a confirming channel, the exchange declared."""
        import aio_pika

        if self._connection is not None:
            await _close_quietly(self._connection)
            self._connection, self._channel, self._exchange = None, None, None
        self._attempts += 1
        connection: AbstractConnection | None = None
        try:
            connection = await aio_pika.connect(self.url, timeout=self.connect_timeout_s)
            channel: AbstractChannel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except BaseException as exc:
            if connection is not None:  # half made (a failure, or cancelled: the server stops)
                await _close_quietly(connection)
            if not isinstance(exc, Exception):
                raise
            self._last_error = f"cannot reach {self._where()}: {type(exc).__name__}: {exc}"
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)
            log.warning("%s", self._last_error)
            raise ConnectionError(self._last_error) from exc
        self._connection, self._channel, self._exchange = connection, channel, exchange
        self._last_error, self._retry_at, self._backoff_s = "", 0.0, RECONNECT_MIN_S
        log.info("publishing events to %s", self._where())
        return exchange

    async def _drop(self, exchange: AbstractExchange) -> None:
        """Forget the connection `exchange` came from (unless another delivery already did)."""
        async with self._lock:
            if self._exchange is not exchange:
                return
            connection = self._forget()
        if connection is not None:
            await _close_quietly(connection)

    def _forget(self) -> AbstractConnection | None:
        connection = self._connection
        self._connection, self._channel, self._exchange = None, None, None
        return connection

    def _where(self) -> str:
        return f"RabbitMQ exchange {self.exchange_name!r} at {safe_url(self.url)}"


async def _close_quietly(connection: AbstractConnection) -> None:
    """(aiormq waits up to 2 s for the broker's Close-Ok, then closes the socket anyway.)"""
    with anyio.move_on_after(3, shield=True):
        try:
            await connection.close()
        except Exception as exc:  # already gone: nothing to close
            log.debug("closing an AMQP connection: %r", exc)


class Amqp(Extension):
    """Adds an AmqpSink to the change feed at startup; closes its connection at the end."""

    def __init__(
        self,
        url: str,
        exchange: str = "collab.events",
        *,
        max_in_flight: int = 64,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.sink = AmqpSink(
            url,
            exchange,
            max_in_flight=max_in_flight,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    async def on_startup(self, payload: OnStartupPayload) -> None:
        payload.events.add_sink(self.sink)
        payload.task_group.start_soon(self._run)

    async def _run(self) -> None:
        """Connect at once, to say at startup whether the broker is there (a failure is logged;
        events wait in the outbox until it is), and close the connection when the server's
        tasks are cancelled: after on_shutdown, together with the feed's delivery loops, so no
        delivery still running at on_shutdown meets a closed sink."""
        try:
            try:
                await self.sink.connect()
            except Exception as exc:
                log.debug("connecting at startup: %s", exc)  # (the sink logged it as a warning)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self.sink.close()


def from_settings(settings: Settings) -> list[Extension]:
    """The RabbitMQ extension when COLLAB_AMQP_URL is set (app.py adds it)."""
    if not settings.amqp_url:
        return []
    return [Amqp(settings.amqp_url, settings.amqp_exchange)]


__all__ = ["Amqp", "AmqpSink", "SinkClosed", "from_settings", "message_of", "routing_key"]
