"""DocumentService's content, edit and version methods over a store alone (what the CLI uses,
no server), on a real SQLite file: content and text with their errors, patch, pages of
documents and versions with their cursors, versions, a diff naming authors, restore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from collab import Access, DocumentService
from collab.documents import encode_cursor
from collab.errors import DocumentNotFound, FieldNotFound, FieldTypeMismatch, VersionNotFound
from storage import SqlStore
from tests.loopturns import BIG_ITEMS, big_document, loop_turns

pytestmark = pytest.mark.anyio


@pytest.fixture
async def documents(tmp_path: Path) -> AsyncIterator[DocumentService]:
    store = SqlStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    await store.open()
    try:
        yield DocumentService(store)
    finally:
        await store.close()


def edit_of(doc: Doc[Any], change: Any) -> bytes:
    before = doc.get_state()
    change(doc)
    return doc.get_update(before)


async def test_content_and_text(documents: DocumentService) -> None:
    doc: Doc[Any] = Doc()
    doc["codemirror"] = Text("hello 😀")
    doc["meta"] = Map({"title": "T", "n": 2})
    await documents.apply_update("team/a", doc.get_update())
    assert await documents.content("team/a") == {
        "content": {"codemirror": "hello 😀", "meta": {"title": "T", "n": 2}},
        "types": {"codemirror": "text", "meta": "map"},
    }
    delta = await documents.content("team/a", "delta")
    assert delta["content"]["codemirror"] == [{"insert": "hello 😀"}]
    assert await documents.text("team/a", "codemirror") == "hello 😀"
    with pytest.raises(FieldNotFound):
        await documents.text("team/a", "nope")
    with pytest.raises(FieldTypeMismatch):
        await documents.text("team/a", "meta")
    with pytest.raises(DocumentNotFound):
        await documents.content("team/none")


async def test_reading_a_big_documents_content_lets_the_rest_of_the_process_run(
    documents: DocumentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content, text and comments (GET .../content, .../text/{field}, .../comments) tell the
    roots' kinds apart (the comments' anchors read every struct again): pure Python over every
    struct, ~100 ms for 20,000 items. Read a step at a time on the event loop, the process's
    other tasks run in between; in a worker thread they waited for the GIL
    (tests/loopturns.py)."""
    await documents.apply_update("big", big_document())
    content, text, comments = (
        lambda: documents.content("big"),
        lambda: documents.text("big", "text"),
        lambda: documents.comments("big"),
    )
    for read in (content, text, comments):
        async with loop_turns(monkeypatch) as record:
            with record.read():
                found = await read()
        if read is content:
            assert found["content"]["text"] == "xy" * BIG_ITEMS
        elif read is text:
            assert found == "xy" * BIG_ITEMS
        else:
            assert [(c.id, c.start, c.end, c.quote) for c in found] == [("c1", 0, 2, "xy")]
        record.check()


async def test_patch_creates_then_edits_by_diff(documents: DocumentService) -> None:
    read = await documents.patch("p", text={"codemirror": "line one\nline two\n"})
    assert read["content"] == {"codemirror": "line one\nline two\n"}
    # a user's concurrent edit already stored, made on the same base
    user: Doc[Any] = Doc(client_id=42)
    user.apply_update(await documents.read("p"))
    await documents.apply_update(
        "p",
        edit_of(user, lambda d: d.get("codemirror", type=Text).insert(0, "# ")),
        author="alice",
    )
    read = await documents.patch(
        "p", text={"codemirror": "# line one\nline 2\n"}, map={"meta": {"k": [1, "x"]}}
    )
    assert read["content"] == {"codemirror": "# line one\nline 2\n", "meta": {"k": [1, "x"]}}
    assert read["types"] == {"codemirror": "text", "meta": "map"}
    with pytest.raises(FieldTypeMismatch):
        await documents.patch("p", text={"meta": "x"})
    assert (await documents.content("p"))["content"]["meta"] == {"k": [1, "x"]}  # unchanged


async def test_list_page_walks_every_document_once(documents: DocumentService) -> None:
    names = [f"team/{i:02}" for i in range(7)] + ["other/x", "team/é"]
    for name in names:
        await documents.patch(name, text={"t": name})
    seen: list[str] = []
    cursor = None
    access = Access("team/*")
    while True:
        page, cursor = await documents.list_page(access, "", 3, cursor)
        assert len(page) <= 3
        seen += [d.name for d in page]
        if cursor is None:
            break
    assert seen == sorted(n for n in names if n.startswith("team/"))
    page, cursor = await documents.list_page(prefix="team/0", limit=100)
    assert len(page) == 7 and cursor is None
    assert page[0].versions == 0
    with pytest.raises(ValueError):
        await documents.list_page(cursor="!!not a cursor")


@pytest.mark.parametrize("last_id", ["9" * 19, "\u0661\u0662", "-1", "1e3"])
async def test_a_version_cursor_that_is_no_stored_id_is_refused(
    documents: DocumentService, last_id: str
) -> None:
    """Ids are 63-bit: a cursor naming a bigger number (or no ASCII number) is a bad cursor, not
    a database overflow."""
    await documents.patch("c", text={"t": "x"})
    with pytest.raises(ValueError):
        await documents.versions("c", cursor=encode_cursor(last_id))


async def test_versions_create_list_read(documents: DocumentService) -> None:
    with pytest.raises(DocumentNotFound):
        await documents.create_version("v", "x")
    await documents.patch("v", text={"t": "one"}, author="alice")
    first = await documents.create_version("v", "first")
    assert (first.kind, first.label, first.authors) == ("named", "first", ("alice",))
    await documents.patch("v", text={"t": "one two"}, author="bob")
    second = await documents.create_version("v")
    assert second.authors == ("bob",) and second.label is None
    for i in range(3):
        await documents.patch("v", text={"t": f"v{i}"})
        await documents.create_version("v", f"n{i}")
    page, cursor = await documents.versions("v", limit=2)
    ids = [v.id for v in page]
    while cursor:
        page, cursor = await documents.versions("v", limit=2, cursor=cursor)
        ids += [v.id for v in page]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    assert (await documents.version("v", first.id)) == first
    assert (await documents.version_content("v", first.id))["content"] == {"t": "one"}
    update = await documents.version_update("v", second.id)
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    assert str(doc.get("t", type=Text)) == "one two"
    with pytest.raises(VersionNotFound):
        await documents.version("v", 10_000)
    with pytest.raises(VersionNotFound):
        await documents.version("other", first.id)
    with pytest.raises(ValueError):
        await documents.versions("v", cursor="bm90IGFuIGlk")  # "not an id"
    assert (await documents.list_page(prefix="v"))[0][0].versions == 5


async def test_diff_names_authors(documents: DocumentService) -> None:
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text("Hello world")
    await documents.apply_update("d", alice.get_update(), author="alice")
    v1 = await documents.create_version("d", "v1")
    bob: Doc[Any] = Doc(client_id=2)
    bob.apply_update(await documents.read("d"))
    await documents.apply_update(
        "d", edit_of(bob, lambda d: d.get("t", type=Text).insert(5, ", dear")), author="bob"
    )
    v2 = await documents.create_version("d", "v2")
    assert await documents.diff("d", v1.id, v2.id) == {
        "t": [
            {"type": "equal", "text": "Hello", "author": None},
            {"type": "insert", "text": ", dear", "author": "bob"},
            {"type": "equal", "text": " world", "author": None},
        ]
    }
    await documents.apply_update(
        "d", edit_of(bob, lambda d: d.get("t", type=Text).__delitem__(slice(0, 5))), author="bob"
    )
    now = await documents.diff("d", v2.id)  # to now
    # Yjs does not record who deleted, and no version since v2 names who was active
    assert now["t"][0] == {"type": "delete", "text": "Hello", "author": None}
    backwards = await documents.diff("d", v2.id, v1.id)
    assert {"type": "delete", "text": ", dear", "author": "bob"} in backwards["t"]


async def test_restore_is_a_new_edit_between_two_versions(documents: DocumentService) -> None:
    await documents.patch("r", text={"t": "good text"}, map={"m": {"k": 1}}, author="alice")
    good = await documents.create_version("r", "good")
    await documents.patch("r", text={"t": "vandalised"}, map={"m": {"k": 2, "x": 3}})
    done = await documents.restore("r", good.id, author="carol")
    before, after = done["before"], done["after"]
    assert (before.kind, before.label) == ("restore", f"Before restoring version {good.id}")
    assert (after.kind, after.label) == ("restore", f"Restored version {good.id}")
    assert good.id < before.id < after.id
    assert await documents.content("r") == await documents.version_content("r", good.id)
    assert (await documents.version_content("r", before.id))["content"]["t"] == "vandalised"
    assert "carol" in after.authors
    # undo the restore: back to what it replaced
    await documents.restore("r", before.id)
    assert (await documents.content("r"))["content"]["t"] == "vandalised"
    with pytest.raises(VersionNotFound):
        await documents.restore("r", 9999)


async def test_delete_takes_the_versions(documents: DocumentService) -> None:
    await documents.patch("gone", text={"t": "x"})
    version = await documents.create_version("gone", "v")
    assert await documents.delete("gone")
    with pytest.raises(VersionNotFound):
        await documents.version("gone", version.id)
    with pytest.raises(DocumentNotFound):
        await documents.versions("gone")


async def test_info_finds_a_name_that_prefixes_others(documents: DocumentService) -> None:
    await documents.patch("x/a", text={"t": "1"})
    with pytest.raises(DocumentNotFound):
        await documents.info("x")
    await documents.patch("x", text={"t": "2"})
    assert (await documents.info("x")).name == "x"
    assert (await documents.info("x/a")).name == "x/a"
    with pytest.raises(DocumentNotFound):
        await documents.info("x/")
