"""on_store_document: called after a commit, with how many updates of that document it held;
when it runs, the store already returns them."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Text

from collab.hooks import OnStoreDocumentPayload
from storage import DocumentStore
from tests.conftest import serving
from tests.integration.hooks.support import Recorder, stored_text, text
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Reads(Recorder):
    """Reads the store back on every call: what had it committed by then?"""

    def __init__(self) -> None:
        super().__init__()
        self.store: DocumentStore | None = None
        self.seen: list[tuple[str, int, int, str]] = []  # (doc, updates, rows stored, text)

    async def on_store_document(self, payload: OnStoreDocumentPayload) -> None:
        assert self.store is not None
        stored = await self.store.load(payload.document)
        row = (
            payload.document,
            payload.updates,
            len(stored.updates),
            await stored_text(self.store, payload.document),
        )
        self.seen.append(row)
        await super().on_store_document(payload)


def total(rec: Recorder, name: str) -> int:
    return sum(p.updates for p in rec.payloads("on_store_document") if p.document == name)


async def test_runs_after_the_updates_are_committed_and_counts_add_up(settings):
    rec = Reads()
    async with serving(settings, extensions=[rec]) as srv:
        rec.store = srv.hub.store
        async with YClient(srv.url, "one") as a, YClient(srv.url, "two") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            ta, tb = a.doc.get("t", type=Text), b.doc.get("t", type=Text)
            for i in range(10):
                ta.insert(i, "a")
                if i % 2:
                    tb.insert(len(tb), "b")
                if i == 4:  # and a second batch once the first is committed
                    await rec.wait_for(lambda: total(rec, "one") == 5)
            await rec.wait_for(lambda: total(rec, "one") == 10 and total(rec, "two") == 5)
    assert total(rec, "one") == 10 and total(rec, "two") == 5  # nothing more, on shutdown either
    committed = {"one": 0, "two": 0}
    for name, updates, rows, content in rec.seen:
        committed[name] += updates
        assert updates > 0
        # Each edit added one character: the store held at least every edit reported so far
        # (in as many rows or fewer: updates a client sent back to back are stored merged).
        assert rows > 0
        assert len(content) >= committed[name], "the hook ran before its updates were committed"
    last = {name: content for name, _, _, content in rec.seen}
    assert last == {"one": "a" * 10, "two": "b" * 5}


async def test_a_failing_hook_does_not_stop_saving(settings, caplog):
    class Broken(Recorder):
        async def on_store_document(self, payload: Any) -> None:
            await super().on_store_document(payload)
            raise OSError("webhook unreachable")

    rec = Broken()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "x")
            await rec.wait_for(lambda: total(rec, "doc") == 1)
            a.doc.get("t", type=Text).insert(1, "y")
            await rec.wait_for(lambda: total(rec, "doc") == 2)
            await b.wait_for(lambda: text(b) == "xy")
            assert a.close_code is None and b.close_code is None
        assert await stored_text(srv.hub.store, "doc") == "xy"
    assert sum("on_store_document hook" in r.getMessage() for r in caplog.records) == 2


async def test_the_view_holds_at_least_what_was_committed(settings):
    class Views(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.store: DocumentStore | None = None
            self.read: list[tuple[str, str]] = []  # (view's text, store's text) at each call

        async def on_store_document(self, payload: OnStoreDocumentPayload) -> None:
            assert self.store is not None
            stored = await stored_text(self.store, payload.document)
            self.read.append((payload.view.text("t"), stored))
            await super().on_store_document(payload)

    rec = Views()
    async with serving(settings, extensions=[rec]) as srv:
        rec.store = srv.hub.store
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "durable")
            await rec.wait_for(lambda: total(rec, "doc") == 1)
            [payload] = rec.payloads("on_store_document")
            assert rec.read == [("durable", "durable")]
            assert payload.view.roots() == ["t"]
            assert payload.view.update() == srv.hub.rooms["doc"].encode_update()
