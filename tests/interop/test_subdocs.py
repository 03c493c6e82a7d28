"""Subdocuments made by real Yjs clients keep their options (guid, meta, autoLoad, shouldLoad,
gc) for clients that join later: on the same server, after a restart, after a compaction (live,
and by `collab compact`), and through another process of a cluster.

yrs drops `meta` whenever it re-encodes a subdocument (collab/subdocs.py says where and why);
each test checks what a late joiner sees against what a client online at the time saw.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from collab import cli
from collab import protocol as p
from collab.settings import Settings
from tests.conftest import RunningServer, free_port, require, serving
from tests.integration.test_cluster import RedisServer
from tests.integration.test_websocket import binary, connect

from .yjsnode import HERE, NodeYClient

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

# Each as given to `new Y.Doc(opts)` by the client that makes it.
SUBDOCS: dict[str, dict[str, Any]] = {
    "notes": {"guid": "sd-notes", "meta": {"title": "Notes", "n": 1, "tags": ["a", "b"]}},
    "auto": {"guid": "sd-auto", "autoLoad": True, "meta": "loads itself"},
    "nogc": {"guid": "sd-nogc", "gc": False, "meta": {"kept": None, "pi": 3.25}},
    "lazy": {"guid": "sd-lazy", "shouldLoad": False, "meta": {"lazy": True}},
    "plain": {"guid": "sd-plain"},
}


def as_received(opts: dict[str, Any]) -> dict[str, Any]:
    """How a Yjs peer sees a subdocument it receives: Yjs sends gc: false, autoLoad: true and
    meta when set, and the peer loads it if autoLoad (ContentDoc.js)."""
    return {
        "guid": opts["guid"],
        "meta": opts.get("meta"),
        "autoLoad": opts.get("autoLoad", False),
        "shouldLoad": opts.get("autoLoad", False),
        "gc": opts.get("gc", True),
    }


EXPECTED = {key: as_received(opts) for key, opts in SUBDOCS.items()}

Spawn = Callable[[str, str], Awaitable[NodeYClient]]


@pytest.fixture
async def yjs(node_available: None) -> AsyncIterator[Spawn]:
    """`await yjs(url, room)`: a Node y-websocket client; all are killed at teardown."""
    clients: list[NodeYClient] = []

    async def spawn(url: str, room: str) -> NodeYClient:
        client = await NodeYClient.start(url, room)
        clients.append(client)
        return client

    try:
        yield spawn
    finally:
        for client in clients:
            await client.kill()


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return settings.replace(port=free_port(), unload_grace_s=0.0)


async def make_subdocs(yjs: Spawn, srv: RunningServer, room: str) -> None:
    """A client makes every subdocument; one online meanwhile sees them as expected; both
    go, and everything is committed."""
    online = await yjs(srv.url, room)
    await online.synced()
    writer = await yjs(srv.url, room)
    await writer.synced()
    for key, opts in SUBDOCS.items():
        await writer.set_subdoc(key, **opts)
    assert await online.subdocs(*SUBDOCS) == EXPECTED
    await writer.kill()
    await online.kill()
    await srv.hub.saver.flush()


async def late_view(yjs: Spawn, srv: RunningServer, room: str) -> dict[str, Any]:
    late = await yjs(srv.url, room)
    await late.synced()
    try:
        return await late.subdocs(*SUBDOCS)
    finally:
        await late.kill()  # before its server goes: no reconnecting meanwhile


async def yjs_updates() -> tuple[list[bytes], bytes]:
    """SUBDOCS made by Yjs in one Y.Doc, one transaction each: (the updates, the whole state)."""
    script = """
        import * as Y from 'yjs'
        const doc = new Y.Doc()
        const updates = []
        doc.on('update', (update) => updates.push(Buffer.from(update).toString('hex')))
        for (const [key, opts] of Object.entries(JSON.parse(process.argv[1]))) {
          doc.getMap('subdocs').set(key, new Y.Doc(opts))
        }
        const state = Buffer.from(Y.encodeStateAsUpdate(doc)).toString('hex')
        process.stdout.write(JSON.stringify({ updates, state }))
    """
    node = shutil.which("node")
    assert node is not None
    done = await anyio.run_process(
        [node, "--input-type=module", "-e", script, json.dumps(SUBDOCS)], cwd=HERE
    )
    made = json.loads(done.stdout)
    return [bytes.fromhex(u) for u in made["updates"]], bytes.fromhex(made["state"])


async def test_late_joiner_sees_the_subdocuments_options(yjs: Spawn, server: RunningServer) -> None:
    room = "subdocs/late"
    await make_subdocs(yjs, server, room)
    assert await late_view(yjs, server, room) == EXPECTED


async def test_subdocuments_options_survive_a_restart(yjs: Spawn, quick: Settings) -> None:
    room = "subdocs/restart"
    async with serving(quick) as srv:
        await make_subdocs(yjs, srv, room)
    async with serving(quick.replace(port=free_port())) as srv:
        assert await late_view(yjs, srv, room) == EXPECTED


async def test_subdocuments_options_survive_live_compaction(yjs: Spawn, quick: Settings) -> None:
    room = "subdocs/compacted"
    settings = quick.replace(compact_after_rows=1)
    async with serving(settings) as srv:
        await make_subdocs(yjs, srv, room)
        srv.hub.saver.request_compaction(room)
        await srv.hub.saver.flush()
        stored = await srv.hub.store.load(room)
        assert stored.snapshot is not None and not stored.updates  # all in the snapshot
        assert await late_view(yjs, srv, room) == EXPECTED
    async with serving(settings.replace(port=free_port())) as srv:
        assert await late_view(yjs, srv, room) == EXPECTED


async def test_subdocuments_options_survive_offline_compaction(yjs: Spawn, quick: Settings) -> None:
    """`collab compact` replays the log (there is no live document to take)."""
    room = "subdocs/offline"
    async with serving(quick) as srv:
        await make_subdocs(yjs, srv, room)
    assert await cli.compact(quick, argparse.Namespace(name=room)) == 0
    async with serving(quick.replace(port=free_port())) as srv:
        stored = await srv.hub.store.load(room)
        assert stored.snapshot is not None and not stored.updates
        assert await late_view(yjs, srv, room) == EXPECTED


async def test_deleted_subdocument_stays_deleted_and_the_others_keep_their_options(
    yjs: Spawn, quick: Settings
) -> None:
    room = "subdocs/deleted"
    async with serving(quick) as srv:
        await make_subdocs(yjs, srv, room)
        writer = await yjs(srv.url, room)
        await writer.synced()
        await writer.subdocs(*SUBDOCS)
        await writer.delete_subdoc("notes")
        await writer.set_subdoc("notes", guid="sd-notes-2", meta={"second": True})
        await writer.kill()
        await srv.hub.saver.flush()
    expected = {**EXPECTED, "notes": as_received({"guid": "sd-notes-2", "meta": {"second": True}})}
    async with serving(quick.replace(port=free_port())) as srv:
        late = await yjs(srv.url, room)
        await late.synced()
        assert await late.subdocs(*SUBDOCS) == expected
        await late.kill()


async def test_subdocuments_sent_back_to_back_keep_their_options(
    yjs: Spawn, quick: Settings
) -> None:
    """Updates a client sends back to back are applied (and forwarded, and stored) as one
    merged update, which yrs encodes."""
    room = "subdocs/merged"
    updates, _ = await yjs_updates()
    async with serving(quick) as srv:
        online = await yjs(srv.url, room)
        await online.synced()
        async with connect(srv, room) as ws:
            await ws.join()
            await ws.send(*(binary(p.update_message(u)) for u in updates))  # one TCP write
            assert await online.subdocs(*SUBDOCS) == EXPECTED
        await srv.hub.saver.flush()
        stored = await srv.hub.store.load(room)
        assert len(stored.updates) == 1  # they did arrive in one read, and were merged
        await online.kill()
    async with serving(quick.replace(port=free_port())) as srv:
        assert await late_view(yjs, srv, room) == EXPECTED


async def test_subdocuments_in_a_sync_step_2_keep_their_options(
    yjs: Spawn, quick: Settings
) -> None:
    """A client's sync step 2 is applied, and what it changed (encoded by yrs) is forwarded
    and stored."""
    room = "subdocs/step2"
    _, state = await yjs_updates()
    async with serving(quick) as srv:
        online = await yjs(srv.url, room)
        await online.synced()
        async with connect(srv, room) as ws:
            await ws.join()
            await ws.send(binary(p.sync_step2(state)))
            assert await online.subdocs(*SUBDOCS) == EXPECTED
        await srv.hub.saver.flush()
        await online.kill()
    async with serving(quick.replace(port=free_port())) as srv:
        assert await late_view(yjs, srv, room) == EXPECTED


@pytest.mark.redis
async def test_subdocuments_keep_their_options_through_another_process(
    yjs: Spawn, quick: Settings, tmp_path: Path
) -> None:
    """Two processes (here: two servers in this one) on one store and a Redis bus: a client of
    the second sees what a client of the first made, also when it joins later."""
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    await redis.start()
    room = "subdocs/cluster"
    try:
        cluster = quick.replace(redis_url=redis.url, bus="redis")
        async with (
            serving(cluster) as first,
            serving(cluster.replace(port=free_port())) as second,
        ):
            online = await yjs(second.url, room)  # the second holds the document first
            await online.synced()
            writer = await yjs(first.url, room)
            await writer.synced()
            for key, opts in SUBDOCS.items():
                await writer.set_subdoc(key, **opts)
            assert await online.subdocs(*SUBDOCS) == EXPECTED
            assert await late_view(yjs, second, room) == EXPECTED
            # Once unloaded, the room's document goes (the subdocs observer would hold it).
            doc = weakref.ref(second.hub.rooms[room].doc)
            await writer.kill()
            await online.kill()
            with anyio.fail_after(10):  # unloaded at the hub's next tick: poll for it
                while room in second.hub.rooms:
                    await anyio.sleep(0.05)
            gc.collect()
            assert doc() is None
    finally:
        await redis.kill()
