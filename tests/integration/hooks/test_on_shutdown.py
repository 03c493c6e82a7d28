"""on_shutdown: runs in the app's lifespan after every client was closed (1001) and every room
flushed to the store, while the store is still open; errors are logged and the next extension's
still runs; all of them together are bounded by the shutdown deadline."""

from __future__ import annotations

import logging

import anyio
import pytest
from pycrdt import Text

from collab.hooks import OnShutdownPayload
from tests.conftest import serving
from tests.integration.hooks.support import Recorder, stored_text
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Checks(Recorder):
    """Notes what the server looks like when on_shutdown runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: tuple[bool, int, str] | None = None

    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        hub = payload.app.state.hub
        stored = await stored_text(payload.documents.store, "doc")  # the store is still open
        self.seen = (hub.accepting, len(hub.connections), stored)
        await super().on_shutdown(payload)


async def test_runs_after_clients_were_closed_and_rooms_flushed(settings):
    rec = Checks()
    # A long commit window: the edit is still uncommitted when the shutdown begins.
    async with serving(settings.replace(commit_window_ms=60_000), extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as client:
            await client.wait_for(lambda: client.synced)
            client.doc.get("t", type=Text).insert(0, "last words")
            await rec.wait_for(lambda: rec.count("on_change") == 1)
            assert srv.hub.saver.committed == 0
            await srv.server.stop()  # what SIGTERM does, with the client still connected
            await client.wait_for(lambda: client.close_code is not None)
            await rec.wait_for(lambda: rec.count("on_shutdown") == 1)
    assert client.close_code == 1001
    [payload] = rec.payloads("on_shutdown")
    assert payload.settings.commit_window_ms == 60_000
    assert rec.seen == (False, 0, "last words")


class Broken(Recorder):
    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        await super().on_shutdown(payload)
        raise OSError("broker gone")


class Hangs(Recorder):
    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        await super().on_shutdown(payload)
        await anyio.sleep_forever()


async def test_errors_are_logged_and_a_hanging_hook_is_abandoned_at_the_deadline(settings, caplog):
    log: list[tuple[str, str]] = []
    broken = Broken("broken", priority=300, log=log)
    after = Recorder("after", priority=200, log=log)
    hangs = Hangs("hangs", priority=100, log=log)
    with caplog.at_level(logging.ERROR), anyio.fail_after(10):
        async with serving(
            settings.replace(shutdown_timeout_s=0.5), extensions=[hangs, after, broken]
        ):
            pass
    assert [entry for entry in log if entry[1] == "on_shutdown"] == [
        ("broken", "on_shutdown"),
        ("after", "on_shutdown"),
        ("hangs", "on_shutdown"),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert "on_shutdown hook Broken.on_shutdown failed" in messages
    assert "on_shutdown hooks still running after 0.5 s: abandoned" in messages
