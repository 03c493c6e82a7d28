"""Updates a stock Yjs peer throws on are refused with 1002: never applied, forwarded or stored.

Issue 10: the server forwarded such updates verbatim, and every browser in the room logged
"Caught error while handling a Yjs update" and dropped them. Each one here is sent by a raw
client, as an update message and as a sync step 2, into a room where another client listens;
an ordinary edit follows it through the same room, so once that edit has arrived (and been
stored) the bad update would have too.
"""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from collab.validate import validate_update
from tests.unit.test_validate import one_client, root_item, vs, vu
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

X = root_item(4, vs("x"))
UNSAFE = {
    # the 10 bytes of the issue: a deleted range of length 0 (Yjs: "Unexpected case")
    "zero-length deleted range": b"\x00\x01" + vu(0x12345678) + b"\x01\x00\x00",
    "zero-length Deleted item": one_client(root_item(1, b"\x00")),
    "empty string": one_client(root_item(4, vs(""))),
    "origin at the item itself": one_client(X, b"\x84\x01\x01" + vs("y")),
    "clock beyond 2^31": one_client(X, clock=2**32 + 5),
    "legacy JSON": one_client(root_item(2, vu(0) + vs("{nope"))),
    "format that is not JSON": one_client(root_item(6, vs("bold") + vs("undefined"))),
    "deleted ranges out of order": b"\x00\x01\x01\x02\x0a\x01\x05\x01",
}


async def until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


@pytest.mark.parametrize("kind", ["update", "sync step 2"])
@pytest.mark.parametrize("name", list(UNSAFE))
async def test_an_update_yjs_throws_on_is_refused_not_forwarded_not_stored(server, name, kind):
    bad = UNSAFE[name]
    frame = p.update_message(bad) if kind == "update" else p.sync_step2(bad)
    room = "unsafe"
    async with YClient(server.url, room) as writer, YClient(server.url, room) as listener:
        await listener.wait_for(lambda: listener.synced)
        await writer.wait_for(lambda: writer.synced)

        code, reason = await close_of(f"{server.url}/ws/{room}", frame)
        assert code == 1002, reason

        # an edit after it, through the same room: once it is here (and stored), so would the
        # bad update be
        writer.doc.get("t", type=Text).insert(0, "after")
        await listener.wait_for(lambda: str(listener.doc.get("t", type=Text)) == "after")
        assert not any(bad in message for message in listener.received)
        assert listener.close_code is None and writer.close_code is None

        log = server.hub.saver.log(room)
        await until(lambda: log.committed == log.appended >= 1)
        stored = await server.hub.store.load(room)
        assert stored.updates, "the edit after it is stored"
        for update in [stored.snapshot or b"", *stored.updates]:
            assert bad not in update
            if update:
                validate_update(update)
        restored: Doc = Doc()
        for update in stored.updates:
            restored.apply_update(update)
        assert str(restored.get("t", type=Text)) == "after"
