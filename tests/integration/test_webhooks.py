"""Webhooks (issue 13) against a real HTTP receiver started by the test (tests/webhook_receiver):
the sink alone (headers, signature, what fails an attempt and why), then through a real server
and its change feed: signed events, retries with the same id, order per document, one dead
endpoint never delaying another, the delivery log in the API and the CLI, and a receiver that is
down across a kill -9 of the server still getting every event afterwards."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from collab.events import Event
from collab.events.feed import EventFeed
from collab.extensions.webhooks import WebhookError, WebhookSink, verify
from collab.settings import Settings
from storage import open_store
from tests.conftest import RunningServer, free_port, serving
from tests.integration import api_support
from tests.integration.api_support import api, assert_error, path
from tests.procs import ServerProcess
from tests.webhook_receiver import HANG, Received, Receiver

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL

SECRET = "whsec-0123456789"
ROOT = Path(__file__).resolve().parents[2]


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


# -- through a server and its change feed ---------------------------------------------------------


def hooked(settings: Settings, *urls: str, **changes: Any) -> Settings:
    """The test's settings with webhooks to `urls` and document.changed events made quickly."""
    return settings.replace(
        webhook_urls=",".join(urls),
        webhook_secret=SECRET,
        events_debounce_ms=100,
        events_max_wait_ms=500,
        **changes,
    )


async def set_text(http: httpx.AsyncClient, name: str, text: str) -> None:
    response = await http.patch(path(name), json={"text": {"codemirror": text}})
    assert response.status_code == 200, response.text


async def outbox(srv: RunningServer, document: str | None = None) -> list[Event]:
    feed: EventFeed = srv.app.state.events
    return await feed.events_after(0, document=document, limit=10_000)


async def stored_outbox(settings: Settings, document: str | None = None) -> list[Event]:
    """The outbox as a stopped server left it (a clean shutdown may write events: a version)."""
    store = await open_store(settings.database_url)
    try:
        feed = EventFeed(store, settings)
        return await feed.events_after(0, document=document, limit=10_000)
    finally:
        await store.close()


def changed_text(received: Received) -> str | None:
    body = received.json()
    return body["text"].get("codemirror") if body["type"] == "document.changed" else None


def delivered_ids(receiver: Receiver) -> set[str]:
    return {r.event_id for r in receiver.delivered()}


async def all_delivered(srv: RunningServer, receiver: Receiver, texts: dict[str, str]) -> None:
    """Until each document's change to `texts[name]` reached the receiver with a 2xx, and with
    it every event the outbox then holds."""

    def changes_in() -> bool:
        last = {r.json()["document"]: changed_text(r) for r in receiver.delivered()}
        return all(last.get(name) == text for name, text in texts.items())

    await receiver.wait_for(changes_in, timeout=10)
    with anyio.fail_after(10):
        while not {e.id for e in await outbox(srv)} <= delivered_ids(receiver):
            await receiver.next_request(timeout=0.2)


async def test_events_arrive_signed_with_their_id_and_the_documents_text(
    settings: Settings,
) -> None:
    receiver = Receiver()
    s = hooked(settings, receiver.url())
    async with receiver.running(), serving(s) as srv:
        async with api(srv.http) as http:
            await set_text(http, "team/notes", "hello")
        await receiver.wait_for(
            lambda: any(changed_text(r) == "hello" for r in receiver.delivered())
        )
    events = await stored_outbox(s, "team/notes")
    assert receiver.requests
    for got in receiver.requests:
        assert verify(SECRET, got.headers, got.body)
        assert not verify(SECRET + "x", got.headers, got.body)
        body = got.json()
        assert body["id"] == got.event_id and body["document"] == "team/notes"
        assert got.body in {e.body for e in events}  # the outbox's bytes, as they are
    types = [r.json()["type"] for r in receiver.delivered()]
    assert types[0] == "document.created" and "document.changed" in types


async def test_a_receiver_answering_500_twice_gets_the_event_three_times_with_one_id(
    settings: Settings,
) -> None:
    receiver = Receiver()
    receiver.script(500, 500)  # the first event's first two attempts
    async with receiver.running(), serving(hooked(settings, receiver.url())) as srv:
        async with api(srv.http) as http:
            await set_text(http, "doc", "x")
            await receiver.wait_for(lambda: len(receiver.delivered()) >= 1, timeout=14)
            first, second, third = receiver.requests[:3]
            assert [first.status, second.status, third.status] == [500, 500, 200]
            assert first.event_id == second.event_id == third.event_id
            assert first.body == second.body == third.body
            assert second.at > first.at and third.at > second.at
            log = await wait_for_log(http, lambda d: d["event_id"] == first.event_id, "delivered")
    assert log["attempts"] == 3 and log["endpoint"] == receiver.url()


async def wait_for_log(
    http: httpx.AsyncClient, match: Callable[[dict[str, Any]], bool], status: str
) -> dict[str, Any]:
    """The delivery log's entry that matches, once it has that status."""
    with anyio.fail_after(10):
        while True:
            response = await http.get("/api/webhooks/deliveries", params={"limit": 1000})
            assert response.status_code == 200, response.text
            found = [d for d in response.json()["deliveries"] if match(d)]
            if found and found[0]["status"] == status:
                return found[0]
            await anyio.sleep(0.05)


async def test_each_documents_events_arrive_in_order_even_through_failed_attempts(
    db_settings: Settings,
) -> None:
    """Three documents edited at once, each several times (an event per edit: they are spaced
    beyond the debounce), with every third answer a 500: for each document, the requests'
    event ids, repeats collapsed, are the outbox's order, never going back."""
    receiver = Receiver()
    receiver.script(*([500, 200, 200] * 30))
    names = ["order/a", "order/b", "order/c"]
    s = hooked(db_settings, receiver.url())
    async with receiver.running(), serving(s) as srv:
        async with api(srv.http) as http, anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(edit_repeatedly, http, name, 5)
        await all_delivered(srv, receiver, {name: f"{name} edit 4" for name in names})
        delivered_then = {name: len(await outbox(srv, name)) for name in names}
    for name in names:  # (the outbox, with what the shutdown added: versions, maybe delivered)
        expected = [e.id for e in await stored_outbox(s, name)]
        sent = [r.event_id for r in receiver.requests if r.json()["document"] == name]
        collapsed = [i for n, i in enumerate(sent) if n == 0 or sent[n - 1] != i]
        assert collapsed == expected[: len(collapsed)], name
        assert len(collapsed) >= delivered_then[name] >= 4  # (created, changed several times)


async def edit_repeatedly(http: httpx.AsyncClient, name: str, times: int) -> None:
    for n in range(times):
        await set_text(http, name, f"{name} edit {n}")
        await anyio.sleep(0.25)  # (beyond the 100 ms debounce: one document.changed each)


async def test_a_dead_and_a_hung_endpoint_never_delay_a_live_one(settings: Settings) -> None:
    """Endpoints: one refusing connections, one that never answers, one live. Twelve documents
    (more than a sink's in-flight limit) edited: the live one has each event well within the
    5 s a wait behind the hung one would take, while the others' deliveries fail."""
    live, hung = Receiver(), Receiver()
    hung.default = HANG
    dead = f"http://127.0.0.1:{free_port()}/hook"
    s = hooked(settings, dead, hung.url(), live.url())
    names = [f"fan/{n}" for n in range(12)]
    async with live.running(), hung.running(), serving(s) as srv, api(srv.http) as http:
        for name in names:
            await set_text(http, name, name)
        await all_delivered(srv, live, {name: name for name in names})
        events = await outbox(srv)
        assert {e.document for e in events} == set(names)
        first = {r.event_id: r for r in reversed(live.delivered())}
        late = {e.id: first[e.id].wall_ms - e.time_ms for e in events}
        assert max(late.values()) < 2500, late  # (behind the hung one: over 5000)
        assert hung.requests  # (it was asked, and is still hanging)
        failing = await wait_for_log(
            http, lambda d: d["endpoint"] == dead and d["attempts"] >= 1, "pending"
        )
        assert "ConnectError" in (failing["last_error"] or "")


@pytest.mark.durability
async def test_a_receiver_down_across_a_kill_9_gets_every_event_after_the_restart(
    launch: Callable[..., ServerProcess],
) -> None:
    """The receiver is down (connection refused) while documents are edited and the server is
    killed with SIGKILL, some edits not yet made into events; after the restart, with the
    receiver up, it gets every event the delivery log had before the kill and each document's
    last text."""
    receiver = Receiver()
    server = launch(
        "--webhook-urls",
        receiver.url(),
        "--webhook-secret",
        SECRET,
        "--events-debounce-ms",
        "100",
        "--events-max-wait-ms",
        "500",
    )
    names = [f"crash/{n}" for n in range(4)]
    base = f"http://127.0.0.1:{server.port}"
    await server.start()
    async with api(base) as http:
        for name in names:
            await set_text(http, name, f"{name} first")
        for name in names:  # its events made, the first one failing to go out, the next waiting
            for kind, attempted in (("document.created", 1), ("document.changed", 0)):
                await wait_for_log(
                    http,
                    lambda d, name=name, kind=kind, attempted=attempted: (
                        d["document"] == name
                        and d["event_type"] == kind
                        and d["attempts"] >= attempted
                    ),
                    "pending",
                )
        response = await http.get("/api/webhooks/deliveries", params={"limit": 1000})
        before_kill = {d["event_id"] for d in response.json()["deliveries"]}
        for name in names:
            await set_text(http, name, f"{name} last")  # committed; its event may not be
    server.kill()
    assert await server.wait_exit(10) == -9
    async with receiver.running():
        await server.start()

        def done() -> bool:
            last = {r.json()["document"]: changed_text(r) for r in receiver.delivered()}
            return before_kill <= delivered_ids(receiver) and all(
                last.get(name) == f"{name} last" for name in names
            )

        await receiver.wait_for(done, timeout=14)
        await server.stop()
    assert len(before_kill) >= 2 * len(names)  # (created and changed, each)
    for got in receiver.requests:
        assert verify(SECRET, got.headers, got.body)
    await the_cli_shows_and_retries(server.database_url, before_kill)


async def collab_cli(*args: str, database_url: str) -> str:
    done = await anyio.run_process(
        [sys.executable, "-m", "collab", *args, "--database-url", database_url],
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def the_cli_shows_and_retries(database_url: str, event_ids: set[str]) -> None:
    """`collab deliveries` on the stopped server's store: every delivery done; a retry makes
    one pending again, due now."""
    listed = await collab_cli("deliveries", "--json", database_url=database_url)
    rows = [json.loads(line) for line in listed.splitlines()]
    assert event_ids <= {row["event_id"] for row in rows}
    assert {row["status"] for row in rows} == {"delivered"}
    assert await collab_cli("deliveries", "--status", "pending", database_url=database_url) == ""
    newest = rows[0]["id"]
    retried = await collab_cli("deliveries", "retry", str(newest), database_url=database_url)
    assert retried.startswith(f"{newest}\t") and "\tpending\t" in retried
    pending = await collab_cli(
        "deliveries", "--status", "pending", "--json", database_url=database_url
    )
    assert [json.loads(line)["id"] for line in pending.splitlines()] == [newest]
    missing = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "collab",
            "deliveries",
            "retry",
            "999999",
            "--database-url",
            database_url,
        ],
        check=False,
        cwd=ROOT,
    )
    assert missing.returncode == 1 and b"no webhook delivery 999999" in missing.stderr


async def test_the_delivery_log_over_http_needs_access_to_every_document(
    db_settings: Settings,
) -> None:
    """Without a token 401; a token scoped to some documents 403 (it would show others'); a
    `*` read token reads it but may not retry (403); a `*` write token retries: the delivery
    is pending again and delivered again, with the same event id."""
    receiver = Receiver()
    s = hooked(db_settings, receiver.url(), auth_secret=api_support.SECRET)
    everything = api_support.token("*", write=True)
    async with receiver.running(), serving(s) as srv:
        async with api(srv.http, everything) as http:
            await set_text(http, "team/a", "hi")
            await receiver.wait_for(lambda: any(changed_text(r) for r in receiver.delivered()))
            entry = await wait_for_log(
                http, lambda d: d["event_type"] == "document.changed", "delivered"
            )
        listing, one = "/api/webhooks/deliveries", f"/api/webhooks/deliveries/{entry['id']}"
        retry = one + "/retry"
        async with api(srv.http) as anonymous:
            assert_error(await anonymous.get(listing), 401)
            assert_error(await anonymous.post(retry), 401)
        async with api(srv.http, api_support.token("team/*", write=True)) as scoped:
            assert_error(await scoped.get(listing), 403)
            assert_error(await scoped.get(one), 403)
            assert_error(await scoped.post(retry), 403)
        async with api(srv.http, api_support.token("*")) as reader:
            page = (await reader.get(listing, params={"document": "team/a"})).json()
            assert entry in page["deliveries"] and page["next_cursor"] is None
            assert (await reader.get(one)).json() == entry
            assert_error(await reader.post(retry), 403, "token is read-only")
        async with api(srv.http, everything) as admin:
            assert_error(await admin.post("/api/webhooks/deliveries/999999/retry"), 404)
            assert_error(await admin.get("/api/webhooks/deliveries/x1"), 404)
            assert_error(await admin.get(listing, params={"status": "lost"}), 400)
            assert_error(await admin.get(listing, params={"cursor": "x"}), 400)
            before = len(receiver.delivered())
            retried = await admin.post(retry)
            assert retried.status_code == 200, retried.text
            assert retried.json()["status"] in ("pending", "delivered")
            await receiver.wait_for(lambda: len(receiver.delivered()) > before)
            assert receiver.delivered()[-1].event_id == entry["event_id"]
            again = await wait_for_log(admin, lambda d: d["id"] == entry["id"], "delivered")
            assert again["attempts"] == entry["attempts"] + 1


async def test_an_attempt_after_the_client_closed_fails_with_a_reason() -> None:
    client = httpx.AsyncClient()
    await client.aclose()
    with pytest.raises(WebhookError, match="the server is stopping"):
        await sink("http://127.0.0.1:9/hook", client).deliver(event())
