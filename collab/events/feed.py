"""EventFeed: the one door to the outbox (see collab/events/__init__.py).

It owns the outbox's background work, each in a task of the app's task group once started:
the finalizer (collab/events/finalizer.py: due change marks -> document.created/changed
events), one delivery loop per sink (collab/events/delivery.py), and retention. The store
(storage/outbox.py) holds everything durable; the feed holds only what wakes whom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from storage import EventSettings, new_event

from . import CommitNotice, DeliveryInfo, Event, Sink, delivery_of, event_of
from .delivery import DeliveryLoop
from .finalizer import Finalizer
from .presence import Presence
from .signal import POLL_S, Signal

if TYPE_CHECKING:
    from ..documents import DocumentService
    from ..saver import Saver
    from ..settings import Settings

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 600.0


def write_events(store: Any, settings: Settings) -> bool:
    """Have `store` write change events as the settings say (it then marks the documents of
    every commit, and writes deletions and versions as events); whether it does."""
    if not settings.events or not hasattr(store, "configure_events"):
        return False
    store.configure_events(EventSettings(settings.events_debounce_ms, settings.events_max_wait_ms))
    return True


class CommitWatch:
    """A document's committed-state notices for one watcher (an SSE stream): `await next()`
    returns the newest notice not yet returned (older ones are superseded, never queued).
    Use as a context manager: leaving it stops the watch."""

    def __init__(self, saver: Saver | None, document: str, first: CommitNotice | None) -> None:
        self._latest = first
        self._ready = asyncio.Event()
        if first is not None:
            self._ready.set()
        self._stop: Callable[[], None] | None = None
        if saver is not None:
            self._stop = saver.watch(document, self._heard)

    def _heard(self, state_vector: bytes | None, error: str | None) -> None:
        self._latest = CommitNotice(state_vector, error)
        self._ready.set()

    def offer(self, notice: CommitNotice) -> None:
        """A notice found apart from the saver (the state when the watch began)."""
        if self._latest is None:
            self._latest = notice
            self._ready.set()

    async def next(self) -> CommitNotice:
        while True:
            await self._ready.wait()
            self._ready.clear()
            notice = self._latest
            if notice is not None:
                self._latest = None
                return notice

    def __enter__(self) -> CommitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


class EventFeed:
    """app.state.events; OnStartupPayload.events. Built on a store with an outbox
    (storage.OutboxTables); `enabled` False (COLLAB_EVENTS=false, or a store without one):
    nothing is written, reads find nothing."""

    def __init__(self, store: Any, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.enabled = write_events(store, settings)
        self._sinks: dict[str, Sink] = {}
        self._loops: dict[str, DeliveryLoop] = {}
        self._tg: TaskGroup | None = None
        self._saver: Saver | None = None
        self._documents: DocumentService | None = None
        self.written = Signal()  # this process wrote events
        self.progress = Signal()  # a delivery loop ran a round
        self._finalizer: Finalizer | None = None
        self._open = False  # open_sinks ran: sinks added now are opened at once

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self,
        tg: TaskGroup,
        documents: DocumentService,
        saver: Saver | None,
        hub: Any = None,
        defer: Callable[[str], bool] | None = None,
    ) -> None:
        """Run the outbox's loops in `tg` (the lifespan's): the finalizer, retention, and the
        delivery loop of every sink added before or after; with events_presence, user events
        from `hub`'s joins and leaves. The finalizer leaves the due marks of the documents
        `defer` names to another process for a while (the worker that holds them)."""
        self._tg, self._documents, self._saver = tg, documents, saver
        if not self.enabled:
            return
        if self.settings.events_presence and hub is not None:
            hub.on_presence.append(Presence(self.emit, tg).heard)
        self._finalizer = Finalizer(self.store, self.settings, documents, self.written)
        self._finalizer.defer = defer
        self.store.around_events(self._finalizer.finalize_document, self.written.fire)
        if saver is not None:
            saver.on_committed.append(self._finalizer.committed)
        tg.start_soon(self._finalizer.run)
        tg.start_soon(self._retention)

    async def open_sinks(self) -> None:
        """Register every sink added so far with the outbox and start its delivery loop (the
        lifespan calls this after on_startup, before serving: a new sink gets every event
        written from then on); a sink added later is opened when added.

        A single process (no bus, one worker) is the only one that can have held claims:
        what a killed predecessor held is let go at once instead of when the claims lapse."""
        self._open = True
        settings = self.settings
        if self.enabled and not settings.redis_url and not settings.bus and settings.workers == 1:
            await self.store.release_claims()
        for sink in self._sinks.values():
            await self._open_sink(sink)

    async def _open_sink(self, sink: Sink) -> None:
        if not self.enabled or self._tg is None:
            return
        await self.store.register_sink(sink.name)
        loop = self._loops[sink.name] = DeliveryLoop(
            self.store, self.settings, sink, self.written, self.progress
        )
        self._tg.start_soon(loop.run)

    async def stop(self, deadline_s: float, drain_s: float = 2.0) -> None:
        """A clean shutdown, once every room is flushed: make the pending changes into events
        now (the next process would, but later), give the sinks up to `drain_s` to deliver
        what is due (the shutdown's own versions, say), then stop their loops, so that
        extensions may close their clients in on_shutdown. All within `deadline_s`."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(deadline_s):
            if self._finalizer is not None:
                await self._finalizer.flush()
            loops = list(self._loops.values())
            if loops:
                rounds = {loop: loop.rounds for loop in loops}
                self.written.fire()
                with anyio.move_on_after(min(drain_s, deadline_s)):
                    while not all(loop.idle and loop.rounds > rounds[loop] for loop in loops):
                        await self.progress.wait(drain_s)
        for loop in self._loops.values():
            loop.stop()

    def add_sink(self, sink: Sink) -> None:
        """Deliver every event from now on to `sink` (call in on_startup). A sink seen before
        (same name, say across a restart) resumes where it stopped: nothing pending is lost."""
        if sink.name in self._sinks:
            raise ValueError(f"a sink named {sink.name!r} was added already")
        self._sinks[sink.name] = sink
        if self._open and self._tg is not None:
            self._tg.start_soon(self._open_sink, sink)

    @property
    def sinks(self) -> Sequence[str]:
        return list(self._sinks)

    # -- reading -----------------------------------------------------------------------------

    async def events_after(
        self, after: int, *, document: str | None = None, prefix: str = "", limit: int = 100
    ) -> list[Event]:
        """Events with seq > `after` in seq order: of one document, or of the documents whose
        name starts with `prefix`."""
        if not self.enabled:
            return []
        rows = await self.store.events_after(after, document, prefix, limit)
        return [event_of(r) for r in rows]

    async def position_of(self, event_id: str) -> int | None:
        """The seq of the event with that id; None when unknown (never was, or purged)."""
        if not self.enabled:
            return None
        found: int | None = await self.store.event_seq(event_id)
        return found

    async def oldest_position(self) -> int:
        """A position before the oldest event still kept (resume from here when a
        Last-Event-ID is no longer known)."""
        if not self.enabled:
            return 0
        low, _, count = await self.store.event_bounds()
        return max(int(low) - 1, 0) if count else 0

    async def latest_position(self) -> int:
        """The seq of the newest event (0 when none): a new subscriber starts after it."""
        if not self.enabled:
            return 0
        _, high, _ = await self.store.event_bounds()
        return int(high)

    def generation(self) -> int:
        """Take before reading events, pass to `wait` after: nothing written in between is
        slept through."""
        return self.written.generation

    async def wait(
        self,
        after: int,
        timeout: float,  # noqa: ASYNC109 (a bounded wait, not a deadline)
        since: int | None = None,
    ) -> None:
        """Return when an event with seq > `after` may exist (this process wrote one since
        `since`, a `generation()`; other processes' are found by polling), or after `timeout`
        seconds."""
        await self.written.wait(min(timeout, POLL_S), since)

    def watch_commits(self, document: str) -> CommitWatch:
        """Notices of `document`'s commits by this process (the editor's Saved indicator).
        The first one says what is committed now, when this process knows: the document is
        open here and everything it applied is committed."""
        saver = self._saver
        first = None
        if saver is not None:
            state = saver.committed_state_vector(document)
            if state is not None:
                first = CommitNotice(state)
        return CommitWatch(saver, document, first)

    async def committed_state(self, document: str) -> bytes | None:
        """The state vector of `document` as stored, when no process of ours holds changes
        of it in memory (None: it does; wait for a notice)."""
        saver = self._saver
        if saver is not None and not saver.is_clean(document):
            return None
        if saver is not None:
            state = saver.committed_state_vector(document)
            if state is not None:
                return state
        if self._documents is None:
            return None
        from pycrdt import get_state

        from ..errors import DocumentNotFound

        try:
            return get_state(await self._documents.read(document))
        except DocumentNotFound:
            return b"\x00"

    # -- writing -----------------------------------------------------------------------------

    async def emit(
        self,
        type: str,
        document: str,
        users: Sequence[str] = (),
        *,
        settle: bool = True,
        **extra: Any,
    ) -> Event | None:
        """Write an event that commits no update (user.joined, version.restored); None when
        events are off. `settle`: the document's pending changes become events first (so
        they come before this one); False for events whose order to changes does not
        matter (presence), which then cost no read of the document."""
        if not self.enabled:
            return None
        state_vector = extra.pop("state_vector", None)
        event = new_event(type, document, users, state_vector, **extra)
        seq = await self.store.add_event(event, settle)  # (wakes the loops: after_event)
        return Event(seq, event.event_id, type, document, event.created_at_ms, event.body.encode())

    # -- the delivery log --------------------------------------------------------------------

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
        if not self.enabled:
            return []
        rows = await self.store.list_deliveries(sink_prefix, status, document, limit, before)
        return [delivery_of(r) for r in rows]

    async def delivery(self, delivery_id: int) -> DeliveryInfo | None:
        if not self.enabled:
            return None
        row = await self.store.get_delivery(delivery_id)
        return None if row is None else delivery_of(row)

    async def retry(self, delivery_id: int) -> DeliveryInfo | None:
        """Make a delivery pending again, due now (a failed one gets a fresh 24 h); None when
        there is no such delivery."""
        if not self.enabled:
            return None
        row = await self.store.retry_delivery(delivery_id)
        if row is None:
            return None
        self.written.fire()
        return delivery_of(row)

    async def backlog(self) -> dict[str, int]:
        """{"pending": deliveries not yet delivered, "failed": ..., "delivered": ...,
        "open_changes": documents with committed changes not yet made into an event,
        "events": events kept}"""
        if not self.enabled:
            return {"pending": 0, "failed": 0, "delivered": 0, "open_changes": 0, "events": 0}
        counts: dict[str, int] = await self.store.outbox_counts()
        return counts

    # -- retention ---------------------------------------------------------------------------

    async def _retention(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("purging old events failed")
            await anyio.sleep(RETENTION_EVERY_S)

    async def purge(self) -> int:
        """Delete the events past the retention settings (and their deliveries)."""
        keep_s = self.settings.events_retention_s
        before = int((time.time() - keep_s) * 1000) if keep_s > 0 else None
        purged: int = await self.store.purge_events(before, self.settings.events_max_rows)
        if purged:
            log.info("purged %d events past retention", purged)
        return purged
