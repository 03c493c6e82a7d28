"""The store on real databases: SQLite (a file in tmp_path) and PostgreSQL (when reachable: an
empty database of each test's own, see tests/pg.py).

Every test runs with the same assertions on both backends: the log keeps arrival order,
compaction folds snapshot + log into one snapshot equal to the replayed log (including updates
whose dependencies have not arrived yet), and list/delete see what append wrote.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Text
from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

from storage import (
    LiveDocument,
    PendingUpdate,
    SqlStore,
    StoredDocument,
    make_engine,
    open_store,
    statements,
)
from storage.models import Document, Update
from tests.pg import fresh_database

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_run: str
) -> AsyncIterator[SqlStore]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path}/collab.db"
        else:  # an empty database of this test's own (tests/pg.py), dropped after it
            url = await stack.enter_async_context(fresh_database())
        opened = await open_store(url)
        stack.push_async_callback(opened.close)
        yield opened


# -- helpers ---------------------------------------------------------------------------------


class Writer:
    """A pycrdt Doc that records every update it produces, like an editor would send them."""

    def __init__(self, client_id: int) -> None:
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.updates: list[bytes] = []
        self._sub = self.doc.observe(lambda event: self.updates.append(event.update))
        self.text = self.doc.get("t", type=Text)
        self.items = self.doc.get("items", type=Array)

    def edit(self, i: int) -> None:
        with self.doc.transaction():
            self.text += f"{i};"
            self.items.append(i)
            if i % 3 == 2:  # a deletion too, so delete sets travel through the store
                del self.text[0:1]


def content(doc: Doc[Any]) -> tuple[str, list[Any]]:
    return str(doc.get("t", type=Text)), doc.get("items", type=Array).to_py()


def replay(*updates: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def restored(stored: StoredDocument) -> Doc[Any]:
    return replay(*([stored.snapshot] if stored.snapshot else []), *stored.updates)


def pending(name: str, data: bytes) -> PendingUpdate:
    return PendingUpdate(name, data, 1_700_000_000_000)


async def log_rows(store: SqlStore, name: str) -> int:
    async with store.engine.connect() as conn:
        count = await conn.execute(
            select(func.count())
            .select_from(Update)
            .join(Document, Document.id == Update.document_id)
            .where(Document.name == name)
        )
        return int(count.scalar_one())


def written(n: int, client_id: int, edit: Callable[[Writer, int], None] = Writer.edit) -> Writer:
    writer = Writer(client_id)
    for i in range(n):
        edit(writer, i)
    return writer


# -- append / load ---------------------------------------------------------------------------


async def test_append_load_round_trip_in_arrival_order(store: SqlStore) -> None:
    writers = {name: written(12, client_id=k + 1) for k, name in enumerate(("a", "team/b", "c"))}
    # One batch that interleaves the documents, the way the saver's group commit does.
    batch = [
        pending(name, writer.updates[i]) for i in range(12) for name, writer in writers.items()
    ]
    await store.append(batch[:18])
    await store.append(batch[18:])

    for name, writer in writers.items():
        stored = await store.load(name)
        assert stored.snapshot is None
        assert stored.updates == writer.updates, f"{name}: log not in arrival order"
        assert stored.last_id > 0
        assert content(restored(stored)) == content(writer.doc)


async def test_load_of_unknown_document_is_empty(store: SqlStore) -> None:
    await store.append([pending("known", written(1, client_id=1).updates[0])])
    stored = await store.load("unknown")
    assert stored.empty
    assert stored.snapshot is None
    assert stored.updates == []
    assert stored.last_id == 0


async def test_missing_now_tells_only_what_the_store_certainly_lacks(store: SqlStore) -> None:
    """The hub makes a new document's room without a load when this says True: it must never
    say so of a document the store holds (written by the engine, or by the sqlite3 path)."""
    await store.append([pending("known", written(1, client_id=1).updates[0])])
    assert not store.missing_now("known")
    if store.engine.dialect.name != "sqlite":  # (no answer without waiting but SQLite's)
        assert not store.missing_now("unknown")
        return
    assert store.missing_now("unknown")
    async with store.engine.begin() as conn:  # another writer than the appender
        await conn.execute(
            text(
                "INSERT INTO collab_documents (name, created_at_ms, updated_at_ms)"
                " VALUES (:n, 1, 1)"
            ),
            {"n": "made elsewhere"},
        )
    assert not store.missing_now("made elsewhere")
    assert (await store.load("made elsewhere")).empty  # (a document with nothing in it yet)


async def test_missing_now_leaves_the_appender_never_waiting_on_the_loop(store: SqlStore) -> None:
    """The appender's connection keeps busy_timeout=0 (a locked database sends a batch to a
    thread at once, see SqliteAppender._begun): a read by missing_now once set it back to the
    waiting value, so a later commit on the event loop could stall it for seconds (a SIGTERM
    flush then outlived its deadline)."""
    if store.engine.dialect.name != "sqlite":
        return
    appender = store._appender
    assert appender is not None
    assert store.missing_now("unknown")
    assert appender._conn is not None
    assert appender._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0


async def test_empty_batch_is_a_no_op(store: SqlStore) -> None:
    await store.append([])
    assert await store.list_documents() == []


# -- compaction ------------------------------------------------------------------------------


async def test_compaction_folds_snapshot_and_log_into_one_snapshot(store: SqlStore) -> None:
    writer = written(40, client_id=7)
    first, second = writer.updates[:25], writer.updates[25:]
    await store.append([pending("doc", u) for u in first])
    assert (await store.compact("doc")) is not None  # a snapshot now exists
    await store.append([pending("doc", u) for u in second])
    await store.append([pending("other", written(3, client_id=8).updates[0])])

    result = await store.compact("doc")
    assert result is not None
    assert result.name == "doc"
    assert result.rows == len(second)

    stored = await store.load("doc")
    assert stored.snapshot is not None
    assert stored.updates == []
    assert await log_rows(store, "doc") == 0
    assert await log_rows(store, "other") == 1, "compaction touched another document"
    assert content(replay(stored.snapshot)) == content(replay(*writer.updates))
    assert content(replay(stored.snapshot)) == content(writer.doc)

    # Idempotent: nothing left to fold, and the snapshot stays what it was.
    assert await store.compact("doc") is None
    again = await store.load("doc")
    assert again.snapshot == stored.snapshot
    assert again.updates == []
    assert await store.compact("never-written") is None


async def test_compaction_keeps_pending_updates(store: SqlStore) -> None:
    writer = written(6, client_id=11)
    missing, *rest = writer.updates
    # Everything after the first update depends on it: without it they are all "pending".
    await store.append([pending("doc", u) for u in rest])
    assert await store.compact("doc") is not None

    stored = await store.load("doc")
    assert stored.snapshot is not None
    assert stored.updates == []
    assert await log_rows(store, "doc") == 0
    assert content(replay(stored.snapshot)) == ("", []), "pending updates became visible"

    # The missing update arrives later: everything must come back.
    await store.append([pending("doc", missing)])
    stored = await store.load("doc")
    assert stored.updates == [missing]
    assert content(restored(stored)) == content(writer.doc)

    # ... and survives another compaction.
    assert await store.compact("doc") is not None
    stored = await store.load("doc")
    assert stored.updates == []
    assert content(restored(stored)) == content(writer.doc)


async def test_update_appended_after_compaction_is_in_the_tail(store: SqlStore) -> None:
    writer = written(10, client_id=21)
    await store.append([pending("doc", u) for u in writer.updates[:9]])
    await store.compact("doc")
    before = await store.load("doc")

    await store.append([pending("doc", writer.updates[9])])
    stored = await store.load("doc")
    assert stored.snapshot == before.snapshot
    assert stored.updates == [writer.updates[9]]
    assert content(restored(stored)) == content(writer.doc)


async def test_log_ids_keep_growing_across_compaction(store: SqlStore) -> None:
    # A snapshot covers every row up to `through_id`; a row appended later must get a larger id,
    # or it would look folded already (and StoredDocument.last_id would go backwards). SQLite
    # reuses the ids of deleted rows unless the table is AUTOINCREMENT.
    writer = written(10, client_id=22)
    await store.append([pending("doc", u) for u in writer.updates[:9]])
    await store.compact("doc")
    before = await store.load("doc")
    assert before.last_id > 0

    await store.append([pending("doc", writer.updates[9])])
    assert (await store.load("doc")).last_id > before.last_id


@pytest.mark.postgres
async def test_compaction_racing_another_process_loses_nothing(pg_database: str) -> None:
    """Two processes compact one document (cluster mode: each counts its own rows). Ours reads
    the snapshot and the log in one READ COMMITTED transaction. If the other commits its
    compaction (rows deleted, a newer snapshot) and appends more rows in between, ours must not
    fold the older snapshot with the newer rows: what the other folded would be lost. The
    other holds the log table locked until ours waits on it, so every run interleaves alike."""
    writer = written(25, client_id=41)
    ups = writer.updates
    ours = await open_store(pg_database)
    other = SqlStore.from_url(pg_database)  # the other process: an engine of its own
    try:
        await ours.append([pending("doc", u) for u in ups[:10]])
        assert await ours.compact("doc") is not None
        await ours.append([pending("doc", u) for u in ups[10:20]])
        seen = await other.load("doc")
        assert seen.snapshot is not None
        folded = replay(seen.snapshot, *seen.updates).get_update()
        locked, ours_waits = anyio.Event(), anyio.Event()

        async def other_compacts_and_appends() -> None:
            async with other.engine.begin() as conn:
                await conn.execute(text("LOCK TABLE collab_updates IN ACCESS EXCLUSIVE MODE"))
                locked.set()
                await ours_waits.wait()
                last = {"last": seen.last_id}
                await conn.execute(text("DELETE FROM collab_updates WHERE id <= :last"), last)
                await conn.execute(
                    text("UPDATE collab_snapshots SET data = :data, through_id = :last"),
                    {"data": folded, **last},
                )
                for update in ups[20:]:
                    await conn.execute(
                        text(
                            "INSERT INTO collab_updates (document_id, data, created_at_ms) "
                            "SELECT id, :data, 0 FROM collab_documents WHERE name = 'doc'"
                        ),
                        {"data": update},
                    )

        async def ours_compacts() -> None:
            await ours.compact("doc")

        waiting = text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted "
            "AND relation = 'collab_updates'::regclass"
        )
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(other_compacts_and_appends)
                await locked.wait()
                tg.start_soon(ours_compacts)
                async with other.engine.connect() as conn:
                    while not (await conn.execute(waiting)).scalar_one():
                        await anyio.sleep(0.005)  # (polling pg_locks: nothing to wait on)
                ours_waits.set()
        assert content(restored(await ours.load("doc"))) == content(writer.doc)
    finally:
        await other.close()
        await ours.close()


# -- the two paths on a SQLite file ---------------------------------------------------------
# Appends and live compactions on a SQLite file run through the stdlib sqlite3 (SqliteAppender),
# everything else through SQLAlchemy; both run storage/statements.py's statements.


def statement_patterns() -> dict[str, re.Pattern[str]]:
    """Every statement of storage/statements.py, compiled here for SQLite, as a pattern that
    matches it as sqlite3 traces it (parameters expanded)."""
    dialect = sqlite.dialect(paramstyle="qmark")
    found = {
        name: value
        for name, value in vars(statements).items()
        if isinstance(value, ClauseElement) and not name.startswith("_")
    }
    found["insert_document"] = statements.insert_document("sqlite")
    found["upsert_snapshot"] = statements.upsert_snapshot("sqlite")
    patterns = {}
    for name, statement in found.items():
        sql = str(statement.compile(dialect=dialect))
        patterns[name] = re.compile(re.escape(sql).replace(r"\?", ".+?"), re.DOTALL)
    return patterns


async def test_the_sqlite3_path_runs_only_the_statements_of_storage_statements(
    tmp_path: Path,
) -> None:
    """What sqlite3 executes (its trace) is, statement by statement, one of
    storage/statements.py's, compiled here on their own: a statement written into the fast path
    by hand (the way it was before) fails this test."""
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/collab.db")
    try:
        appender = store._appender
        assert appender is not None
        await store.append([pending("warm-up", b"\x00\x00")])  # (opens its connection)
        assert appender._conn is not None
        traced: list[str] = []
        appender._conn.set_trace_callback(traced.append)
        writer = written(6, client_id=51)
        await store.append([pending("doc", u) for u in writer.updates[:3]])  # a new document
        await store.append([pending("doc", u) for u in writer.updates[3:]])  # a known one
        live = LiveDocument(6, 0, writer.doc.get_update)
        assert (await store.compact("doc", live)) is not None  # live: sqlite3
        await store.append([pending("doc", written(1, client_id=52).updates[0])])
        assert (await store.compact("doc", live)) is not None  # not live: SQLAlchemy
    finally:
        await store.close()
    patterns = statement_patterns()
    ran = set()
    for sql in traced:
        if re.match(r"(BEGIN|COMMIT|ROLLBACK|PRAGMA)\b", sql):
            continue
        matching = [name for name, pattern in patterns.items() if pattern.fullmatch(sql)]
        assert matching, f"the sqlite3 path ran SQL of its own: {sql}"
        ran.update(matching)
    assert {
        "DOCUMENT_ID",
        "insert_document",
        "INSERT_UPDATE",
        "TOUCH_DOCUMENT",
        "LOG_SIZES",
        "SNAPSHOT_SIZES",
        "DELETE_LOG_THROUGH",
        "upsert_snapshot",
    } <= ran


async def test_the_sqlite3_and_sqlalchemy_paths_read_what_the_other_wrote(
    tmp_path: Path,
) -> None:
    """Both paths on one SQLite file, taking turns: appends to new and known documents, live
    compaction (sqlite3), compaction by replay (SQLAlchemy); each reads what the other wrote.
    (A column renamed in models.py keeps this passing; before the statements were shared, it
    broke every append on a SQLite file.)"""
    url = f"sqlite+aiosqlite:///{tmp_path}/collab.db"
    fast = await open_store(url)
    slow = SqlStore(make_engine(url), fast_path=False)
    assert fast._appender is not None and slow._appender is None
    try:
        writer = written(20, client_id=61)
        ups, other = writer.updates, written(2, client_id=62).updates

        async def both_load(name: str) -> StoredDocument:
            stored = await fast.load(name)
            assert await slow.load(name) == stored
            return stored

        await fast.append([pending("doc", u) for u in ups[:5]])  # sqlite3 creates "doc"
        await slow.append([pending("doc", u) for u in ups[5:10]])
        await slow.append([pending("other", other[0])])  # SQLAlchemy creates "other"
        await fast.append([pending("other", other[1])])
        stored = await both_load("doc")
        assert stored.updates == ups[:10]
        assert (await both_load("other")).updates == other

        live = await fast.compact("doc", LiveDocument(10, 0, replay(*ups[:10]).get_update))
        assert live is not None and live.live and live.through_id == stored.last_id
        await slow.append([pending("doc", u) for u in ups[10:15]])
        replayed = await slow.compact("doc")
        assert replayed is not None and not replayed.live and replayed.rows == 5
        await fast.append([pending("doc", u) for u in ups[15:]])
        stored = await both_load("doc")
        assert stored.snapshot_through == replayed.through_id
        assert stored.updates == ups[15:] and stored.last_id > replayed.through_id
        assert content(restored(stored)) == content(writer.doc)

        again = await fast.compact(
            "doc", LiveDocument(5, replayed.through_id, writer.doc.get_update)
        )
        assert again is not None and again.live and again.rows == 5
        stored = await both_load("doc")
        assert stored.updates == [] and content(restored(stored)) == content(writer.doc)
        assert await fast.list_documents() == await slow.list_documents()
        assert {d.name: d.log_rows for d in await slow.list_documents()} == {"doc": 0, "other": 2}
    finally:
        await slow.close()
        await fast.close()


# -- listing and deleting --------------------------------------------------------------------


async def test_list_documents_reports_names_and_sizes(store: SqlStore) -> None:
    a, b = written(5, client_id=31), written(3, client_id=32)
    await store.append([pending("a", u) for u in a.updates])
    await store.append([pending("dir/b", u) for u in b.updates])

    infos = {d.name: d for d in await store.list_documents()}
    assert set(infos) == {"a", "dir/b"}
    assert infos["a"].size_bytes == sum(map(len, a.updates))
    assert infos["a"].log_rows == 5
    assert infos["dir/b"].size_bytes == sum(map(len, b.updates))
    assert infos["dir/b"].log_rows == 3
    assert all(d.created_at_ms <= d.updated_at_ms for d in infos.values())

    await store.compact("a")
    snapshot = (await store.load("a")).snapshot
    assert snapshot is not None
    infos = {d.name: d for d in await store.list_documents()}
    assert infos["a"].size_bytes == len(snapshot)
    assert infos["a"].log_rows == 0


async def test_delete(store: SqlStore) -> None:
    a, b = written(4, client_id=41), written(4, client_id=42)
    await store.append([pending("a", u) for u in a.updates])
    await store.append([pending("b", u) for u in b.updates])
    await store.compact("a")
    await store.append([pending("a", written(1, client_id=43).updates[0])])

    assert await store.delete("a") is True
    assert (await store.load("a")).empty
    assert [d.name for d in await store.list_documents()] == ["b"]
    async with store.engine.connect() as conn:
        orphans = await conn.execute(
            text(
                "SELECT count(*) FROM collab_snapshots WHERE document_id NOT IN "
                "(SELECT id FROM collab_documents)"
            )
        )
        assert orphans.scalar_one() == 0
    assert await store.delete("a") is False
    assert await store.delete("never-written") is False
    assert (await store.load("b")).updates == b.updates

    # The name can be used again, and starts from nothing.
    await store.append([pending("a", b.updates[0])])
    stored = await store.load("a")
    assert stored.snapshot is None
    assert stored.updates == [b.updates[0]]


# -- opening ---------------------------------------------------------------------------------


async def test_stores_opening_one_new_sqlite_file_at_once_all_create_the_schema(
    tmp_path: Path,
) -> None:
    """`collab serve --workers N` on a new SQLite file: every worker opens its store at once.
    create_all checks for each table, then creates it; two that both checked before either
    created failed with "table collab_documents already exists" (and, more rarely, one that
    came while another switched the new file to WAL with "database is locked"). Separate
    engines, each with its own aiosqlite thread as separate processes would have, race on a
    fresh file, many times over."""
    failures: list[BaseException] = []

    async def open_one(store: SqlStore) -> None:
        try:
            await store.open()
        except Exception as exc:
            failures.append(exc)

    for attempt in range(40):
        url = f"sqlite+aiosqlite:///{tmp_path}/race-{attempt}.db"
        stores = [SqlStore.from_url(url) for _ in range(4)]
        try:
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(open_one, store)
        finally:
            for store in stores:
                await store.close()
        assert not failures, f"attempt {attempt}: {failures[0]!r}"
    reopened = await open_store(url)  # and the schema they made is whole
    try:
        assert (await reopened.load("nothing")).empty
    finally:
        await reopened.close()


# A transaction cancelled half way (a task group cancelled at shutdown, a REST request whose
# client went away) and then the store closed: asyncio.run must return. With aiosqlite 0.22
# (whose `stop()` makes SQLAlchemy terminate a cancelled connection) the connection's "graceful
# close" task waited for ever on the thread the forced close had already stopped, so the loop
# never closed (a server that never exits; a test suite hung in the runner's teardown). With
# SQLAlchemy 2.1 this test hung 2 runs in 3; with 2.0.59 it was rare (CI's test_outbox, once).
CANCELLED_TRANSACTIONS = """
import asyncio, sys
from sqlalchemy import text
from storage import SqlStore

async def main(url):
    store = SqlStore.from_url(url)
    await store.open()
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (x INTEGER)"))
    async def write():
        while True:
            async with store.engine.begin() as conn:
                await conn.execute(text("INSERT INTO scratch VALUES (1)"))
                await conn.execute(text("SELECT count(*) FROM scratch"))
    for i in range(200):
        task = asyncio.create_task(write())
        await asyncio.sleep(0.0005 * (i % 7))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    await store.close()
    for _ in range(10):
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    print("tasks left:", left)

asyncio.run(main(sys.argv[1]))
print("closed")
"""


def test_the_loop_closes_after_transactions_were_cancelled(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite+aiosqlite:///{tmp_path}/cancelled.db"
    try:
        done = subprocess.run(
            [sys.executable, "-c", CANCELLED_TRANSACTIONS, url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the event loop never closed after cancelled transactions (a hung task)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["tasks left: []", "closed"]
