"""What the hot path counts (collab/counts.py) and how collab/metrics.py labels it."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from collab.counts import (
    AWARENESS,
    OTHER,
    QUERY_AWARENESS,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    Counts,
    message_type,
)
from collab.errors import CloseCode, Reject
from collab.hooks import Extension, HookRunner, OnConnectPayload
from collab.metrics import close_code_label
from collab.room import PLAIN_FRAME, Room


def test_message_types() -> None:
    assert message_type(p.sync_step1(b"\x00")) == SYNC_STEP1
    assert message_type(p.sync_step2(b"\x00\x00")) == SYNC_STEP2
    assert message_type(p.update_message(b"\x00\x00")) == SYNC_UPDATE
    assert message_type(p.awareness_message(b"\x00")) == AWARENESS
    assert message_type(bytes([p.MSG_QUERY_AWARENESS])) == QUERY_AWARENESS
    assert message_type(b"\x00\x07") == OTHER
    assert message_type(b"\x09") == OTHER
    assert message_type(b"") == OTHER


def test_close_code_labels_stay_bounded() -> None:
    assert close_code_label(CloseCode.GOING_AWAY) == "1001"
    assert close_code_label(CloseCode.CLOSED_BY_ADMIN) == "4000"
    assert close_code_label(1006) == "1006"
    assert close_code_label(4321) == "other"
    assert close_code_label(-1) == "other"


class Member:
    framing = PLAIN_FRAME
    read_only = False
    author = None
    info: Any = None

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def encode(self, message: bytes) -> bytes:
        return message

    def send_frame(self, data: bytes) -> None:
        self.frames.append(data)

    def send_nowait(self, message: bytes) -> None:
        self.frames.append(message)

    def add_pending(self, edits: int) -> int:
        return 0

    def close(self, code: int, reason: str = "") -> None:
        pass


def test_a_room_counts_what_it_receives_and_sends() -> None:
    counts = Counts()
    room = Room("d", Doc(), lambda *a, **k: None, awareness_timeout_s=30, counts=counts)
    sender, others = Member(), [Member(), Member(), Member()]
    for member in (sender, *others):
        room.add(member)
    assert counts.sent[SYNC_STEP1] == 4  # each joiner's sync step 1
    out_before = counts.bytes_out
    source: Doc[Any] = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    source.get("t", type=Text).insert(0, "a")
    message = p.update_message(updates[0])
    room.handle(sender, message)
    assert counts.received[SYNC_UPDATE] == 1
    assert counts.bytes_in == len(message)
    assert counts.updates_applied == 1
    assert counts.sent[SYNC_UPDATE] == 3  # one broadcast, three recipients
    assert counts.bytes_out == out_before + 3 * len(message)
    assert all(m.frames[-1] == message for m in others)


def test_a_room_without_counts_counts_nothing() -> None:
    room = Room("d", Doc(), lambda *a, **k: None, awareness_timeout_s=30)
    assert room.counts is None
    room.add(Member())  # (no error: nothing to count into)


class Refusing(Extension):
    async def on_connect(self, payload: OnConnectPayload) -> None:
        if payload.connection.query.get("fail"):
            raise RuntimeError("broken")
        raise Reject(CloseCode.FORBIDDEN, "no")


@pytest.mark.anyio
async def test_hooks_count_failures_not_refusals() -> None:
    from collab.hooks import ConnectionInfo

    counts = Counts()
    runner = HookRunner([Refusing()], counts=counts)
    info = ConnectionInfo(1, "d", "1.2.3.4:5", {}, {})
    with pytest.raises(Reject):
        await runner.connect(OnConnectPayload("d", info))
    assert counts.events.get(("hook_errors", "on_connect"), 0) == 0
    failing = ConnectionInfo(2, "d", "1.2.3.4:5", {}, {"fail": "1"})
    with pytest.raises(RuntimeError):
        await runner.connect(OnConnectPayload("d", failing))
    assert counts.events[("hook_errors", "on_connect")] == 1
    assert len(counts.samples[("hook", "on_connect")]) == 2
    await runner.drain(0)
