"""The change feed as Server-Sent Events: GET /api/documents/{name}/events (one document) and
GET /api/events?prefix= (every document the caller may see whose name starts with the prefix).

Each event is written as `id: <event id>`, `event: <type>`, `data: <its JSON body>` (the body
every sink sends, docs/events.md). A browser's EventSource sends the last id it saw as
`Last-Event-ID` when it reconnects (`?last_event_id=` does the same for clients that cannot set
headers): the stream goes on right after that event, so nothing still in the outbox is missed
(an id no longer known, purged by retention, resumes from the oldest event kept). Without either,
a stream starts with the next event. A comment line every 15 s keeps proxies from closing an idle
stream.

Events are read from the outbox at the pace the subscriber takes them (a subscriber resuming far
back catches up without the server holding its backlog). One that cannot keep up at all (its
connection takes nothing while `MAX_QUEUED` events wait for it, for `STALL_S`) is closed rather
than kept with its buffers; it resumes from its last id like any reconnect.

`?committed=1` on a document's stream also sends `event: committed` `data: {"state_vector":
"<base64>"}` whenever what the server has durably committed of that document grows, and
`event: commit_failed` `data: {"error": "..."}` when a commit failed (it is retried): the
editor's "Saved" indicator follows these. They carry no id (a reconnect does not replay them;
the first notice after a reconnect tells the current state).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import Field
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..access import Access
from ..errors import ApiError, HttpStatus
from ..events import EVENT_TYPES, CommitNotice
from .documents import DOCUMENT
from .models import Model
from .router import EVENT_STREAM, Call, Operation

if TYPE_CHECKING:
    from ..events import Event
    from ..events.feed import EventFeed

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0  # a comment line this often while no event is sent
MAX_QUEUED = 256  # events (and notices) waiting for one subscriber's connection, at most
STALL_S = 10.0  # a subscriber whose queue stays full this long is closed
READ_BATCH = 100  # events read from the outbox at a time
RETRY_MS = 2000  # how long an EventSource waits before reconnecting (its `retry:` field)
STOP_CHECK_S = 0.5  # how often a stream looks whether the server is shutting down
MAX_ID = 200  # a Last-Event-ID longer than this is no id of ours


@dataclass(slots=True)
class StreamStats:
    """This process's streams: open now, and closed for not keeping up (since it started)."""

    open: int = 0
    closed_slow: int = 0


stats = StreamStats()


class EventsQuery(Model):
    last_event_id: str | None = Field(
        None,
        max_length=MAX_ID,
        description="resume after this event (as the Last-Event-ID header does; the header wins)",
    )
    types: str = Field(
        "",
        max_length=500,
        description="only these event types, comma-separated (empty: all; `none`: no events,"
        " for a stream that only wants the committed notices)",
    )

    def type_filter(self) -> frozenset[str] | None:
        """The types to send (None: all); 400 for a type that does not exist."""
        wanted = frozenset(t.strip() for t in self.types.split(",") if t.strip())
        if not wanted:
            return None
        if wanted == {"none"}:
            return frozenset()
        unknown = sorted(wanted - set(EVENT_TYPES))
        if unknown:
            raise ApiError(HttpStatus.BAD_REQUEST, f"unknown event type {unknown[0]!r}")
        return wanted


class DocumentEventsQuery(EventsQuery):
    committed: bool = Field(
        False,
        description="also send `committed` (the durably committed state vector, base64) and"
        " `commit_failed` notices, without ids",
    )


class PrefixEventsQuery(EventsQuery):
    prefix: str = Field("", description="only documents whose name starts with this")


def feed_of(call: Call) -> EventFeed:
    feed: EventFeed | None = getattr(call.request.app.state, "events", None)
    if feed is None:
        raise ApiError(HttpStatus.NOT_FOUND, "this server has no change feed")
    return feed


async def start_position(call: Call, feed: EventFeed, query: EventsQuery) -> int:
    """Where a stream starts: after the event it resumes from, else after the newest one."""
    last_id = call.request.headers.get("last-event-id", "").strip() or query.last_event_id
    if last_id:
        position = await feed.position_of(last_id[:MAX_ID])
        return position if position is not None else await feed.oldest_position()
    return await feed.latest_position()


async def document_events(call: Call) -> Response:
    query: DocumentEventsQuery = call.query
    feed = feed_of(call)
    start = await start_position(call, feed, query)
    return EventStream(
        call.request.app.state.hub,
        feed,
        start,
        access=call.access,
        document=call.name,
        commits=call.name if query.committed else None,
        types=query.type_filter(),
    )


async def all_events(call: Call) -> Response:
    query: PrefixEventsQuery = call.query
    if not call.access.reaches(query.prefix):
        raise ApiError(HttpStatus.FORBIDDEN, "token not valid for these documents")
    feed = feed_of(call)
    start = await start_position(call, feed, query)
    return EventStream(
        call.request.app.state.hub,
        feed,
        start,
        access=call.access,
        prefix=query.prefix,
        types=query.type_filter(),
    )


class Overflow(Exception):
    """The subscriber took nothing for STALL_S while MAX_QUEUED events waited for it."""


class EventStream(Response):
    """One subscriber's stream: a reader task moves events (and commit notices) from the feed
    into a bounded queue, the response's own loop writes them out; a disconnect, an overflow or
    the server shutting down ends it."""

    media_type = EVENT_STREAM

    def __init__(
        self,
        hub: Any,
        feed: EventFeed,
        start: int,
        *,
        access: Access,
        document: str | None = None,
        prefix: str = "",
        commits: str | None = None,
        types: frozenset[str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.hub, self.feed, self.position = hub, feed, start
        self.access, self.document, self.prefix, self.commits = access, document, prefix, commits
        self.types = types  # the event types to send (None: all)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(_body(f"retry: {RETRY_MS}\n\n".encode()))
        stats.open += 1
        try:
            outcome = await self._run(receive, send)
        finally:
            stats.open -= 1
        if outcome == "overflow":
            stats.closed_slow += 1
            log.info("SSE subscriber closed: it took nothing for %g s", STALL_S)
        if outcome != "disconnected":
            # The peer may not be reading at all: do not wait on its window for ever.
            with anyio.move_on_after(1):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _run(self, receive: Receive, send: Send) -> str:
        outcome: str | None = None
        sender, items = anyio.create_memory_object_stream[bytes](MAX_QUEUED)

        async def until(reason: str, task: Any, *args: Any) -> None:
            nonlocal outcome
            try:
                await task(*args)
            except Overflow:
                reason = "overflow"
            if outcome is None:
                outcome = reason
            tg.cancel_scope.cancel()

        with sender, items:
            async with anyio.create_task_group() as tg:
                tg.start_soon(until, "disconnected", self._until_disconnect, receive)
                tg.start_soon(until, "stopped", self._until_stopping)
                if self.types is None or self.types:
                    tg.start_soon(until, "overflow", self._read_events, sender)
                if self.commits is not None:
                    tg.start_soon(until, "overflow", self._read_commits, sender)
                tg.start_soon(until, "disconnected", self._write, items, send)
        return outcome or "stopped"

    async def _write(self, items: MemoryObjectReceiveStream[bytes], send: Send) -> None:
        while True:
            chunk = b": keepalive\n\n"
            with anyio.move_on_after(KEEPALIVE_S):
                chunk = await items.receive()
            await send(_body(chunk))

    async def _read_events(self, queue: MemoryObjectSendStream[bytes]) -> None:
        while True:
            events = await self.feed.events_after(
                self.position, document=self.document, prefix=self.prefix, limit=READ_BATCH
            )
            for event in events:
                self.position = event.seq
                wanted = self.types is None or event.type in self.types
                if wanted and self.access.covers(event.document):
                    await _put(queue, event_chunk(event))
            if len(events) < READ_BATCH:
                await self.feed.wait(self.position, KEEPALIVE_S)

    async def _read_commits(self, queue: MemoryObjectSendStream[bytes]) -> None:
        assert self.commits is not None
        with self.feed.watch_commits(self.commits) as watch:
            # The state when the stream began (a watch tells it itself only when this process
            # has the document open): what a reconnecting editor needs to say "Saved" at once.
            state = await self.feed.committed_state(self.commits)
            if state is not None:
                watch.offer(CommitNotice(state_vector=state))
            while True:
                chunk = notice_chunk(await watch.next())
                if chunk:
                    await _put(queue, chunk)

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _until_stopping(self) -> None:
        """End the stream when the server shuts down (uvicorn would wait for it otherwise);
        the EventSource reconnects to the next server and resumes."""
        while True:  # (the hub has no event for it: a cheap look twice a second)
            if not getattr(self.hub, "accepting", True):
                return
            await anyio.sleep(STOP_CHECK_S)


async def _put(queue: MemoryObjectSendStream[bytes], chunk: bytes) -> None:
    try:
        queue.send_nowait(chunk)
    except anyio.WouldBlock:
        with anyio.move_on_after(STALL_S):
            await queue.send(chunk)
            return
        raise Overflow from None


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


def event_chunk(event: Event) -> bytes:
    """One event as SSE lines. The body is one line of JSON (json.dumps escapes newlines), but
    a body with a line break would still be framed right: each line gets its own `data:`."""
    data = b"".join(b"data: " + line + b"\n" for line in event.body.splitlines() or [b""])
    return f"id: {event.id}\nevent: {event.type}\n".encode() + data + b"\n"


def notice_chunk(notice: CommitNotice) -> bytes:
    if notice.error is not None:
        name, data = "commit_failed", {"error": notice.error}
    elif notice.state_vector is not None:
        sv = base64.b64encode(notice.state_vector).decode()
        name, data = "committed", {"state_vector": sv}
    else:
        return b""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


OPERATIONS = [
    Operation(
        "GET",
        DOCUMENT + "/events",
        "documentEvents",
        "Follow a document's events (Server-Sent Events)",
        document_events,
        tag="events",
        query=DocumentEventsQuery,
        response=EVENT_STREAM,
        description="A `text/event-stream`: `id:` the event id, `event:` its type, `data:` its"
        " JSON body (docs/events.md). Resumes after `Last-Event-ID` (or `?last_event_id=`);"
        " without it, starts with the next event. EventSource cannot send headers: pass the"
        " token as `?token=`. A subscriber too slow to keep up is closed and resumes from its"
        " last id.",
    ),
    Operation(
        "GET",
        "/api/events",
        "events",
        "Follow the events of every document under a prefix (Server-Sent Events)",
        all_events,
        tag="events",
        query=PrefixEventsQuery,
        response=EVENT_STREAM,
        description="As a document's stream, for every document whose name starts with"
        " `prefix` that the token's scope covers.",
    ),
]
