"""The standard ASGI path (collab/asgi_endpoint.py) with stock y-websocket clients, outside
`collab serve`: the app built from the environment run by `uvicorn collab.asgi:app` (uvicorn's
own default WebSocket implementation) and `hypercorn collab.asgi:app`, each a real subprocess;
and a collab app mounted at /collab in a host Starlette app, as a team adds collaborative
editing to its own service (FastAPI's `app.mount` is Starlette's Mount).

The behaviour suites (sync, limits and every close code, awareness, auth, hooks, interop) run
under the same servers in-process: see `every_server` in tests/conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
import websockets
from pycrdt import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import collab
from collab import protocol as p
from collab.settings import Settings
from tests.conftest import free_port, serve_app
from tests.procs import ServerProcess, children, running
from tests.ywire import YClient, close_of

from .yjsnode import NodeYClient

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

ORIGIN = "https://app.example.com"
ROOM = "team/notes ✓"


def text(client: YClient) -> str:
    return str(client.doc.get("text", type=Text))


async def stock_clients_share(base_url: str, room: str = ROOM) -> None:
    """A y-websocket client in Node and the Python client edit one document and see each
    other's presence, through `base_url`/ws."""
    js = await NodeYClient.start(base_url, room)
    try:
        await js.synced()
        await js.edit({"type": "text_insert", "value": "from node"})
        async with YClient(base_url, room) as py:
            await py.wait_for(lambda: py.synced and text(py) == "from node")
            py.doc.get("text", type=Text).insert(0, "python, ")
            await js.wait("r => r.text === 'python, from node'")
            await js.set_awareness_field("user", {"name": "Ada"})
            await py.wait_for(lambda: {"user": {"name": "Ada"}} in py.present().values())
            await py.set_awareness({"user": {"name": "Bob"}})
            await js.wait(
                "r => Object.values(r.awareness).some(s => s.user && s.user.name === 'Bob')"
            )
    finally:
        await js.kill()


async def close_codes_hold(base_url: str) -> None:
    """What raw clients are refused with on the ASGI path: the same codes as the fast path."""
    assert (await close_of(f"{base_url}/ws/"))[0] == 4404
    assert (await close_of(f"{base_url}/ws/%ff%fe"))[0] == 4404  # not UTF-8: refused, not "??"
    assert (await close_of(f"{base_url}/ws/doc", "hello"))[0] == 1003
    assert (await close_of(f"{base_url}/ws/doc", bytes([p.MSG_SYNC])))[0] == 1002
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{base_url}/ws/doc", origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    async with websockets.connect(f"{base_url}/ws/doc", origin=ORIGIN) as ws:  # type: ignore[arg-type]
        with anyio.fail_after(5):
            first = await ws.recv()
        assert isinstance(first, bytes) and first[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1])


# -- `uvicorn collab.asgi:app`, `hypercorn collab.asgi:app` --------------------------------------


def asgi_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":  # no --ws: uvicorn's default implementation
        return [sys.executable, "-m", "uvicorn", "collab.asgi:app", "--port", str(port)]
    pytest.importorskip("hypercorn", reason="hypercorn (the test extra) is not installed")
    return [sys.executable, "-m", "hypercorn", "collab.asgi:app", "--bind", f"127.0.0.1:{port}"]


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
async def test_collab_asgi_app_under_another_server(
    server: str,
    node_available: None,
    tmp_path: Path,
    server_log: IO[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings come from COLLAB_* (the database and the Origin allowlist here); the server's
    own SIGTERM shutdown runs the lifespan, which flushes every room."""
    monkeypatch.setenv("COLLAB_ALLOWED_ORIGINS", ORIGIN)
    process = ServerProcess(tmp_path, server_log)
    process.command = asgi_command(server, process.port)
    await process.start()
    try:
        await stock_clients_share(process.url)
        await close_codes_hold(process.url)
        process.terminate()
        await process.wait_exit(15)  # (uvicorn re-raises SIGTERM: its status is not ours)
        await process.start()
        async with YClient(process.url, ROOM) as late:  # restored from the store
            await late.wait_for(lambda: text(late) == "python, from node")
    finally:
        if process.proc is not None:
            workers = children(process.proc.pid)  # (hypercorn serves from a child process)
            process.kill_tree()
            await process.wait_exit(10)
            with anyio.fail_after(5):  # none is left running, orphaned, after the test
                while any(running(pid) for pid in workers):
                    await anyio.sleep(0.05)


# -- mounted in a host app -----------------------------------------------------------------------


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host app")


def host_app(collab_app: Starlette, *, enter_lifespan: bool = True) -> Starlette:
    """What the README shows: the host's lifespan enters collab.lifespan(collab_app), since
    Starlette runs only the outer app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if enter_lifespan:
            async with collab.lifespan(collab_app):
                yield
        else:
            yield

    routes = [Route("/", hello), Mount("/collab", app=collab_app)]
    return Starlette(routes=routes, lifespan=lifespan)


@asynccontextmanager
async def mounted(kind: str, tmp_path: Path, **changes: Any) -> AsyncIterator[tuple[str, Any]]:
    """A host app with collab mounted at /collab, served by `kind`: ("ws://host/collab",
    the collab app)."""
    if kind == "hypercorn":
        pytest.importorskip("hypercorn", reason="hypercorn (the test extra) is not installed")
    settings = Settings(
        port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/collab.db", **changes
    )
    collab_app = collab.create_app(settings)
    async with anyio.create_task_group() as tg:
        running = await serve_app(tg, host_app(collab_app), settings, kind)
        try:
            yield f"ws://127.0.0.1:{settings.port}/collab", collab_app
        finally:
            await running.server.stop()


@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_mounted_app_serves_stock_clients(
    kind: str, node_available: None, tmp_path: Path
) -> None:
    async with mounted(kind, tmp_path, allowed_origins=ORIGIN) as (base, collab_app):
        await stock_clients_share(base)
        await close_codes_hold(base)
        # "a%2Fb" is one name, as on the fast path: the route path is taken raw.
        async with YClient(base, "a%2Fb") as odd:
            await odd.wait_for(lambda: odd.synced)
        hub = collab_app.state.hub
        assert {ROOM, "a%2Fb"} <= set(hub.rooms)
        http = base.replace("ws://", "http://")
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(f"{http}/healthz")).json()["status"] == "ok"
            host = await client.get(http.removesuffix("/collab") + "/")
            assert host.text == "the host app"
