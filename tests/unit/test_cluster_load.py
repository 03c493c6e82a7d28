"""The load a process puts in its cluster heartbeats (collab/cluster/sync.py): what a peer
sends is read defensively, and a peer that sends nothing (an older version) has no load."""

from __future__ import annotations

import json

from collab.cluster.sync import MAX_LOAD_BYTES, decode_load


def test_a_heartbeat_load_is_read_back():
    payload = json.dumps({"pid": 7, "host": "h", "connections": 3, "rooms": 2}).encode()
    assert decode_load(payload) == {"pid": 7, "host": "h", "connections": 3, "rooms": 2}


def test_an_empty_or_broken_payload_is_no_load():
    assert decode_load(b"") is None  # a peer of an older version
    assert decode_load(b"\xff\xfe") is None
    assert decode_load(b"[1, 2]") is None
    assert decode_load(b"{") is None
    assert decode_load(b" " * (MAX_LOAD_BYTES + 1) + b"{}") is None


def test_only_numbers_and_strings_are_kept():
    payload = json.dumps({"rooms": 1, "x": True, "y": None, "z": [1], "w": 1.5}).encode()
    assert decode_load(payload) == {"rooms": 1}
