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
            await until(lambda: srv.hub.saver.log("notes").appended == 1)
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
        log = srv.hub.saver.log("doc")
        srv.hub.tick(time.monotonic() + 60)  # far past the grace period
        assert "doc" in srv.hub.rooms and log.committed < log.appended
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


class CompactionSpy(SqlStore):
    """A real SQLite store that keeps what each compaction returned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[Any] = []

    async def compact(self, name: str, live: Any = None, keep: Any = None) -> Any:
        result = await super().compact(name, live, keep)
        self.results.append(result)
        return result


async def test_compaction_snapshots_the_live_document_unless_another_writer_appended(settings):
    store = CompactionSpy.from_url(settings.database_url)
    settings = settings.replace(compact_after_rows=5)
    async with serving(settings, store) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            t = a.doc.get("t", type=Text)

            async def type_rows(n: int) -> None:
                for _ in range(n):  # one committed row each
                    t.insert(len(t), "x")
                    done = srv.hub.saver.committed + 1
                    await until(lambda done=done: srv.hub.saver.committed >= done)

            await type_rows(6)
            await until(lambda: len(store.results) == 1)
            assert store.results[0].live, "the server held every row: no replay needed"
            # Another writer (an import, a process without a bus) adds a row the room never saw.
            other = Doc()
            other.get("t", type=Text).insert(0, "E")
            await store.append([PendingUpdate("doc", other.get_update(), 0)])
            await type_rows(6)
            await until(lambda: len(store.results) == 2)
            assert not store.results[1].live, "a row the room does not hold: replay the log"
    stored = await store.load("doc")
    restored: Doc = Doc()
    for update in [stored.snapshot or b"", *stored.updates]:
        if update:
            restored.apply_update(update)
    text = str(restored.get("t", type=Text))
    assert sorted(text) == sorted("E" + "x" * 12)
    await store.close()


async def test_a_clean_shutdown_leaves_each_open_document_as_one_snapshot(settings):
    """A restart (a deploy) should load a snapshot, not replay a log tail into a big document:
    yrs integrates a tail item by item (~160 ms for 184 rows onto a 1 MB document)."""
    async with serving(settings) as srv:
        async with YClient(srv.url, "tail") as a:
            await a.wait_for(lambda: a.synced)
            for i in range(5):
                a.doc.get("t", type=Text).insert(i, "x")
            room = srv.hub.rooms["tail"]
            await until(lambda: str(room.doc.get("t", type=Text)) == "xxxxx")
            await until(lambda: srv.hub.saver.is_clean("tail"))
            assert (await srv.hub.store.load("tail")).updates  # a log tail, before the stop
    store = SqlStore.from_url(settings.database_url)
    await store.open()
    try:
        stored = await store.load("tail")
    finally:
        await store.close()
    assert stored.snapshot is not None and stored.updates == []
    doc: Doc[Any] = Doc()
    doc.apply_update(stored.snapshot)
    assert str(doc.get("t", type=Text)) == "xxxxx"
