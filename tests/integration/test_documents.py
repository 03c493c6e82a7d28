"""DocumentService over a running server: a document open in memory is the truth. Reads see its
uncommitted edits; an update goes to its clients, the store and on_change like a client's (the
document is opened for it if need be); a delete closes its clients, commits what they sent,
unloads it and empties the store, while anyone joining waits and then finds it empty."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from collab import CloseCode, CollabError, DocumentService
from storage import SqlStore, StoredDocument
from tests.conftest import serving
from tests.integration.hooks.support import (
    Recorder,
    closed,
    doc_from,
    stored_text,
    text,
    until,
    update_inserting,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def service(srv) -> DocumentService:
    documents: DocumentService = srv.app.state.documents
    return documents


async def test_an_update_reaches_the_clients_and_the_store(settings):
    async with serving(settings) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            await service(srv).apply_update("doc", update_inserting("from the service"))
            await a.wait_for(lambda: text(a) == "from the service")
            await b.wait_for(lambda: text(b) == "from the service")
            await srv.hub.saver.flush()
            assert await stored_text(srv.hub.store, "doc") == "from the service"
            [listed] = await service(srv).list_documents()  # (stored documents only)
            assert listed.online == 2


async def test_a_document_not_open_is_opened_for_the_update_and_unloads_after(settings):
    rec = Recorder()
    async with serving(settings.replace(unload_grace_s=0.2), extensions=[rec]) as srv:
        await service(srv).apply_update("new", update_inserting("seeded"))
        assert srv.hub.loads == 1 and "new" in srv.hub.rooms
        async with YClient(srv.url, "new") as c:
            await c.wait_for(lambda: text(c) == "seeded")
        assert srv.hub.loads == 1  # the client joined the room the update opened
        # committed, and the client gone from the room (on_disconnect runs after it left)
        await rec.wait_for(
            lambda: rec.count("on_store_document") == 1 and rec.count("on_disconnect") == 1
        )
        srv.hub.tick(time.monotonic() + 10)  # far past the grace period
        assert "new" not in srv.hub.rooms
        assert await stored_text(srv.hub.store, "new") == "seeded"


class GatedStore(SqlStore):
    """A real SQLite store whose commits (or deletes) wait while their gate is unset."""

    append_gate: anyio.Event | None = None
    delete_gate: anyio.Event | None = None
    deleting: anyio.Event

    @classmethod
    def make(cls, url: str) -> GatedStore:
        store = cls.from_url(url)
        assert isinstance(store, GatedStore)
        store.deleting = anyio.Event()
        return store

    async def append(self, batch):
        if self.append_gate is not None:
            await self.append_gate.wait()
        await super().append(batch)

    async def delete(self, name: str) -> bool:
        self.deleting.set()
        if self.delete_gate is not None:
            await self.delete_gate.wait()
        return await super().delete(name)


async def test_a_read_sees_the_edits_not_yet_committed(settings):
    store = GatedStore.make(settings.database_url)
    try:
        async with serving(settings, store) as srv:
            async with YClient(srv.url, "doc") as a:
                await a.wait_for(lambda: a.synced)
                store.append_gate = anyio.Event()
                a.doc.get("t", type=Text).insert(0, "in memory only")
                room = await srv.hub.open("doc")
                await until(lambda: text(room.doc) == "in memory only")
                assert (await store.load("doc")).empty
                update = await service(srv).read("doc")
                assert update == room.encode_update()
                assert text(doc_from([update])) == "in memory only"
                store.append_gate.set()
    finally:
        await store.close()


async def test_delete_closes_the_clients_commits_first_and_leaves_nothing(settings):
    rec = Recorder()
    # A long commit window: the clients' last edit is still uncommitted when the delete begins;
    # committed after the delete, it would bring the document back.
    slow = settings.replace(commit_window_ms=60_000)
    async with serving(slow, extensions=[rec]) as srv:
        async with YClient(srv.url, "doomed") as a, YClient(srv.url, "kept") as k:
            await a.wait_for(lambda: a.synced)
            await k.wait_for(lambda: k.synced)
            a.doc.get("t", type=Text).insert(0, "last edit")
            k.doc.get("t", type=Text).insert(0, "stays")
            await rec.wait_for(lambda: rec.count("on_change") == 2)
            assert srv.hub.saver.committed == 0
            assert await service(srv).delete("doomed") is True
            assert await closed(a) == (CloseCode.NOT_FOUND, "document deleted")
            assert "doomed" not in srv.hub.rooms
            await rec.wait_for(lambda: rec.count("on_unload_document") == 1)
            await srv.hub.saver.flush()
            assert (await srv.hub.store.load("doomed")).empty
            assert [d.name for d in await service(srv).list_documents()] == ["kept"]
            assert k.close_code is None
        assert await service(srv).delete("doomed") is False


async def test_a_join_during_a_delete_waits_and_finds_the_document_empty(settings):
    store = GatedStore.make(settings.database_url)
    rec = Recorder()
    try:
        async with serving(settings, store, extensions=[rec]) as srv:
            async with YClient(srv.url, "doc") as a:
                await a.wait_for(lambda: a.synced)
                a.doc.get("t", type=Text).insert(0, "old content")
                await rec.wait_for(lambda: rec.count("on_store_document") == 1)
            store.delete_gate = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(service(srv).delete, "doc")
                with anyio.fail_after(5):
                    await store.deleting.wait()  # unloaded; the store's delete is held
                assert "doc" not in srv.hub.rooms
                async with YClient(srv.url, "doc") as b:
                    # admitted, so joining: it must wait for the delete, not load "old content"
                    await rec.wait_for(lambda: rec.count("on_authenticate") == 2)
                    store.delete_gate.set()
                    await b.wait_for(lambda: b.synced)
                    assert text(b) == ""
            assert (await store.load("doc")) == StoredDocument(None, [], 0)
    finally:
        await store.close()


async def test_an_update_that_would_open_one_document_too_many_is_refused(settings):
    async with serving(settings.replace(max_documents=1)) as srv:
        async with YClient(srv.url, "open") as a:
            await a.wait_for(lambda: a.synced)
            with pytest.raises(CollabError) as full:
                await service(srv).apply_update("another", update_inserting("x"))
            assert full.value.code == CloseCode.TRY_AGAIN_LATER


async def test_an_update_waiting_for_a_dependency_is_kept_and_sent_on(settings):
    """yrs holds an update whose dependency is missing aside. Applied through the service, it
    must still reach the store and the clients (as a client's own such update does), so that
    when the dependency comes from a client, everyone (and a restart) has both."""
    writer: Doc[Any] = Doc()
    first = update_inserting("one ", writer)
    second = update_inserting("two", writer)  # builds on `first`
    async with serving(settings) as srv:
        async with YClient(srv.url, "doc") as c, YClient(srv.url, "doc", read=False) as d:
            await c.wait_for(lambda: c.synced)
            await service(srv).apply_update("doc", second)  # `first` is missing
            d.doc.apply_update(first)  # d (which reads nothing) sends `first` alone
            await c.wait_for(lambda: text(c) == "one two")
            room = srv.hub.rooms["doc"]
            await until(lambda: text(room.doc) == "one two")
            await srv.hub.saver.flush()
            assert await stored_text(srv.hub.store, "doc") == "one two"
