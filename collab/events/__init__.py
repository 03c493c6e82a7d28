"""Change feeds: events written to an outbox in the transaction that commits what they describe,
and delivered from there, at least once and in order per document, to every sink.

- `Event`: one event as every sink receives it (`body` is the JSON of docs/events.md);
- `Sink`: where events go (a webhook endpoint, a RabbitMQ exchange): an extension adds its sinks
  to the `EventFeed` in on_startup (`payload.events.add_sink(sink)`);
- `EventFeed` (`collab/events/feed.py`): the one door to the outbox for the rest of the server:
  the sinks' delivery loops, reading events after a position (Server-Sent Events), the
  delivery log, and the live "committed" notices the editor's Saved indicator follows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, get_args

from .schema import EventType

if TYPE_CHECKING:
    from storage import DeliveryRow, StoredEvent

# Every event type, in the order docs/events.md lists them (schema.py's EventType).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the outbox. `seq` orders the outbox (increasing in the order events became
    visible); `id` is the idempotency key receivers see; `body` is the UTF-8 JSON object every
    sink sends, the same bytes on every attempt."""

    seq: int
    id: str
    type: str
    document: str
    time_ms: int
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Sink(Protocol):
    """Where events are delivered. `name` is stable across restarts and unique
    ("webhook:<url>", "amqp:<exchange>"): the delivery log is kept by it.

    `deliver` returns once the event is delivered (a 2xx, a broker's confirm) and raises when
    this attempt failed (its `str()` is the delivery log's last error); the feed retries with
    backoff. It is called for at most one event of a document at a time, in the outbox's order,
    and for up to `max_in_flight` documents at once. Optional attributes: `timeout_s` (how long
    one attempt may take; the feed gives up on it 5 s later, at least after 10 s) and
    `max_age_s` (how long a delivery is retried before it is failed; default
    COLLAB_WEBHOOK_MAX_AGE_S)."""

    name: str
    max_in_flight: int

    async def deliver(self, event: Event) -> None: ...


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """One event's delivery to one sink, as the delivery log shows it."""

    id: int
    sink: str
    event_id: str
    event_type: str
    document: str
    status: str  # "pending" | "delivered" | "failed"
    attempts: int
    last_error: str | None
    created_at_ms: int
    updated_at_ms: int
    next_attempt_ms: int | None  # when pending


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """What a document's committed-state watcher hears: the state vector of what this process
    has durably committed (`state_vector`), or that a commit failed (`error`, retried)."""

    state_vector: bytes | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def event_of(row: StoredEvent) -> Event:
    return Event(
        row.seq, row.event_id, row.type, row.document, row.created_at_ms, row.body.encode()
    )


def delivery_of(row: DeliveryRow) -> DeliveryInfo:
    return DeliveryInfo(
        id=row.id,
        sink=row.sink,
        event_id=row.event_id,
        event_type=row.event_type,
        document=row.document,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
        next_attempt_ms=row.next_attempt_ms if row.status == "pending" else None,
    )


__all__ = [
    "EVENT_TYPES",
    "CommitNotice",
    "DeliveryInfo",
    "Event",
    "Sink",
    "delivery_of",
    "event_of",
]
