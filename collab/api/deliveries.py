"""The webhooks' delivery log: list deliveries (status, attempts, last error) and retry one.

Both read the change feed (`request.app.state.events`, collab/events/feed.py) and show only the
webhook sinks' deliveries. The log spans every document, so only a caller whose access covers
every document ("*") sees it (403 otherwise), and a retry needs write access too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import ApiError, HttpStatus
from ..events import DeliveryInfo
from ..events.feed import EventFeed
from ..extensions.webhooks import SINK_PREFIX, shown_url
from .models import Model
from .router import Call, Operation

DELIVERIES = "/api/webhooks/deliveries"
DELIVERY = DELIVERIES + "/{delivery}"

Status = Literal["pending", "delivered", "failed"]


class Delivery(Model):
    id: int = Field(description="the delivery's id (POST .../{id}/retry)")
    endpoint: str = Field(description="the webhook URL (a password in it masked)")
    event_id: str = Field(description="the event's id: its Collab-Event-Id header")
    event_type: str
    document: str
    status: Status = Field(description="pending (due at next_attempt_ms), delivered or failed")
    attempts: int
    last_error: str | None = Field(description="why the last attempt failed (null: none did)")
    created_at_ms: int
    updated_at_ms: int
    next_attempt_ms: int | None = Field(description="when pending: when it is attempted next")


class DeliveryPage(Model):
    deliveries: list[Delivery] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class DeliveriesQuery(Model):
    status: Status | None = Field(None, description="only deliveries in this state")
    document: str | None = Field(None, description="only this document's")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


def delivery_of(info: DeliveryInfo) -> Delivery:
    return Delivery(
        id=info.id,
        endpoint=shown_url(info.sink.removeprefix(SINK_PREFIX)),
        event_id=info.event_id,
        event_type=info.event_type,
        document=info.document,
        status=info.status,  # type: ignore[arg-type]  # one of Status in the outbox
        attempts=info.attempts,
        last_error=info.last_error,
        created_at_ms=info.created_at_ms,
        updated_at_ms=info.updated_at_ms,
        next_attempt_ms=info.next_attempt_ms,
    )


def _feed(call: Call, *, write: bool = False) -> EventFeed:
    """The change feed, for a caller whose access covers every document (else 403)."""
    if not call.access.covers("*"):
        raise ApiError(HttpStatus.FORBIDDEN, "the delivery log needs access to every document")
    if write and not call.access.write:
        raise ApiError(HttpStatus.FORBIDDEN, "token is read-only")
    feed: EventFeed = call.request.app.state.events
    return feed


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ApiError(HttpStatus.BAD_REQUEST, "invalid cursor")
    return int(text)


async def list_deliveries(call: Call) -> DeliveryPage:
    query: DeliveriesQuery = call.query
    feed = _feed(call)
    found = await feed.deliveries(
        sink_prefix=SINK_PREFIX,
        status=query.status,
        document=query.document,
        limit=query.limit + 1,  # one more: is there a next page?
        before=_cursor(query.cursor),
    )
    page = found[: query.limit]
    next_cursor = str(page[-1].id) if len(found) > query.limit else None
    return DeliveryPage(deliveries=[delivery_of(d) for d in page], next_cursor=next_cursor)


async def _webhook_delivery(feed: EventFeed, delivery_id: int) -> DeliveryInfo:
    info = await feed.delivery(delivery_id)
    if info is None or not info.sink.startswith(SINK_PREFIX):
        raise ApiError(HttpStatus.NOT_FOUND, "no such delivery")
    return info


async def get_delivery(call: Call) -> Delivery:
    return delivery_of(await _webhook_delivery(_feed(call), call.path["delivery"]))


async def retry_delivery(call: Call) -> Delivery:
    feed = _feed(call, write=True)
    await _webhook_delivery(feed, call.path["delivery"])
    retried = await feed.retry(call.path["delivery"])
    if retried is None:  # (purged in between)
        raise ApiError(HttpStatus.NOT_FOUND, "no such delivery")
    return delivery_of(retried)


OPERATIONS = [
    Operation(
        "GET",
        DELIVERIES,
        "listWebhookDeliveries",
        "The webhooks' delivery log, newest first",
        list_deliveries,
        tag="webhooks",
        query=DeliveriesQuery,
        response=DeliveryPage,
        description="Every event's delivery to every webhook URL: its state, attempts and the"
        " last attempt's error. Needs access to every document (a `*` token).",
    ),
    Operation(
        "GET",
        DELIVERY,
        "getWebhookDelivery",
        "One webhook delivery",
        get_delivery,
        tag="webhooks",
        response=Delivery,
    ),
    Operation(
        "POST",
        DELIVERY + "/retry",
        "retryWebhookDelivery",
        "Attempt a webhook delivery again, now",
        retry_delivery,
        tag="webhooks",
        response=Delivery,
        description="Makes the delivery pending and due now (a failed one gets a fresh"
        " retry period). Needs write access to every document.",
    ),
]
