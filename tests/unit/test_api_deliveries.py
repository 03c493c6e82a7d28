"""The delivery log's operations (collab/api/deliveries.py) over an in-memory feed: only webhook
sinks' deliveries, newest first in pages, 403 unless the caller's access covers every document
(and can write, for a retry), 404 for another sink's delivery."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from collab.access import Access
from collab.api.deliveries import (
    DeliveriesQuery,
    get_delivery,
    list_deliveries,
    retry_delivery,
)
from collab.api.router import Call
from collab.errors import ApiError
from collab.events import DeliveryInfo

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def info(n: int, sink: str = "webhook:http://h.test/x", **kw: Any) -> DeliveryInfo:
    values: dict[str, Any] = {
        "id": n,
        "sink": sink,
        "event_id": f"evt_{n:032x}",
        "event_type": "document.changed",
        "document": "a" if n % 2 else "b",
        "status": "delivered",
        "attempts": 1,
        "last_error": None,
        "created_at_ms": 1000 + n,
        "updated_at_ms": 2000 + n,
        "next_attempt_ms": None,
    }
    return DeliveryInfo(**{**values, **kw})


class FakeFeed:
    """EventFeed's delivery log, as its docstrings describe it."""

    def __init__(self, rows: list[DeliveryInfo]) -> None:
        self.rows = {row.id: row for row in rows}

    async def deliveries(
        self,
        *,
        sink_prefix: str = "",
        status: str | None = None,
        document: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[DeliveryInfo]:
        found = [
            row
            for row in sorted(self.rows.values(), key=lambda r: -r.id)
            if row.sink.startswith(sink_prefix)
            and status in (None, row.status)
            and document in (None, row.document)
            and (before is None or row.id < before)
        ]
        return found[:limit]

    async def delivery(self, delivery_id: int) -> DeliveryInfo | None:
        return self.rows.get(delivery_id)

    async def retry(self, delivery_id: int) -> DeliveryInfo | None:
        row = self.rows.get(delivery_id)
        if row is None:
            return None
        row = self.rows[delivery_id] = replace(row, status="pending", next_attempt_ms=1)
        return row


def call(feed: FakeFeed, access: Access, query: Any = None, **path: Any) -> Call:
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(events=feed)))
    return Call(request, access, path, query, None)


EVERYTHING = Access("*", write=True)


async def test_pages_of_webhook_deliveries_newest_first() -> None:
    rows = [info(n) for n in range(1, 8)] + [info(8, sink="amqp:collab.events")]
    feed = FakeFeed(rows)
    seen: list[int] = []
    cursor = None
    while True:
        page = await list_deliveries(
            call(feed, EVERYTHING, DeliveriesQuery(limit=3, cursor=cursor))
        )
        seen += [d.id for d in page.deliveries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]  # (8 is RabbitMQ's)
    one = await list_deliveries(call(feed, EVERYTHING, DeliveriesQuery(limit=7)))
    assert one.next_cursor is None and len(one.deliveries) == 7


async def test_filters_and_the_shown_endpoint() -> None:
    feed = FakeFeed(
        [
            info(1, status="failed", last_error="HTTP 500: no"),
            info(2),
            info(3, sink="webhook:https://u:pw@h.test/x"),
        ]
    )
    failed = await list_deliveries(call(feed, EVERYTHING, DeliveriesQuery(status="failed")))
    assert [(d.id, d.last_error) for d in failed.deliveries] == [(1, "HTTP 500: no")]
    of_b = await list_deliveries(call(feed, EVERYTHING, DeliveriesQuery(document="b")))
    assert [d.id for d in of_b.deliveries] == [2]
    shown = await get_delivery(call(feed, EVERYTHING, delivery=3))
    assert shown.endpoint == "https://u:***@h.test/x"


@pytest.mark.parametrize("access", [Access("team/*", write=True), Access("a", write=True)])
async def test_only_a_caller_covering_every_document_sees_the_log(access: Access) -> None:
    feed = FakeFeed([info(1)])
    for handler, c in [
        (list_deliveries, call(feed, access, DeliveriesQuery())),
        (get_delivery, call(feed, access, delivery=1)),
        (retry_delivery, call(feed, access, delivery=1)),
    ]:
        with pytest.raises(ApiError) as refused:
            await handler(c)
        assert refused.value.status == 403


async def test_a_retry_needs_write_access_and_a_webhook_delivery() -> None:
    feed = FakeFeed([info(1, status="failed"), info(2, sink="amqp:x")])
    with pytest.raises(ApiError) as read_only:
        await retry_delivery(call(feed, Access("*"), delivery=1))
    assert read_only.value.status == 403
    assert (await get_delivery(call(feed, Access("*"), delivery=1))).status == "failed"
    for missing in (2, 3):
        with pytest.raises(ApiError) as not_found:
            await retry_delivery(call(feed, EVERYTHING, delivery=missing))
        assert not_found.value.status == 404
    retried = await retry_delivery(call(feed, EVERYTHING, delivery=1))
    assert retried.status == "pending" and retried.next_attempt_ms == 1


async def test_a_bad_cursor_is_a_400() -> None:
    with pytest.raises(ApiError) as bad:
        await list_deliveries(call(FakeFeed([]), EVERYTHING, DeliveriesQuery(cursor="x1")))
    assert bad.value.status == 400
