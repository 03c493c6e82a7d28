"""collab/edits.py: texts set by a minimal diff (emoji and CJK included: yrs counts UTF-8 bytes,
callers characters), concurrent edits and other users' cursors surviving it, map keys, and
make_like (a restore as a new edit that every replica can apply)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Assoc, Doc, Map, StickyIndex, Text, XmlElement, XmlFragment, XmlText

from collab.content import content
from collab.edits import make_like, set_map, set_text, text_edits
from collab.errors import FieldTypeMismatch

ALPHABET = st.sampled_from([*list("ab \n"), "é", "中", "文", "😀", "🎉", "\u200d"])
TEXTS = st.lists(ALPHABET, max_size=40).map("".join)


def replica(doc: Doc[Any], client_id: int) -> Doc[Any]:
    copy: Doc[Any] = Doc(client_id=client_id)
    copy.apply_update(doc.get_update())
    return copy


def sync(a: Doc[Any], b: Doc[Any]) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


@given(TEXTS, TEXTS)
@settings(max_examples=300, deadline=None)
def test_text_edits_turn_old_into_new(old: str, new: str) -> None:
    result = old
    for start, stop, replacement in sorted(text_edits(old, new), reverse=True):
        result = result[:start] + replacement + result[stop:]
    assert result == new


@given(TEXTS, TEXTS)
@settings(max_examples=200, deadline=None)
def test_set_text_on_a_doc_with_emoji_and_cjk(old: str, new: str) -> None:
    doc: Doc[Any] = Doc()
    doc["t"] = Text(old)
    set_text(doc, "t", new)
    assert str(doc.get("t", type=Text)) == new
    # what a client receives reads the same
    assert str(replica(doc, 5).get("t", type=Text)) == new


def test_set_text_changes_only_what_changed() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    doc["t"] = Text("line one 😀\nline two 中文\nline three\n")
    before = doc.get_state()
    assert set_text(doc, "t", "line one 😀\nline 2 中文\nline three\n")
    change = doc.get_update(before)
    assert len(change) < 40  # a delete and "2", not the whole text again
    assert not set_text(doc, "t", "line one 😀\nline 2 中文\nline three\n")


def test_concurrent_edit_and_cursor_survive() -> None:
    api: Doc[Any] = Doc(client_id=1)
    api["t"] = Text("Hello world.\nSecond line 😀 here.\n")
    user = replica(api, 2)
    user_text = user.get("t", type=Text)
    # the user's cursor sits before "here" (a relative position, as y-codemirror keeps it)
    here = "Hello world.\nSecond line 😀 ".encode()
    cursor = StickyIndex.new(user_text, len(here), Assoc.AFTER)
    # concurrently: the user types at the start, the API rewrites the first line
    user_text.insert(0, ">> ")
    set_text(api, "t", "Hello, brave world.\nSecond line 😀 here.\n")
    sync(api, user)
    expected = ">> Hello, brave world.\nSecond line 😀 here.\n"
    assert str(api.get("t", type=Text)) == str(user_text) == expected
    at = cursor.get_index()
    assert user_text.to_py().encode()[at:].startswith(b"here.")


def test_set_text_on_another_kind_is_a_conflict() -> None:
    doc: Doc[Any] = Doc()
    doc["m"] = Map({"k": 1})
    with pytest.raises(FieldTypeMismatch):
        set_text(doc, "m", "x")
    assert set_text(doc, "new", "created")
    assert content(doc.get_update())["content"]["new"] == "created"


def test_set_map_sets_and_deletes_keys() -> None:
    doc: Doc[Any] = Doc()
    doc["m"] = Map({"keep": 1, "drop": "x", "same": [1, 2]})
    before = doc.get_state()
    assert set_map(doc, "m", {"drop": None, "new": {"a": [1, "b"]}, "same": [1, 2]})
    assert content(doc.get_update())["content"]["m"] == {
        "keep": 1,
        "new": {"a": [1, "b"]},
        "same": [1, 2],
    }
    assert b"same" not in doc.get_update(before)  # equal values are left alone
    doc["t"] = Text("x")
    with pytest.raises(FieldTypeMismatch):
        set_map(doc, "t", {"a": 1})


def every_kind(doc: Doc[Any]) -> None:
    doc["text"] = Text("The quick 😀 fox\njumps")
    doc["map"] = Map({"title": "Notes", "n": 1, "nested": Map({"a": 1})})
    doc["list"] = Array([1, "two", Map({"three": 3})])
    xml = doc.get("xml", type=XmlFragment)
    paragraph = xml.children.append(XmlElement("paragraph", {"id": "p1"}))
    text = paragraph.children.append(XmlText())
    text.insert(0, "plain bold")
    text.format(6, 10, {"bold": {}})


def vandalise(doc: Doc[Any]) -> None:
    text = doc.get("text", type=Text)
    text.insert(0, "SPAM ")
    del text[len(b"SPAM The quick ") : len("SPAM The quick 😀".encode())]
    doc.get("map", type=Map)["title"] = "defaced"
    doc.get("map", type=Map)["extra"] = True
    del doc.get("map", type=Map)["n"]
    doc.get("list", type=Array).append("junk")
    xml = doc.get("xml", type=XmlFragment)
    xml.children.append(XmlElement("h1", {}, [XmlText("junk")]))
    doc["added"] = Text("not there before")


def test_make_like_restores_every_kind_as_a_new_edit() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    every_kind(doc)
    old_state = doc.get_update()
    old = content(old_state, "delta")
    vandalise(doc)
    other = replica(doc, 3)  # a connected client, holding the vandalised state
    assert content(other.get_update())["content"] != old["content"]

    restorer = replica(doc, 9)
    before = restorer.get_state()
    assert make_like(restorer, old_state)
    update = restorer.get_update(before)
    other.apply_update(update)  # what a client receives: one normal update
    restored = content(other.get_update(), "delta")
    assert restored["content"]["text"] == old["content"]["text"]
    assert restored["content"]["map"] == old["content"]["map"]
    assert restored["content"]["list"] == old["content"]["list"]
    assert restored["content"]["xml"] == old["content"]["xml"]
    assert restored["content"]["added"] == []  # emptied: a root cannot be removed
    # nothing rewritten: the restore only added to the history
    assert not make_like(restorer, old_state)


def test_make_like_keeps_the_characters_that_stay() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    doc["t"] = Text("keep this line\n")
    old_state = doc.get_update()
    user = replica(doc, 2)
    cursor = StickyIndex.new(user.get("t", type=Text), len("keep "), Assoc.AFTER)
    doc.get("t", type=Text).insert(0, "junk ")
    sync(doc, user)
    make_like(doc, old_state)
    sync(doc, user)
    assert str(user.get("t", type=Text)) == "keep this line\n"
    assert cursor.get_index() == len("keep ")


def test_make_like_with_subdocuments_and_bytes() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    doc.get("a", type=Array).append(Doc(guid="child-1"))
    doc.get("m", type=Map)["sub"] = Doc(guid="child-2")
    doc.get("m", type=Map)["bin"] = b"\x01\x02"
    old_state = doc.get_update()
    doc.get("a", type=Array).append(1)
    doc.get("m", type=Map)["sub"] = 3
    del doc.get("m", type=Map)["bin"]
    assert make_like(doc, old_state)
    assert content(doc.get_update()) == content(old_state)
    assert content(old_state)["content"]["m"] == {"sub": {"guid": "child-2"}, "bin": [1, 2]}


@pytest.mark.parametrize("seed", range(30))
def test_make_like_on_random_documents(seed: int) -> None:
    """Three clients edit every kind of root at random; later, more edits; make_like brings
    back the earlier content exactly, and a replica that applies its update agrees."""
    import random

    from tests.unit.test_content import random_document

    rng = random.Random(seed)
    old_doc = random_document(rng)
    old_state = old_doc.get_update()
    later = random_document(rng, old_state, first_client=10)  # other clients' edits on top
    current: Doc[Any] = Doc(client_id=99)
    current.apply_update(later.get_update())
    replica_doc = replica(current, 98)
    before = current.get_state()
    make_like(current, old_state)
    expected = content(old_state)["content"]
    got = content(current.get_update())["content"]
    assert {k: v for k, v in got.items() if v not in ("", [], {})} == {
        k: v for k, v in expected.items() if v not in ("", [], {})
    }
    replica_doc.apply_update(current.get_update(before))
    assert content(replica_doc.get_update()) == content(current.get_update())
