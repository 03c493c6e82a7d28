"""The RabbitMQ sink without a broker: routing keys, what errors say, connecting with backoff
(tests/integration/test_amqp.py has the broker)."""

from __future__ import annotations

import json
import time

import pytest

from collab.events import Event
from collab.settings import Settings
from tests.conftest import free_port

pytest.importorskip("aio_pika", reason="aio-pika (the amqp extra) is not installed")

from collab.extensions.amqp import (  # (needs aio_pika)
    Amqp,
    AmqpSink,
    from_settings,
    message_of,
    routing_key,
    safe_url,
)


def event(document: str = "team/notes") -> Event:
    body = json.dumps({"id": "evt_" + "0" * 32, "type": "document.changed"}).encode()
    return Event(1, "evt_" + "0" * 32, "document.changed", document, 1765062000123, body)


def test_the_routing_key_is_type_dot_name() -> None:
    assert routing_key("document.changed", "team/notes") == "document.changed.team/notes"
    assert routing_key("user.joined", "a.b") == "user.joined.a.b"


def test_a_long_name_is_cut_to_255_bytes_and_stays_distinct() -> None:
    long_a = "é" * 250 + "a"  # 501 bytes: a valid document name (up to 512)
    long_b = "é" * 250 + "b"
    key_a = routing_key("document.changed", long_a)
    key_b = routing_key("document.changed", long_b)
    assert len(key_a.encode()) <= 255 and len(key_b.encode()) <= 255
    assert key_a != key_b
    assert key_a.startswith("document.changed.éé")
    assert routing_key("document.changed", long_a) == key_a  # stable


def test_the_message_carries_the_event() -> None:
    message = message_of(event())
    assert message.body == event().body
    assert message.message_id == "evt_" + "0" * 32
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2
    assert message.headers == {
        "collab-event-type": "document.changed",
        "collab-document": "team/notes",
        "collab-time-ms": 1765062000123,
    }


def test_urls_in_logs_and_errors_have_no_password() -> None:
    assert safe_url("amqp://bob:s3cret@mq.example:5673/prod") == "amqp://bob@mq.example:5673/prod"
    assert safe_url("amqps://mq.example") == "amqps://mq.example/"


@pytest.mark.anyio
async def test_an_unreachable_broker_fails_fast_and_is_retried_with_backoff() -> None:
    sink = AmqpSink(f"amqp://guest:s3cret@127.0.0.1:{free_port()}/", "x", connect_timeout_s=2)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="cannot reach RabbitMQ exchange 'x'") as info:
            await sink.deliver(event())
        assert "s3cret" not in str(info.value)
        # At once again: no new attempt yet, the same error and when the next one is due.
        with pytest.raises(ConnectionError, match=r"\(next attempt in 0\.\d\d s\)"):
            await sink.deliver(event())
        assert time.monotonic() - started < 1.5
        assert sink._attempts == 1
    finally:
        await sink.close()


def test_from_settings() -> None:
    assert from_settings(Settings()) == []
    [extension] = from_settings(Settings(amqp_url="amqp://h/", amqp_exchange="my.events"))
    assert isinstance(extension, Amqp)
    assert extension.sink.name == "amqp:my.events"
    with pytest.raises(ValueError, match="needs a name"):
        from_settings(Settings(amqp_url="amqp://h/", amqp_exchange=""))
