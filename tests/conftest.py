"""Shared fixtures: a real uvicorn server on a free port, with a real SQLite file; PostgreSQL
databases of the test's own (tests/pg.py)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from collab.admission import Admission
from collab.app import create_app
from collab.hub import Hub
from collab.server import CollabServer, uvicorn_config
from collab.settings import Settings
from tests.pg import pg_database, pg_run  # noqa: F401  (fixtures: a PostgreSQL database each)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    settings: Settings
    server: CollabServer
    app: Any

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    @property
    def admission(self) -> Admission:
        admission: Admission = self.app.state.admission
        return admission


async def start_server(
    tg: Any, settings: Settings, store: Any = None, extensions: Any = ()
) -> RunningServer:
    app = create_app(settings, store=store, extensions=extensions)
    server = CollabServer(uvicorn_config(app, settings), app)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    tg.start_soon(server.serve)
    with anyio.fail_after(10):
        while not server.started:
            await anyio.sleep(0.01)
    return RunningServer(settings, server, app)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        port=free_port(),
        database_url=f"sqlite+aiosqlite:///{tmp_path}/collab.db",
        log_level="debug",
    )


@asynccontextmanager
async def serving(
    settings: Settings, store: Any = None, extensions: Any = ()
) -> AsyncIterator[RunningServer]:
    async with anyio.create_task_group() as tg:
        running = await start_server(tg, settings, store, extensions)
        try:
            yield running
        finally:
            await running.server.stop()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with serving(settings) as running:
        yield running


@pytest.fixture
def server_with(settings: Settings) -> Callable[..., AbstractAsyncContextManager[RunningServer]]:
    """`async with server_with(idle_timeout_s=1) as srv:` — a server with changed settings."""

    def make(**changes: Any) -> AbstractAsyncContextManager[RunningServer]:
        return serving(settings.replace(**changes))

    return make


def require(available: bool, reason: str) -> None:
    """Skip when a service or tool is missing on a user's machine. In CI (.ci/run sets
    COLLAB_TEST_REQUIRE_SERVICES=1) the same absence is a failure: nothing is silently skipped."""
    if available:
        return
    if os.environ.get("COLLAB_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with (tmp_path / "server.log").open("ab") as log:
        yield log


@pytest.fixture
async def launch(tmp_path: Path, server_log: IO[bytes]) -> AsyncIterator[Any]:
    """launch(*flags) -> a ServerProcess (not started); one still running is killed after."""
    from tests.procs import ServerProcess

    started: list[ServerProcess] = []

    def make(*flags: str) -> ServerProcess:
        server = ServerProcess(tmp_path, server_log, *flags)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc is not None:
            server.kill()
            await server.wait_exit(10)
