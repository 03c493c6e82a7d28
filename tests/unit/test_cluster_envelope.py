"""The bus envelope: plain and BATCH messages round-trip, and malformed ones decode to nothing."""

from __future__ import annotations

import pytest

from collab import cluster

SENDER = bytes(range(cluster.PID_BYTES))


def test_a_single_item_is_a_plain_envelope_readable_without_batch_support():
    data = cluster.encode_batch(SENDER, [(cluster.UPDATE, b"\x01\x02")])
    assert data == cluster.encode(cluster.UPDATE, SENDER, b"\x01\x02")
    assert cluster.decode(data) == cluster.Envelope(cluster.UPDATE, SENDER, b"\x01\x02")


def test_a_batch_unpacks_in_order_with_its_sender():
    items = [
        (cluster.UPDATE, b"u1"),
        (cluster.AWARENESS, b""),
        (cluster.UPDATE, b"x" * 300),  # a length that takes two varint bytes
        (cluster.SYNC, b"\x01\x00"),
    ]
    data = cluster.encode_batch(SENDER, items)
    assert cluster.decode(data).kind == cluster.BATCH  # type: ignore[union-attr]
    assert cluster.decode_all(data) == [cluster.Envelope(k, SENDER, p) for k, p in items]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",  # shorter than a header
        bytes((2, cluster.UPDATE)) + SENDER,  # another version
        cluster.encode(cluster.BATCH, SENDER, bytes((cluster.UPDATE, 5)) + b"abc"),  # truncated
    ],
    ids=["empty", "short", "version", "truncated batch"],
)
def test_malformed_messages_decode_to_nothing(data):
    assert cluster.decode_all(data) == []


def test_parts_come_back_together_per_sender_and_a_lost_part_drops_only_its_message():
    from collab.cluster.postgres import PART_BYTES, Parts, parts_of

    other = bytes(reversed(SENDER))
    first, second = b"a" * (2 * PART_BYTES + 1), b"b" * (PART_BYTES + 5)

    def payloads(sender: bytes, number: int, message: bytes) -> list[bytes]:
        notifications = parts_of(sender, number, message)
        found = [cluster.decode(part[2:]) for part in notifications]
        assert all(e is not None and e.kind == cluster.PART for e in found)
        assert all(len(part) <= 5_925 for part in notifications)
        return [e.payload for e in found if e is not None]

    parts = Parts()
    ours, theirs = payloads(SENDER, 1, first), payloads(other, 7, second)
    assert (len(ours), len(theirs)) == (3, 2)
    # two senders' parts interleaved: each message whole, once its last part is in
    assert [parts.add(SENDER, ours[0]), parts.add(other, theirs[0])] == [None, None]
    assert [parts.add(SENDER, ours[1]), parts.add(other, theirs[1])] == [None, second]
    assert parts.add(SENDER, ours[2]) == first and len(parts) == 0
    # a part lost: that message is dropped, the next one comes through
    lost = payloads(SENDER, 2, first)
    assert [parts.add(SENDER, lost[0]), parts.add(SENDER, lost[2])] == [None, None]
    assert len(parts) == 0
    again = payloads(SENDER, 3, second)
    assert [parts.add(SENDER, again[0]), parts.add(SENDER, again[1])] == [None, second]
    # a message cut short by a new one: the new one comes through
    cut = payloads(SENDER, 4, first)
    assert parts.add(SENDER, cut[0]) is None
    assert [parts.add(SENDER, p) for p in payloads(SENDER, 5, second)] == [None, second]
    assert parts.add(SENDER, b"\xff") is None  # malformed: nothing
