"""on_unload_document: after the room has left memory, which it does only once empty, fully
committed and past unload_grace_s; so when the hook runs the store has every edit."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import pytest
from pycrdt import Text

from collab.hooks import OnUnloadDocumentPayload
from storage import DocumentStore, PendingUpdate, SqlStore
from tests.conftest import serving
from tests.integration.hooks.support import Recorder, stored_text, text, until
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Inspect(Recorder):
    """Notes, when the hook runs, whether the room is still loaded and what the store has."""

    def __init__(self) -> None:
        super().__init__()
        self.srv = None
        self.seen: list[tuple[str, bool, str]] = []

    async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
        hub = self.srv.hub  # type: ignore[attr-defined]
        store: DocumentStore = hub.store
        loaded = payload.document in hub.rooms
        self.seen.append((payload.document, loaded, await stored_text(store, payload.document)))
        await super().on_unload_document(payload)


def settings_for(settings):
    # Long idle timeout: the tests move the hub's clock forward, which must not close anyone.
    return settings.replace(unload_grace_s=0.2, idle_timeout_s=3600)


class GatedStore(SqlStore):
    """A real SQLite store whose commits wait while `gate` is unset (a slow database)."""

    gate: anyio.Event | None = None

    async def append(self, batch: Sequence[PendingUpdate]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await super().append(batch)


async def test_fires_after_the_final_flush_and_the_unload(settings):
    rec = Inspect()
    store = GatedStore.from_url(settings.database_url)
    try:
        async with serving(settings_for(settings), store, extensions=[rec]) as srv:
            rec.srv = srv
            async with YClient(srv.url, "doc") as a:
                await a.wait_for(lambda: a.synced)
                store.gate = anyio.Event()
                t = a.doc.get("t", type=Text)
                for i in range(20):
                    t.insert(i, "x")
                await rec.wait_for(lambda: rec.count("on_change") == 20)
            await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
            room = srv.hub.rooms["doc"]
            # empty, but its edits not committed
            assert not room.members and not srv.hub.saver.log("doc").clean
            srv.hub.tick(time.monotonic() + 10)  # far past the grace period
            await anyio.sleep(0.2)  # proving a negative: give a wrongly queued hook time to run
            assert rec.count("on_unload_document") == 0 and srv.hub.rooms.get("doc") is room
            store.gate.set()
            await rec.wait_for(lambda: rec.count("on_unload_document") == 1)
            assert rec.seen == [("doc", False, "x" * 20)]
            assert rec.payloads("on_unload_document")[0].document == "doc"
            # and the document loads again, from the store
            async with YClient(srv.url, "doc") as b:
                await b.wait_for(lambda: text(b) == "x" * 20)
            assert srv.hub.loads == 2
    finally:
        await store.close()


async def test_not_fired_while_a_member_remains(settings):
    rec = Inspect()
    async with serving(settings_for(settings), extensions=[rec]) as srv:
        rec.srv = srv
        async with YClient(srv.url, "doc") as stays:
            await stays.wait_for(lambda: stays.synced)
            async with YClient(srv.url, "doc") as leaves:
                await leaves.wait_for(lambda: leaves.synced)
                leaves.doc.get("t", type=Text).insert(0, "bye")
                await stays.wait_for(lambda: text(stays) == "bye")
            await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
            room = srv.hub.rooms["doc"]
            await until(lambda: srv.hub.saver.log("doc").clean)
            srv.hub.tick(time.monotonic() + 10)  # far past the grace period, one member left
            await anyio.sleep(0.2)  # proving a negative: give a wrongly queued hook time to run
            assert rec.count("on_unload_document") == 0 and srv.hub.rooms.get("doc") is room
            assert stays.close_code is None
        await rec.wait_for(lambda: rec.count("on_unload_document") == 1)
        assert rec.seen == [("doc", False, "bye")]


async def test_an_exception_is_logged_and_the_document_still_reloads(settings, caplog):
    class Broken(Recorder):
        async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
            await super().on_unload_document(payload)
            raise RuntimeError("cache eviction failed")

    rec = Broken()
    async with serving(settings_for(settings), extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "kept")
            await rec.wait_for(lambda: rec.count("on_change") == 1)
        await rec.wait_for(lambda: rec.count("on_unload_document") == 1)
        async with YClient(srv.url, "doc") as b:
            await b.wait_for(lambda: text(b) == "kept")
        assert any("on_unload_document hook" in r.getMessage() for r in caplog.records)
