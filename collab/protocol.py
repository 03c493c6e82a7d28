"""Pure y-websocket framing: no I/O, no state.

Message layout (all integers are lib0 varuints, all byte strings are varuint-length prefixed):

    [0, 0, sv]        sync step 1: the sender's state vector
    [0, 1, update]    sync step 2: the diff the receiver asked for
    [0, 2, update]    a document update
    [1, aw]           an awareness update: n × (client id, clock, JSON state)
    [2, ...]          auth (server → client only; a client sending it is unsupported)
    [3]               query awareness: "send me every awareness state"
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final, NamedTuple

from .errors import ProtocolError, UnsupportedData

MSG_SYNC: Final = 0
MSG_AWARENESS: Final = 1
MSG_AUTH: Final = 2
MSG_QUERY_AWARENESS: Final = 3

SYNC_STEP1: Final = 0
SYNC_STEP2: Final = 1
SYNC_UPDATE: Final = 2

EMPTY_UPDATE: Final = b"\x00\x00"
_MAX_SAFE_INTEGER: Final = (1 << 53) - 1
QUERY_AWARENESS_MESSAGE: Final = bytes([MSG_QUERY_AWARENESS])
# An awareness update with zero entries: every client ignores its content, but y-websocket counts
# it as "heard from the server", so it serves as the application-level heartbeat.
HEARTBEAT_MESSAGE: Final = bytes([MSG_AWARENESS, 1, 0])


def read_var_uint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a lib0 varuint at `pos`; return (value, position after it)."""
    value = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtocolError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > _MAX_SAFE_INTEGER:
                raise ProtocolError("varint out of range")
            return value, pos
        shift += 7
        if shift > 53:
            raise ProtocolError("varint out of range")


def write_var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolError("length prefix beyond end of message")
    return buf[pos:end], end


def var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


class SyncMessage(NamedTuple):
    kind: int  # SYNC_STEP1 / SYNC_STEP2 / SYNC_UPDATE
    payload: bytes  # state vector (step 1) or v1 update


def parse_sync(message: bytes) -> SyncMessage:
    """Parse a whole frame that starts with MSG_SYNC."""
    if len(message) < 2:
        raise ProtocolError("truncated sync message")
    kind = message[1]
    if kind > SYNC_UPDATE:
        raise UnsupportedData(f"unknown sync message type {kind}")
    payload, end = read_var_bytes(message, 2)
    if end != len(message):
        raise ProtocolError("trailing bytes after sync message")
    return SyncMessage(kind, payload)


def parse_awareness(message: bytes) -> bytes:
    """Return the awareness update carried by a whole frame that starts with MSG_AWARENESS."""
    payload, end = read_var_bytes(message, 1)
    if end != len(message):
        raise ProtocolError("trailing bytes after awareness message")
    return payload


class AwarenessEntry(NamedTuple):
    client_id: int
    clock: int
    state: bytes  # the JSON text exactly as the client sent it; b"null" means "removed"


NULL_STATE: Final = b"null"


def decode_awareness_update(update: bytes) -> list[AwarenessEntry]:
    """Decode and validate an awareness update; every state must be JSON (peers JSON.parse it)."""
    count, pos = read_var_uint(update, 0)
    if count > len(update):  # each entry needs at least 3 bytes: cheap bound before the loop
        raise ProtocolError("awareness entry count beyond end of message")
    entries = []
    for _ in range(count):
        client_id, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
        state, pos = read_var_bytes(update, pos)
        if state != NULL_STATE:
            try:
                json.loads(state)
            except ValueError:
                raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, state))
    if pos != len(update):
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def encode_awareness_update(entries: Iterable[AwarenessEntry]) -> bytes:
    parts = []
    n = 0
    for entry in entries:
        n += 1
        parts.append(write_var_uint(entry.client_id))
        parts.append(write_var_uint(entry.clock))
        parts.append(var_bytes(entry.state))
    return write_var_uint(n) + b"".join(parts)


def sync_step1(state_vector: bytes) -> bytes:
    return bytes((MSG_SYNC, SYNC_STEP1)) + var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes((MSG_SYNC, SYNC_STEP2)) + var_bytes(update)


def update_message(update: bytes) -> bytes:
    return bytes((MSG_SYNC, SYNC_UPDATE)) + var_bytes(update)


def awareness_message(update: bytes) -> bytes:
    return bytes((MSG_AWARENESS,)) + var_bytes(update)
