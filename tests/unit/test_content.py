"""collab/content.py and collab/ystructs.py on what Yjs-from-Node does not cover
(tests/interop/test_content.py does the rest): subdocuments, binary values, XML nested in a
map, empty and emptied roots, and documents made of random edits, always JSON."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.content import content, text
from collab.errors import FieldNotFound, FieldTypeMismatch
from collab.ystructs import read_update, root_kinds


def test_values_yjs_has_no_json_for() -> None:
    doc: Doc[Any] = Doc()
    doc.get("m", type=Map)["sub"] = Doc(guid="child")
    doc.get("m", type=Map)["xml"] = XmlFragment(
        [XmlElement("p", {"b": "1", "a": "2"}, [XmlText("x")])]
    )
    doc.get("m", type=Map)["text"] = Text("nested")
    doc.get("a", type=Array).extend([b"\x01\x02", 1.5, 2.0, None, True, {"k": [1]}])
    read = content(doc.get_update())
    assert read == {
        "content": {
            "a": [[1, 2], 1.5, 2, None, True, {"k": [1]}],
            "m": {"sub": {"guid": "child"}, "xml": '<p a="2" b="1">x</p>', "text": "nested"},
        },
        "types": {"a": "array", "m": "map"},
    }
    json.dumps(read)


def test_text_errors() -> None:
    doc: Doc[Any] = Doc()
    doc["m"] = Map({"k": 1})
    doc["t"] = Text("x")
    update = doc.get_update()
    assert text(update, "t") == "x"
    with pytest.raises(FieldTypeMismatch):
        text(update, "m")
    with pytest.raises(FieldNotFound):
        text(update, "none")


def test_truncated_updates_are_a_value_error() -> None:
    doc: Doc[Any] = Doc()
    doc["t"] = Text("hello")
    update = doc.get_update()
    for cut in range(1, len(update) - 1):
        try:
            read_update(update[:cut])
        except ValueError:
            continue


def random_document(
    rng: random.Random, base: bytes | None = None, first_client: int = 1
) -> Doc[Any]:
    """A few clients editing texts, maps, arrays and XML at random (on top of `base`),
    merged."""
    docs = [Doc(client_id=first_client + i) for i in range(3)]
    for doc in docs:
        if base is not None:
            doc.apply_update(base)
    alphabet = "ab \n😀中é"
    for _ in range(60):
        doc = rng.choice(docs)
        root = rng.choice(["t", "m", "a", "x"])
        if root == "t":
            t = doc.get("t", type=Text)
            n = len(str(t))
            if n and rng.random() < 0.3:
                at = rng.randrange(n)
                prefix = len(str(t)[:at].encode())
                del t[prefix : prefix + len(str(t)[at].encode())]
            else:
                at = rng.randrange(n + 1)
                t.insert(len(str(t)[:at].encode()), rng.choice(alphabet))
        elif root == "m":
            m = doc.get("m", type=Map)
            key = rng.choice("kl")
            if key in m and rng.random() < 0.3:
                del m[key]
            else:
                m[key] = rng.choice([1, "s", [1, 2], {"x": None}])
        elif root == "a":
            a = doc.get("a", type=Array)
            if len(a) and rng.random() < 0.3:
                del a[rng.randrange(len(a))]
            else:
                a.insert(rng.randrange(len(a) + 1), rng.choice([1, "v", Map({"z": 1})]))
        else:
            x = doc.get("x", type=XmlFragment)
            x.children.append(XmlElement("p", {"n": "1"}, [XmlText(rng.choice(alphabet))]))
        other = rng.choice(docs)
        other.apply_update(doc.get_update(other.get_state()))
    merged: Doc[Any] = Doc()
    if base is not None:
        merged.apply_update(base)
    for doc in docs:
        merged.apply_update(doc.get_update())
    return merged


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_read_with_the_kinds_they_were_made_with(seed: int) -> None:
    doc = random_document(random.Random(seed))
    update = doc.get_update()
    read = content(update)
    json.dumps(read)
    made = {"t": "text", "m": "map", "a": "array", "x": "xml"}
    for root, kind in read["types"].items():
        assert kind == made[root] or read["content"][root] in ("", [], {})
    assert root_kinds(read_update(update)).keys() == read["types"].keys()
    if read["types"].get("t") == "text":
        assert read["content"]["t"] == str(doc.get("t", type=Text))
