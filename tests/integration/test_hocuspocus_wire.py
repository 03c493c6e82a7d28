"""/hocuspocus at the byte level: what the real provider never sends (tests/interop drives it
for everything it does send), the mount prefix, and the fast path's route check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import Mount

import collab
from collab import protocol as p
from collab.hooks import Extension, OnStatelessPayload
from collab.protocols import hocuspocus_codec as hp
from tests.conftest import RunningServer, every_server, free_port, serve_app, serving
from tests.hocuspocus_wire import auth, hocuspocus_wire, message, stateless
from tests.integration import test_cluster
from tests.integration.test_metrics import scrape, value

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def scope(rest: bytes) -> str:
    assert rest[0] == hp.AUTH_AUTHENTICATED
    return hp.read_var_string(rest, 1)[0]


async def closed_with(ws: Any) -> tuple[int, str]:
    with anyio.fail_after(5):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    frame = closed.value.rcvd
    assert frame is not None
    return frame.code, frame.reason


@every_server
async def test_messages_before_auth_are_held_then_answered(server: RunningServer) -> None:
    async with hocuspocus_wire(server.url) as c:
        step1 = message("held", hp.SYNC, bytes((p.SYNC_STEP1,)) + p.var_bytes(b"\x00"))
        await c.send(step1)
        await c.send(auth("held"))
        assert scope(await c.expect("held", hp.AUTH)) == "read-write"
        # Our step 1 on joining, then the step 2 answering the held step 1.
        assert (await c.expect("held", hp.SYNC))[0] == p.SYNC_STEP1
        assert (await c.expect("held", hp.SYNC))[0] == p.SYNC_STEP2
        await c.send(message("held", hp.SYNC, bytes((p.SYNC_UPDATE,)) + p.var_bytes(b"\x00\x00")))
        assert await c.expect("held", hp.SYNC_STATUS) == b"\x01"
        # A second token and an unknown type are ignored; Ping gets Pong.
        await c.send(auth("held", "again"))
        await c.send(message("held", 42))
        await c.send(bytes((hp.PING,)))
        assert await c.receive() == bytes((hp.PONG,))


async def test_an_invalid_name_is_denied_and_the_socket_carries_on(server: RunningServer) -> None:
    async with hocuspocus_wire(server.url) as c:
        await c.send(auth("bad\x01name"))
        denied = await c.expect("bad\x01name", hp.AUTH)
        assert denied[0] == hp.AUTH_PERMISSION_DENIED
        assert hp.read_var_string(denied, 1)[0] == "document name contains control characters"
        await c.send(auth("good"))
        assert scope(await c.expect("good", hp.AUTH)) == "read-write"
        await c.expect("good", hp.SYNC)  # joined: our step 1
        assert server.hub.sessions("good")


async def test_a_malformed_envelope_closes_the_socket_1002(server: RunningServer) -> None:
    async with hocuspocus_wire(server.url) as c:
        await c.send(auth("doc"))
        await c.expect("doc", hp.AUTH)
        await c.send(b"\x02\xff\xfe\x00")  # an address that is not UTF-8
        assert await closed_with(c.ws) == (1002, "string is not valid UTF-8")


async def test_a_malformed_sync_message_closes_that_document_only(server: RunningServer) -> None:
    async with hocuspocus_wire(server.url) as c:
        for name in ("bad", "fine"):
            await c.send(auth(name))
            await c.expect(name, hp.AUTH)
        await c.send(message("bad", hp.SYNC, bytes((p.SYNC_UPDATE, 5, 1))))
        reason = await c.expect("bad", hp.CLOSE)
        assert hp.read_var_string(reason, 0)[0] == "length prefix beyond end of message"
        # The provider keeps sending for it until it opens it again: dropped, not held.
        for _ in range(40):
            await c.send(message("bad", hp.QUERY_AWARENESS))
        await c.send(message("fine", hp.SYNC, bytes((p.SYNC_UPDATE,)) + p.var_bytes(b"\x00\x00")))
        assert await c.expect("fine", hp.SYNC_STATUS) == b"\x01"
        assert server.hub.sessions("bad") == []
        await c.send(auth("bad"))
        assert scope(await c.expect("bad", hp.AUTH)) == "read-write"


async def test_too_much_before_auth_closes_1008(server_with: Any) -> None:
    async with server_with(pre_auth_max_messages=3) as server, hocuspocus_wire(server.url) as c:
        for _ in range(4):
            await c.send(message("doc", hp.QUERY_AWARENESS))
        assert await closed_with(c.ws) == (1008, "too much data before authentication")


@asynccontextmanager
async def mounted(tmp_path: Any) -> AsyncIterator[str]:
    settings = collab.Settings(
        port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db"
    )
    collab_app = collab.create_app(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with collab.lifespan(collab_app):
            yield

    host = Starlette(routes=[Mount("/collab", app=collab_app)], lifespan=lifespan)
    async with anyio.create_task_group() as tg:
        running = await serve_app(tg, host, settings, "uvicorn")
        try:
            yield f"ws://127.0.0.1:{settings.port}/collab"
        finally:
            await running.server.stop()


async def test_under_a_mount_prefix(tmp_path: Any) -> None:
    async with mounted(tmp_path) as url, hocuspocus_wire(url) as c:
        await c.send(auth("mounted"))
        assert scope(await c.expect("mounted", hp.AUTH)) == "read-write"


async def test_the_fast_path_refuses_other_paths(server: RunningServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.url}/hocuspocus/extra")
    assert refused.value.response.status_code == 404


@every_server(kinds=("collab", "uvicorn"))
async def test_each_document_counts_in_the_metrics(server: RunningServer, server_kind: str) -> None:
    """Two documents over one socket: two connections of protocol hocuspocus (the fast path)
    or hocuspocus_asgi, their messages counted by type as a /ws client's."""
    label = "hocuspocus" if server_kind == "collab" else "hocuspocus_asgi"
    before = await scrape(server.http + "/metrics")
    async with hocuspocus_wire(server.url) as c:
        for name in ("m1", "m2"):
            await c.send(auth(name))
            await c.expect(name, hp.SYNC)
        await c.send(message("m1", hp.SYNC, bytes((p.SYNC_UPDATE,)) + p.var_bytes(b"\x00\x00")))
        await c.expect("m1", hp.SYNC_STATUS)
        during = await scrape(server.http + "/metrics")
    assert value(during, "collab_connections", protocol=label) == 2
    opened = "collab_connections_opened_total"
    assert value(during, opened, protocol=label) - value(before, opened, protocol=label) == 2
    received = "collab_messages_received_total"
    assert value(during, received, type="update") - value(before, received, type="update") == 1


class FailingOnStateless(Extension):
    """An on_stateless hook that raises: its error and its duration must be counted."""

    def __init__(self) -> None:
        self.called = anyio.Event()

    async def on_stateless(self, payload: OnStatelessPayload) -> None:
        self.called.set()
        raise RuntimeError("this hook fails")


async def test_a_failing_on_stateless_hook_is_counted(settings: Any) -> None:
    failing = FailingOnStateless()
    async with serving(settings, extensions=[failing]) as server:
        async with hocuspocus_wire(server.url) as c:
            await c.send(auth("s"))
            await c.expect("s", hp.SYNC)
            await c.send(stateless("s", "hello"))
            with anyio.fail_after(5):
                await failing.called.wait()
                while True:  # (the error is counted once the hook has returned)
                    samples = await scrape(server.http + "/metrics")
                    if value(samples, "collab_hook_errors_total", hook="on_stateless") == 1:
                        break
                    await anyio.sleep(0.05)
        assert value(samples, "collab_hook_duration_seconds_count", hook="on_stateless") == 1


class Broadcast(Extension):
    """Sends each stateless message on to all of its document's Hocuspocus clients, and an
    answer to its sender alone (Hocuspocus' `document.broadcastStateless` and
    `connection.sendStateless`)."""

    async def on_startup(self, payload: collab.OnStartupPayload) -> None:
        self.documents = payload.documents

    async def on_stateless(self, payload: OnStatelessPayload) -> None:
        self.documents.send_stateless(payload.document, f"all:{payload.payload}")
        self.documents.send_stateless(
            payload.document, f"only:{payload.payload}", only=payload.connection.id
        )


redis = test_cluster.redis  # a fixture: a redis-server of the test's own


@pytest.mark.redis
async def test_a_stateless_broadcast_reaches_the_clients_of_every_process(
    settings: Any, redis: test_cluster.RedisServer
) -> None:
    """Two processes on a Redis bus (here: two servers in this one) hold a document: a message
    the server sends to all its clients reaches those connected to the other process too, as
    Hocuspocus' Redis extension relays broadcastStateless; one sent to a single connection
    (`only`: connection ids are a process's own) stays in its process."""
    await stateless_across(settings.replace(bus="redis", redis_url=redis.url))


@pytest.mark.postgres
async def test_a_stateless_broadcast_crosses_the_postgresql_bus_too(
    settings: Any, pg_database: str
) -> None:
    """The same over LISTEN/NOTIFY (one database for both processes), with an answer too long
    for one NOTIFY (8,000 bytes): it goes in parts."""
    long = "long " + "ü" * 10_000
    await stateless_across(settings.replace(bus="postgres", database_url=pg_database), long)


async def stateless_across(shared: Any, long: str | None = None) -> None:
    """Two servers on `shared`'s bus, a Hocuspocus client on each, one document; with `long`,
    the first one's client also says that, and the other process's must hear it."""
    async with (
        serving(shared, extensions=[Broadcast()]) as a,
        serving(shared.replace(port=free_port()), extensions=[Broadcast()]) as b,
        hocuspocus_wire(a.url) as on_a,
        hocuspocus_wire(b.url) as on_b,
    ):
        for c in (on_a, on_b):
            await c.send(auth("chat"))
            assert (await c.expect("chat", hp.SYNC))[0] == p.SYNC_STEP1
        heard: list[str] = []

        async def listen() -> None:
            while True:
                rest = await on_b.expect("chat", hp.STATELESS, timeout=30)
                heard.append(hp.read_var_string(rest, 0)[0])

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            # Until the two processes know of each other on the document's channel, a
            # process publishes nothing there: say it again until it is heard.
            with anyio.fail_after(10):
                n = 0
                while not any(h.startswith("all:") for h in heard):
                    n += 1
                    await on_a.send(stateless("chat", f"hi {n}"))
                    await anyio.sleep(test_cluster.POLL_S * 5)
            # the sender's own process: both the broadcast and the answer to it alone
            first = hp.read_var_string(await on_a.expect("chat", hp.STATELESS), 0)[0]
            assert first.startswith(("all:", "only:"))
            await on_b.send(stateless("chat", "back"))
            if long is not None:
                await on_a.send(stateless("chat", long))
            with anyio.fail_after(5):
                while "all:back" not in heard or (long is not None and f"all:{long}" not in heard):
                    await anyio.sleep(test_cluster.POLL_S)
            tg.cancel_scope.cancel()
        assert [h for h in heard if h.startswith("only:")] == ["only:back"]
