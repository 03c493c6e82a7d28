"""The outbox behind every change feed (collab/events, storage/outbox.py), with an in-process
sink: which events a document's life writes, coalescing, retries with the same id, order per
document, a sink that fails holding up no other, and changes that survive a crash before their
event was made. (Webhooks, SSE and RabbitMQ have tests of their own.)"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text, get_state

from collab.events import Event
from collab.hooks import Extension, OnStartupPayload
from storage import EventSettings, PendingUpdate, SqlStore
from tests.conftest import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def typed(text: str, doc: Doc | None = None) -> bytes:
    doc = doc or Doc()
    doc["text"] = t = Text()
    before = doc.get_state()
    t += text
    return doc.get_update(before)


class Recorder(Extension):
    """A sink: records every attempt; `failures[document]` attempts fail first; `hold`, when
    set, keeps attempts waiting."""

    def __init__(self, name: str = "test:recorder") -> None:
        self.name = name
        self.max_in_flight = 4
        self.attempts: list[Event] = []
        self.delivered: list[Event] = []
        self.failures: dict[str, int] = {}
        self.hold: asyncio.Event | None = None
        self.changed = asyncio.Condition()

    async def on_startup(self, payload: OnStartupPayload) -> None:
        payload.events.add_sink(self)

    async def deliver(self, event: Event) -> None:
        self.attempts.append(event)
        if self.hold is not None:
            await self.hold.wait()
        if self.failures.get(event.document, 0) > 0:
            self.failures[event.document] -= 1
            async with self.changed:
                self.changed.notify_all()
            raise RuntimeError("receiver answered 500")
        self.delivered.append(event)
        async with self.changed:
            self.changed.notify_all()

    async def until(self, check: Any, timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            async with self.changed:
                await self.changed.wait_for(check)

    def types(self, document: str) -> list[str]:
        return [e.type for e in self.delivered if e.document == document]


@pytest.fixture
def fast(settings):
    return settings.replace(events_debounce_ms=50, events_max_wait_ms=500)


async def test_a_new_document_gets_created_then_changed_with_its_text_and_authors(fast):
    sink = Recorder()
    async with serving(fast, extensions=[sink]) as srv:
        await srv.app.state.documents.apply_update("notes", typed("hello"), author="alice")
        await sink.until(lambda: len(sink.types("notes")) >= 2)
        created, changed = sink.delivered[:2]
        assert [created.type, changed.type] == ["document.created", "document.changed"]
        body = changed.json()
        assert body["id"] == changed.id and changed.id.startswith("evt_")
        assert body["document"] == "notes" and body["users"] == ["alice"]
        assert body["text"] == {"text": "hello"}
        assert body["time"].endswith("Z") and isinstance(body["time_ms"], int)
        live = srv.app.state.documents
        assert base64.b64decode(body["state_vector"]) == get_state(await live.read("notes"))
        assert created.id != changed.id


async def test_edits_within_the_debounce_make_one_changed_event(settings):
    sink = Recorder()
    slow = settings.replace(events_debounce_ms=400, events_max_wait_ms=5000)
    async with serving(slow, extensions=[sink]) as srv:
        documents = srv.app.state.documents
        doc = Doc()
        for word in ("a", "b", "c", "d"):
            await documents.apply_update("d", typed(word, doc), author="bob")
        await sink.until(lambda: "document.changed" in sink.types("d"))
        await documents.apply_update("d", typed("e", doc), author="carol")
        await sink.until(lambda: sink.types("d").count("document.changed") == 2)
        first, second = [e.json() for e in sink.delivered if e.type == "document.changed"]
        assert first["text"] == {"text": "abcd"} and first["users"] == ["bob"]
        assert second["text"] == {"text": "abcde"} and second["users"] == ["carol"]


async def test_a_failed_attempt_is_retried_with_the_same_id_and_later_events_wait(fast):
    sink = Recorder()
    sink.failures["x"] = 2
    async with serving(fast, extensions=[sink]) as srv:
        documents = srv.app.state.documents
        await documents.apply_update("x", typed("one"), author="a")
        await documents.apply_update("other", typed("two"), author="b")
        await sink.until(lambda: len(sink.types("x")) == 2, timeout=15)
        xs = [e for e in sink.attempts if e.document == "x"]
        # created failed twice (retried after ~1 s, ~2 s) with the same id, then delivered;
        # the document's changed event waited for it
        assert [e.id for e in xs[:3]] == [xs[0].id] * 3 and xs[0].type == "document.created"
        assert xs[3].type == "document.changed"
        # the other document did not wait for x
        other = [i for i, e in enumerate(sink.delivered) if e.document == "other"]
        assert other and other[0] < sink.delivered.index(xs[0])
        log = await srv.app.state.events.deliveries(sink_prefix="test:", document="x")
        first = next(d for d in log if d.event_id == xs[0].id)
        assert (first.status, first.attempts) == ("delivered", 3)
        assert "500" in (first.last_error or "")


async def test_one_stuck_sink_holds_up_no_other(fast):
    stuck, fine = Recorder("test:stuck"), Recorder("test:fine")
    stuck.hold = asyncio.Event()
    async with serving(fast, extensions=[stuck, fine]) as srv:
        await srv.app.state.documents.apply_update("s", typed("x"), author="a")
        await fine.until(lambda: len(fine.types("s")) == 2)
        assert stuck.delivered == [] and len(stuck.attempts) == 1
        stuck.hold.set()
        await stuck.until(lambda: len(stuck.types("s")) == 2)
        assert [e.id for e in stuck.delivered] == [e.id for e in fine.delivered]


async def test_versions_deletion_and_restore_are_events_in_order(fast):
    sink = Recorder()
    async with serving(fast, extensions=[sink]) as srv:
        documents = srv.app.state.documents
        doc = Doc()
        await documents.apply_update("v", typed("first", doc), author="a")
        version = await documents.create_version("v", "v1")
        await documents.apply_update("v", typed(" second", doc), author="a")
        await documents.restore("v", version.id, author="boss")
        await sink.until(lambda: "version.restored" in sink.types("v"))
        await documents.delete("v")
        await sink.until(lambda: "document.deleted" in sink.types("v"))
        types = sink.types("v")
        assert types[0] == "document.created"
        assert types.index("version.created") < types.index("version.restored")
        assert types[-1] == "document.deleted"
        named = next(e.json() for e in sink.delivered if e.type == "version.created")
        assert named["version"] == {"id": version.id, "kind": "named", "label": "v1"}
        restored = next(e.json() for e in sink.delivered if e.type == "version.restored")
        assert restored["restored"] == {"id": version.id} and restored["users"] == ["boss"]
        seqs = [e.seq for e in sink.delivered if e.document == "v"]
        assert seqs == sorted(seqs)


async def test_a_change_committed_before_a_crash_still_becomes_an_event(fast, tmp_path):
    # what a killed server leaves: the updates and their mark committed, no event made yet
    store = SqlStore.from_url(fast.database_url)
    await store.open()
    store.configure_events(EventSettings(50, 500))
    await store.append([PendingUpdate("crashed", typed("kept"), 0, "zoe")])
    await store.close()
    sink = Recorder()
    async with serving(fast, extensions=[sink]):
        await sink.until(lambda: len(sink.types("crashed")) == 2)
        assert sink.delivered[1].json()["text"] == {"text": "kept"}
        assert sink.delivered[1].json()["users"] == ["zoe"]


async def test_a_sink_resumes_after_a_restart_with_what_was_pending(fast):
    sink = Recorder()
    sink.hold = asyncio.Event()  # never answers: the server stops with deliveries pending
    async with serving(fast, extensions=[sink]) as srv:
        await srv.app.state.documents.apply_update("p", typed("x"), author="a")
        with anyio.fail_after(10):
            while not sink.attempts:
                await anyio.sleep(0.02)
        with anyio.fail_after(10):
            while (await srv.app.state.events.backlog())["open_changes"]:
                await anyio.sleep(0.02)
    again = Recorder()  # same name
    async with serving(fast, extensions=[again]):
        await again.until(lambda: again.types("p") == ["document.created", "document.changed"])


async def test_with_events_off_nothing_is_written(settings):
    sink = Recorder()
    async with serving(settings.replace(events=False), extensions=[sink]) as srv:
        await srv.app.state.documents.apply_update("off", typed("x"))
        await srv.hub.saver.flush()
        assert await srv.app.state.events.events_after(0) == []
    store = SqlStore.from_url(settings.database_url)
    await store.open()
    try:
        assert (await store.outbox_counts())["open_changes"] == 0
    finally:
        await store.close()
