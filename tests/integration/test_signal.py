"""The y-webrtc signalling server at /signal against a real server: the protocol as y-webrtc's
reference server speaks it, topics scoped by tokens, the limits, and the relay between
processes through each bus (Redis: two `collab serve` processes; PostgreSQL: two apps on one
database). The y-webrtc client itself runs in tests/browser/test_webrtc.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame

from collab.extensions.token_auth import mint_token
from collab.settings import Settings
from tests.conftest import RunningServer, every_server, free_port, serve_app, serving
from tests.integration.test_cluster import RedisServer, redis  # noqa: F401  (the fixture)
from tests.procs import ServerProcess
from tests.ywire import close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "signal-secret-0123456789-abcdefghijklmnop"


def signal_url(base: str, token: str | None = None) -> str:
    return f"{base}/signal" + (f"?token={token}" if token else "")


@asynccontextmanager
async def peer(url: str) -> AsyncIterator[Any]:
    async with websockets.connect(url, ping_interval=None) as ws:
        yield ws


async def send(ws: Any, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: Any, timeout: float = 5) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def settled(ws: Any) -> None:
    """A ping answered: everything the socket sent before it has been handled."""
    await send(ws, type="ping")
    assert await receive(ws) == {"type": "pong"}


@every_server
async def test_subscribe_publish_unsubscribe_ping(server: RunningServer) -> None:
    url = signal_url(server.url)
    async with peer(url) as a, peer(url) as b, peer(url) as c:
        await send(a, type="subscribe", topics=["room"])
        await send(b, type="subscribe", topics=["room", "other"])
        await send(c, type="subscribe", topics=["other"])
        for ws in (a, b, c):
            await settled(ws)
        await send(a, type="publish", topic="room", data={"type": "announce", "from": "A"})
        expected = {
            "type": "publish",
            "topic": "room",
            "data": {"type": "announce", "from": "A"},
            "clients": 2,
        }
        # To every subscriber, the sender included (y-webrtc ignores its own by `from`).
        assert await receive(a) == expected
        assert await receive(b) == expected
        await settled(c)  # nothing came before the pong: c is not in "room"
        # A publisher need not be subscribed (as the reference server).
        await send(c, type="publish", topic="room", data="x")
        assert (await receive(a))["data"] == "x"
        assert (await receive(b))["data"] == "x"
        await send(b, type="unsubscribe", topics=["room"])
        await settled(b)
        await send(a, type="publish", topic="room", data="y")
        assert (await receive(a))["clients"] == 1
        await settled(b)
        # Unknown types and non-objects are ignored, as there.
        await send(a, type="whatever")
        await a.send("[1, 2]")
        await settled(a)
        signaling = server.app.state.signaling
        assert set(signaling.topics) == {"room", "other"}
        async with httpx.AsyncClient(trust_env=False) as http:
            metrics = (await http.get(f"{server.http}/metrics")).text
        assert "collab_signal_connections 3.0" in metrics
        assert "collab_signal_topics 2.0" in metrics
        assert 'collab_signal_messages_total{kind="published"} 3.0' in metrics
        assert 'collab_signal_messages_total{kind="delivered"} 5.0' in metrics
    with anyio.fail_after(5):
        while signaling.peers:
            await anyio.sleep(0.01)
    assert signaling.topics == {}


async def test_compressed_when_permessage_deflate_is_on(
    server_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the setting on, the signalling socket agrees permessage-deflate as /ws does and
    sends its text frames compressed (websockets offers it by default, as browsers do)."""
    compressed: list[bytes] = []
    decode = PerMessageDeflate.decode

    def counting(self: PerMessageDeflate, frame: Frame, **kwargs: Any) -> Frame:
        decoded = decode(self, frame, **kwargs)
        if frame.rsv1:
            compressed.append(decoded.data)
        return decoded

    monkeypatch.setattr(PerMessageDeflate, "decode", counting)
    async with server_with(ws_per_message_deflate=True) as srv:
        url = signal_url(srv.url)
        async with peer(url) as a, peer(url) as b:
            assert "permessage-deflate" in a.response.headers["Sec-WebSocket-Extensions"]
            for ws in (a, b):
                await send(ws, type="subscribe", topics=["room"])
                await settled(ws)
            await send(a, type="publish", topic="room", data={"sdp": "x" * 2000})
            for ws in (a, b):
                assert (await receive(ws))["data"] == {"sdp": "x" * 2000}
    assert sum(b'"publish"' in data for data in compressed) == 2
    assert sum(data == b'{"type":"pong"}' for data in compressed) == 2


@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_under_a_mount_prefix(kind: str, settings: Settings) -> None:
    """The app mounted at /collab in a host app: /collab/signal (the ASGI route)."""
    import collab

    if kind == "hypercorn":
        pytest.importorskip("hypercorn")
    collab_app = collab.create_app(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with collab.lifespan(collab_app):
            yield

    host = Starlette(routes=[Mount("/collab", app=collab_app)], lifespan=lifespan)
    async with anyio.create_task_group() as tg:
        running = await serve_app(tg, host, settings, kind)
        try:
            url = f"ws://127.0.0.1:{settings.port}/collab/signal"
            async with peer(url) as a, peer(url) as b:
                await send(a, type="subscribe", topics=["t"])
                await settled(a)
                await send(b, type="publish", topic="t", data=1)
                assert (await receive(a))["data"] == 1
        finally:
            await running.server.stop()


@every_server
async def test_invalid_json_closes_1002(server: RunningServer) -> None:
    assert (await close_of(signal_url(server.url), "{nope"))[0] == 1002


async def test_limits(settings: Settings) -> None:
    limited = settings.replace(
        signal_max_topics=2, signal_max_message_bytes=1000, rate_messages_burst=20
    )
    async with serving(limited) as server:
        url = signal_url(server.url)
        topics = json.dumps({"type": "subscribe", "topics": ["a", "b", "c"]})
        assert await close_of(url, topics) == (1008, "more than 2 topics")
        big = json.dumps({"type": "publish", "topic": "a", "data": "x" * 1000})
        assert (await close_of(url, big))[0] == 1009
        pings = [json.dumps({"type": "ping"})] * 40
        assert await close_of(url, *pings) == (1008, "rate limit exceeded")
        long_topic = json.dumps({"type": "subscribe", "topics": ["t" * 513]})
        assert (await close_of(url, long_topic))[0] == 1008


@every_server
async def test_topics_scoped_by_token(settings: Settings) -> None:
    async with serving(settings.replace(auth_secret=SECRET)) as server:

        def token(doc: str, write: bool = True) -> str:
            return mint_token(doc=doc, write=write, ttl_s=60, secret=SECRET)

        base = server.url
        subscribe_team = json.dumps({"type": "subscribe", "topics": ["team/a"]})
        subscribe_other = json.dumps({"type": "subscribe", "topics": ["other"]})
        assert await close_of(signal_url(base), subscribe_team) == (4401, "authentication required")
        assert (await close_of(signal_url(base, "garbage"), subscribe_team))[0] == 4401
        team = signal_url(base, token("team/*"))
        assert await close_of(team, subscribe_other) == (4403, "token not valid for this topic")
        publish_other = json.dumps({"type": "publish", "topic": "other", "data": 1})
        assert (await close_of(team, publish_other))[0] == 4403
        reader = signal_url(base, token("team/*", write=False))
        assert await close_of(reader, subscribe_team) == (4403, "signalling needs a write token")
        # Within its scope, a token works; what was sent before the token was checked waits.
        async with peer(team) as a, peer(signal_url(base, token("team/a"))) as b:
            await a.send(subscribe_team)
            await b.send(subscribe_team)
            await settled(a)
            await settled(b)
            await send(b, type="publish", topic="team/a", data={"hello": 1})
            assert (await receive(a))["data"] == {"hello": 1}


# -- the relay between processes ---------------------------------------------------------------


async def two_peers_meet(url_a: str, url_b: str) -> None:
    """b subscribes on one process, a on the other; each hears what the other publishes."""
    async with peer(url_a) as a, peer(url_b) as b:
        await send(a, type="subscribe", topics=["room"])
        await send(b, type="subscribe", topics=["room"])
        await settled(a)
        await settled(b)
        # The bus may take a moment to carry the first message (Redis: a fresh subscription
        # is live already; PostgreSQL: LISTEN too), so announce until heard, as y-webrtc does
        # on every reconnect.
        with anyio.fail_after(10):
            while True:
                await send(a, type="publish", topic="room", data={"from": "A"})
                assert (await receive(a))["data"] == {"from": "A"}  # its own process's echo
                try:
                    with anyio.fail_after(0.5):
                        message = await receive(b)
                    break
                except TimeoutError:
                    continue
        assert message["data"] == {"from": "A"}
        await send(b, type="publish", topic="room", data={"from": "B", "to": "A"})
        assert (await receive(b))["data"]["from"] == "B"
        assert (await receive(a))["data"] == {"from": "B", "to": "A"}


async def test_relay_between_two_processes_over_redis(
    redis: RedisServer,  # noqa: F811
    tmp_path: Path,
    server_log: IO[bytes],
) -> None:
    processes = []
    for name in ("one", "two"):
        directory = tmp_path / name
        directory.mkdir()
        process = ServerProcess(directory, server_log, "--redis-url", redis.url)
        processes.append(process)
    try:
        for process in processes:
            await process.start()
        started = time.monotonic()
        await two_peers_meet(signal_url(processes[0].url), signal_url(processes[1].url))
        print(f"relayed both ways in {time.monotonic() - started:.2f} s")
    finally:
        for process in processes:
            await process.stop()


async def test_relay_between_two_apps_over_postgres(pg_database: str, tmp_path: Path) -> None:
    base = Settings(database_url=pg_database, bus="postgres", log_level="debug")
    async with (
        serving(base.replace(port=free_port())) as one,
        serving(base.replace(port=free_port())) as two,
    ):
        await two_peers_meet(signal_url(one.url), signal_url(two.url))
        assert one.app.state.signaling.relayed_out >= 1
        assert two.app.state.signaling.relayed_in >= 1
