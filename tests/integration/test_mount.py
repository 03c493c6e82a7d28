"""A collab app mounted in a host app that forgot `collab.lifespan(app)`: Starlette runs only
the outer app's lifespan, so nothing of collab is open. Every request says so, instead of an
AttributeError deep in a handler (the mount that works: tests/interop/test_asgi.py)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import collab
from collab.settings import Settings
from tests.conftest import free_port, serve_app

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host app")


async def test_a_mount_whose_lifespan_never_ran_says_so(tmp_path: Path, caplog) -> None:
    settings = Settings(port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db")
    collab_app = collab.create_app(settings)
    host = Starlette(routes=[Route("/", hello), Mount("/collab", app=collab_app)])
    http = f"http://127.0.0.1:{settings.port}"
    async with anyio.create_task_group() as tg:
        running = await serve_app(tg, host, settings, "uvicorn")
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                assert (await client.get(f"{http}/")).text == "the host app"
                response = await client.get(f"{http}/collab/healthz")
                assert response.status_code == 500
                assert "collab.lifespan(collab_app)" in response.text
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://127.0.0.1:{settings.port}/collab/ws/doc")
            assert refused.value.response.status_code == 500
            assert b"collab.lifespan(collab_app)" in refused.value.response.body
            assert "lifespan has not run" in caplog.text
        finally:
            await running.server.stop()
