"""Bad input closes only the connection that sent it, with the right code; nobody else notices."""

from __future__ import annotations

import os
import random
import struct
from urllib.parse import quote

import anyio
import pytest
from pycrdt import Doc, Map, Text

from collab import protocol as p
from tests.conftest import every_server
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]


def update_bytes(text: str) -> bytes:
    doc: Doc = Doc()
    doc.get("t", type=Text).insert(0, text)
    return doc.get_update()


BAD_FRAMES = {
    "text frame": ("hello", 1003),
    "unknown message type": (bytes([7, 0, 0]), 1003),
    "auth message from a client": (bytes([p.MSG_AUTH, 0, 0]), 1003),
    "unknown sync type": (bytes([0, 9, 0]), 1003),
    "truncated sync": (bytes([0]), 1002),
    "truncated varint": (bytes([0, 2, 0x85]), 1002),
    "length beyond end": (bytes([0, 2, 5, 1, 2]), 1002),
    "trailing bytes": (p.update_message(update_bytes("x")) + b"\x00", 1002),
    "undecodable update": (p.update_message(b"\x05\xff\xff\xff\x01\x02"), 1002),
    "bad state vector": (p.sync_step1(b"\x05\xff"), 1002),
    "awareness not JSON": (
        p.awareness_message(p.encode_awareness_update([p.AwarenessEntry(1, 1, b"{nope")])),
        1002,
    ),
    "truncated awareness": (bytes([1, 3, 1, 1]), 1002),
    "empty binary frame": (b"", 1002),
    "query awareness with trailing bytes": (bytes([3, 1]), 1002),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
async def test_bad_frame_closes_only_the_sender(server, case):
    frame, expected = BAD_FRAMES[case]
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await b.wait_for(lambda: b.synced)
        a.doc.get("t", type=Text).insert(0, "before ")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "before ")
        code, reason = await close_of(f"{server.url}/ws/doc", frame)
        assert code == expected, reason
        assert reason and len(reason.encode()) < 123
        a.doc.get("t", type=Text).insert(7, "after")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "before after")
        assert a.close_code is None and b.close_code is None


async def test_random_garbage_never_hurts_the_room(server):
    rng = random.Random(1234)
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await b.wait_for(lambda: b.synced)
        for i in range(40):
            frame = (
                os.urandom(rng.randrange(1, 64))
                if i % 2
                else bytes([0, 2]) + os.urandom(rng.randrange(0, 40))
            )
            code, _ = await close_of(f"{server.url}/ws/doc", frame)
            assert code in (1002, 1003), frame.hex()
            a.doc.get("t", type=Text).insert(0, "x")
            await b.wait_for(lambda i=i: len(str(b.doc.get("t", type=Text))) == i + 1)


async def test_message_over_the_limit_closes_1009(server_with):
    async with server_with(max_message_bytes=4096) as srv:
        async with YClient(srv.url, "doc") as a:
            code, _ = await close_of(
                f"{srv.url}/ws/doc", p.update_message(update_bytes("y" * 5000))
            )
            assert code == 1009
            a.doc.get("t", type=Text).insert(0, "small")
            async with YClient(srv.url, "doc") as b:
                await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "small")


@pytest.mark.parametrize(
    "path",
    ["/ws", "/ws/", "/ws/" + "n" * 513, "/ws/" + quote("é" * 257), "/ws/%ff%fe", "/ws/a%00b"],
    ids=["no name", "empty name", "513 bytes", "514 bytes unicode", "not utf-8", "control char"],
)
async def test_invalid_document_names_close_4404(server, path):
    code, reason = await close_of(f"{server.url}{path}")
    assert code == 4404, reason


async def test_longest_valid_name_is_accepted(server):
    name = "n" * 510 + "é"  # 512 bytes of UTF-8
    async with YClient(server.url, name) as a:
        await a.wait_for(lambda: a.synced)


async def test_slow_consumer_is_closed_1013_and_never_slows_the_others(server_with):
    async with server_with(outbound_queue_bytes=1024 * 1024) as srv:
        async with (
            YClient(srv.url, "doc") as writer,
            YClient(srv.url, "doc") as fast,
            YClient(srv.url, "doc") as slow,
        ):
            await slow.wait_for(lambda: slow.synced)
            await fast.wait_for(lambda: fast.synced)
            slow.pause_reading()
            blobs = writer.doc.get("blobs", type=Map)
            fast_blobs = fast.doc.get("blobs", type=Map)
            total = 0
            # Enough to fill the slow client's socket buffers and then its 1 MiB of queue.
            with anyio.fail_after(30):
                while not slow_is_detached(srv):
                    blobs[f"k{total}"] = "z" * 65536
                    total += 1
                    if total % 16 == 0:  # the fast reader keeps up all along
                        await fast.wait_for(lambda n=total: len(fast_blobs) == n)
            await fast.wait_for(lambda: len(fast_blobs) == total)
            slow.resume_reading()
            await slow.wait_for(lambda: slow.close_code is not None, timeout=10)
            assert slow.close_code == 1013
            assert fast.close_code is None and writer.close_code is None


def slow_is_detached(srv) -> bool:
    room = srv.hub.rooms["doc"]
    return len(room.members) == 2


async def test_a_joiner_still_taking_in_a_big_document_is_not_a_slow_consumer(server_with):
    # The answer to a joiner's sync step 1 is the whole document: bigger than the outbound
    # queue's limit here. A keystroke broadcast while it is still being sent must queue behind
    # it, not close the joiner with 1013 (it once did: the answer counted against the limit).
    from tests.integration.test_websocket import SYNC_STEP1_EMPTY, binary, connect

    size = 16 << 20
    async with (
        server_with(outbound_queue_bytes=1 << 20) as srv,
        YClient(srv.url, "doc") as writer,
        YClient(srv.url, "doc") as fast,
    ):
        text = writer.doc.get("t", type=Text)
        seen = fast.doc.get("t", type=Text)
        await writer.wait_for(lambda: writer.synced)  # (else it answers with the whole text)
        for _ in range(4):  # (a message may hold 16 MiB at most)
            text += "x" * (size // 4)
        await fast.wait_for(lambda: len(seen) == size, timeout=60)
        async with connect(srv, "doc") as joiner:
            await joiner.next_data()  # the server's sync step 1
            await joiner.send(binary(SYNC_STEP1_EMPTY))
            head = await joiner.reader.readexactly(10)  # the answer's frame header: then stop
            assert head[1] & 0x7F == 127
            (length,) = struct.unpack("!Q", head[2:])
            room = srv.hub.rooms["doc"]
            transports = [getattr(m.socket, "transport", None) for m in room.members]
            if all(transports):  # our fast path: the transport's buffer is the queue
                queued = max(t.get_write_buffer_size() for t in transports)
                assert queued > 1 << 20, "the answer did not wait in the server: nothing tested"
            text += "y"  # one keystroke, broadcast to the joiner behind its answer
            await fast.wait_for(lambda: len(seen) == size + 1)
            assert len(room.members) == 3, "the joiner was dropped as a slow consumer"
            payload = await joiner.reader.readexactly(length)
            assert payload[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP2])
            keystroke = await joiner.next_data()
            assert keystroke[:2] == bytes([p.MSG_SYNC, p.SYNC_UPDATE])
            assert writer.close_code is None and fast.close_code is None
