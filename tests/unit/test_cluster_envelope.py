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
