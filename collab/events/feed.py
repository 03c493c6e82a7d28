"""EventFeed: the one door to the outbox (see collab/events/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import CommitNotice, DeliveryInfo, Event, Sink


class CommitWatch:
    """A document's committed-state notices for one watcher (an SSE stream): `await next()`
    returns the newest notice not yet returned (older ones are superseded, never queued).
    Use as a context manager: leaving it stops the watch."""

    async def next(self) -> CommitNotice:
        raise NotImplementedError

    def __enter__(self) -> CommitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError


class EventFeed:
    """app.state.events; OnStartupPayload.events."""

    enabled: bool  # COLLAB_EVENTS: False writes no events (sinks then get nothing)

    def add_sink(self, sink: Sink) -> None:
        """Deliver every event from now on to `sink` (call in on_startup). A sink seen before
        (same name, say across a restart) resumes where it stopped: nothing pending is lost."""
        raise NotImplementedError

    @property
    def sinks(self) -> Sequence[str]:
        raise NotImplementedError

    async def events_after(
        self, after: int, *, document: str | None = None, prefix: str = "", limit: int = 100
    ) -> list[Event]:
        """Events with seq > `after` in seq order: of one document, or of the documents whose
        name starts with `prefix`."""
        raise NotImplementedError

    async def position_of(self, event_id: str) -> int | None:
        """The seq of the event with that id; None when unknown (never was, or purged)."""
        raise NotImplementedError

    async def oldest_position(self) -> int:
        """A position before the oldest event still kept (resume from here when a
        Last-Event-ID is no longer known)."""
        raise NotImplementedError

    async def latest_position(self) -> int:
        """The seq of the newest event (0 when none): a new subscriber starts after it."""
        raise NotImplementedError

    async def wait(self, after: int, timeout: float) -> None:
        """Return when an event with seq > `after` may exist (this process wrote one; other
        processes' are found by polling), or after `timeout` seconds."""
        raise NotImplementedError

    def watch_commits(self, document: str) -> CommitWatch:
        raise NotImplementedError

    async def emit(
        self, type: str, document: str, users: Sequence[str] = (), **extra: Any
    ) -> Event | None:
        """Write an event that commits no update (user.joined, version.restored); None when
        events are off."""
        raise NotImplementedError

    async def deliveries(
        self,
        *,
        sink_prefix: str = "",
        status: str | None = None,
        document: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[DeliveryInfo]:
        """The delivery log, newest first (id < `before` to page)."""
        raise NotImplementedError

    async def delivery(self, delivery_id: int) -> DeliveryInfo | None:
        raise NotImplementedError

    async def retry(self, delivery_id: int) -> DeliveryInfo | None:
        """Make a delivery pending again, due now (a failed one gets a fresh 24 h); None when
        there is no such delivery."""
        raise NotImplementedError

    async def backlog(self) -> dict[str, int]:
        """{"pending": deliveries not yet delivered, "failed": ..., "open_changes": documents
        with committed changes not yet made into an event}"""
        raise NotImplementedError
