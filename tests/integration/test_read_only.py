"""Read-only connections: nothing they send reaches the document, the store or another client,
and their connection stays open (they keep receiving everyone else's edits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from collab.extensions.token_auth import mint_token
from collab.hub import restore
from tests.conftest import RunningServer, every_server
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]

SECRET = "read-only-secret-0123456789-abcdefghij"


def token(write: bool, doc: str = "doc") -> str:
    return mint_token(doc=doc, write=write, ttl_s=600, secret=SECRET)


@asynccontextmanager
async def joined(
    srv: RunningServer, *, write: bool, doc: Doc[Any] | None = None
) -> AsyncIterator[YClient]:
    async with YClient(srv.url, "doc", query=f"token={token(write)}", doc=doc) as client:
        await client.wait_for(lambda: client.synced or client.close_code is not None)
        assert client.close_code is None, (client.close_code, client.close_reason)
        yield client


def text(doc: Doc[Any]) -> str:
    return str(doc.get("t", type=Text))


async def barrier(client: YClient) -> None:
    """Once this returns, the server has handled every frame `client` sent before the call:
    it answers a sync step 1 in order with a sync step 2."""

    def replies() -> int:
        return sum(1 for m in client.received if m[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP2]))

    await client.sent()
    before = replies()
    await client.send(p.sync_step1(client.doc.get_state()))
    await client.wait_for(lambda: replies() > before)


async def stored_text(srv: RunningServer, name: str = "doc") -> str:
    return text(await restore(await srv.hub.store.load(name)))


async def wait_stored(srv: RunningServer, expected: str) -> None:
    """Poll the store (deadline 5 s) until the document reads `expected` there."""
    with anyio.fail_after(5):
        while await stored_text(srv) != expected:
            await anyio.sleep(0.02)


@pytest.fixture
async def srv(server_with):
    async with server_with(auth_secret=SECRET) as running:
        yield running


async def test_read_only_updates_are_dropped_and_the_connection_stays(srv):
    async with joined(srv, write=True) as writer, joined(srv, write=False) as reader:
        room = srv.hub.rooms["doc"]
        text_w = writer.doc.get("t", type=Text)
        text_w.insert(0, "written")
        await reader.wait_for(lambda: text(reader.doc) == "written")
        await barrier(reader)
        dropped = room.read_only_dropped  # its (empty) sync step 2 on joining counts too

        # The reader's local edit goes out as an update message; an explicit sync step 2 too.
        reader.doc.get("t", type=Text).insert(0, "READER ")
        other: Doc[Any] = Doc()
        other.get("t", type=Text).insert(0, "STEP2 ")
        await reader.send(p.sync_step2(other.get_update()))
        await reader.send(p.update_message(other.get_update()))
        await barrier(reader)
        assert room.read_only_dropped == dropped + 3
        assert text(room.doc) == "written"

        # Still open, still receiving; the writer never heard of the reader's edits.
        text_w.insert(len(text_w), " more")
        await reader.wait_for(lambda: text(reader.doc).endswith("written more"))
        await barrier(writer)
        assert text(writer.doc) == "written more"
        assert reader.close_code is None and writer.close_code is None
        await wait_stored(srv, "written more")

    # A late joiner and the store see only what the writer wrote.
    async with joined(srv, write=True) as late:
        assert text(late.doc) == "written more"
    assert await stored_text(srv) == "written more"


@pytest.mark.parametrize("write", [False, True], ids=["read-only", "write (control)"])
async def test_offline_edits_sent_as_sync_step2_on_reconnect(srv, write):
    async with joined(srv, write=True) as writer:
        writer.doc.get("t", type=Text).insert(0, "shared")
        await wait_stored(srv, "shared")

        mine: Doc[Any] = Doc()
        async with joined(srv, write=write, doc=mine) as first:
            await first.wait_for(lambda: text(mine) == "shared")
        # Offline: edits pile up locally (nobody is listening to this doc now).
        mine.get("t", type=Text).insert(0, "offline ")
        assert text(mine) == "offline shared"

        room = srv.hub.rooms["doc"]
        dropped = room.read_only_dropped
        # Reconnect with the same Doc: the server's sync step 1 is answered with a sync step 2
        # carrying the offline edits.
        async with joined(srv, write=write, doc=mine) as again:
            step1 = bytes([p.MSG_SYNC, p.SYNC_STEP1])
            await again.wait_for(lambda: any(m[:2] == step1 for m in again.received))
            await barrier(again)  # the step 2 went out before this barrier
            if write:
                await writer.wait_for(lambda: text(writer.doc) == "offline shared")
                await wait_stored(srv, "offline shared")
                return
            assert room.read_only_dropped > dropped
            assert text(room.doc) == "shared"
            writer.doc.get("t", type=Text).insert(6, "!")
            await again.wait_for(lambda: text(mine) == "offline shared!")
            await barrier(writer)
            assert text(writer.doc) == "shared!"
            assert again.close_code is None
            await wait_stored(srv, "shared!")
    async with joined(srv, write=True) as late:
        assert text(late.doc) == "shared!"


async def awareness_seen_by_writer(srv: RunningServer) -> tuple[bool, bool, bool]:
    """(writer saw the reader's presence, reader saw the writer's, the room holds the reader's)."""
    async with joined(srv, write=True) as writer, joined(srv, write=False) as reader:
        await reader.set_awareness({"user": "reader"})
        await barrier(reader)  # the reader's awareness was handled (relayed or not)
        await writer.set_awareness({"user": "writer"})
        # The writer's own state comes back after anything queued for it before.
        await writer.wait_for(lambda: writer.client_id in writer.present())
        await reader.wait_for(lambda: writer.client_id in reader.present())
        held = reader.client_id in srv.hub.rooms["doc"].awareness.states()
        # A late joiner asking for everyone's presence (it gets the room's states on join too).
        async with joined(srv, write=True) as late:
            await late.send(p.QUERY_AWARENESS_MESSAGE)
            await barrier(late)
            assert (reader.client_id in late.present()) == held
        return reader.client_id in writer.present(), writer.client_id in reader.present(), held


async def test_read_only_awareness_is_relayed_by_default(srv):
    assert await awareness_seen_by_writer(srv) == (True, True, True)


async def test_read_only_awareness_not_relayed_when_disabled(server_with):
    async with server_with(auth_secret=SECRET, read_only_awareness=False) as running:
        assert await awareness_seen_by_writer(running) == (False, True, False)


async def test_read_only_awareness_must_still_be_well_formed(server_with):
    async with server_with(auth_secret=SECRET, read_only_awareness=False) as running:
        async with joined(running, write=False) as reader:
            await reader.send(bytes([p.MSG_AWARENESS, 3, 1, 1]))  # truncated
            await reader.wait_for(lambda: reader.close_code is not None)
            assert reader.close_code == 1002
