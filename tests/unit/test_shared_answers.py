"""A big answer to a sync step 1 is encoded once and the same bytes go to every joiner that
asks alike while the document is unchanged (collab/ydoc.py SharedAnswers, Room._answer_step1)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from collab import protocol as p
from collab.counts import SYNC_STEP2, Counts
from collab.room import DEFLATE_FRAME, PER_MEMBER, PLAIN_FRAME, Room
from collab.ydoc import SHARE_MIN_BYTES

EMPTY_SV = b"\x00"


class Member:
    read_only = False
    author = None
    info: Any = None

    def __init__(self, framing: int = PLAIN_FRAME) -> None:
        self.framing = framing
        self.frames: list[bytes] = []

    def encode(self, message: bytes) -> bytes:
        return b"F%d:" % self.framing + message

    def send_frame(self, data: bytes) -> None:
        self.frames.append(data)

    def send_nowait(self, message: bytes) -> None:
        self.frames.append(self.encode(message))

    def add_pending(self, edits: int) -> int:
        return 0

    def close(self, code: int, reason: str = "") -> None:
        pass


def big_room(chars: int = 2 * SHARE_MIN_BYTES) -> tuple[Room, Doc[Any]]:
    source: Doc[Any] = Doc()
    source.get("t", type=Text).insert(0, "x" * chars)
    doc: Doc[Any] = Doc()
    doc.apply_update(source.get_update())
    room = Room("d", doc, lambda *a, **k: None, awareness_timeout_s=30, counts=Counts())
    return room, source


def join(room: Room, member: Member, state_vector: bytes = EMPTY_SV) -> bytes:
    """`member` asks with `state_vector`: the answer's frame."""
    room.handle(member, p.sync_step1(state_vector))
    return member.frames[-1]


def text_of(frame: bytes) -> str:
    message = frame.partition(b":")[2]
    doc: Doc[Any] = Doc()
    doc.apply_update(p.parse_sync(message).payload)
    return str(doc.get("t", type=Text))


def test_joiners_that_ask_alike_get_the_same_bytes_encoded_once() -> None:
    room, _ = big_room()
    joiners = [Member() for _ in range(5)]
    frames = [join(room, m) for m in joiners]
    assert all(f is frames[0] for f in frames)  # one object: no copy per joiner
    assert room.answers.encoded == 1 and room.answers.shared == 4
    assert text_of(frames[0]) == "x" * 2 * SHARE_MIN_BYTES
    assert room.counts is not None and room.counts.sent[SYNC_STEP2] == 5
    message_size = len(frames[0]) - len(b"F0:")
    assert room.counts.bytes_out == 5 * message_size


def test_an_update_drops_what_was_kept() -> None:
    room, source = big_room()
    first = join(room, Member())
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    source.get("t", type=Text).insert(0, "new")
    room.handle(Member(), p.update_message(updates[-1]))
    second = join(room, Member())
    assert second is not first
    assert text_of(second).startswith("new")


def test_a_deletion_drops_it_too_though_the_state_vector_stays() -> None:
    room, source = big_room()
    first = join(room, Member())
    state = room.doc.get_state()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    del source.get("t", type=Text)[0:10]
    room.handle(Member(), p.update_message(updates[-1]))
    assert room.doc.get_state() == state  # a deletion alone changes no state vector
    second = join(room, Member())
    assert second is not first
    assert len(text_of(second)) == 2 * SHARE_MIN_BYTES - 10
    # and what is kept again is the new one
    assert join(room, Member()) is second


def test_a_server_side_edit_drops_it() -> None:
    room, source = big_room()
    first = join(room, Member())
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    source.get("t", type=Text).insert(0, "api")
    room.apply_server_update(updates[-1], "api")
    assert text_of(join(room, Member())).startswith("api")
    assert room.answers.encoded == 2 and first is not None


def test_each_framing_and_state_vector_has_its_own_answer() -> None:
    room, source = big_room()
    plain, deflate = join(room, Member(PLAIN_FRAME)), join(room, Member(DEFLATE_FRAME))
    assert plain.startswith(b"F0:") and deflate.startswith(b"F1:")
    assert join(room, Member(DEFLATE_FRAME)) is deflate
    # a peer that holds the document lacks nothing: its (small) answer is not kept
    state = source.get_state()
    member = Member()
    small = join(room, member, state)
    assert text_of(small) == ""
    assert join(room, Member(), state) is not small
    # a member whose bytes are its own (a Hocuspocus session-aware address) is never shared
    own = [join(room, Member(PER_MEMBER)) for _ in range(2)]
    assert own[0] is not own[1] and own[0] == own[1]


def test_small_documents_are_not_kept() -> None:
    room, _ = big_room(chars=100)
    first, second = join(room, Member()), join(room, Member())
    assert first == second and first is not second
    assert room.answers.encoded == 0


def test_drop_forgets_and_unsubscribes() -> None:
    room, source = big_room()
    first = join(room, Member())
    room.answers.drop()
    assert join(room, Member()) is not first
    room.answers.drop()
    room.answers.drop()  # (twice: nothing left)
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    source.get("t", type=Text).insert(0, "z")
    room.handle(Member(), p.update_message(updates[-1]))  # no observer left to fail
    assert text_of(join(room, Member())).startswith("z")


def test_what_is_kept_expires(monkeypatch: Any) -> None:
    import asyncio

    from collab import ydoc

    monkeypatch.setattr(ydoc, "SHARE_HOLD_S", 0.01)

    async def run() -> None:
        room, _ = big_room()
        first = join(room, Member())
        assert join(room, Member()) is first
        while room.answers.get(EMPTY_SV, PLAIN_FRAME) is not None:
            await asyncio.sleep(0.01)  # (the loop runs the hold timer)
        assert join(room, Member()) is not first

    asyncio.run(run())
