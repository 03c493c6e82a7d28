"""on_startup: runs in the app's lifespan once the store is open and the hub runs, before the
server listens; it gets the app, the settings, the documents service and a task group owned by
the lifespan (tasks in it are cancelled after on_shutdown). Raising stops the server from
starting, with an error naming the extension; the on_shutdown hooks still run."""

from __future__ import annotations

import logging

import anyio
import pytest

from collab.app import create_app
from collab.hooks import OnShutdownPayload, OnStartupPayload
from collab.server import CollabServer, uvicorn_config
from tests.conftest import serving
from tests.integration.hooks.support import Recorder, stored_text, text, update_inserting
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


class Seeds(Recorder):
    """Writes a welcome document through the documents service, noting what it found."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.listening: bool | None = None
        self.hub_accepting: bool | None = None

    async def on_startup(self, payload: OnStartupPayload) -> None:
        await super().on_startup(payload)
        self.listening = await listening(self.port)
        self.hub_accepting = payload.app.state.hub.accepting
        await payload.documents.apply_update("welcome", update_inserting("hello"))


async def test_runs_before_the_server_listens_and_can_write_documents(settings):
    rec = Seeds(settings.port)
    async with serving(settings, extensions=[rec]) as srv:
        [payload] = rec.payloads("on_startup")
        assert payload.app is srv.app and payload.settings is settings
        assert payload.documents is srv.app.state.documents
        assert rec.listening is False  # nothing is served before on_startup returns
        assert rec.hub_accepting is True  # but the hub (and the store) already run
        assert await listening(settings.port)
        async with YClient(srv.url, "welcome") as c:
            await c.wait_for(lambda: text(c) == "hello")
        await srv.hub.saver.flush()
        assert await stored_text(srv.hub.store, "welcome") == "hello"


class Worker(Recorder):
    """Starts a task in the lifespan's task group."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def on_startup(self, payload: OnStartupPayload) -> None:
        await super().on_startup(payload)
        payload.task_group.start_soon(self.work)

    async def work(self) -> None:
        self.events.append("worker started")
        self.notify()
        try:
            await anyio.sleep_forever()
        finally:
            self.events.append("worker cancelled")

    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        self.events.append("on_shutdown")
        await super().on_shutdown(payload)


async def test_a_task_it_starts_runs_until_after_on_shutdown(settings):
    rec = Worker()
    async with serving(settings, extensions=[rec]):
        await rec.wait_for(lambda: "worker started" in rec.events)
    assert rec.events == ["worker started", "on_shutdown", "worker cancelled"]


class Fails(Recorder):
    async def on_startup(self, payload: OnStartupPayload) -> None:
        await super().on_startup(payload)
        raise ConnectionRefusedError("broker unreachable")


async def test_raising_stops_the_server_from_starting_with_a_clear_error(settings, caplog):
    log: list[tuple[str, str]] = []
    first = Recorder("first", priority=300, log=log)
    failing = Fails("failing", priority=200, log=log)
    after = Recorder("after", priority=100, log=log)
    app = create_app(settings, extensions=[after, failing, first])
    server = CollabServer(uvicorn_config(app, settings), app)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR), anyio.fail_after(10):
        with pytest.raises(SystemExit) as stopped:
            await server.serve()
    assert stopped.value.code == 3  # uvicorn's "startup failed" (collab serve exits with it)
    assert not server.started
    assert not await listening(settings.port)
    assert log == [
        ("first", "on_startup"),
        ("failing", "on_startup"),  # and not "after": the failure stops the hooks after it
        ("first", "on_shutdown"),  # every extension may release what it holds
        ("failing", "on_shutdown"),
        ("after", "on_shutdown"),
    ]
    messages = [r.getMessage() for r in caplog.records if r.name == "collab.app"]
    assert messages == [
        "not serving: on_startup of Fails failed: ConnectionRefusedError('broker unreachable')"
    ]
