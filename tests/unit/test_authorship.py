"""collab/authorship.py: a connection's author from its context, and the client ids a Yjs
update carries, for every kind of content (single-client updates are read from the header;
several clients make it walk the structs of all but the last)."""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText, merge_updates

from collab.authorship import author_of, update_clients
from collab.validate import validate_update
from storage.history import decode_state_vector


def test_author_of_a_context() -> None:
    assert author_of({"user": {"id": "u1", "name": "Ann"}, "user_id": "other"}) == "u1"
    assert author_of({"user": {"id": 7}}) == "7"
    assert author_of({"user": {"name": "no id"}, "user_id": "u2"}) == "u2"
    assert author_of({"user": "not a mapping"}) is None
    assert author_of({"user_id": ""}) is None
    assert author_of({}) is None


def everything(client_id: int) -> Doc[Any]:
    """A document with every kind of content yrs writes."""
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("t", type=Text)
    text.insert(0, "hello 🎉 wörld", attrs={"bold": True})
    text.insert_embed(3, {"img": "x"})
    m = doc.get("m", type=Map)
    m["any"] = {"x": [1, 2.5, None, True, False, "s", {"q": b"\x00\x01"}], "big": 2**40}
    m["bytes"] = b"bytes"
    m["text"] = Text("sub")
    m["negative"] = -5
    m["subdoc"] = Doc()
    a = doc.get("a", type=Array)
    a.extend([1, "two", [3]])
    a.append(Map({"k": "v"}))
    xml = doc.get("x", type=XmlFragment)
    xml.children.append(XmlElement("p", {"class": "c"}, [XmlText("hi")]))
    del text[0:2]
    del m["negative"]
    return doc


def edited_by(base: bytes, client_id: int, root: str) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    doc.apply_update(base)
    before = doc.get_state()
    if root == "t":
        doc.get("t", type=Text).insert(0, "X")
    else:
        doc.get("a", type=Array).append("y")
    update: bytes = doc.get_update(before)
    return update


def test_client_ids_of_updates() -> None:
    big = 2**50  # clients are written by descending id: the big one's structs get walked
    base = everything(big).get_update()
    one = edited_by(base, 77, "a")
    two = edited_by(base, 3, "t")
    for update, clients in (
        (base, [big]),
        (one, [77]),
        (merge_updates(base, one, two), [big, 77, 3]),
        (merge_updates(one, two), [77, 3]),
    ):
        validate_update(update)
        assert update_clients(update) == clients
    assert update_clients(b"\x00\x00") == []


def test_decode_state_vector() -> None:
    doc = everything(2**50)
    doc.get("t", type=Text).insert(0, "")
    other: Doc[Any] = Doc(client_id=5)
    other.apply_update(doc.get_update())
    other.get("t", type=Text).insert(0, "abc")
    vector = decode_state_vector(other.get_state())
    assert set(vector) == {2**50, 5} and vector[5] == 3
    assert decode_state_vector(b"\x00") == {}
