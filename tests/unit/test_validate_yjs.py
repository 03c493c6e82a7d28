"""The validator's refusals for the sake of Yjs peers, checked against Yjs itself.

The server forwards every update as received, and most peers are JavaScript Yjs. These inputs
pycrdt applies, but a stock Yjs (tests/interop/node_modules: yjs 13.6, lib0 0.2) throws on them,
so the validator refuses them (see collab/validate.py). Each refusal is checked here three ways:
the validator refuses it, pycrdt applies it, and `Y.applyUpdate` in Node really throws (on a fresh
document, or in the setting given with it: what the document held before, what arrives after);
around them, the inputs just inside each limit, and updates Yjs itself writes, are accepted.
Some kinds are refused although Yjs reads them, each in a test of its own: integers beyond 2^53
that lib0 rounds instead of throwing, an XmlHook as Yjs writes it (yrs reads it otherwise), clocks
of 2^32 and more and delete sets out of order (Yjs and yrs take them for different items).
tests/unit/test_validate_differential.py runs the same comparison on mutated real updates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Text, XmlFragment

from collab.validate import (
    CLOCK_OVERFLOW,
    INVALID_JSON,
    LEGACY_JSON,
    MAX_CLOCK,
    YJS_DELETE_ORDER,
    YJS_SELF_REFERENCE,
    YJS_TOO_LONG,
    YJS_UNREADABLE,
    YJS_UNSAFE_INTEGER,
    YJS_ZERO_LENGTH,
    validate_update,
)
from tests.conftest import require

from .test_validate import any_item, one_client, pycrdt_accepts, refusal, root_item, vs, vu

NODE_MODULES = Path(__file__).resolve().parents[1] / "interop" / "node_modules"
NODE_TIMEOUT_S = 60  # one `node` start and a few hundred decodes: well under a second here


def vi(n: int) -> bytes:
    """lib0's writeVarInt: sign and 6 bits in the first byte, then 7 bits a byte."""
    magnitude = abs(n)
    out = bytearray([(0x80 if magnitude > 0x3F else 0) | (0x40 if n < 0 else 0) | magnitude & 0x3F])
    magnitude >>= 6
    while magnitude:
        out.append((0x80 if magnitude > 0x7F else 0) | magnitude & 0x7F)
        magnitude >>= 7
    return bytes(out)


def padded(n: int, size: int) -> bytes:
    """A varuint of `n` written in `size` bytes (lib0 and yrs read such padding as zeros)."""
    return padded_raw(vu(n), size)


def padded_raw(raw: bytes, size: int) -> bytes:
    """The varint `raw` made `size` bytes long, its value unchanged."""
    if size == len(raw):
        return raw
    return bytes(b | 0x80 for b in raw) + b"\x80" * (size - len(raw) - 1) + b"\x00"


def yjs(script: str, payload: Any) -> Any:
    """Run `script` in Node (yjs importable) with `payload` in JSON on stdin: its last line."""
    node = shutil.which("node")
    require(node is not None, "`node` is not on PATH (install Node.js >= 18)")
    require(
        (NODE_MODULES / "yjs" / "package.json").is_file(),
        f"yjs missing in {NODE_MODULES}: run `make interop-deps`",
    )
    assert node is not None
    done = subprocess.run(
        [node, "-e", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES), "NODE_NO_WARNINGS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# For each list of hex updates: null if a fresh Y.Doc applies them one after the other and can
# then be encoded and read again (what a peer's next sync needs), else the message of what Yjs
# threw. Each update gets a buffer of its own: lib0 reads past an update's end into whatever
# shares its ArrayBuffer (Buffer.from may hand out a slice of a pool).
YJS_VERDICTS = """
const Y = require('yjs')
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'))
console.log(JSON.stringify(cases.map(updates => {
  const doc = new Y.Doc()
  try {
    for (const hex of updates) Y.applyUpdate(doc, new Uint8Array(Buffer.from(hex, 'hex')))
    Y.applyUpdate(new Y.Doc(), Y.encodeStateAsUpdate(doc))
    return null
  } catch (e) {
    return `${e.name}: ${e.message}`
  }
})))
"""


def yjs_errors_in_sequence(cases: list[list[bytes]]) -> list[str | None]:
    verdicts: list[str | None] = yjs(YJS_VERDICTS, [[u.hex() for u in case] for case in cases])
    return verdicts


def yjs_errors(updates: list[bytes]) -> list[str | None]:
    return yjs_errors_in_sequence([[u] for u in updates])


X = root_item(4, vs("x"))  # a one-character string at the root "t"
X1 = one_client(X)  # "x" at clock 0 of client 1
EMPTY_ENTRY = b"\x28\x01" + vs("m") + vs("k") + b"\x00"  # map "m", key "k": no value at all


def after_x(content: bytes, ref: int = 4) -> bytes:
    """An item of client 1 at clock 1, placed right after X1's "x"."""
    return one_client(bytes([0x80 | ref]) + b"\x01\x00" + content, clock=1)


BIG = 2**56 + 2**53  # 9 bytes, of which the first 8 already exceed 2^53 - 1
WRAPS = 2**32 + 1  # yrs reads 1

# name: (update pycrdt applies, the validator's reason). Yjs throws on every one of them.
REFUSED_FOR_YJS = {
    # lib0's readVarUint / readVarInt: "Integer out of Range", in every field
    "client id past 2^64": (one_client(X, client=2**70 - 1), YJS_UNSAFE_INTEGER),
    "client id": (one_client(X, client=BIG), YJS_UNSAFE_INTEGER),
    "first clock": (one_client(X, clock=BIG), YJS_UNSAFE_INTEGER),
    "GC length": (one_client(b"\x00" + vu(BIG)), YJS_UNSAFE_INTEGER),
    "Skip length": (one_client(b"\x0a" + vu(BIG)), YJS_UNSAFE_INTEGER),
    "Deleted length": (one_client(root_item(1, vu(BIG))), YJS_UNSAFE_INTEGER),
    "origin client": (one_client(b"\x84" + vu(BIG) + b"\x00" + vs("x")), YJS_UNSAFE_INTEGER),
    "origin clock": (one_client(b"\x84\x01" + vu(BIG) + vs("x")), YJS_UNSAFE_INTEGER),
    "right origin": (one_client(b"\x44" + vu(BIG) + b"\x00" + vs("x")), YJS_UNSAFE_INTEGER),
    "parent id": (one_client(b"\x04\x00" + vu(BIG) + b"\x00" + vs("x")), YJS_UNSAFE_INTEGER),
    "parent info": (one_client(b"\x04" + vu(BIG + 1) + vs("t") + vs("x")), YJS_TOO_LONG),
    "delete set client": (b"\x00\x01" + vu(BIG) + b"\x01\x00\x01", YJS_UNSAFE_INTEGER),
    "delete set clock": (b"\x00\x01\x01\x01" + vu(BIG) + b"\x01", YJS_UNSAFE_INTEGER),
    "delete set length": (b"\x00\x01\x01\x01\x00" + vu(BIG), YJS_UNSAFE_INTEGER),
    "Any integer": (one_client(any_item(b"\x7d" + vi(-(2**60 + 2**53)))), YJS_UNSAFE_INTEGER),
    "Any integer of 11 bytes": (
        one_client(any_item(b"\x7d" + b"\xff" * 10 + b"\x01")),
        YJS_UNSAFE_INTEGER,
    ),
    # lib0 reads this one without throwing, rounded: the range is then 0 long and Yjs throws on it
    "delete set clock lib0 rounds": (b"\x00\x01\x01\x01" + vu(2**60) + b"\x01", YJS_UNSAFE_INTEGER),
    # yrs wraps these to 32 bits; Yjs reads past the end of the update, or allocates
    "client count": (vu(WRAPS) + vu(1) + vu(1) + vu(0) + X + b"\x00", YJS_TOO_LONG),
    "struct count": (vu(1) + vu(WRAPS) + vu(1) + vu(0) + X + b"\x00", YJS_TOO_LONG),
    "string length": (one_client(root_item(4, vu(WRAPS) + b"a")), YJS_TOO_LONG),
    "root name length": (one_client(b"\x04\x01" + vu(WRAPS) + b"t" + vs("x")), YJS_TOO_LONG),
    "map key length": (
        one_client(b"\x28\x01" + vs("m") + vu(WRAPS) + b"k" + b"\x01\x7e"),
        YJS_TOO_LONG,
    ),
    "binary length": (one_client(root_item(3, vu(WRAPS) + b"a")), YJS_TOO_LONG),
    "embed length": (one_client(root_item(5, vu(WRAPS) + b"1")), YJS_TOO_LONG),
    "xml element name length": (one_client(root_item(7, b"\x03" + vu(WRAPS) + b"p")), YJS_TOO_LONG),
    "subdocument guid length": (
        one_client(root_item(9, vu(WRAPS) + b"g" + b"\x76\x00")),
        YJS_TOO_LONG,
    ),
    "json count": (one_client(root_item(2, vu(2**32) + vs("1"))), LEGACY_JSON),
    "Any count": (one_client(root_item(8, vu(WRAPS) + b"\x7e")), YJS_TOO_LONG),
    "Any array count (u64 in yrs)": (
        one_client(any_item(b"\x75" + vu(2**64 + 1) + b"\x7e")),
        YJS_TOO_LONG,
    ),
    "Any string length": (one_client(any_item(b"\x77" + vu(WRAPS) + b"a")), YJS_TOO_LONG),
    "Any bytes length": (one_client(any_item(b"\x74" + vu(WRAPS) + b"a")), YJS_TOO_LONG),
    "delete set client count": (b"\x00" + vu(WRAPS) + b"\x01\x01\x00\x01", YJS_TOO_LONG),
    "delete set range count": (b"\x00\x01\x01" + vu(WRAPS) + b"\x00\x01", YJS_TOO_LONG),
    # 1 to yrs (a root's name follows), an ID to Yjs: they read the rest differently
    "parent info 2^32 + 1": (
        one_client(b"\x04" + vu(WRAPS) + vs("t") + vs("x"), X),
        YJS_TOO_LONG,
    ),
    # what Yjs has no reader for
    "info bit 0x10": (one_client(root_item(0x14, vs("x"))), YJS_UNREADABLE),
    "type ref 9": (one_client(root_item(7, b"\x09")), YJS_UNREADABLE),
    "type ref 15": (one_client(root_item(7, b"\x0f")), YJS_UNREADABLE),
    "xml hook as yrs writes it": (one_client(root_item(7, b"\x05")), YJS_UNREADABLE),
    "xml hook as yrs writes it, then more": (one_client(root_item(7, b"\x05"), X), YJS_UNREADABLE),
    "subdocument options null": (one_client(root_item(9, vs("g") + b"\x7e")), YJS_UNREADABLE),
    "subdocument options undefined": (one_client(root_item(9, vs("g") + b"\x7f")), YJS_UNREADABLE),
    # Yjs throws on these as it integrates them (or encodes what it keeps aside)
    "zero-length deleted range": (b"\x00\x01\x01\x01\x00\x00", YJS_ZERO_LENGTH),
    "zero-length Deleted item": (one_client(root_item(1, b"\x00")), YJS_ZERO_LENGTH),
    "zero-length Any map entries": (one_client(EMPTY_ENTRY, EMPTY_ENTRY), YJS_ZERO_LENGTH),
    "origin at the item itself": (one_client(X, b"\x84\x01\x01" + vs("y")), YJS_SELF_REFERENCE),
    "origin at a later clock": (one_client(X, b"\x84\x01\x05" + vs("y")), YJS_SELF_REFERENCE),
    "origin of a first item": (one_client(b"\x84\x01\x00" + vs("y")), YJS_SELF_REFERENCE),
    "origin with its client padded": (
        one_client(X, b"\x84\x81\x00\x01" + vs("y")),
        YJS_SELF_REFERENCE,
    ),
    "origin after a string of 2 UTF-16 units": (
        one_client(root_item(4, vs("👍")), b"\x84\x01\x02" + vs("y")),
        YJS_SELF_REFERENCE,
    ),
    "right origin at the item itself": (
        one_client(X, b"\x44\x01\x01" + vs("y")),
        YJS_SELF_REFERENCE,
    ),
    "parent at the item itself": (
        one_client(root_item(7, b"\x00"), b"\x04\x00\x01\x01" + vs("y")),
        YJS_SELF_REFERENCE,
    ),
    # yrs reads count + 1 strings, Yjs count: here Yjs reads "{nope" as the delete set
    "legacy JSON as yrs reads it": (one_client(root_item(2, vu(0) + vs("{nope"))), LEGACY_JSON),
}

# name: (what the document holds before, the update pycrdt applies, what arrives after, reason):
# a fresh Y.Doc applies these updates, but Yjs throws in this setting, at the update or later.
REFUSED_FOR_YJS_IN_A_SETTING = {
    # an empty string after "x": Yjs cannot encode the document any more...
    "empty string": ([X1], after_x(vs("")), [], YJS_ZERO_LENGTH),
    # ...nor apply the next keystroke placed after "x"
    "empty string, then a keystroke": ([X1], after_x(vs("")), [after_x(vs("y"))], YJS_ZERO_LENGTH),
    "empty Any, then a keystroke": ([X1], after_x(b"\x00", 8), [after_x(vs("y"))], YJS_ZERO_LENGTH),
    # waits for clocks 0-4 (a fresh Y.Doc keeps it pending), then throws when they arrive
    "origin at the item itself, pending": (
        [],
        one_client(b"\x84\x01\x05" + vs("y"), clock=5),
        [one_client(*[X] * 5)],
        YJS_SELF_REFERENCE,
    ),
}

# Just inside each limit: accepted by the validator, applied by pycrdt and by Yjs.
ACCEPTED_AT_THE_LIMITS = {
    "client id 2^53 - 1": one_client(X, client=2**53 - 1),
    "client id 2^53 - 1 in 11 bytes": vu(1) + vu(1) + padded(2**53 - 1, 11) + b"\x00" + X + b"\x00",
    "struct count 1 in 11 bytes": vu(1) + padded(1, 11) + b"\x01\x00" + X + b"\x00",
    "string length 1 in 11 bytes": one_client(root_item(4, padded(1, 11) + b"x")),
    "Any integer 2^53 - 1": one_client(any_item(b"\x7d" + vi(2**53 - 1))),
    "Any integer -(2^53 - 1)": one_client(any_item(b"\x7d" + vi(-(2**53 - 1)))),
    "Any integer 1 in 11 bytes": one_client(any_item(b"\x7d" + padded(1, 11))),
    "parent info 1 in 11 bytes": one_client(b"\x04" + padded(1, 11) + vs("t") + vs("x")),
    "parent info 2^32 - 1 (an ID to both)": one_client(
        root_item(7, b"\x00"), b"\x04" + vu(2**32 - 1) + b"\x01\x00" + vs("y")
    ),
    "last clock": one_client(X, clock=MAX_CLOCK - 1),
    "deleted range ending at the last clock": b"\x00\x01\x01\x01" + vu(MAX_CLOCK - 1) + b"\x01",
    "adjacent deleted ranges": b"\x00\x01\x01\x02\x00\x01\x01\x01",
    "deleted ranges of two clients": b"\x00\x02\x02\x01\x00\x01\x01\x01\x00\x01",
    "origin at the previous clock": one_client(X, b"\x84\x01\x00" + vs("y")),
    "origin with its client padded": one_client(X, b"\x84\x81\x00\x00" + vs("y")),
    "origin inside a string of 2 UTF-16 units": one_client(
        root_item(4, vs("👍")), b"\x84\x01\x01" + vs("y")
    ),
    "right origin at an earlier clock": one_client(X, b"\x44\x01\x00" + vs("y")),
    "parent at an earlier clock": one_client(root_item(7, b"\x00"), b"\x04\x00\x01\x00" + vs("y")),
    "empty Skip": one_client(b"\x0a\x00", X),
    "xml text type": one_client(root_item(7, b"\x06")),
    "xml element": one_client(root_item(7, b"\x03" + vs("p"))),
    "subdocument options {}": one_client(root_item(9, vs("g") + b"\x76\x00")),
    "subdocument options 5": one_client(root_item(9, vs("g") + b"\x7d\x05")),
}


# Beyond 2^53 - 1 but with the bytes before the last below it: lib0 returns these (rounded, in
# general) without throwing. Refused all the same: Yjs cannot hold them (the rounded delete-set
# clock above shows where that leads) and yrs reads them otherwise (ids kept to 53 bits).
REFUSED_THOUGH_LIB0_READS_THEM = {
    "client id 2^60": one_client(X, client=2**60),
    "client id 2^60 + 1": one_client(X, client=2**60 + 1),
    "Any integer -2^60": one_client(any_item(b"\x7d" + vi(-(2**60)))),
}


@pytest.mark.parametrize("name", REFUSED_FOR_YJS_IN_A_SETTING)
def test_refused_for_what_yjs_does_with_it_later(name):
    before, update, after, reason = REFUSED_FOR_YJS_IN_A_SETTING[name]
    assert refusal(update) == reason
    assert pycrdt_accepts(update)
    fresh, setting, without = yjs_errors_in_sequence(
        [[update], [*before, update, *after], before + after]
    )
    assert fresh is None  # a fresh Y.Doc applies it...
    assert setting is not None  # ...but not in this setting
    assert without is None  # which itself is fine


def test_empty_items_also_break_yrs():
    """An empty item at a client's next clock: yrs panics (yrs drops empty items it decodes,
    but not this one)."""
    doc = Doc()
    doc.apply_update(one_client(root_item(1, vu(5))))
    empty = one_client(root_item(4, vs("")), clock=5)
    assert not pycrdt_accepts(empty, doc)
    assert refusal(empty) == YJS_ZERO_LENGTH


# What Yjs and yrs both read one way, or both refuse: JSON text, as Embed and as Format values.
JSON_ACCEPTED = [
    "true",
    "null",
    '"#f00"',
    '{"href":"https://example.com/a?b=c"}',
    '"a\\"b"',
    '"\\ud83d\\ude00"',  # a surrogate pair
    "-1e-400",  # 0
    "123456789012345678901234567890",
    " 1 ",
    '{"a":1,"a":2}',
    '"\x7f"',
    '"é漢👍🏽"',
    "[" * 127 + "]" * 127,
]
JSON_REFUSED_BY_BOTH = [
    "",
    "{nope",
    "undefined",
    "NaN",
    "Infinity",
    "tru",
    "1 2",
    '"\x01"',
    "\ufeff1",
]
# JSON.parse reads these, serde_json (yrs) does not: pycrdt refuses the update anyway.
JSON_REFUSED_BY_YRS = ['"\\ud800"', "1e400", "1" + "0" * 400, "[" * 128 + "]" * 128]


def json_items(text: str) -> list[bytes]:
    return [one_client(root_item(5, vs(text))), one_client(root_item(6, vs("k") + vs(text)))]


def test_json_is_refused_unless_yjs_and_yrs_both_read_it():
    accepted = [u for text in JSON_ACCEPTED for u in json_items(text)]
    for update in accepted:
        assert refusal(update) is None, update
        assert pycrdt_accepts(update), update
    refused_by_both = [u for text in JSON_REFUSED_BY_BOTH for u in json_items(text)]
    refused_by_yrs = [u for text in JSON_REFUSED_BY_YRS for u in json_items(text)]
    for update in refused_by_both + refused_by_yrs:
        assert refusal(update) == INVALID_JSON, update
        assert not pycrdt_accepts(update), update
    errors = yjs_errors(accepted + refused_by_both + refused_by_yrs)
    assert errors[: len(accepted)] == [None] * len(accepted)
    thrown = errors[len(accepted) : len(accepted) + len(refused_by_both)]
    assert all(e is not None and e.startswith("SyntaxError") for e in thrown), thrown
    assert errors[len(accepted) + len(refused_by_both) :] == [None] * len(refused_by_yrs)


# Clocks beyond MAX_CLOCK (2^31 - 1). From 2^32 on, Yjs reads them (and waits, mostly) and yrs
# wraps them to 32 bits and takes them for other items; below, yrs panics on some.
CLOCK_FIELDS = {
    "first clock": lambda c: one_client(X, clock=c),
    "origin clock": lambda c: one_client(X, b"\x84\x07" + vu(c) + vs("y")),
    "right origin clock": lambda c: one_client(X, b"\x44\x07" + vu(c) + vs("y")),
    "parent clock": lambda c: one_client(X, b"\x04\x00\x07" + vu(c) + vs("y")),
    "GC length": lambda c: one_client(b"\x00" + vu(c)),
    "Skip length": lambda c: one_client(b"\x0a" + vu(c), X),
    "Deleted length": lambda c: one_client(root_item(1, vu(c))),
    "deleted range clock": lambda c: b"\x00\x01\x01\x01" + vu(c) + b"\x01",
    "deleted range length": lambda c: b"\x00\x01\x01\x01\x00" + vu(c),
}


@pytest.mark.parametrize("field", CLOCK_FIELDS)
def test_clocks_beyond_the_last_are_refused(field):
    for clock in (MAX_CLOCK + 1, 2**32 - 1, 2**32, 2**32 + 1, 2**40, 2**53 - 1):
        update = CLOCK_FIELDS[field](clock)
        assert refusal(update) == CLOCK_OVERFLOW, (field, clock)
        assert pycrdt_accepts(update), (field, clock)
    assert refusal(CLOCK_FIELDS[field](MAX_CLOCK - 1)) is None


# The text "t" of each list of updates applied in turn to a fresh Y.Doc.
YJS_TEXT = """
const Y = require('yjs')
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'))
console.log(JSON.stringify(cases.map(updates => {
  const doc = new Y.Doc()
  for (const hex of updates) Y.applyUpdate(doc, new Uint8Array(Buffer.from(hex, 'hex')))
  return doc.getText('t').toString()
})))
"""


def pycrdt_text(*updates: bytes) -> str:
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


ABC = one_client(root_item(4, vs("abcdefghijklmnopqrst")))
DIVERGING = {  # updates with which pycrdt and a Yjs peer end up with different texts
    # "a" at clock 2^32: yrs puts it at clock 0, Yjs waits for clocks 0 to 2^32 - 1
    "clock 2^32": ([one_client(root_item(4, vs("a")), clock=2**32)], CLOCK_OVERFLOW),
    # deletes clocks 10 and 5 before they arrive: Yjs keeps them aside as differences from the
    # previous range, 5 comes back as 133, and Yjs deletes only 10 once they arrive
    "deleted ranges out of order": ([b"\x00\x01\x01\x02\x0a\x01\x05\x01", ABC], YJS_DELETE_ORDER),
    "client twice in the delete set": (
        [b"\x00\x02\x01\x01\x0a\x01\x01\x01\x05\x01", ABC],
        YJS_DELETE_ORDER,
    ),
    "overlapping deleted ranges": ([b"\x00\x01\x01\x02\x0a\x03\x0b\x03", ABC], YJS_DELETE_ORDER),
}


def test_what_yjs_and_yrs_read_differently_is_refused():
    names = list(DIVERGING)
    texts = yjs(YJS_TEXT, [[u.hex() for u in DIVERGING[name][0]] for name in names])
    for name, yjs_text in zip(names, texts, strict=True):
        updates, reason = DIVERGING[name]
        assert refusal(updates[0]) == reason, name
        assert pycrdt_text(*updates) != yjs_text, name
    # in order, the same ranges make the same text on both sides
    in_order = [b"\x00\x01\x01\x02\x05\x01\x0a\x01", ABC]
    assert refusal(in_order[0]) is None
    assert yjs(YJS_TEXT, [[u.hex() for u in in_order]]) == [pycrdt_text(*in_order)]


def test_integers_lib0_would_round_are_refused_too():
    for update in REFUSED_THOUGH_LIB0_READS_THEM.values():
        assert refusal(update) == YJS_UNSAFE_INTEGER
        assert pycrdt_accepts(update)
    errors = yjs_errors(list(REFUSED_THOUGH_LIB0_READS_THEM.values()))
    assert errors == [None] * len(REFUSED_THOUGH_LIB0_READS_THEM)


@pytest.mark.parametrize("name", REFUSED_FOR_YJS)
def test_refused_for_yjs_though_pycrdt_applies_it(name):
    update, reason = REFUSED_FOR_YJS[name]
    assert refusal(update) == reason
    assert pycrdt_accepts(update)


def test_yjs_throws_on_each_refused_input():
    names = list(REFUSED_FOR_YJS)
    errors = yjs_errors([REFUSED_FOR_YJS[name][0] for name in names])
    assert [name for name, error in zip(names, errors, strict=True) if error is None] == []
    thrown = dict(zip(names, errors, strict=True))
    # the precise failures, as read in yjs.cjs and lib0's decoding.js
    assert thrown["client id"] == "Error: Integer out of Range"
    assert thrown["Any integer"] == "Error: Integer out of Range"
    assert thrown["delete set clock lib0 rounds"] == "Error: Unexpected case"
    assert thrown["struct count"] == "RangeError: Invalid array length"
    assert thrown["string length"] == "Error: Unexpected end of array"
    assert "typeRefs" in str(thrown["type ref 15"])
    assert "shouldLoad" in str(thrown["subdocument options null"])


def test_inputs_at_the_limits_are_accepted_and_yjs_applies_them():
    names = list(ACCEPTED_AT_THE_LIMITS)
    for name in names:
        update = ACCEPTED_AT_THE_LIMITS[name]
        assert refusal(update) is None, name
        assert pycrdt_accepts(update), name
    errors = yjs_errors([ACCEPTED_AT_THE_LIMITS[name] for name in names])
    assert dict(zip(names, errors, strict=True)) == dict.fromkeys(names)


# Every field Yjs reads with readVarUint (or readVarInt: the Any integer), with `v` in it.
INTEGER_FIELDS = {
    "client id": lambda v: b"\x01\x01" + v + b"\x00" + X + b"\x00",
    "first clock": lambda v: b"\x01\x01\x01" + v + X + b"\x00",
    "GC length": lambda v: one_client(b"\x00" + v),
    "Deleted length": lambda v: one_client(root_item(1, v)),
    "origin client": lambda v: one_client(b"\x84" + v + b"\x00" + vs("x")),
    "origin clock": lambda v: one_client(b"\x84\x01" + v + vs("x")),
    "right origin clock": lambda v: one_client(b"\x44\x01" + v + vs("x")),
    "parent id client": lambda v: one_client(b"\x04\x00" + v + b"\x00" + vs("x")),
    "delete set client": lambda v: b"\x00\x01" + v + b"\x01\x00\x01",
    "delete set clock": lambda v: b"\x00\x01\x01\x01" + v + b"\x01",
    "delete set length": lambda v: b"\x00\x01\x01\x01\x00" + v,
    "Any integer": lambda v: one_client(any_item(b"\x7d" + v)),
}
NEAR_LIMITS = st.sampled_from(
    [2**k + d for k in (49, 52, 53, 56, 63, 64, 70) for d in (-1, 0, 1)] + [2**77 - 1]
)


@given(
    field=st.sampled_from(sorted(INTEGER_FIELDS)),
    value=NEAR_LIMITS | st.integers(0, 2**77 - 1),
    padding=st.integers(0, 10),
    negative=st.booleans(),
)
def test_integers_are_refused_from_2_53_on_in_every_field(field, value, padding, negative):
    if field == "Any integer":
        raw = vi(-value if negative else value)
        raw = padded_raw(raw, min(len(raw) + padding, 11))
    else:
        raw = padded(value, min(len(vu(value)) + padding, 11))
    if len(raw) > 11:  # 2^77 - 1 signed: 12 bytes, too long for yrs
        return
    update = INTEGER_FIELDS[field](raw)
    assert (refusal(update) == YJS_UNSAFE_INTEGER) == (value > 2**53 - 1), (field, update.hex())


# Updates as Yjs writes them: every content kind, Any value and client id range it can produce.
YJS_WRITES = """
const Y = require('yjs')
const out = []
const keep = doc => doc.on('update', u => out.push(Buffer.from(u).toString('hex')))
const values = [null, undefined, true, false, 0, -1, 63, 64, -64, 2 ** 31, -(2 ** 31),
  2 ** 31 + 1, 2 ** 53 - 1, -(2 ** 53 - 1), 1.5, -0, NaN, Infinity, 1e300, 2n ** 63n - 1n,
  -(2n ** 63n), '', 'é漢👍🏽', new Uint8Array([0, 255]), [], {}, [1, [2, {a: [3]}]],
  {k: {'': null, '🔑': [true]}}]
for (const clientID of [0, 1, 127, 128, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
  const a = new Y.Doc(); a.clientID = clientID; keep(a)
  const b = new Y.Doc(); b.clientID = clientID === 0 ? 1 : clientID - 1; keep(b)
  const text = a.getText('text')
  text.insert(0, 'hello wörld 👋🏽', {bold: true})
  text.insertEmbed(3, {image: 'a.png'})
  text.format(1, 4, {italic: true, color: null})
  text.delete(2, 3)
  const map = a.getMap('map')
  values.forEach((v, i) => map.set('k' + i, v))
  map.set('nested', new Y.Map([['x', 1]]))
  map.set('sub', new Y.Doc({guid: 'g' + clientID}))
  map.set('k0', 'overwritten')
  const array = a.getArray('array')
  // Y.Array takes neither null, undefined nor a bigint at the top: inside an object, then
  array.insert(0, values.filter(v => v != null && typeof v !== 'bigint'))
  array.insert(0, [{values}])
  array.insert(1, [new Y.Array(), new Y.Text('t')])
  array.delete(3, 4)
  const xml = a.getXmlFragment('xml')
  const el = new Y.XmlElement('p')
  el.setAttribute('class', 'c')
  el.insert(0, [new Y.XmlText('inner')])
  xml.insert(0, [el, new Y.XmlText('tail')])
  xml.delete(1, 1)
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  b.getText('text').insert(1, 'B')
  b.getArray('array').delete(0, 1)
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
  for (const doc of [a, b]) out.push(Buffer.from(Y.encodeStateAsUpdate(doc)).toString('hex'))
  out.push(Buffer.from(Y.encodeStateAsUpdate(a, Y.encodeStateVector(b))).toString('hex'))
}
out.push(Buffer.from(Y.mergeUpdates(out.map(h => Buffer.from(h, 'hex')))).toString('hex'))
console.log(JSON.stringify(out))
"""


def test_every_update_yjs_writes_is_accepted():
    updates = [bytes.fromhex(h) for h in yjs(YJS_WRITES, None)]
    assert len(updates) > 100
    for update in updates:
        validate_update(update)
        assert pycrdt_accepts(update), update.hex()


# Y.XmlHook('h') in a fragment, then a text, as Yjs encodes it.
YJS_WRITES_A_HOOK = """
const Y = require('yjs')
const doc = new Y.Doc(); doc.clientID = 5
doc.getXmlFragment('t').insert(0, [new Y.XmlHook('h'), new Y.XmlText('abc')])
console.log(JSON.stringify(Buffer.from(Y.encodeStateAsUpdate(doc)).toString('hex')))
"""


def test_xml_hooks_are_refused_as_yjs_writes_them_too():
    """yrs reads and writes an XmlHook without the name Yjs gives it: a hook from Yjs loses what
    follows it in pycrdt, and the room would then send every Yjs peer a hook it cannot read."""
    update = bytes.fromhex(yjs(YJS_WRITES_A_HOOK, None))
    assert yjs_errors([update]) == [None]
    assert refusal(update) == YJS_UNREADABLE
    doc = Doc()
    doc.apply_update(update)  # no error: yrs takes the name for what follows the hook
    assert "abc" not in str(doc.get("t", type=XmlFragment))  # the text is lost
    assert yjs_errors([doc.get_update()]) == ["Error: Unexpected end of array"]
