"""DocumentService over a store alone (what the CLI uses, no server running), on a real SQLite
file: list with a scope and a prefix, read (whole, or a diff against a state vector), apply an
update validated as a client's, delete, compact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from collab import Access, DocumentNotFound, DocumentService, DocumentView
from collab.errors import ProtocolError
from storage import SqlStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def documents(tmp_path: Path) -> AsyncIterator[DocumentService]:
    store = SqlStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    await store.open()
    try:
        yield DocumentService(store)
    finally:
        await store.close()


def edit(doc: Doc[Any], value: str) -> bytes:
    before = doc.get_state()
    t = doc.get("t", type=Text)
    t.insert(len(t), value)
    update: bytes = doc.get_update(before)
    return update


async def test_apply_then_read_whole_and_as_a_diff(documents: DocumentService) -> None:
    client: Doc[Any] = Doc()
    first = edit(client, "one ")
    await documents.apply_update("team/a", first)
    await documents.apply_update("team/a", edit(client, "two"))
    whole = await documents.read("team/a")
    assert DocumentView.of_update("team/a", whole).text("t") == "one two"
    behind: Doc[Any] = Doc()  # a peer that has seen the first edit only
    behind.apply_update(first)
    diff = await documents.read("team/a", behind.get_state())
    assert b"two" in diff and b"one" not in diff  # only what the peer lacks
    behind.apply_update(diff)
    assert str(behind.get("t", type=Text)) == "one two"
    caught_up: Doc[Any] = Doc()
    caught_up.apply_update(await documents.read("team/a", b"\x00"))
    assert str(caught_up.get("t", type=Text)) == "one two"
    assert await documents.read("team/a", client.get_state()) == b"\x00\x00"


async def test_a_bad_update_or_state_vector_is_refused(documents: DocumentService) -> None:
    with pytest.raises(ProtocolError):
        await documents.apply_update("x", b"\xff\xfe\x00\x01")
    assert await documents.list_documents() == []
    await documents.apply_update("x", edit(Doc(), "ok"))
    with pytest.raises(ProtocolError):
        await documents.read("x", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")


async def test_list_filters_by_scope_and_prefix(documents: DocumentService) -> None:
    for name in ("team/a", "team/b", "hr/secret", "notes"):
        await documents.apply_update(name, edit(Doc(), name))
    names = lambda docs: sorted(d.name for d in docs)  # noqa: E731
    assert names(await documents.list_documents()) == ["hr/secret", "notes", "team/a", "team/b"]
    assert names(await documents.list_documents(prefix="team/")) == ["team/a", "team/b"]
    assert names(await documents.list_documents(Access("team/*"))) == ["team/a", "team/b"]
    assert names(await documents.list_documents(Access("notes"), prefix="team/")) == []
    [info] = await documents.list_documents(Access("notes"))
    assert info == await documents.info("notes")
    assert info.online == 0 and info.size_bytes > 0 and info.updated_at_ms >= info.created_at_ms


async def test_a_missing_document_is_not_found(documents: DocumentService) -> None:
    with pytest.raises(DocumentNotFound, match="no document named 'nope'") as missing:
        await documents.read("nope")
    assert missing.value.code == 4404
    with pytest.raises(DocumentNotFound):
        await documents.info("nope")


async def test_delete_removes_it_from_the_store(documents: DocumentService) -> None:
    await documents.apply_update("doomed", edit(Doc(), "bye"))
    await documents.apply_update("kept", edit(Doc(), "hi"))
    assert await documents.delete("doomed") is True
    assert await documents.delete("doomed") is False
    with pytest.raises(DocumentNotFound):
        await documents.read("doomed")
    assert [d.name for d in await documents.list_documents()] == ["kept"]


async def test_compact_folds_the_log_and_keeps_the_content(documents: DocumentService) -> None:
    client: Doc[Any] = Doc()
    for part in ("a", "b", "c"):
        await documents.apply_update("doc", edit(client, part))
    before_map = client.get_state()
    client.get("m", type=Map)["k"] = "v"
    await documents.apply_update("doc", client.get_update(before_map))
    before = await documents.read("doc")
    result = await documents.compact("doc")
    assert result is not None and result.rows == 4
    assert await documents.compact("doc") is None
    expected = {"m": {"k": "v"}, "t": "abc"}
    assert DocumentView.of_update("doc", await documents.read("doc")).to_py() == expected
    assert DocumentView.of_update("doc", before).to_py() == expected
