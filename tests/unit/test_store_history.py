"""What the store keeps for version history, on SQLite and PostgreSQL: who wrote each update
(collab_updates.author), which Yjs client ids wrote a document (collab_clients), versions
(stored states that compaction never touches), documents listed by name for pagination, and a
database made by the older schema gaining the author column when opened."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text
from sqlalchemy import select

from storage import PendingUpdate, SqlStore, VersionInfo, open_store
from storage.models import Document, Update
from tests.pg import fresh_database

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("sqlite-engine", id="sqlite-engine"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_run: str
) -> AsyncIterator[SqlStore]:
    async with AsyncExitStack() as stack:
        if request.param == "postgres":
            url = await stack.enter_async_context(fresh_database())
        else:
            url = f"sqlite+aiosqlite:///{tmp_path}/collab.db"
        opened = SqlStore.from_url(url)
        if request.param == "sqlite-engine":  # appends through SQLAlchemy, not sqlite3
            opened = SqlStore(opened.engine, fast_path=False)
        await opened.open()
        stack.push_async_callback(opened.close)
        yield opened


def typed(doc: Doc[Any], value: str) -> bytes:
    before = doc.get_state()
    text = doc.get("t", type=Text)
    text.insert(len(text), value)
    update: bytes = doc.get_update(before)
    return update


async def authors_of_rows(store: SqlStore, name: str) -> list[str | None]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(Update.author)
            .join(Document, Document.id == Update.document_id)
            .where(Document.name == name)
            .order_by(Update.id)
        )
        return [r.author for r in rows]


# -- authorship ------------------------------------------------------------------------------


async def test_append_records_each_updates_author(store: SqlStore) -> None:
    doc: Doc[Any] = Doc()
    await store.append(
        [
            PendingUpdate("d", typed(doc, "a"), 1, "alice"),
            PendingUpdate("d", typed(doc, "b"), 2),
            PendingUpdate("d", typed(doc, "c"), 3, "api"),
        ]
    )
    await store.import_update("d", typed(doc, "d"))
    assert await authors_of_rows(store, "d") == ["alice", None, "api", "import"]


async def test_clients_first_writer_wins_and_survive_compaction(store: SqlStore) -> None:
    assert await store.clients("d") == {}
    await store.record_clients("d", {11: "alice", 2**53 - 1: "bob"})
    await store.record_clients("d", {11: "mallory", 12: "carol"})
    await store.record_clients("other", {11: "dave"})
    assert await store.clients("d") == {11: "alice", 2**53 - 1: "bob", 12: "carol"}
    doc: Doc[Any] = Doc(client_id=11)
    await store.append([PendingUpdate("d", typed(doc, "x"), 1, "alice")])
    assert await store.compact("d") is not None
    assert await store.clients("d") == {11: "alice", 2**53 - 1: "bob", 12: "carol"}
    assert await store.clients("other") == {11: "dave"}


# -- versions --------------------------------------------------------------------------------


async def test_versions_round_trip_newest_first_and_survive_compaction(store: SqlStore) -> None:
    doc: Doc[Any] = Doc()
    added: list[VersionInfo] = []
    for i, kind in enumerate(("auto", "named", "auto", "restore")):
        await store.append([PendingUpdate("d", typed(doc, f"{i};"), i)])
        label = "release" if kind == "named" else None
        state = doc.get_update()
        info = await store.add_version(
            "d", state, doc.get_state(), kind, label, ["alice", "bob"][: i % 3], 1000 + i
        )
        assert info.size_bytes == len(state) and info.name == "d" and info.kind == kind
        added.append(info)
    assert [v.id for v in added] == sorted(v.id for v in added)
    assert await store.count_versions("d") == 4
    listed = await store.list_versions("d")
    assert listed == added[::-1]
    assert listed[2].authors == ("alice",) and listed[2].label == "release"
    assert await store.list_versions("d", limit=2) == added[:1:-1]
    assert await store.list_versions("d", limit=2, before_id=added[2].id) == added[1::-1]

    assert await store.compact("d") is not None
    for i, info in enumerate(added):
        loaded = await store.load_version("d", info.id)
        assert loaded is not None and loaded[0] == info
        old: Doc[Any] = Doc()
        old.apply_update(loaded[1])
        assert str(old.get("t", type=Text)) == "".join(f"{j};" for j in range(i + 1))
    latest = await store.latest_version("d")
    assert latest is not None and latest == (added[-1], doc.get_state())


async def test_unknown_versions_and_documents(store: SqlStore) -> None:
    assert await store.list_versions("nope") == []
    assert await store.count_versions("nope") == 0
    assert await store.latest_version("nope") is None
    assert await store.load_version("nope", 1) is None
    info = await store.add_version("new", b"\x00\x00", b"\x00", "named", "empty", [], 5)
    # add_version made the document
    assert [d.name for d in await store.list_documents()] == ["new"]
    assert await store.load_version("new", info.id + 1) is None
    assert await store.load_version("other", info.id) is None  # not that document's
    with pytest.raises(ValueError):
        await store.add_version("new", b"\x00\x00", b"\x00", "weird", None, [], 5)


async def test_delete_versions_and_delete_document(store: SqlStore) -> None:
    ids = [
        (await store.add_version("d", b"\x00\x00", b"\x00", "auto", None, [], i)).id
        for i in range(5)
    ]
    other = await store.add_version("e", b"\x00\x00", b"\x00", "auto", None, [], 0)
    assert await store.delete_versions("d", [ids[1], ids[3], other.id]) == 2
    assert [v.id for v in await store.list_versions("d")] == [ids[4], ids[2], ids[0]]
    assert await store.delete_versions("d", []) == 0
    await store.record_clients("d", {1: "alice"})
    assert await store.delete("d")
    assert await store.list_versions("d") == [] and await store.clients("d") == {}
    await store.record_clients("d", {1: "bob"})  # a new document of that name starts afresh
    assert await store.clients("d") == {1: "bob"}
    assert [v.id for v in await store.list_versions("e")] == [other.id]


# -- listing ---------------------------------------------------------------------------------


async def test_list_documents_by_name_with_prefix_and_pages(store: SqlStore) -> None:
    names = ["b", "a/2", "a/10", "A", "a_x", "a%", "é", "a/1"]
    for name in names:
        await store.import_update(name, b"\x00\x00")
    await store.add_version("a/2", b"\x00\x00", b"\x00", "auto", None, [], 1)
    await store.add_version("a/2", b"\x00\x00", b"\x00", "auto", None, [], 2)
    listed = await store.list_documents()
    assert [d.name for d in listed] == sorted(names, key=lambda n: n.encode())
    assert {d.name: d.versions for d in listed}["a/2"] == 2
    assert [d.name for d in await store.list_documents("a/")] == ["a/1", "a/10", "a/2"]
    assert [d.name for d in await store.list_documents("a_")] == ["a_x"]  # _ is no wildcard
    assert [d.name for d in await store.list_documents("a%")] == ["a%"]
    pages, after = [], None
    while True:
        page = await store.list_documents("a", limit=2, after=after)
        if not page:
            break
        pages.append([d.name for d in page])
        after = page[-1].name
    assert pages == [["a%", "a/1"], ["a/10", "a/2"], ["a_x"]]


# -- an older database -----------------------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE collab_documents (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  name VARCHAR(512) NOT NULL UNIQUE, created_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL);
CREATE TABLE collab_updates (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  document_id INTEGER NOT NULL REFERENCES collab_documents (id) ON DELETE CASCADE,
  data BLOB NOT NULL, created_at_ms BIGINT NOT NULL);
CREATE INDEX ix_collab_updates_document_id_id ON collab_updates (document_id, id);
CREATE TABLE collab_snapshots (document_id INTEGER NOT NULL PRIMARY KEY
  REFERENCES collab_documents (id) ON DELETE CASCADE, data BLOB NOT NULL,
  through_id BIGINT NOT NULL, folded_updates BIGINT NOT NULL, created_at_ms BIGINT NOT NULL);
"""


async def test_an_older_database_gains_the_author_column(tmp_path: Path) -> None:
    """A database made before authorship (the schema main had) opens, keeps its log, and
    records authors from then on."""
    path = tmp_path / "old.db"
    doc: Doc[Any] = Doc()
    first = typed(doc, "old")
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute("INSERT INTO collab_documents VALUES (1, 'd', 1, 1)")
        conn.execute("INSERT INTO collab_updates VALUES (1, 1, ?, 1)", (first,))
    conn.close()
    store = await open_store(f"sqlite+aiosqlite:///{path}")
    try:
        await store.append([PendingUpdate("d", typed(doc, " new"), 2, "alice")])
        assert await authors_of_rows(store, "d") == [None, "alice"]
        assert (await store.load("d")).updates[0] == first
        await store.add_version("d", doc.get_update(), doc.get_state(), "named", None, [], 3)
        assert await store.count_versions("d") == 1
    finally:
        await store.close()
    reopened = await open_store(f"sqlite+aiosqlite:///{path}")  # (a second open: no-op)
    await reopened.close()


async def test_an_older_postgresql_database_gains_the_author_column(pg_database: str) -> None:
    store = await open_store(pg_database)
    try:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE collab_updates DROP COLUMN author")
    finally:
        await store.close()
    store = await open_store(pg_database)
    try:
        doc: Doc[Any] = Doc()
        await store.append([PendingUpdate("d", typed(doc, "x"), 2, "bob")])
        assert await authors_of_rows(store, "d") == ["bob"]
    finally:
        await store.close()


async def test_add_version_if_changed_stores_a_state_once(store: SqlStore) -> None:
    doc: Doc[Any] = Doc(client_id=1)
    typed(doc, "abc")
    first = await store.add_version_if_changed(
        "d", doc.get_update(), doc.get_state(), "auto", None, ["alice"], 1
    )
    assert first is not None
    # The same state again (another process saw the same editing): its authors join.
    same = await store.add_version_if_changed(
        "d", doc.get_update(), doc.get_state(), "auto", None, ["bob"], 2
    )
    assert same is None
    [listed] = await store.list_versions("d")
    assert listed.id == first.id and listed.authors == ("alice", "bob")
    # A deletion keeps the state vector but changes the state.
    del doc.get("t", type=Text)[0:1]
    deleted = await store.add_version_if_changed(
        "d", doc.get_update(), doc.get_state(), "auto", None, [], 3
    )
    assert deleted is not None
    typed(doc, "d")
    added = await store.add_version_if_changed(
        "d", doc.get_update(), doc.get_state(), "auto", None, [], 4
    )
    assert added is not None
    assert await store.count_versions("d") == 3
