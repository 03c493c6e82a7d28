"""Yjs state vectors: varuint n, then n × (client id, clock)."""

from __future__ import annotations


def _read_var_uint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def decode_state_vector(sv: bytes) -> dict[int, int]:
    count, pos = _read_var_uint(sv, 0)
    result = {}
    for _ in range(count):
        client, pos = _read_var_uint(sv, pos)
        clock, pos = _read_var_uint(sv, pos)
        result[client] = clock
    return result


def covers(have: dict[int, int], need: dict[int, int]) -> bool:
    """True when a document at state `have` already contains everything up to `need`."""
    return all(have.get(client, 0) >= clock for client, clock in need.items())
