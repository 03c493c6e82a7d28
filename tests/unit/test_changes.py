"""collab/changes.py: what changed in each text between two states, with authors from the
inserted items' client ids, deletions attributed to the one active author (or nobody)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Assoc, Doc, Map, StickyIndex, Text

from collab.changes import EMBED_CHAR, diff
from collab.edits import set_text

CLIENTS = {1: "alice", 2: "bob"}


def replica(doc: Doc[Any], client_id: int) -> Doc[Any]:
    copy: Doc[Any] = Doc(client_id=client_id)
    copy.apply_update(doc.get_update())
    return copy


def sync(a: Doc[Any], b: Doc[Any]) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


def rebuild(segments: list[dict[str, Any]], side: str) -> str:
    skip = "insert" if side == "old" else "delete"
    return "".join(s["text"] for s in segments if s["type"] != skip)


def test_two_authors_inserts_and_a_deletion() -> None:
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text("Hello world 😀 中文\nline two\n")
    v1 = alice.get_update()
    bob = replica(alice, 2)
    bob.get("t", type=Text).insert(len(b"Hello "), "brave 🎉 ")
    set_text(alice, "t", "Bye world 😀 中文\nline two\n")
    sync(alice, bob)
    alice.get("t", type=Text).insert(len(alice.get("t", type=Text)), "more")
    v2 = alice.get_update()
    fields = diff(v1, v2, CLIENTS)
    assert set(fields) == {"t"}
    segments = fields["t"]
    inserts = [(s["text"], s["author"]) for s in segments if s["type"] == "insert"]
    assert ("brave 🎉 ", "bob") in inserts
    assert ("more", "alice") in inserts
    assert all(author == "alice" for text, author in inserts if text != "brave 🎉 ")
    deleted = [s for s in segments if s["type"] == "delete"]
    assert deleted and all(s["author"] is None for s in deleted)  # two were active: unknown
    assert rebuild(segments, "old") == "Hello world 😀 中文\nline two\n"
    assert rebuild(segments, "new") == str(alice.get("t", type=Text))


def test_a_deletion_by_the_only_active_author_names_them() -> None:
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text("keep drop keep")
    v1 = alice.get_update()
    bob = replica(alice, 2)
    del bob.get("t", type=Text)[4:9]
    v2 = bob.get_update()
    # a deletion makes no new item: only the history's authors can say who was active
    assert diff(v1, v2, CLIENTS)["t"][1] == {"type": "delete", "text": " drop", "author": None}
    segments = diff(v1, v2, CLIENTS, deleters=["bob"])["t"]
    assert segments == [
        {"type": "equal", "text": "keep", "author": None},
        {"type": "delete", "text": " drop", "author": "bob"},
        {"type": "equal", "text": " keep", "author": None},
    ]


def test_diff_to_an_earlier_state_reads_backwards() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    doc["t"] = Text("abc")
    v1 = doc.get_update()
    doc.get("t", type=Text).insert(3, "def")
    v2 = doc.get_update()
    assert diff(v2, v1, CLIENTS)["t"] == [
        {"type": "equal", "text": "abc", "author": None},
        {"type": "delete", "text": "def", "author": "alice"},
    ]
    assert diff(v1, v1, CLIENTS)["t"] == [{"type": "equal", "text": "abc", "author": None}]


def test_only_text_fields_and_new_ones() -> None:
    doc: Doc[Any] = Doc(client_id=1)
    doc["m"] = Map({"k": 1})
    v1 = doc.get_update()
    doc["t"] = Text("new field")
    doc.get("t", type=Text).insert_embed(3, {"image": "x.png"})
    v2 = doc.get_update()
    assert diff(v1, v2, CLIENTS) == {
        "t": [{"type": "insert", "text": f"new{EMBED_CHAR} field", "author": "alice"}]
    }


def test_unknown_clients_have_no_author() -> None:
    doc: Doc[Any] = Doc(client_id=77)
    doc["t"] = Text("x")
    assert diff(Doc().get_update(), doc.get_update(), CLIENTS)["t"] == [
        {"type": "insert", "text": "x", "author": None}
    ]


TEXT = st.lists(st.sampled_from(["a", "b", " ", "\n", "é", "中", "😀"]), max_size=30).map("".join)


@given(TEXT, TEXT, TEXT)
@settings(max_examples=150, deadline=None)
def test_segments_rebuild_both_sides(start: str, mine: str, theirs: str) -> None:
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text(start)
    v1 = alice.get_update()
    bob = replica(alice, 2)
    set_text(alice, "t", mine)
    set_text(bob, "t", theirs)
    sync(alice, bob)
    segments = diff(v1, alice.get_update(), CLIENTS).get("t", [])  # no items: no root
    assert rebuild(segments, "old") == start
    assert rebuild(segments, "new") == str(alice.get("t", type=Text))
    for s in segments:
        if s["type"] == "insert":
            assert s["author"] in ("alice", "bob")


ASCII = st.lists(st.sampled_from(["a", "b", "c", " ", "\n"]), max_size=12).map("".join)


@given(ASCII, ASCII, ASCII)
@settings(max_examples=200, deadline=None)
def test_authors_match_the_items_ids(start: str, mine: str, theirs: str) -> None:
    """Each character's author is the client that wrote its item (read here from yrs's sticky
    index, exact for ASCII text), even when both typed the same characters in one place."""
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text(start)
    v1 = alice.get_update()
    bob = replica(alice, 2)
    set_text(alice, "t", mine)
    set_text(bob, "t", theirs)
    sync(alice, bob)
    text = alice.get("t", type=Text)
    got: list[str | None] = []
    for s in diff(v1, alice.get_update(), CLIENTS).get("t", []):
        if s["type"] != "delete":
            got += [s["author"] if s["type"] == "insert" else "old"] * len(s["text"])
    truth = []
    for at in range(len(text)):
        item = StickyIndex.new(text, at, Assoc.AFTER).to_json()["item"]
        old = item["client"] == 1 and item["clock"] < len(start)
        truth.append("old" if old else CLIENTS[item["client"]])
    assert got == truth


ALICE = st.lists(st.sampled_from(["a", "é", "😀", "\n"]), max_size=12).map("".join)
BOB = st.lists(st.sampled_from(["B", "中", "🎉", " "]), max_size=12).map("".join)


@given(ALICE, ALICE, BOB)
@settings(max_examples=200, deadline=None)
def test_authors_with_emoji_and_cjk(start: str, mine: str, theirs: str) -> None:
    """Each author types characters only they use: every inserted character must come out
    with its writer's name (UTF-16 surrogate pairs and multi-byte UTF-8 included)."""
    alice: Doc[Any] = Doc(client_id=1)
    alice["t"] = Text(start)
    v1 = alice.get_update()
    bob = replica(alice, 2)
    set_text(alice, "t", mine)
    set_text(bob, "t", start + theirs)
    sync(alice, bob)
    for s in diff(v1, alice.get_update(), CLIENTS).get("t", []):
        if s["type"] == "insert":
            alphabet = "aé😀\n" if s["author"] == "alice" else "B中🎉 "
            assert all(ch in alphabet for ch in s["text"]), s
