"""The Server-Sent Events stream's own mechanics (collab/api/events.py) on a real server, over an
in-memory change feed whose events the test writes directly: framing, where a stream starts and
resumes, keepalives, committed notices, a subscriber that cannot keep up, the server stopping.
(tests/integration/test_sse.py drives the same routes end to end over the real outbox.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from collab.api import EXCEPTION_HANDLERS, events
from collab.api.router import OperationRoute
from collab.events import CommitNotice, Event
from collab.settings import Settings
from tests.conftest import RunningServer, serve_app
from tests.sse import Message, messages, take

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Watch:
    def __init__(self, feed: FakeFeed, document: str) -> None:
        self.feed, self.document = feed, document
        self.send, self.receive = anyio.create_memory_object_stream[CommitNotice](100)

    async def next(self) -> CommitNotice:
        return await self.receive.receive()

    def __enter__(self) -> Watch:
        self.feed.watches.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.feed.watches.remove(self)
        self.send.close()
        self.receive.close()


class FakeFeed:
    """The reading half of EventFeed, over a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.purged = 0  # events[:purged] are gone (retention)
        self.watches: list[Watch] = []
        self._written = anyio.Event()

    def write(self, type: str, document: str, **extra: Any) -> Event:
        seq = len(self.events) + 1
        body = {"id": f"evt_{uuid.uuid4().hex}", "type": type, "document": document, **extra}
        event = Event(seq, body["id"], type, document, 0, json.dumps(body).encode())
        self.events.append(event)
        self._written.set()
        self._written = anyio.Event()
        return event

    def notice(self, document: str, notice: CommitNotice) -> None:
        for watch in self.watches:
            if watch.document == document:
                watch.send.send_nowait(notice)

    async def events_after(
        self, after: int, *, document: str | None = None, prefix: str = "", limit: int = 100
    ) -> list[Event]:
        kept = self.events[self.purged :]
        return [
            e
            for e in kept
            if e.seq > after
            and (e.document == document if document is not None else e.document.startswith(prefix))
        ][:limit]

    async def position_of(self, event_id: str) -> int | None:
        return next((e.seq for e in self.events[self.purged :] if e.id == event_id), None)

    async def oldest_position(self) -> int:
        return self.purged

    async def latest_position(self) -> int:
        return len(self.events)

    async def wait(self, after: int, timeout: float) -> None:
        if len(self.events) > after:
            return
        with anyio.move_on_after(timeout):
            await self._written.wait()

    def watch_commits(self, document: str) -> Watch:
        return Watch(self, document)

    async def committed_state(self, document: str) -> bytes | None:
        return None  # (as when changes of it are still in memory: wait for a notice)


class FakeHub:
    """What the routes and the server's stop ask of the hub: no auth, accepting until stopped."""

    accepting = True
    hooks = SimpleNamespace(has=lambda name: False)

    async def close_all(self, code: int, reason: str, wait_s: float) -> None:
        self.accepting = False


@asynccontextmanager
async def fake_server(settings: Settings) -> AsyncIterator[tuple[RunningServer, FakeFeed]]:
    feed = FakeFeed()
    app = Starlette(
        routes=[OperationRoute(op) for op in events.OPERATIONS],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    app.state.events = feed
    app.state.hub = FakeHub()
    async with anyio.create_task_group() as tg:
        running = await serve_app(tg, app, settings, "collab")
        try:
            yield running, feed
        finally:
            await running.server.stop()


@asynccontextmanager
async def stream(
    base: str, path: str, *, headers: dict[str, str] | None = None
) -> AsyncIterator[AsyncIterator[Message]]:
    async with (
        httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield messages(response)


DOC = "/api/documents/team%2Fnotes/events"


async def test_framing_start_and_resume(settings):
    async with fake_server(settings) as (srv, feed):
        old = feed.write("document.created", "team/notes")
        async with stream(srv.http, DOC) as got:
            # A new subscriber starts after the newest event: `old` is not sent.
            feed.write("document.changed", "team/other")  # another document's: not sent
            new = feed.write("document.changed", "team/notes", text={"t": "a\nb"})
            [message] = await take(got, 1)
        assert message == Message("document.changed", new.body.decode(), new.id)
        assert message.json()["text"] == {"t": "a\nb"}

        # Last-Event-ID (the header, else ?last_event_id=) resumes right after that event.
        async with stream(srv.http, DOC, headers={"Last-Event-ID": old.id}) as got:
            assert [m.id for m in await take(got, 1)] == [new.id]
        async with stream(srv.http, f"{DOC}?last_event_id={old.id}") as got:
            assert [m.id for m in await take(got, 1)] == [new.id]
        # An id no longer kept: from the oldest event still there.
        feed.purged = 1
        async with stream(srv.http, DOC, headers={"Last-Event-ID": "evt_gone"}) as got:
            assert [m.id for m in await take(got, 1)] == [new.id]


async def test_prefix_stream_and_keepalive(settings, monkeypatch):
    monkeypatch.setattr(events, "KEEPALIVE_S", 0.2)
    async with fake_server(settings) as (srv, feed):
        async with stream(srv.http, "/api/events?prefix=team/") as got:
            a = feed.write("document.created", "team/a")
            feed.write("document.created", "hr/b")
            c = feed.write("document.deleted", "team/c")
            assert [(m.event, m.id) for m in await take(got, 2)] == [
                ("document.created", a.id),
                ("document.deleted", c.id),
            ]
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            async with http.stream("GET", "/api/events") as response:
                with anyio.fail_after(5):
                    comment = await anext(messages(response, comments=True))
        assert comment == Message(":", "keepalive")


async def test_types_filter_the_stream(settings):
    async with fake_server(settings) as (srv, feed):
        path = "/api/events?types=document.deleted,version.created"
        async with stream(srv.http, path) as got:
            feed.write("document.changed", "a")
            deleted = feed.write("document.deleted", "a")
            version = feed.write("version.created", "b")
            assert [m.id for m in await take(got, 2)] == [deleted.id, version.id]
        # `none`: a stream of the committed notices alone (what the editor opens)
        async with stream(srv.http, DOC + "?committed=1&types=none") as got:
            with anyio.fail_after(5):
                while not feed.watches:
                    await anyio.sleep(0.01)
            feed.write("document.changed", "team/notes")
            feed.notice("team/notes", CommitNotice(state_vector=b"\x01\x07\x03"))
            [only] = await take(got, 1)
        assert only.event == "committed"
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.get("/api/events?types=document.renamed")
        assert response.status_code == 400
        assert "document.renamed" in response.json()["error"]["message"]


async def test_committed_notices(settings):
    async with fake_server(settings) as (srv, feed):
        async with stream(srv.http, DOC + "?committed=1") as got:
            with anyio.fail_after(5):
                while not feed.watches:
                    await anyio.sleep(0.01)
            feed.notice("team/notes", CommitNotice(state_vector=b"\x01\x07\x03"))
            feed.notice("team/notes", CommitNotice(error="database is locked"))
            committed, failed = await take(got, 2)
        assert committed == Message("committed", '{"state_vector": "AQcD"}')
        assert failed == Message("commit_failed", '{"error": "database is locked"}')
        with anyio.fail_after(5):  # the watch ends with its stream (once the server sees it go)
            while feed.watches:
                await anyio.sleep(0.01)


async def test_a_subscriber_that_does_not_read_is_closed_and_resumes(settings, monkeypatch):
    monkeypatch.setattr(events, "MAX_QUEUED", 8)
    monkeypatch.setattr(events, "STALL_S", 0.5)
    total, padding = 400, "x" * 64_000  # ~25 MB: more than the sockets' buffers hold
    async with fake_server(settings) as (srv, feed):
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False, timeout=10) as http:
            async with http.stream("GET", DOC) as response:
                written = [feed.write("document.changed", "team/notes", pad=padding)]
                written += [
                    feed.write("document.changed", "team/notes", pad=padding)
                    for _ in range(total - 1)
                ]
                # The stream is cut once the sockets' buffers are full and 8 more events waited
                # 0.5 s; the client then reads what reached it, up to the end of the stream.
                closed = events.stats.closed_slow
                with anyio.fail_after(10):
                    while events.stats.closed_slow == closed:
                        await anyio.sleep(0.02)
                    received = [m.id async for m in messages(response)]
        assert 0 < len(received) < total
        assert received == [e.id for e in written[: len(received)]]
        # Resuming from its last id, it gets every other one, in order.
        async with stream(srv.http, DOC, headers={"Last-Event-ID": received[-1]}) as got:
            rest = await take(got, total - len(received))
        assert received + [m.id for m in rest] == [e.id for e in written]


async def test_streams_end_when_the_server_stops(settings):
    async with fake_server(settings) as (srv, _feed):
        async with stream(srv.http, DOC) as got:
            srv.app.state.hub.accepting = False
            with anyio.fail_after(5):
                assert [m async for m in got] == []


def test_every_stream_is_in_the_schema() -> None:
    from collab.api import openapi_schema

    paths = openapi_schema()["paths"]
    for path in ("/api/documents/{name}/events", "/api/events"):
        ok = paths[path]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"text/event-stream"}, path
