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
import uvicorn

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
    server: Any  # CollabServer, or HypercornServer (see start_server)
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


# The servers a test's app can run under (the `server_kind` fixture): "collab" is what
# `collab serve` runs, uvicorn with our WebSocket layer (the fast path, collab/endpoint.py);
# "uvicorn" is uvicorn with its own default WebSocket implementation and "hypercorn" is hypercorn:
# both serve /ws through the standard ASGI route (collab/asgi_endpoint.py).
SERVER_KINDS = ("collab", "uvicorn", "hypercorn")
# A test (or a module, in pytestmark) marked with this runs once under each, when it starts a
# server (a test that starts none runs once).
every_server = pytest.mark.every_server
_server_kind = "collab"  # the kind of the test being run (set by the fixture)


# `@pytest.mark.every_server(kinds=("collab",))` on a test of such a module: only those.
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("every_server")
    if marker is not None and "server_kind" in metafunc.fixturenames:
        metafunc.parametrize("server_kind", marker.kwargs.get("kinds", SERVER_KINDS), indirect=True)


@pytest.fixture
def server_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which server `serving()` runs the app under: "collab" unless parametrized."""
    global _server_kind
    kind: str = getattr(request, "param", "collab")
    if kind == "hypercorn":
        pytest.importorskip("hypercorn", reason="hypercorn (the test extra) is not installed")
    _server_kind = kind
    try:
        yield kind
    finally:
        _server_kind = "collab"


class HypercornServer:
    """Hypercorn serving an app in-process, stopped as CollabServer is: clients closed with
    1001 first (hypercorn's own shutdown would not), then hypercorn's graceful shutdown."""

    def __init__(self, app: Any, settings: Settings) -> None:
        from hypercorn.config import Config

        self.app = app
        self.config = Config()
        self.config.bind = [f"{settings.host}:{settings.port}"]
        self.config.graceful_timeout = 2
        self.started = False
        self._stop = anyio.Event()

    async def serve(self) -> None:
        from hypercorn.asyncio import serve

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._mark_started)
            await serve(self.app, self.config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
            tg.cancel_scope.cancel()

    async def _mark_started(self) -> None:
        host, _, port = self.config.bind[0].rpartition(":")
        while True:  # hypercorn listens once the lifespan has started
            try:
                stream = await anyio.connect_tcp(host, int(port))
            except OSError:
                await anyio.sleep(0.01)
                continue
            await stream.aclose()
            self.started = True
            return

    async def stop(self) -> None:
        hub = getattr(self.app.state, "hub", None)
        if hub is not None:
            # A document load still running when the hub shuts down is cancelled, and an
            # aiosqlite connection cancelled mid-query leaves SQLAlchemy's "graceful close" task
            # behind, which then hangs the event loop's teardown (seen under hypercorn, whose
            # timing leaves a refused client's load in flight). Let loads finish first.
            with anyio.move_on_after(5):
                while hub._loading:
                    await anyio.sleep(0.01)
            await hub.close_all(1001, "server shutting down", wait_s=2.0)
        self._stop.set()


async def start_server(
    tg: Any, settings: Settings, store: Any = None, extensions: Any = (), kind: str = ""
) -> RunningServer:
    """The app on a real server of the kind the test runs under (see SERVER_KINDS)."""
    app = create_app(settings, store=store, extensions=extensions)
    return await serve_app(tg, app, settings, kind or _server_kind)


async def serve_app(tg: Any, app: Any, settings: Settings, kind: str) -> RunningServer:
    """Any ASGI app (a collab app, or one it is mounted in) on a server of that kind."""
    server: Any
    if kind == "collab":
        server = CollabServer(uvicorn_config(app, settings), app)
    elif kind == "uvicorn":
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, lifespan="on", log_config=None
        )
        server = CollabServer(config, app)  # (its 1001 drain on stop; uvicorn's own ws)
    else:
        server = HypercornServer(app, settings)
    server.install_signal_handlers = lambda: None
    tg.start_soon(server.serve)
    with anyio.fail_after(10):
        while not server.started:
            await anyio.sleep(0.01)
    return RunningServer(settings, server, app)


@pytest.fixture
def settings(tmp_path: Path, server_kind: str) -> Settings:
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
