"""Webhooks (issue 13) against a real HTTP receiver started by the test (tests/webhook_receiver):
the sink alone (headers, signature, what fails an attempt and why), then through a real server
and its change feed: signed events, retries with the same id, order per document, one dead
endpoint never delaying another, the delivery log in the API and the CLI, and a receiver that is
down across a kill -9 of the server still getting every event afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from collab.events import Event
from collab.extensions.webhooks import WebhookError, WebhookSink, verify
from tests.conftest import free_port
from tests.webhook_receiver import HANG, Receiver

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "whsec-0123456789"


def event(n: int = 1, document: str = "doc") -> Event:
    body = json.dumps({"id": f"evt_{n:032x}", "type": "document.changed", "document": document})
    return Event(
        n, f"evt_{n:032x}", "document.changed", document, int(time.time() * 1000), body.encode()
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def sink(url: str, client: httpx.AsyncClient, timeout_s: float = 5.0) -> WebhookSink:
    return WebhookSink(url, SECRET, timeout_s=timeout_s, client=client)


# -- the sink alone -----------------------------------------------------------------------------


async def test_a_delivery_is_a_signed_post_of_the_event_body(http: httpx.AsyncClient) -> None:
    async with Receiver().running() as receiver:
        await sink(receiver.url(), http).deliver(event(7))
    (got,) = receiver.requests
    assert got.path == "/hook" and got.body == event(7).body
    assert got.headers["content-type"] == "application/json"
    assert got.event_id == event(7).id
    assert abs(int(got.headers["collab-timestamp"]) - time.time()) < 5
    assert verify(SECRET, got.headers, got.body)
    assert not verify("another secret", got.headers, got.body)
    assert not verify(SECRET, got.headers, got.body.replace(b"doc", b"dog"))


@pytest.mark.parametrize("status", [500, 503, 404, 410, 302, 304])
async def test_any_answer_but_a_2xx_fails_the_attempt(http: httpx.AsyncClient, status: int) -> None:
    async with Receiver().running() as receiver:
        receiver.script(status, 204, 299)
        webhook = sink(receiver.url(), http)
        with pytest.raises(WebhookError) as failed:
            await webhook.deliver(event())
        await webhook.deliver(event())  # 204
        await webhook.deliver(event())  # 299
    excerpt = "" if status == 304 else f": scripted {status}"
    assert str(failed.value) == f"HTTP {status}{excerpt}"


async def test_no_answer_within_the_timeout_fails_the_attempt_in_time(
    http: httpx.AsyncClient,
) -> None:
    async with Receiver().running() as receiver:
        receiver.script(HANG)
        started = time.monotonic()
        with pytest.raises(WebhookError, match=r"no answer within 0\.5 s"):
            await sink(receiver.url(), http, timeout_s=0.5).deliver(event())
        assert 0.4 < time.monotonic() - started < 2
        assert len(receiver.requests) == 1


async def test_a_refused_connection_fails_the_attempt(http: httpx.AsyncClient) -> None:
    with pytest.raises(WebhookError, match="ConnectError"):
        await sink(f"http://127.0.0.1:{free_port()}/hook", http).deliver(event())


async def test_the_same_event_is_the_same_bytes_and_id_on_every_attempt(
    http: httpx.AsyncClient,
) -> None:
    async with Receiver().running() as receiver:
        receiver.script(500)
        webhook = sink(receiver.url(), http)
        with pytest.raises(WebhookError):
            await webhook.deliver(event(3))
        await webhook.deliver(event(3))
    first, second = receiver.requests
    assert first.body == second.body and first.event_id == second.event_id == event(3).id
    assert verify(SECRET, first.headers, first.body) and verify(SECRET, second.headers, second.body)
