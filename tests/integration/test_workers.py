"""`collab serve --workers 2` on one machine, without a bus (issue 16): the supervisor routes
each connection by the document its path names, so a document's clients are all in one worker;
what reaches a document from another worker (/hocuspocus, a keep-alive connection's later
request) is relayed by the local bus; a client that never finishes its request line holds up
no one; SIGTERM drains every worker.

Which worker holds a connection is read from /proc (the worker's socket inodes), not from
anything the server says about itself."""

from __future__ import annotations

import os
import signal
import socket
import zlib
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import httpx
import pytest
from pycrdt import Array, Doc

from collab import protocol as p
from collab.protocols import hocuspocus_codec as hp
from collab.workers import document_of, owner
from tests.hocuspocus_wire import HocuspocusWire, auth, hocuspocus_wire, message
from tests.integration import test_cluster
from tests.integration.test_cluster import (
    RedisServer,
    Spawn,
    alive,
    connection_owners,
    until,
    worker_pids,
)
from tests.integration.test_metrics import total, until_total
from tests.ywire import connected, ids_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
spawn = test_cluster.spawn  # fixtures: a `collab serve` subprocess, killed after the test
redis = test_cluster.redis  # a redis-server of its own


def test_the_path_names_the_document() -> None:
    assert document_of(b"GET /ws/team%2Fnotes?token=x HTTP/1.1") == "team/notes"
    assert document_of(b"GET /ws/a/b HTTP/1.1") == "a/b"
    assert document_of(b"GET /collab/ws/doc HTTP/1.1") == "doc"  # a mount prefix
    assert document_of(b"POST /api/documents/d%C3%A9j%C3%A0/update HTTP/1.1") == "déjà"
    assert document_of(b"GET /api/admin/documents/x HTTP/1.1") == "x"
    assert document_of(b"GET /api/documents/x HTTP/1.1") == "x"
    for line in (b"GET /hocuspocus HTTP/1.1", b"GET /healthz HTTP/1.1", b"GET /ws/ HTTP/1.1"):
        assert document_of(line) is None
    assert document_of(b"GET /ws/%FF HTTP/1.1") is None
    assert document_of(b"garbage") is None
    assert owner("doc", 2) == zlib.crc32(b"doc") % 2


def names_owned_by_each(workers: int) -> list[str]:
    """A document name per worker index, owned by that worker."""
    names: dict[int, str] = {}
    i = 0
    while len(names) < workers:
        name = f"routed/{i}"
        names.setdefault(owner(name, workers), name)
        i += 1
    return [names[w] for w in range(workers)]


async def start_workers(spawn: Spawn, *flags: str) -> tuple[object, list[int]]:
    server = spawn("workers", "--workers", "2", *flags)
    await server.start()
    assert server.proc is not None
    with anyio.fail_after(20):
        while len(pids := worker_pids(server.proc.pid)) < 2:
            await anyio.sleep(0.02)
    # Both workers serve before the test goes on (/healthz goes to each in turn).
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(4):
            assert (await http.get(f"http://127.0.0.1:{server.port}/readyz")).status_code == 200
    return server, pids


def holder(port: int, pids: list[int]) -> set[int]:
    return {pid for pid, n in connection_owners(port, pids).items() if n}


async def test_a_documents_clients_share_a_worker_and_sync(spawn: Spawn) -> None:
    server, pids = await start_workers(spawn)
    port = server.port  # type: ignore[attr-defined]
    url = server.url  # type: ignore[attr-defined]
    a, b = names_owned_by_each(2)
    async with AsyncExitStack() as stack:
        first = [await stack.enter_async_context(connected(url, a)) for _ in range(4)]
        assert len(holder(port, pids)) == 1, connection_owners(port, pids)
        second = [await stack.enter_async_context(connected(url, b)) for _ in range(4)]
        counts = connection_owners(port, pids)
        assert sorted(counts.values()) == [4, 4], counts  # one document per worker
        for group in (first, second):
            for i, client in enumerate(group):
                client.doc.get("ids", type=Array).append(f"c{i}")
        everything = {f"c{i}" for i in range(4)}
        await until(
            lambda: all(set(ids_of(c.doc)) == everything for c in first + second),
            10,
            "clients of one document did not converge",
        )
    await server.stop()  # type: ignore[attr-defined]
    assert not any(alive(pid) for pid in pids), "a worker outlived SIGTERM"


async def hocuspocus_in_other_worker(
    stack: AsyncExitStack, url: str, port: int, pids: list[int], not_in: int
) -> HocuspocusWire:
    """A /hocuspocus socket (routed to the workers in turn) held by a worker other than
    `not_in`."""
    for _ in range(6):
        before = connection_owners(port, pids)
        wire = await stack.enter_async_context(hocuspocus_wire(url))
        after = connection_owners(port, pids)
        if after[not_in] == before[not_in]:
            return wire
    raise AssertionError("every /hocuspocus socket landed in the document's worker")


async def test_hocuspocus_and_ws_clients_in_different_workers_sync(spawn: Spawn) -> None:
    await hocuspocus_and_ws_sync(spawn)


@pytest.mark.redis
async def test_with_redis_the_workers_use_it(spawn: Spawn, redis: RedisServer) -> None:
    """With an external bus configured, the workers keep a shared document in step over it."""
    await hocuspocus_and_ws_sync(spawn, "--redis-url", redis.url)


async def hocuspocus_and_ws_sync(spawn: Spawn, *flags: str) -> None:
    server, pids = await start_workers(spawn, *flags)
    port = server.port  # type: ignore[attr-defined]
    url = server.url  # type: ignore[attr-defined]
    name = "mixed/doc"
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(connected(url, name))
        (ws_worker,) = holder(port, pids)
        hocus = await hocuspocus_in_other_worker(stack, url, port, pids, ws_worker)
        await hocus.send(auth(name))
        await hocus.expect(name, hp.AUTH)
        # The /hocuspocus client writes; the /ws client (the other worker) sees it.
        theirs: Doc = Doc()
        theirs.get("ids", type=Array).append("from-hocuspocus")
        update = theirs.get_update()
        await hocus.send(message(name, hp.SYNC, bytes((p.SYNC_UPDATE,)) + p.var_bytes(update)))
        await ws.wait_for(lambda: "from-hocuspocus" in ids_of(ws.doc), timeout=10)
        # And the other way.
        ws.doc.get("ids", type=Array).append("from-ws")
        with anyio.fail_after(10):
            while "from-ws" not in ids_of(theirs):
                body = await hocus.expect(name, hp.SYNC)
                if body[0] in (p.SYNC_STEP2, p.SYNC_UPDATE):
                    theirs.apply_update(p.read_var_bytes(body, 1)[0])
    await server.stop()  # type: ignore[attr-defined]


async def test_rest_write_in_the_other_worker_reaches_live_clients(spawn: Spawn) -> None:
    server, pids = await start_workers(spawn)
    port = server.port  # type: ignore[attr-defined]
    url = server.url  # type: ignore[attr-defined]
    live, other = names_owned_by_each(2)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(connected(url, live))
        (live_worker,) = holder(port, pids)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(trust_env=False, base_url=base) as http:
            # A keep-alive connection routed by its first request (another worker's document)
            first = await http.get(f"/api/documents/{other.replace('/', '%2F')}")
            assert first.status_code in (200, 404), first.text
            theirs: Doc = Doc()
            theirs.get("ids", type=Array).append("from-rest")
            written = await http.post(
                f"/api/documents/{live.replace('/', '%2F')}/update", content=theirs.get_update()
            )
            assert written.status_code < 300, written.text
            owners = connection_owners(port, pids)
            assert owners[live_worker] == 1, owners  # the HTTP connection is in the other one
        await client.wait_for(lambda: "from-rest" in ids_of(client.doc), timeout=10)
    await server.stop()  # type: ignore[attr-defined]


async def test_a_silent_or_garbage_client_blocks_no_one(spawn: Spawn) -> None:
    server, _ = await start_workers(spawn)
    port = server.port  # type: ignore[attr-defined]
    url = server.url  # type: ignore[attr-defined]
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"GET /ws/half")  # half a request line, never finished
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"\x16\x03\x01" + bytes(range(256)) * 40)  # a TLS hello's look, no newline
    try:
        with anyio.fail_after(10):
            async with connected(url, "after/them") as client:
                assert client.synced
            async with httpx.AsyncClient(trust_env=False) as http:
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            # Handed over, a socket keeps its peer: the worker sees the client's address.
            with socket.create_connection(("127.0.0.1", port)) as plain:
                plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert (await anyio.to_thread.run_sync(plain.recv, 100)).startswith(b"HTTP/1.1 200")
                seen = f'127.0.0.1:{plain.getsockname()[1]} - "GET /healthz'
            await until(
                lambda: seen in server.log_tail(200),  # type: ignore[attr-defined]
                10,
                f"no access log line for {seen}",
            )
        with anyio.fail_after(10):  # the garbage is answered by a worker: 400, or closed
            reply = await anyio.to_thread.run_sync(garbage.recv, 100)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply
    finally:
        for sock in (*silent, half, garbage):
            sock.close()
    await server.stop()  # type: ignore[attr-defined]


async def test_a_dead_worker_is_replaced_and_its_documents_served_again(spawn: Spawn) -> None:
    server, pids = await start_workers(spawn)
    port = server.port  # type: ignore[attr-defined]
    url = server.url  # type: ignore[attr-defined]
    supervisor = server.proc.pid  # type: ignore[attr-defined]
    name = "survives/doc"
    async with connected(url, name):
        (victim,) = holder(port, pids)
    os.kill(victim, signal.SIGKILL)
    with anyio.fail_after(30):
        while victim in (now := worker_pids(supervisor)) or len(now) < 2:
            await anyio.sleep(0.05)
    async with connected(url, name) as one, connected(url, name) as two:
        assert holder(port, now) == set(now) - set(pids), "not served by the new worker"
        one.doc.get("ids", type=Array).append("after")
        await two.wait_for(lambda: "after" in ids_of(two.doc), timeout=10)
    await server.stop()  # type: ignore[attr-defined]


async def test_sigterm_drains_every_worker_and_the_supervisor_keeps_handing_over(
    spawn: Spawn,
) -> None:
    """During the drain period /readyz answers 503 from every worker, and a new client is
    still served (the supervisor hands sockets over until the period ends); then all exit 0."""
    server, pids = await start_workers(spawn, "--drain-s", "3")
    url = server.url  # type: ignore[attr-defined]
    port = server.port  # type: ignore[attr-defined]
    a, b = names_owned_by_each(2)
    async with connected(url, a) as first:
        server.terminate()  # type: ignore[attr-defined]
        async with httpx.AsyncClient(trust_env=False) as http:
            with anyio.fail_after(2):
                answers = set()
                while answers != {503}:  # each worker in turn, until both said 503
                    answers = set()
                    for _ in range(2):
                        answers.add((await http.get(f"http://127.0.0.1:{port}/readyz")).status_code)
        async with connected(url, b) as late:  # served, in the drain period
            late.doc.get("ids", type=Array).append("late")
            await late.sent()
        await first.wait_for(lambda: first.close_code is not None, timeout=10)
        assert first.close_code == 1001, first.close_code
    assert await server.wait_exit(15) == 0  # type: ignore[attr-defined]
    assert not any(alive(pid) for pid in pids), "a worker outlived SIGTERM"


async def test_a_document_in_one_worker_puts_nothing_on_the_local_bus(spawn: Spawn) -> None:
    server, _ = await start_workers(spawn)
    url = server.url  # type: ignore[attr-defined]
    metrics = f"http://127.0.0.1:{server.port}/metrics"  # type: ignore[attr-defined]
    async with connected(url, "affine/doc") as one, connected(url, "affine/doc") as two:
        ids = one.doc.get("ids", type=Array)
        for i in range(100):  # one at a time: 100 updates, none merged with another
            ids.append(f"u{i}")
            await two.wait_for(lambda n=i + 1: len(ids_of(two.doc)) == n, timeout=10)
        # (the workers hand their counts over once a second, all of them at once)
        await until_total(metrics, "collab_updates_applied_total", 100)
        published = await total(metrics, "collab_bus_messages_total", direction="published")
    # Heartbeats (one a second per worker) and the state exchange when a peer appears: not
    # the 100 updates.
    assert published < 60, published
    await server.stop()  # type: ignore[attr-defined]


async def test_each_documents_change_events_are_made_once_under_two_workers(spawn: Spawn) -> None:
    # Each worker's finalizer leaves the marks of the other's documents to it (it makes their
    # events from its room instead of rebuilding them from the store): nothing is left behind
    # or made twice, whichever worker the event stream is read from.
    import json

    server, _ = await start_workers(spawn, "--events-debounce-ms", "1")
    url = server.url  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    names = names_owned_by_each(2)
    changed: dict[str, int] = {}
    async with (
        httpx.AsyncClient(base_url=base, trust_env=False, timeout=None) as http,
        http.stream("GET", "/api/events", params={"prefix": "routed/"}) as stream,
        AsyncExitStack() as stack,
    ):
        assert stream.status_code == 200
        for k, name in enumerate(names):
            client = await stack.enter_async_context(connected(url, name))
            client.doc.get("ids", type=Array).append(f"w{k}")
        with anyio.fail_after(20):
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event["type"] == "document.changed":
                        doc = event["document"]
                        changed[doc] = changed.get(doc, 0) + 1
                if set(changed) == set(names):
                    break
    assert changed == {name: 1 for name in names}, changed
    await server.stop()  # type: ignore[attr-defined]


async def test_workers_whose_supervisor_was_killed_close_their_clients_and_exit(
    spawn: Spawn,
) -> None:
    """A supervisor killed with -9 (an OOM kill, `kill -9`) leaves its workers without a way in
    for new clients: they drain as on SIGTERM (1001, flush) and exit, instead of serving the
    clients they hold for ever as orphans (they once did)."""
    server, pids = await start_workers(spawn)
    url = server.url  # type: ignore[attr-defined]
    async with connected(url, "orphaned/doc") as client:
        client.doc.get("ids", type=Array).append("kept")
        await client.sent()
        os.kill(server.proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        await client.wait_for(lambda: client.close_code is not None, timeout=15)
        assert client.close_code == 1001
    with anyio.fail_after(15):
        while any(running(pid) for pid in pids):
            await anyio.sleep(0.05)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
