"""/healthz (liveness) and /readyz (readiness) on a real server: ready when the store answers,
503 when it does not (PostgreSQL behind a proxy that stops forwarding) and ready again when it
does; 503 while the Redis bus is away (our own redis-server, killed and restarted); and the
SIGTERM drain: /readyz answers 503 while the server still serves its clients for
COLLAB_DRAIN_S, then they are closed with 1001."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.integration.test_cluster import RedisServer, redis  # noqa: F401  (the fixture)
from tests.procs import ServerProcess
from tests.tcpproxy import tcp_proxy
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

POLL_S = 0.02


async def ready(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await http.get("/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def until_ready_is(http: httpx.AsyncClient, status: int, within_s: float) -> dict[str, Any]:
    with anyio.fail_after(within_s):
        while True:
            code, body = await ready(http)
            if code == status:
                return body
            await anyio.sleep(POLL_S)


async def test_ready_and_alive_with_what_each_checked(server: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http, trust_env=False) as http:
        code, body = await ready(http)
        assert (code, body) == (
            200,
            {"status": "ok", "checks": {"store": "ok", "bus": "none", "accepting": True}},
        )
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert (await http.head("/readyz")).status_code == 200  # (balancers that probe HEAD)


@pytest.mark.postgres
async def test_readyz_is_503_while_the_store_does_not_answer(
    pg_database: str, server_with: Any
) -> None:
    url = make_url(pg_database)
    async with tcp_proxy(url.port or 5432) as proxy:
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        async with (
            server_with(database_url=through_proxy) as srv,
            httpx.AsyncClient(base_url=srv.http, trust_env=False) as http,
        ):
            assert (await ready(http))[0] == 200
            proxy.hold()  # a black hole: what is sent is never answered (a dead network path)
            proxy.cut()  # and the pool's connections are gone: a new one must get through
            code, body = await ready(http)
            assert code == 503, body
            assert body == {
                "status": "unavailable",
                "checks": {"store": "timeout", "bus": "none", "accepting": True},
            }
            # Still alive: a liveness probe must not have the process restarted for this.
            assert (await http.get("/healthz")).status_code == 200

            proxy.release()
            body = await until_ready_is(http, 200, within_s=10)
            assert body["checks"]["store"] == "ok"


@pytest.mark.redis
async def test_readyz_is_503_while_the_bus_is_disconnected(
    redis: RedisServer,  # noqa: F811 (the fixture)
    server_with: Any,
) -> None:
    async with (
        server_with(redis_url=redis.url) as srv,
        httpx.AsyncClient(base_url=srv.http, trust_env=False) as http,
    ):
        body = await until_ready_is(http, 200, within_s=10)  # (once the bus has connected)
        assert body["checks"] == {"store": "ok", "bus": "ok", "accepting": True}
        await redis.kill()
        body = await until_ready_is(http, 503, within_s=10)
        assert body["checks"] == {"store": "ok", "bus": "disconnected", "accepting": True}
        await redis.start()
        body = await until_ready_is(http, 200, within_s=15)
        assert body["checks"]["bus"] == "ok"


async def test_sigterm_drain_answers_503_while_still_serving_then_closes_with_1001(
    launch: Any,
) -> None:
    # The drain period must be long enough for the checks below to run inside it; the test
    # waits on events (the 503, the close), not on the clock.
    drain_s = 4.0
    server: ServerProcess = launch("--drain-s", str(drain_s))
    await server.start()
    http_url = f"http://127.0.0.1:{server.port}"
    async with (
        httpx.AsyncClient(base_url=http_url, trust_env=False) as http,
        YClient(server.url, "drain/a") as client,
    ):
        await client.wait_for(lambda: client.synced)
        assert (await ready(http))[0] == 200
        server.terminate()
        body = await until_ready_is(http, 503, within_s=drain_s)
        assert body["checks"]["accepting"] is False
        assert client.close_code is None, "closed before the drain period"
        # Still serving: HTTP (liveness stays 200) and new WebSocket clients alike.
        health = await http.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "shutting down")
        async with YClient(server.url, "drain/b") as late:
            await late.wait_for(lambda: late.synced)
            assert (await ready(http))[0] == 503  # (and so until the exit)
            await late.wait_for(lambda: late.close_code is not None, timeout=drain_s + 5)
            assert late.close_code == 1001
        await client.wait_for(lambda: client.close_code is not None, timeout=5)
        assert client.close_code == 1001
    assert await server.wait_exit(15) == 0, server.log_tail()
