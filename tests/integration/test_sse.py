"""Server-Sent Events end to end (issue 13): edits through the API become events in the outbox,
and a streaming HTTP client reads them from GET /api/documents/{name}/events and GET
/api/events?prefix=, resumes after a server killed with -9 without missing one, is refused
without a token (401) or outside its scope (403), and is closed when it stops reading."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from collab.api import events as sse
from collab.extensions.token_auth import mint_token
from tests.conftest import serving
from tests.integration import api_support
from tests.sse import Message, messages, take

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "sse-secret-0123456789-abcdefghijklmnopqrs"
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL
FAST = {"events_debounce_ms": 50, "events_max_wait_ms": 200, "commit_window_ms": 20}


def events_path(name: str) -> str:
    return f"/api/documents/{quote(name, safe='')}/events"


@asynccontextmanager
async def stream(
    base: str, path: str, *, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[AsyncIterator[Message]]:
    async with (
        httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http,
        http.stream("GET", path, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield messages(response)


async def patch(base: str, name: str, text: str, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, trust_env=False, headers=headers) as http:
        response = await http.patch(
            f"/api/documents/{quote(name, safe='')}", json={"text": {"t": text}}
        )
        assert response.status_code == 200, response.text


async def test_a_documents_events_arrive_with_their_body(db_settings):
    async with serving(db_settings.replace(**FAST)) as srv:
        async with stream(srv.http, events_path("team/notes")) as got:
            await patch(srv.http, "team/notes", "hello")
            created, changed = await take(got, 2)
        assert created.event == "document.created"
        assert changed.event == "document.changed"
        body = changed.json()
        assert changed.id == body["id"] and body["id"].startswith("evt_")
        assert body["type"] == "document.changed" and body["document"] == "team/notes"
        assert body["text"] == {"t": "hello"}
        assert isinstance(body["time_ms"], int) and body["state_vector"]
        assert created.id != changed.id


async def test_prefix_stream_shows_only_names_under_the_prefix(db_settings):
    async with serving(db_settings.replace(**FAST)) as srv:
        async with stream(srv.http, "/api/events", prefix="team/") as got:
            await patch(srv.http, "team/a", "a")
            await patch(srv.http, "hr/b", "b")
            await patch(srv.http, "team/c", "c")
            seen = await take(got, 4)
        assert {m.json()["document"] for m in seen} == {"team/a", "team/c"}
        # In order per document: created before changed.
        for name in ("team/a", "team/c"):
            kinds = [m.event for m in seen if m.json()["document"] == name]
            assert kinds == ["document.created", "document.changed"], kinds


async def test_auth_as_the_rest_of_the_api(server_with):
    def token(doc: str) -> str:
        return mint_token(doc=doc, write=True, ttl_s=60, secret=SECRET)

    async with server_with(auth_secret=SECRET, **FAST) as srv:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False, timeout=10) as http:
            response = await http.get(events_path("team/a"))
            assert response.status_code == 401, response.text
            response = await http.get(events_path("hr/x"), params={"token": token("team/*")})
            assert response.status_code == 403, response.text
            response = await http.get(
                "/api/events", params={"prefix": "hr/", "token": token("team/*")}
            )
            assert response.status_code == 403, response.text
        # ?token= (all EventSource can send); a prefix stream shows only what the scope covers.
        async with stream(srv.http, "/api/events", token=token("team/*")) as got:
            await patch(srv.http, "hr/x", "x", token("*"))
            await patch(srv.http, "team/a", "a", token("*"))
            seen = await take(got, 2)
        assert {m.json()["document"] for m in seen} == {"team/a"}
        async with stream(srv.http, events_path("team/a"), token=token("team/a")) as got:
            await patch(srv.http, "team/a", "a, again", token("*"))
            [changed] = await take(got, 1)
        assert changed.json()["text"] == {"t": "a, again"}


async def test_resume_with_last_event_id_across_a_kill_9_misses_nothing(launch: Any):
    # A debounce of a second: the edits committed just before the kill have no event yet; the
    # restarted server makes them into events (from the change marks committed with them).
    server = launch(
        "--events-debounce-ms=1000", "--events-max-wait-ms=5000", "--commit-window-ms=20"
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    async with stream(base, "/api/events") as got:
        await patch(base, "drill/a", "one")
        before = await take(got, 2)  # created, changed
    assert [m.event for m in before] == ["document.created", "document.changed"]
    last = before[-1].id

    # Edits the subscriber does not see: two committed, then a kill -9; after the restart,
    # one more.
    await patch(base, "drill/a", "two")
    await patch(base, "drill/b", "three")
    with anyio.fail_after(5):
        while (await server.health())["uncommitted_updates"]:
            await anyio.sleep(0.02)
    server.kill()
    await server.wait_exit(10)
    restarted_ms = time.time() * 1000
    await server.start()
    await patch(base, "drill/a", "four")

    # Every event still kept, from the oldest (an id never seen resumes from there)...
    async with stream(base, "/api/events", headers={"Last-Event-ID": "evt_unknown"}) as got:
        everything: list[Message] = []
        with anyio.fail_after(10):
            async for message in got:
                everything.append(message)
                if message.json().get("text") == {"t": "four"}:
                    break
    ids = [m.id for m in everything]
    assert len(ids) == len(set(ids)), "an event twice"
    assert ids[: len(before)] == [m.id for m in before]
    missed = everything[len(before) :]
    seen = [(m.event, m.json()["document"], m.json().get("text")) for m in missed]
    assert ("document.created", "drill/b", None) in seen
    assert ("document.changed", "drill/b", {"t": "three"}) in seen
    assert seen[-1] == ("document.changed", "drill/a", {"t": "four"})
    assert all(m.json()["time_ms"] >= restarted_ms for m in missed), "made before the kill"

    # ...and the subscriber resuming after its last id gets exactly the ones it missed.
    async with stream(base, "/api/events", headers={"Last-Event-ID": last}) as got:
        resumed = await take(got, len(missed))
    assert [m.id for m in resumed] == [m.id for m in missed]
    await server.stop()


async def test_a_subscriber_that_stops_reading_is_closed_and_resumes(server_with, monkeypatch):
    monkeypatch.setattr(sse, "MAX_QUEUED", 8)
    monkeypatch.setattr(sse, "STALL_S", 0.5)
    total = 300
    async with server_with(**FAST) as srv:
        feed = srv.app.state.events
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False, timeout=10) as http:
            async with http.stream("GET", "/api/events") as response:
                closed = sse.stats.closed_slow
                written = []
                for i in range(total):  # ~20 MB: more than the sockets' buffers hold
                    event = await feed.emit("version.restored", "big", pad=f"{i:06d}" * 10_000)
                    written.append(event.id)
                with anyio.fail_after(10):
                    while sse.stats.closed_slow == closed:
                        await anyio.sleep(0.02)
                with anyio.fail_after(10):
                    received = [m.id async for m in messages(response)]
        assert 0 < len(received) < total
        assert received == written[: len(received)]
        async with stream(srv.http, "/api/events", headers={"Last-Event-ID": received[-1]}) as got:
            rest = await take(got, total - len(received))
        assert received + [m.id for m in rest] == written
