"""Rooms persist within the commit window, unload only when committed, survive store outages."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from storage import PendingUpdate, SqlStore
from tests.conftest import serving
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def until(check: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


async def test_room_unloads_after_grace_and_reloads_from_the_store(server_with):
    async with server_with(unload_grace_s=0.3) as srv:
        async with YClient(srv.url, "notes") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "kept")
            await until(lambda: srv.hub.rooms["notes"].appended == 1)
        await until(lambda: "notes" not in srv.hub.rooms)
        stored = await srv.hub.store.load("notes")
        assert len(stored.updates) == 1
        async with YClient(srv.url, "notes") as b:
            await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "kept")


class FlakyStore(SqlStore):
    """A real SQLite store whose appends fail while `down` is set (a database outage)."""

    down = False
    failures = 0

    async def append(self, batch: Sequence[PendingUpdate]) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("database unreachable")
        await super().append(batch)


async def test_store_outage_keeps_everything_in_memory_until_it_is_committed(settings):
    store = FlakyStore.from_url(settings.database_url)
    settings = settings.replace(unload_grace_s=0.2)
    async with serving(settings, store) as srv:
        store.down = True
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            for i in range(20):
                a.doc.get("t", type=Text).insert(i, "x")
            # Clients keep syncing while the database is down.
            await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "x" * 20)
            await until(lambda: store.failures >= 2)
        room = srv.hub.rooms["doc"]
        srv.hub.tick(time.monotonic() + 60)  # far past the grace period
        assert "doc" in srv.hub.rooms and room.committed < room.appended
        # so a newcomer during the outage gets the room in memory, not a stale load
        async with YClient(srv.url, "doc") as c:
            await c.wait_for(lambda: str(c.doc.get("t", type=Text)) == "x" * 20)
        store.down = False
        await until(lambda: "doc" not in srv.hub.rooms, timeout=10)
        stored = await store.load("doc")
        # Every edit, in 20 rows or fewer (back-to-back updates are stored merged).
        assert 1 <= len(stored.updates) <= 20
        restored: Doc = Doc()
        for update in stored.updates:
            restored.apply_update(update)
        assert str(restored.get("t", type=Text)) == "x" * 20
    await store.close()
