"""on_change: the update as applied and who sent it, run in the background after the fan-out,
so a slow or failing hook never holds up an edit."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Doc, Map, Text

from collab.hooks import OnChangePayload
from tests.conftest import serving
from tests.integration.hooks.support import (
    Recorder,
    doc_from,
    local_client,
    stored_text,
    text,
    until,
    update_inserting,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.every_server]


async def test_the_update_reproduces_the_edit_and_names_its_sender(settings):
    rec = Recorder()
    async with serving(settings, extensions=[rec]) as srv:
        async with (
            YClient(srv.url, "doc", query="who=a") as a,
            YClient(srv.url, "doc", query="who=b") as b,
        ):
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            a.doc.get("t", type=Text).insert(0, "hello")
            await rec.wait_for(lambda: rec.count("on_change") == 1)
            b.doc.get("m", type=Map)["k"] = 1
            await rec.wait_for(lambda: rec.count("on_change") == 2)
            connects = {p.connection.query["who"]: p.connection for p in rec.payloads("on_connect")}
            from_a, from_b = rec.payloads("on_change")
            assert from_a.document == from_b.document == "doc"
            assert from_a.connection is connects["a"]  # the very ConnectionInfo of the sender
            assert from_a.connection.client == local_client(a)
            assert from_b.connection is connects["b"]
            assert from_b.connection.client == local_client(b)

            fresh: Doc[Any] = doc_from([from_a.update])
            assert str(fresh.get("t", type=Text)) == "hello"
            fresh.apply_update(from_b.update)
            assert dict(fresh.get("m", type=Map)) == {"k": 1}
            assert str(fresh.get("t", type=Text)) == "hello"  # both edits, nothing else


async def test_offline_edits_arriving_in_sync_step_2_are_reported_too(settings):
    rec = Recorder()
    async with serving(settings, extensions=[rec]) as srv:
        offline: Doc[Any] = Doc()
        offline.get("t", type=Text).insert(0, "written offline")
        async with YClient(srv.url, "doc", doc=offline) as a:
            await rec.wait_for(lambda: rec.count("on_change") == 1)
            [change] = rec.payloads("on_change")
            assert text(doc_from([change.update])) == "written offline"
            assert change.connection.client == local_client(a)


class Slow(Recorder):
    """Each on_change waits until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()
        self.finished = 0

    async def on_change(self, payload: OnChangePayload) -> None:
        await super().on_change(payload)
        await self.release.wait()
        self.finished += 1
        self.notify()


async def test_a_slow_hook_does_not_hold_up_the_fan_out(settings):
    rec = Slow()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            t = a.doc.get("t", type=Text)
            t.insert(0, "1")
            await rec.wait_for(lambda: rec.count("on_change") == 1)  # now stuck in the hook
            await b.wait_for(lambda: text(b) == "1")
            # And the sender's next frames are not stuck behind it either.
            t.insert(1, "2")
            t.insert(2, "3")
            await b.wait_for(lambda: text(b) == "123")
            assert rec.finished == 0 and rec.count("on_change") == 1
            rec.release.set()
            await rec.wait_for(lambda: rec.finished == 3)
            assert text(doc_from([c.update for c in rec.payloads("on_change")])) == "123"


class Broken(Recorder):
    async def on_change(self, payload: OnChangePayload) -> None:
        await super().on_change(payload)
        raise ValueError("audit log is full")


async def test_an_exception_is_logged_and_nothing_else_happens(settings, caplog):
    broken, after = Broken("broken", priority=200), Recorder("after", priority=100)
    async with serving(settings, extensions=[broken, after]) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "x")
            await b.wait_for(lambda: text(b) == "x")
            a.doc.get("t", type=Text).insert(1, "y")
            await b.wait_for(lambda: text(b) == "xy")
            # The next extension still ran, each time; the hooks keep running.
            await after.wait_for(lambda: after.count("on_change") == 2)
            assert broken.count("on_change") == 2
            failures = [r for r in caplog.records if "on_change hook" in r.getMessage()]
            assert len(failures) == 2
            assert all(str(r.exc_info[1]) == "audit log is full" for r in failures)
            assert a.close_code is None and b.close_code is None
            room = srv.hub.rooms["doc"]
            assert srv.hub.saver.log("doc").appended == 2
            assert set(room.members) == srv.hub.connections


class Views(Recorder):
    """Reads the document in each on_change, and writes into its copy (which goes nowhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[tuple[str, list[str], dict[str, Any], bytes]] = []

    async def on_change(self, payload: OnChangePayload) -> None:
        view = payload.view
        self.read.append((view.text("t"), view.roots(), view.to_py(), view.state_vector()))
        copy = view.snapshot()
        copy.get("t", type=Text).insert(0, "HOOK ")  # a detached copy: reaches nobody
        await super().on_change(payload)


async def test_the_view_reads_the_document_and_a_hook_cannot_change_it(settings):
    rec = Views()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            a.doc.get("t", type=Text).insert(0, "hello")
            await rec.wait_for(lambda: rec.count("on_change") == 1)
            [(content, roots, plain, state)] = rec.read
            assert (content, roots, plain) == ("hello", ["t"], {"t": "hello"})
            assert state == a.doc.get_state()
            await b.wait_for(lambda: text(b) == "hello")
            b.doc.get("t", type=Text).insert(5, "!")
            await rec.wait_for(lambda: rec.count("on_change") == 2)
            await a.wait_for(lambda: text(a) == "hello!")
            assert rec.read[1][0] == "hello!"
            # what the hooks wrote into their copies reached no client, no room, no store
            view = rec.payloads("on_change")[1].view
            assert text(doc_from([view.update()])) == "hello!"
            assert view.update(a.doc.get_state()) == b"\x00\x00"  # a has it all
            assert text(b) == "hello!" and text(srv.hub.rooms["doc"].doc) == "hello!"
            await srv.hub.saver.flush()
            assert await stored_text(srv.hub.store, "doc") == "hello!"


async def test_the_view_shows_the_document_when_read_not_when_the_change_was_made(settings):
    """A background hook runs after the fact: its view holds this change and any later ones."""
    rec = Slow()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            t = a.doc.get("t", type=Text)
            t.insert(0, "1")
            await rec.wait_for(lambda: rec.count("on_change") == 1)  # stuck in the hook
            t.insert(1, "23")
            await until(lambda: text(srv.hub.rooms["doc"].doc) == "123")
            [first] = rec.payloads("on_change")
            assert text(doc_from([first.update])) == "1"
            assert first.view.text("t") == "123"
            rec.release.set()
            await rec.wait_for(lambda: rec.finished == 2)


async def test_an_update_applied_through_the_documents_service_has_no_connection(settings):
    rec = Recorder()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            await srv.app.state.documents.apply_update("doc", update_inserting("from the API"))
            await rec.wait_for(lambda: rec.count("on_change") == 1)
            [change] = rec.payloads("on_change")
            assert change.connection is None
            assert text(doc_from([change.update])) == "from the API"
            await a.wait_for(lambda: text(a) == "from the API")
