"""`collab deliveries [--status S] [--document D]` and `collab deliveries retry ID`: the webhooks'
delivery log, read from the store (no server needed), as GET /api/webhooks/deliveries shows it.

A retry makes the delivery pending and due now: a running server picks it up within its
polling interval; a stopped one, when it starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from storage import open_store

from .api.deliveries import delivery_of  # (one shape of a delivery: the API's)
from .events import DeliveryInfo
from .events.feed import EventFeed
from .extensions.webhooks import SINK_PREFIX, shown_url
from .settings import Settings

STATUSES = ("pending", "delivered", "failed")


class NoSuchDelivery(Exception):
    pass


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """`deliveries [list]` and `deliveries retry ID` (one parser, so every flag goes anywhere)."""
    deliveries: argparse.ArgumentParser = sub.add_parser(
        "deliveries", help="the webhooks' delivery log (newest first); `retry ID` to resend one"
    )
    deliveries.add_argument("action", nargs="?", choices=("list", "retry"), default="list")
    deliveries.add_argument("id", nargs="?", type=int, help="the delivery to retry")
    deliveries.add_argument("--status", choices=STATUSES, default=None)
    deliveries.add_argument("--document", default=None, help="only this document's")
    deliveries.add_argument("--limit", type=int, default=100)
    deliveries.add_argument("--json", action="store_true", help="one JSON object per line")
    return deliveries


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.action == "retry" and args.id is None:
        parser.error("deliveries retry: which delivery? (its id, the first column of the list)")
    if args.action == "list" and args.id is not None:
        parser.error("deliveries: an id is only for `deliveries retry ID`")


@asynccontextmanager
async def opened_feed(settings: Settings) -> AsyncIterator[EventFeed]:
    """The change feed over the store alone (never started: no sinks, no finalizer), for its
    delivery log; the store closed after."""
    store = await open_store(settings.database_url)
    try:
        yield EventFeed(store, settings.replace(events=True))
    finally:
        await store.close()


async def run(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The lines to print; NoSuchDelivery for a retry of an unknown id."""
    async with opened_feed(settings) as feed:
        if args.action == "retry":
            info = await feed.delivery(args.id)
            if info is None or not info.sink.startswith(SINK_PREFIX):
                raise NoSuchDelivery(f"no webhook delivery {args.id}")
            retried = await feed.retry(args.id)
            if retried is None:
                raise NoSuchDelivery(f"no webhook delivery {args.id}")
            return [json.dumps(delivery_of(retried).model_dump()) if args.json else line(retried)]
        found = await feed.deliveries(
            sink_prefix=SINK_PREFIX, status=args.status, document=args.document, limit=args.limit
        )
    return [json.dumps(delivery_of(d).model_dump()) if args.json else line(d) for d in found]


def line(info: DeliveryInfo) -> str:
    """id, when, status, attempts, event type, document, endpoint, event id; then the next
    attempt's time (pending) and the last error, if any."""
    parts = [
        str(info.id),
        _when(info.created_at_ms),
        info.status,
        f"{info.attempts} attempt{'' if info.attempts == 1 else 's'}",
        info.event_type,
        info.document,
        shown_url(info.sink.removeprefix(SINK_PREFIX)),
        info.event_id,
    ]
    if info.status == "pending" and info.next_attempt_ms is not None:
        parts.append(f"next {_when(info.next_attempt_ms)}")
    if info.last_error:
        parts.append(f"last error: {info.last_error}")
    return "\t".join(parts)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"
