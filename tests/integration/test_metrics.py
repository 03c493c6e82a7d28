"""/metrics (issue 14): the metrics move as a scripted session says they must; --workers 2
answers for both workers (and forgets a dead one's connections, not its counts); who may read
it; COLLAB_METRICS_PORT; COLLAB_METRICS=false; every metric the Grafana dashboard uses exists."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Text

from collab import protocol as p
from collab.extensions.token_auth import mint_token
from collab.hooks import Extension, OnChangePayload
from collab.settings import Settings
from tests.conftest import free_port, serving
from tests.integration.test_cluster import (  # noqa: F401 (fixtures)
    RedisServer,
    Spawn,
    bus_connected,
    redis,
    spawn,
    worker_pids,
)
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
SECRET = "metrics-secret-0123456789-abcdefghijklmn"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str, **params: str) -> Samples:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


class FailingOnChange(Extension):
    """An on_change hook that fails once, so that hook errors have something to count."""

    def __init__(self) -> None:
        self.calls = 0

    async def on_change(self, payload: OnChangePayload) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("this hook fails once")


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return Settings(port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/collab.db")


async def test_a_scripted_session_moves_the_metrics(base: Settings) -> None:
    hook = FailingOnChange()
    async with serving(base, extensions=[hook]) as srv:
        before = await scrape(srv.http + "/metrics")
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            during = await scrape(srv.http + "/metrics")
            a.doc.get("t", type=Text).insert(0, "hello")
            await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "hello")
            # An update that is not one: refused, the connection closed with 1002.
            bad = p.update_message(b"\x01\x01\xff\xff\xff\xff\x0f\x00")
            code, _ = await close_of(f"{srv.url}/ws/doc", bad)
            assert code == 1002
            # A client closing with a code of its own (not in the table: "other").
            assert a.ws is not None
            await a.ws.close(code=4321, reason="bye")
            with anyio.fail_after(5):
                while len(srv.hub.connections) > 1:
                    await anyio.sleep(0.01)
        with anyio.fail_after(5):  # (the background hook, the commit, the last close)
            while (
                hook.calls < 1
                or srv.hub.saver.committed < srv.hub.saver.recorded
                or srv.hub.connections
            ):
                await anyio.sleep(0.01)
        after = await scrape(srv.http + "/metrics")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(during, "collab_connections", protocol="websocket") == 2
    assert value(after, "collab_connections", protocol="websocket") == 0
    assert value(after, "collab_rooms") == 1
    assert moved("collab_connections_opened_total", protocol="websocket") == 3
    assert moved("collab_connections_closed_total", code="1000") == 1  # b, leaving
    assert moved("collab_connections_closed_total", code="1002") == 1
    assert moved("collab_connections_closed_total", code="other") == 1  # a's 4321
    assert moved("collab_updates_refused_total", reason="invalid") == 1
    assert moved("collab_updates_applied_total") == 1
    assert moved("collab_updates_committed_total") == 1
    assert moved("collab_messages_received_total", type="update") == 2  # a's, the bad one
    assert moved("collab_messages_sent_total", type="update") == 1  # to b only
    assert moved("collab_messages_received_total", type="sync_step1") == 2  # a, b
    assert moved("collab_sent_bytes_total") > 0
    assert moved("collab_received_bytes_total") > 0
    assert moved("collab_hook_errors_total", hook="on_change") == 1
    assert moved("collab_hook_duration_seconds_count", hook="on_change") == 1
    assert moved("collab_handshake_seconds_count") == 3
    assert moved("collab_document_load_seconds_count") == 1
    assert moved("collab_commit_batch_size_sum") == 1
    assert moved("collab_commit_latency_seconds_count") >= 1
    assert value(after, "collab_uncommitted_updates") == 0


async def test_the_overview_series_has_real_rates(base: Settings) -> None:
    async with serving(base) as srv:
        metrics = srv.app.state.metrics
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            a.doc.get("t", type=Text).insert(0, "x")
            await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "x")
            # The series takes a sample every 2 s: wait for one that saw the edit committed.
            with anyio.fail_after(6):
                while not any(s["commit_latency_ms"] is not None for s in metrics.series()):
                    await anyio.sleep(0.05)
    sample = next(s for s in metrics.series() if s["commit_latency_ms"] is not None)
    assert sample["connections"] == 2 and sample["rooms"] == 1
    assert sample["commit_latency_ms"] >= 0
    seen = metrics.series()
    assert any(s["updates_per_s"] > 0 for s in seen), seen
    assert any(s["messages_in_per_s"] > 0 for s in seen), seen
    assert any(s["messages_out_per_s"] > 0 for s in seen), seen
    assert set(sample) == {
        "t",
        "connections",
        "rooms",
        "messages_in_per_s",
        "messages_out_per_s",
        "updates_per_s",
        "commit_latency_ms",
    }


async def test_metrics_off_counts_nothing_and_serves_no_metrics(base: Settings) -> None:
    async with serving(base.replace(metrics=False)) as srv:
        assert srv.hub.counts is None
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            room = srv.hub.rooms["doc"]
            assert room.counts is None
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.get(srv.http + "/metrics")
        assert response.status_code == 404
        metrics = srv.app.state.metrics
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "x")
            with anyio.fail_after(6):  # a sample every 2 s: one that saw the update
                while not any(s["updates_per_s"] > 0 for s in metrics.series()):
                    await anyio.sleep(0.05)
        for sample in metrics.series():
            assert sample["messages_in_per_s"] == 0.0  # (a number: the admin API's model)
            assert sample["commit_latency_ms"] is None


def token(**kw: Any) -> str:
    kw.setdefault("doc", "")
    kw.setdefault("write", False)
    return mint_token(ttl_s=60, secret=SECRET, **kw)


async def test_with_auth_metrics_need_a_metrics_or_admin_token(base: Settings) -> None:
    async with serving(base.replace(auth_secret=SECRET)) as srv:
        url = srv.http + "/metrics"
        async with httpx.AsyncClient(trust_env=False) as http:
            missing = await http.get(url)
            assert missing.status_code == 401
            assert missing.json()["error"]["status"] == 401
            document = token(doc="*", write=True)
            refused = await http.get(url, headers={"Authorization": f"Bearer {document}"})
            assert refused.status_code == 403
            assert refused.json()["error"]["status"] == 403
        await scrape(url, token=token(role="metrics"))
        samples = await scrape(url, token=token(doc="*", write=True, user="admin", role="admin"))
        assert ("collab_rooms", frozenset()) in samples


async def test_a_metrics_port_serves_them_alone_and_open(base: Settings) -> None:
    port = free_port()
    async with serving(base.replace(auth_secret=SECRET, metrics_port=port)) as srv:
        async with httpx.AsyncClient(trust_env=False) as http:
            main = await http.get(srv.http + "/metrics", params={"token": token(role="metrics")})
            assert main.status_code == 404
        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
        assert ("collab_rooms", frozenset()) in samples


def dashboard_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert exprs, "the dashboard has no queries"
    return {name for expr in exprs for name in re.findall(r"\b(collab_[a-z0-9_]+)", expr)}


def exposed_names(text: str) -> set[str]:
    """Every sample name the exposition can hold (a family without samples yet counts)."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


async def test_every_metric_of_the_grafana_dashboard_exists(base: Settings) -> None:
    used = dashboard_metrics()
    async with serving(base) as srv:
        async with httpx.AsyncClient(trust_env=False) as http:
            text = (await http.get(srv.http + "/metrics")).text
    missing = used - exposed_names(text)
    assert not missing, f"the dashboard uses metrics the server does not expose: {missing}"
    assert len(used) >= 15, used


# -- --workers 2: prometheus-client's multiprocess mode ----------------------------------------


async def total(url: str, name: str, **labels: str) -> float:
    samples = await scrape(url)
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, x) in ls for k, x in labels.items())
    )


async def until_total(url: str, name: str, expected: float, **labels: str) -> None:
    """Poll (each worker syncs its values once a second) until the sum is `expected`."""
    seen = None
    try:
        with anyio.fail_after(10):
            while (seen := await total(url, name, **labels)) != expected:
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{name}{labels}: {seen}, expected {expected}") from None


def owner_of(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to `port` each of `pids` holds (from /proc)."""
    inodes: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[int(target[8:-1])] = pid
    counts = dict.fromkeys(pids, 0)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":
            pid = inodes.get(int(fields[9]))
            if pid is not None:
                counts[pid] += 1
    return counts


@pytest.mark.redis
async def test_workers_answer_for_every_worker(
    redis: RedisServer,  # noqa: F811 (the fixture)
    spawn: Spawn,  # noqa: F811 (the fixture)
) -> None:
    server = spawn("workers", "--workers", "2", "--redis-url", redis.url)
    await server.start()
    assert server.proc is not None
    with anyio.fail_after(10):
        while len(pids := worker_pids(server.proc.pid)) < 2:
            await anyio.sleep(0.02)
    await bus_connected(server, processes=2)
    url = f"http://127.0.0.1:{server.port}/metrics"
    clients: list[YClient] = []
    async with contextlib_exit() as enter:
        # The kernel picks the worker: connect until both hold some of our clients.
        while len(clients) < 4 or min(owner_of(server.port, pids).values()) == 0:
            assert len(clients) < 40, "every client landed on one worker"
            client = await enter(YClient(server.url, f"doc-{len(clients)}"))
            await client.wait_for(lambda c=client: c.synced)
            clients.append(client)
        owners = owner_of(server.port, pids)
        # Whichever worker answers, it answers for both.
        for _ in range(4):
            await until_total(url, "collab_connections", len(clients))
            await until_total(url, "collab_connections_opened_total", len(clients))
        # A worker dies: its connections leave the gauge, its counts stay in the totals.
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        await until_total(url, "collab_connections", len(clients) - owners[victim])
        await until_total(url, "collab_connections_opened_total", len(clients))
    # SIGTERM (once the replacement worker serves): the supervisor removes the directory.
    with anyio.fail_after(20):
        while server.log_tail(400).count("Application startup complete") < 3:
            await anyio.sleep(0.05)
    found = re.search(r"metrics: multiprocess mode in (\S+)", server.log_tail(400))
    assert found is not None
    directory = anyio.Path(found[1])
    assert await directory.is_dir()
    await server.stop()
    assert not await directory.exists()


def contextlib_exit() -> Any:
    """An exit stack whose `enter` opens a client and keeps it open until the block ends."""
    from contextlib import AsyncExitStack, asynccontextmanager

    @asynccontextmanager
    async def stack() -> AsyncIterator[Any]:
        async with AsyncExitStack() as exits:
            yield exits.enter_async_context

    return stack()
