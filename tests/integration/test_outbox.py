"""The outbox behind every change feed (collab/events, storage/outbox.py), with an in-process
sink: which events a document's life writes, coalescing, retries with the same id, order per
document, a sink that fails holding up no other, and changes that survive a crash before their
event was made. (Webhooks, SSE and RabbitMQ have tests of their own.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any, cast

import anyio
import pytest
from pycrdt import Doc, Text, get_state

from collab import ystructs
from collab.events import Event
from collab.events.finalizer import Finalizer
from collab.events.schema import EventBody
from collab.hooks import Extension, OnStartupPayload
from storage import EventSettings, PendingUpdate, SqlStore
from tests.conftest import serving
from tests.integration import api_support
from tests.loopturns import BIG_ITEMS, big_document, loop_turns

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL


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
        async with self.changed:
            self.changed.notify_all()
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
        EventBody.model_validate_json(created.body)
        EventBody.model_validate_json(changed.body)


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
        await stuck.until(lambda: len(stuck.attempts) == 1)
        assert stuck.delivered == []
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
        for event in sink.delivered:  # every body is what the published schema says
            EventBody.model_validate_json(event.body)
        schema = srv.app.state.openapi
        assert "EventBody" in schema["components"]["schemas"]


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
        # (then the version the first server took as it stopped: version.created)
        await again.until(lambda: len(again.types("p")) >= 2)
        assert again.types("p")[:2] == ["document.created", "document.changed"]


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


@pytest.mark.postgres
async def test_on_postgresql_two_processes_deliver_each_event_once_in_order(settings, pg_database):
    """Two servers on one PostgreSQL database, each with the same sink: every event is
    delivered by exactly one of them (claims skip rows the other holds), in order per
    document across both."""
    base = settings.replace(database_url=pg_database, events_debounce_ms=50, events_max_wait_ms=500)
    from tests.conftest import free_port

    one, two = Recorder("test:shared"), Recorder("test:shared")
    async with (
        serving(base, extensions=[one]) as a,
        serving(base.replace(port=free_port()), extensions=[two]) as b,
    ):
        for i in range(6):
            srv = a if i % 2 else b
            doc = Doc()
            await srv.app.state.documents.apply_update(f"pg{i}", typed("x", doc), author="u")
            await srv.app.state.documents.create_version(f"pg{i}", f"v{i}")
        expected = 6 * 3  # created, changed, version.created

        def done() -> bool:
            return len(one.delivered) + len(two.delivered) >= expected

        with anyio.fail_after(20):
            while not done():
                await anyio.sleep(0.05)
        ids = [e.id for e in one.delivered + two.delivered]
        assert len(ids) == len(set(ids)) == expected
        events = await a.app.state.events.events_after(0, limit=1000)
        assert len(events) == expected
        for i in range(6):
            got = sorted(
                (e for e in one.delivered + two.delivered if e.document == f"pg{i}"),
                key=lambda e: e.seq,
            )
            assert [e.type for e in got] == [
                "document.created",
                "document.changed",
                "version.created",
            ]


async def test_presence_events_for_a_users_first_and_last_connection(fast):
    from collab.extensions.token_auth import mint_token
    from tests.ywire import YClient

    secret = "presence-secret-0123456789-abcdefghijkl"
    sink = Recorder()
    on = fast.replace(events_presence=True, auth_secret=secret)

    def token(user: str) -> str:
        return mint_token(doc="*", write=True, ttl_s=60, user=user, secret=secret)

    async with serving(on, extensions=[sink]) as srv:
        async with YClient(srv.url, "room", query=f"token={token('ann')}"):
            async with YClient(srv.url, "room", query=f"token={token('ann')}"):
                async with YClient(srv.url, "room", query=f"token={token('ben')}"):
                    await sink.until(lambda: sink.types("room").count("user.joined") == 2)
        await sink.until(lambda: sink.types("room").count("user.left") == 2)
        users = [(e.type, e.json()["users"]) for e in sink.delivered if e.document == "room"]
        for event in sink.delivered:
            EventBody.model_validate_json(event.body)
        assert sorted(users) == [
            ("user.joined", ["ann"]),
            ("user.joined", ["ben"]),
            ("user.left", ["ann"]),
            ("user.left", ["ben"]),
        ]


async def test_changed_events_can_carry_the_update_since_the_previous_one(fast):
    sink = Recorder()
    async with serving(fast.replace(events_include_update=True), extensions=[sink]) as srv:
        documents = srv.app.state.documents
        doc = Doc()
        await documents.apply_update("u", typed("one", doc), author="a")
        await sink.until(lambda: "document.changed" in sink.types("u"))
        await documents.apply_update("u", typed(" two", doc), author="a")
        await sink.until(lambda: sink.types("u").count("document.changed") == 2)
        first, second = [e.json() for e in sink.delivered if e.type == "document.changed"]
        replica = Doc()
        replica["text"] = text = Text()
        replica.apply_update(base64.b64decode(first["update"]))
        assert str(text) == "one"
        replica.apply_update(base64.b64decode(second["update"]))
        assert str(text) == "one two"


async def test_a_big_documents_changed_event_lets_the_rest_of_the_process_run(fast, monkeypatch):
    """A document.changed carries the document's texts, and telling its roots' kinds apart is
    pure Python over every struct: ~100 ms for 20,000 items. The process's other tasks (its
    commits, every room) must run in between, not wait behind it: in a worker thread they
    waited for the GIL each time the loop woke (found as a commit 265 ms late in the kill -9
    durability test). tests/loopturns.py counts the loop's turns during the read."""
    finalize = Finalizer.finalize
    sink = Recorder()
    async with loop_turns(monkeypatch) as record, serving(fast, extensions=[sink]) as srv:

        async def finalizing(finalizer: Finalizer, mark: Any) -> None:
            with record.read():
                await finalize(finalizer, mark)

        monkeypatch.setattr(Finalizer, "finalize", finalizing)
        await srv.app.state.documents.apply_update("big", big_document(), author="a")
        await sink.until(lambda: "document.changed" in sink.types("big"))
    changed = next(e for e in sink.delivered if e.type == "document.changed").json()
    assert changed["text"] == {"text": "xy" * BIG_ITEMS}
    assert list(changed["comments"]) == ["c1"]
    record.check()
    # One pass tells the roots' kinds apart, for the texts and the comments alike, and one
    # more resolves the comments' anchors (three passes before: the kinds read twice).
    structs = len(ystructs.read_update(big_document()).structs)
    assert len(record.seen) <= 2 * structs, f"{len(record.seen)} structs read of {structs}"


@pytest.mark.parametrize("fast_path", [True, False])
async def test_later_commits_extend_a_documents_mark(fast_path, db_settings):
    """Each commit of a document marks it: the first inserts its mark, later ones extend it
    (the users join), on every store path (SQLite's sqlite3 fast path, SQLAlchemy on SQLite
    and on PostgreSQL)."""
    url = db_settings.database_url
    from storage import make_engine

    store = SqlStore(make_engine(url), fast_path=fast_path)
    await store.open()
    try:
        store.configure_events(EventSettings(debounce_ms=1000, max_wait_ms=1500))
        doc = Doc()
        await store.append([PendingUpdate("m", typed("a", doc), 0, "ann")])
        await store.append([PendingUpdate("m", typed("b", doc), 0, "ben")])
        await store.append([PendingUpdate("m", typed("c", doc), 0, None)])
        [mark] = await store.due_marks(2**62, 1000)
        assert mark.document == "m" and mark.users == ("ann", "ben") and mark.created
        assert mark.revision == 3
        assert await store.finish_mark(mark, []) is True
        assert (await store.outbox_counts())["open_changes"] == 0
    finally:
        await store.close()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_commit_nobody_known_wrote_extends_the_mark_as_any_other(fast_path, tmp_path):
    """A commit without a known author extends its document's mark as next_mark says (due at
    the debounce after it, at most max_wait after the first change; the users stay), on the
    sqlite3 fast path (one UPDATE) as through the engine."""
    import sqlite3

    from storage import make_engine

    path = tmp_path / "m.db"
    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{path}"), fast_path=fast_path)
    await store.open()

    def mark() -> tuple[int, int, str, int]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            query = "SELECT first_at_ms, due_at_ms, users, revision FROM collab_event_marks"
            [row] = conn.execute(query).fetchall()
        return row

    try:
        doc = Doc()
        store.configure_events(EventSettings(debounce_ms=0, max_wait_ms=10**9))
        await store.append([PendingUpdate("m", typed("a", doc), 0, "ann")])
        first, due, users, revision = mark()
        assert due == first and users == '["ann"]' and revision == 1
        await anyio.sleep(0.01)
        await store.append([PendingUpdate("m", typed("b", doc), 0, None)])
        first_after, due, users, revision = mark()
        assert first_after == first and due > first  # the debounce after this commit
        assert users == '["ann"]' and revision == 2
        store.configure_events(EventSettings(debounce_ms=10**9, max_wait_ms=5))
        await store.append([PendingUpdate("m", typed("c", doc), 0, None)])
        assert mark() == (first, first + 5, '["ann"]', 3)  # max_wait after the first change
    finally:
        await store.close()


@pytest.mark.parametrize("busy", [False, True])
async def test_the_finalizers_statements_on_sqlites_fast_path_and_when_it_is_busy(busy, tmp_path):
    """On a SQLite file the finalizer's claim, last change and finish run on the appender's
    sqlite3 connection; while that connection is taken (a commit in a worker thread) they go
    through the engine instead, with the same results: a mark a commit touched after its
    claim is released, not deleted, and its events are written either way."""
    from storage import make_engine, new_event

    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"))
    await store.open()
    appender = store._appender
    assert appender is not None
    try:
        store.configure_events(EventSettings(debounce_ms=0, max_wait_ms=0))
        doc = Doc()
        await store.append([PendingUpdate("m", typed("a", doc), 0, "ann")])
        if busy:
            assert appender._lock.acquire(blocking=False)
        try:
            assert await store.last_change("m") is None
            marks, next_due = await store.claim_due_marks(2**62, 1000)
            [mark] = marks
            assert mark.users == ("ann",) and mark.created and next_due is None
            assert await store.claim_due_marks(2**62, 1000) == ([], None)  # held by us
            changed = new_event("document.changed", "m", ["ann"], None, n=1)
            assert await store.finish_mark(mark, [changed]) is True
            assert (await store.last_change("m") or {})["n"] == 1
        finally:
            if busy:
                appender._lock.release()
        await store.append([PendingUpdate("m", typed("b", doc), 0, "ben")])
        if busy:
            assert appender._lock.acquire(blocking=False)
        try:
            [mark] = (await store.claim_due_marks(2**62, 1000))[0]
            assert not mark.created
        finally:
            if busy:
                appender._lock.release()
        await store.append([PendingUpdate("m", typed("c", doc), 0, None)])  # touches the mark
        if busy:
            assert appender._lock.acquire(blocking=False)
        try:
            changed = new_event("document.changed", "m", ["ben"], None, n=2)
            assert await store.finish_mark(mark, [changed]) is False  # released, due again
            assert (await store.last_change("m") or {})["n"] == 2
            [again] = (await store.claim_due_marks(2**62, 1000))[0]
            assert again.users == ("ben",) and again.revision == mark.revision + 1
        finally:
            if busy:
                appender._lock.release()
    finally:
        await store.close()


class NoEngine:
    """In place of a store's engine: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was used ({name}) where the fast path should run")


@pytest.mark.parametrize("busy", [False, True])
async def test_a_sinks_statements_on_sqlites_fast_path_and_when_it_is_busy(busy, tmp_path):
    """On a SQLite file a sink's delivery loop makes, claims and settles its deliveries and
    asks when the next is due on the appender's sqlite3 connection, never on the engine (a
    transaction there costs ~0.45 ms of CPU, most of a delivery's); while that connection is
    taken they go through the engine, with the same results: in order per document, none of a
    document in flight, a retry due when asked, a delivered one never again."""
    from storage import make_engine, new_event

    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"))
    await store.open()
    appender = store._appender
    engine = store.engine
    assert appender is not None
    try:
        await store.register_sink("hook")
        seqs = [
            await store.add_event(new_event("document.changed", doc, [], None, n=n), settle=False)
            for n, doc in enumerate(["a", "a", "b", "c"])
        ]
        if busy:
            assert appender._lock.acquire(blocking=False)
        else:
            store.engine = cast(Any, NoEngine())
        try:
            assert await store.fill_deliveries("hook") == 4
            assert await store.fill_deliveries("hook") == 0
            now, hold = 10**13, 10**9  # (after every delivery's creation; held past the end)
            assert await store.next_due("hook") is not None
            claimed = await store.claim_deliveries("hook", now, hold, 5, skip=["c"])
            # a's first and b's: a's second waits for its first, c is in flight
            assert [(c.event.document, c.event.seq) for c in claimed] == [
                ("a", seqs[0]),
                ("b", seqs[2]),
            ]
            # then c's (a's and b's are held)
            [claimed_c] = await store.claim_deliveries("hook", now, hold, 5)
            assert claimed_c.event.document == "c"
            first_a, first_b = claimed
            await store.settle_delivery(first_a.id, "delivered", 1, now, None)
            await store.settle_delivery(first_b.id, "pending", 1, now + 60_000, "HTTP 500")
            again = await store.claim_deliveries("hook", now + 1, hold, 5)
            assert [(c.event.document, c.event.seq) for c in again] == [("a", seqs[1])]
            assert await store.next_due("hook") == now + 60_000  # b's retry (a and c held)
            retry = await store.claim_deliveries("hook", now + 60_000, hold, 5)
            assert [(c.event.document, c.attempts) for c in retry] == [("b", 1)]
        finally:
            if busy:
                appender._lock.release()
            store.engine = engine
        rows = {r.id: r for r in await store.list_deliveries()}
        assert rows[first_a.id].status == "delivered" and rows[first_a.id].attempts == 1
        assert rows[first_b.id].last_error == "HTTP 500"
    finally:
        await store.close()


async def test_a_fast_path_that_finds_sqlite_busy_for_a_moment_waits_instead_of_the_engine(
    tmp_path,
):
    """Another connection holding SQLite's write lock (an engine transaction, another process)
    for a moment: the finalizer's and a sink's statements wait for it on the fast path rather
    than going to the engine, whose transactions cost ~0.45 ms of CPU each and hold the lock
    across their thread's hops (falling back at once made the next fast paths fail too)."""
    import sqlite3

    from storage import make_engine, new_event

    path = tmp_path / "o.db"
    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{path}"))
    await store.open()
    engine = store.engine
    other = sqlite3.connect(path, isolation_level=None)
    loop = asyncio.get_running_loop()

    def busy_for_a_moment() -> None:
        other.execute("BEGIN IMMEDIATE")
        loop.call_later(0.03, other.execute, "COMMIT")

    try:
        store.configure_events(EventSettings(debounce_ms=0, max_wait_ms=0))
        await store.register_sink("hook")
        await store.append([PendingUpdate("m", typed("a", Doc()), 0, "ann")])
        store.engine = cast(Any, NoEngine())
        busy_for_a_moment()
        [mark] = (await store.claim_due_marks(2**62, 1000))[0]
        busy_for_a_moment()
        changed = new_event("document.changed", "m", ["ann"], None, n=1)
        assert await store.finish_mark(mark, [changed]) is True
        busy_for_a_moment()
        assert await store.fill_deliveries("hook") == 1
        busy_for_a_moment()
        [delivery] = await store.claim_deliveries("hook", 10**13, 10**9, 5)
        busy_for_a_moment()
        await store.settle_delivery(delivery.id, "delivered", 1, 10**13, None)
        store.engine = engine
        assert [r.status for r in await store.list_deliveries()] == ["delivered"]
    finally:
        store.engine = engine
        other.close()
        await store.close()


async def test_a_sink_registered_twice_at_once_is_known_once(db_settings):
    """Two processes starting together register the same sink: neither fails."""
    first, second = (SqlStore.from_url(db_settings.database_url) for _ in range(2))
    await first.open()
    await second.open()
    try:
        await asyncio.gather(first.register_sink("webhook:x"), second.register_sink("webhook:x"))
        await first.register_sink("webhook:x")
        assert await first.fill_deliveries("webhook:x") == 0
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("busy", [False, True])
async def test_a_deferred_documents_mark_waits_for_its_holder_then_anyone_takes_it(busy, tmp_path):
    """Under --workers the finalizer leaves the due marks of documents another worker holds to
    that worker for DEFER_MS (it makes the events from its room; this one would rebuild the
    document from the store); after that, or at a shutdown's flush, anyone takes them."""
    from storage import make_engine
    from storage.outbox import DEFER_MS

    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"))
    await store.open()
    appender = store._appender
    assert appender is not None
    try:
        store.configure_events(EventSettings(debounce_ms=0, max_wait_ms=0))
        await store.append([PendingUpdate(n, typed("a"), 0, "ann") for n in ("mine", "theirs")])
        now = int(time.time() * 1000) + 1000
        if busy:  # the engine's path
            assert appender._lock.acquire(blocking=False)
        try:
            hold = 10 * DEFER_MS  # ("mine" stays held meanwhile)
            marks, _ = await store.claim_due_marks(now, hold, defer=lambda n: n == "theirs")
            assert [m.document for m in marks] == ["mine"]
            later = now + DEFER_MS + 1000  # its holder never took it: anyone does
            marks, _ = await store.claim_due_marks(later, hold, defer=lambda n: n == "theirs")
            assert [m.document for m in marks] == ["theirs"]
        finally:
            if busy:
                appender._lock.release()
    finally:
        await store.close()


async def test_on_postgresql_a_finalizers_claim_never_deadlocks_with_a_commit(pg_database):
    """A commit extends the marks of its documents in name order; a finalizer claims due marks
    oldest first. On PostgreSQL the two used to lock the same rows in opposite orders: the
    claim held "b" and waited for "a", the commit held "a" and then wanted "b", and
    PostgreSQL aborted one of them (`deadlock detected`; seen with six processes on one
    database). The claim skips a mark a commit holds (it is due again after that commit)."""
    from sqlalchemy import text

    from storage.outbox import LOCKED_RETRY_MS

    store = SqlStore.from_url(pg_database)
    await store.open()
    try:
        store.configure_events(EventSettings(debounce_ms=0, max_wait_ms=0))
        await store.append([PendingUpdate(n, typed(n), 0, "ann") for n in ("a", "b")])
        async with store.engine.begin() as conn:  # "b" fell due first
            due = "UPDATE collab_event_marks SET due_at_ms = :due WHERE document = :doc"
            await conn.execute(text(due), [{"doc": "b", "due": 1}, {"doc": "a", "due": 2}])
        extend = text("UPDATE collab_event_marks SET revision = revision + 1 WHERE document = :doc")
        async with store.engine.connect() as commit, store.engine.connect() as watch:
            await commit.begin()
            await commit.execute(extend, {"doc": "a"})  # a commit holds "a"...
            claim = asyncio.ensure_future(store.claim_due_marks(10, 60_000))
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            for _ in range(500):  # until the claim returned or waits for a lock
                if claim.done() or (await watch.execute(waiting)).scalar():
                    break
                await asyncio.sleep(0.01)
            await commit.execute(extend, {"doc": "b"})  # ...and now takes "b"
            await commit.commit()
            marks, _ = await claim
        assert [m.document for m in marks] == ["b"]  # "a" was held: it is claimed next time
        async with store.engine.connect() as commit:  # held again: due, but not at once
            await commit.begin()
            await commit.execute(extend, {"doc": "a"})
            assert await store.claim_due_marks(10, 60_000) == ([], 10 + LOCKED_RETRY_MS)
            await commit.commit()
        marks, _ = await store.claim_due_marks(10, 60_000)
        assert [m.document for m in marks] == ["a"]
    finally:
        await store.close()
