"""y-websocket framing against golden bytes (lib0 encodings, as Yjs writes them)."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text, create_sync_message, create_update_message

from collab import protocol as p
from collab.errors import ProtocolError, UnsupportedData


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**53 - 1, b"\xff\xff\xff\xff\xff\xff\xff\x0f"),
    ],
)
def test_var_uint_round_trip(value, encoded):
    assert p.write_var_uint(value) == encoded
    assert p.read_var_uint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\xff\xff", b"\xff" * 8 + b"\x7f"])
def test_var_uint_rejects_truncated_and_oversized(bad):
    with pytest.raises(ProtocolError):
        p.read_var_uint(bad, 0)


def test_messages_match_pycrdt_and_yjs_layout():
    doc: Doc = Doc()
    doc.get("t", type=Text).insert(0, "hi")
    assert p.sync_step1(doc.get_state()) == create_sync_message(doc)
    update = doc.get_update()
    assert p.update_message(update) == create_update_message(update)
    assert p.sync_step2(b"\x00\x00") == b"\x00\x01\x02\x00\x00"
    assert p.HEARTBEAT_MESSAGE == b"\x01\x01\x00"  # awareness update with zero entries


def test_parse_sync_kinds():
    assert p.parse_sync(b"\x00\x00\x01\x00") == (p.SYNC_STEP1, b"\x00")
    assert p.parse_sync(b"\x00\x02\x02\x00\x00") == (p.SYNC_UPDATE, b"\x00\x00")
    with pytest.raises(UnsupportedData):
        p.parse_sync(b"\x00\x03\x00")
    with pytest.raises(ProtocolError):
        p.parse_sync(b"\x00\x02\x03\x00\x00")  # length beyond the end
    with pytest.raises(ProtocolError):
        p.parse_sync(b"\x00\x02\x01\x00\x00")  # trailing bytes


def test_awareness_round_trip_keeps_the_json_bytes_exactly():
    entries = [
        p.AwarenessEntry(1, 3, b'{"user":{"name":"J\\u00fcrgen \xf0\x9f\x8e\x89"}}'),
        p.AwarenessEntry(2**40, 1, p.NULL_STATE),
    ]
    encoded = p.encode_awareness_update(entries)
    assert p.decode_awareness_update(encoded) == entries
    assert p.parse_awareness(p.awareness_message(encoded)) == encoded


@pytest.mark.parametrize(
    "bad",
    [b"\x01\x01\x01\x05{}", b"\x02\x01\x01\x02{}", b"\x01\x01\x01\x02{x", b"\x05", b"\x00\x00"],
    ids=["short state", "count too high", "not json", "count beyond end", "trailing"],
)
def test_awareness_rejects_malformed_updates(bad):
    with pytest.raises(ProtocolError):
        p.decode_awareness_update(bad)
