"""on_load_document: once per load however many join at once; `is_new` says whether anything
was stored; what it writes into the doc reaches every joiner and is persisted like any edit;
if it raises, every joiner is closed 1011 and nothing of that load remains."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest
from pycrdt import Text

from collab.hooks import OnLoadDocumentPayload
from tests.conftest import serving
from tests.integration.hooks.support import Recorder, closed, stored_text, text, until
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Template(Recorder):
    """Fills a new document with "template"; records what each load found already there."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.release: anyio.Event | None = None  # when set: each load waits for it
        self.fail = False

    async def on_load_document(self, payload: OnLoadDocumentPayload) -> None:
        await super().on_load_document(payload)
        self.found.append(str(payload.doc.get("t", type=Text)))
        if self.release is not None:
            await self.release.wait()
        if payload.is_new:
            payload.doc.get("t", type=Text).insert(0, "template")
        if self.fail:
            raise RuntimeError("template service down")


def waiting_joiners(ext: Recorder) -> int:
    """Connections past on_authenticate: the endpoint goes from there straight into hub.join
    without yielding, so each of them is waiting on the load."""
    return ext.count("on_authenticate")


async def test_runs_once_for_fifty_concurrent_joiners_and_each_gets_the_template(settings):
    ext = Template()
    ext.release = anyio.Event()
    async with serving(settings, extensions=[ext]) as srv, AsyncExitStack() as stack:
        clients = [YClient(srv.url, "doc") for _ in range(50)]
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(c.open_socket)
        for c in clients:
            await stack.enter_async_context(c)
        await ext.wait_for(lambda: ext.count("on_load_document") == 1)
        await ext.wait_for(lambda: waiting_joiners(ext) == 50)
        # Everybody is waiting on the one load, nobody has joined a room yet.
        assert list(srv.hub._loading) == ["doc"] and not srv.hub.connections
        ext.release.set()
        for c in clients:
            await c.wait_for(lambda c=c: c.synced and text(c) == "template")
        assert ext.count("on_load_document") == 1 and srv.hub.loads == 1
        assert len(srv.hub.rooms["doc"].members) == 50


async def test_the_template_is_persisted_and_not_added_again_after_a_restart(settings):
    ext = Template()
    async with serving(settings, extensions=[ext]) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: text(a) == "template")
            await b.wait_for(lambda: text(b) == "template")
            log = srv.hub.saver.log("doc")
            await until(lambda: log.committed == log.appended == 1)
            assert await stored_text(srv.hub.store, "doc") == "template"
    async with serving(settings, extensions=[ext]) as srv:
        assert await stored_text(srv.hub.store, "doc") == "template"
        async with YClient(srv.url, "doc") as c:
            await c.wait_for(lambda: c.synced)
            assert text(c) == "template"
    assert [p.is_new for p in ext.payloads("on_load_document")] == [True, False]
    assert ext.found == ["", "template"]  # the doc is restored from the store before the hook


async def test_is_new_follows_the_store_across_unload_and_reload(settings):
    rec = Recorder()
    async with serving(settings.replace(unload_grace_s=0.2), extensions=[rec]) as srv:
        # Opened and left untouched: nothing stored, so still new on the next load.
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
        await rec.wait_for(lambda: rec.count("on_unload_document") == 1)
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "content")
            await rec.wait_for(lambda: rec.count("on_change") == 1)
        await rec.wait_for(lambda: rec.count("on_unload_document") == 2)
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: text(a) == "content")
        payloads = rec.payloads("on_load_document")
        assert [(p.document, p.is_new) for p in payloads] == [
            ("doc", True),
            ("doc", True),
            ("doc", False),
        ]
        assert str(payloads[2].doc.get("t", type=Text)) == "content"


async def test_raising_closes_every_joiner_1011_and_a_later_load_succeeds(settings, caplog):
    ext = Template()
    ext.release = anyio.Event()
    ext.fail = True  # after writing "template" into the doc: none of it may survive
    async with serving(settings, extensions=[ext]) as srv:
        async with (
            YClient(srv.url, "doc") as a,
            YClient(srv.url, "doc") as b,
            YClient(srv.url, "doc") as c,
        ):
            await ext.wait_for(lambda: waiting_joiners(ext) == 3)
            ext.release.set()
            for client in (a, b, c):
                assert await closed(client) == (1011, "could not load document")
        assert "doc" not in srv.hub.rooms and "doc" not in srv.hub._loading
        assert srv.hub.loads == 0 and not srv.hub.connections
        assert await srv.hub.store.list_documents() == []
        assert any("loading 'doc' failed" in r.getMessage() for r in caplog.records)
        assert ext.count("on_load_document") == 1

        ext.fail = False
        async with YClient(srv.url, "doc") as d:
            await d.wait_for(lambda: d.synced and text(d) == "template")
            assert d.close_code is None
        assert [p.is_new for p in ext.payloads("on_load_document")] == [True, True]
