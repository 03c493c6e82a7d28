"""Durability: the server as a real process, stopped with SIGTERM or killed with SIGKILL.

The promise under test: an update is committed within the commit window after the server
received it, a SIGTERM flushes everything before exit 0, and clients that kept their documents
resend whatever a crash lost. "Received" is measured from outside: an observer client in the same
room notes when each id reached it (the server fans out before or while it commits), so an id the
observer saw at least a margin of two commit windows before the kill must be in the store.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Text

from storage import PendingUpdate, fold, open_store
from tests.procs import ServerProcess
from tests.ywire import YClient, connected, ids_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.durability]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WINDOW_S = 0.050  # Settings.commit_window_ms
START_DEADLINE_S = 20.0


# -- clients ---------------------------------------------------------------------------------


async def restored_ids(url: str, name: str) -> list[str]:
    """What a fresh client, with no local state, gets for `name`."""
    async with connected(url, name) as client:
        return ids_of(client.doc)


class Observer:
    """Notes the first time each id appears in its copy of the room."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.seen: dict[str, float] = {}
        self._sub = self.doc.get("ids", type=Array).observe(self._on_change)

    def _on_change(self, event: Any) -> None:
        now = time.monotonic()
        for op in event.delta:
            for value in op.get("insert", ()):
                self.seen.setdefault(str(value), now)

    def seen_before(self, deadline: float) -> set[str]:
        return {value for value, at in self.seen.items() if at <= deadline}


async def write_ids(
    doc: Doc[Any], prefix: str, per_second: float, stop: anyio.Event, written: set[str]
) -> None:
    """Append unique ids to the doc's "ids" array at a steady rate until `stop` is set."""
    ids = doc.get("ids", type=Array)
    interval = 1 / per_second
    due = time.monotonic()
    n = 0
    while not stop.is_set():
        value = f"{prefix}-{n}"
        written.add(value)
        ids.append(value)
        n += 1
        due += interval
        await anyio.sleep(max(0.0, due - time.monotonic()))


@asynccontextmanager
async def in_rooms(
    url: str, docs: list[str], observers: dict[str, Observer] | None = None
) -> AsyncIterator[dict[str, YClient]]:
    """One synced writer per document (and the observers, when given), connected together."""
    async with AsyncExitStack() as stack:
        for name, observer in (observers or {}).items():
            await stack.enter_async_context(connected(url, name, doc=observer.doc))
        writers = {name: await stack.enter_async_context(connected(url, name)) for name in docs}
        yield writers


def check_restored(name: str, restored: list[str], required: set[str], written: set[str]) -> None:
    assert len(restored) == len(set(restored)), f"{name}: duplicated ids after restart"
    unknown = set(restored) - written
    assert not unknown, f"{name}: ids nobody wrote: {sorted(unknown)[:5]}"
    lost = required - set(restored)
    assert not lost, f"{name}: lost {len(lost)} of {len(required)} ids: {sorted(lost)[:5]}"


async def store_filler(database_url: str, docs: list[str], items: int) -> None:
    """Give every document `items` separate Yjs items (prepends never merge into one block), so
    that each compaction has real work to do and a kill is likelier to land in one."""
    doc: Doc[Any] = Doc()
    filler = doc.get("filler", type=Text)
    with doc.transaction():
        for _ in range(items):
            filler.insert(0, "xy")
    update = doc.get_update()
    store = await open_store(database_url)
    try:
        await store.append([PendingUpdate(name, update, int(time.time() * 1000)) for name in docs])
    finally:
        await store.close()


async def crash_cycles(
    server: ServerProcess,
    *,
    docs: list[str],
    cycles: int,
    per_second: float,
    kill_after: tuple[float, float],
    seed: int,
    filler_items: int = 0,
) -> int:
    """Write to every doc, kill -9 at a random instant, restart and check; `cycles` times.

    After each restart a fresh client must have every id that was durable before, plus every id
    an observer saw two commit windows before the kill; nothing twice, nothing unwritten.
    Returns how many ids that made required, so callers can tell the test did real work.
    """
    rng = random.Random(seed)
    margin = 2 * DEFAULT_WINDOW_S
    written: set[str] = set()
    required: dict[str, set[str]] = {name: set() for name in docs}
    in_time_total = 0
    if filler_items:
        await store_filler(server.database_url, docs, filler_items)
    for cycle in range(cycles + 1):
        await server.start()
        for name in docs:
            restored = await restored_ids(server.url, name)
            check_restored(f"seed {seed} cycle {cycle} {name}", restored, required[name], written)
            required[name] = set(restored)  # once durable, always durable (compaction too)
        if cycle == cycles:
            break
        observers = {name: Observer() for name in docs}
        stop = anyio.Event()
        async with (
            in_rooms(server.url, docs, observers) as writers,
            anyio.create_task_group() as tg,
        ):
            for k, writer in enumerate(writers.values()):
                rate = per_second / len(docs)
                tg.start_soon(write_ids, writer.doc, f"c{cycle}-d{k}", rate, stop, written)
            await anyio.sleep(rng.uniform(*kill_after))  # the deliberate random instant
            stop.set()
            kill_at = time.monotonic()
            server.kill()
        assert await server.wait_exit(10) == -signal.SIGKILL
        for name, observer in observers.items():
            in_time = observer.seen_before(kill_at - margin)
            in_time_total += len(in_time - required[name])
            required[name] |= in_time
    await server.stop()
    return in_time_total


# -- the tests -------------------------------------------------------------------------------


async def sigterm_with_dirty_rooms(server: ServerProcess, docs: list[str]) -> dict[str, list[str]]:
    """Write three updates into every doc, make sure none is committed yet, SIGTERM while the
    writers are still connected; check the 1001s and the clean, prompt exit; restart and check
    that a fresh client gets every update of every doc."""
    await server.start()
    async with in_rooms(server.url, docs) as writers:
        for name, writer in writers.items():
            ids = writer.doc.get("ids", type=Array)
            for i in range(3):
                ids.append(f"{name}-{i}")  # three transactions: three updates per document
        with anyio.fail_after(5):
            while (await server.health())["uncommitted_updates"] < 3 * len(docs):
                await anyio.sleep(0.01)
        assert (await server.health())["uncommitted_updates"] == 3 * len(docs), "already committed"

        signalled = time.monotonic()
        server.terminate()
        for writer in writers.values():
            await writer.wait_for(lambda w=writer: w.close_code is not None, timeout=5)
        codes = {name: w.close_code for name, w in writers.items()}
        assert set(codes.values()) == {1001}, codes
        status = await server.wait_exit(10)
        took = time.monotonic() - signalled
        expected = {name: ids_of(w.doc) for name, w in writers.items()}
    assert status == 0, server.log_tail()
    assert took < 5, f"shutdown took {took:.1f} s"
    shutdown_log = [line for line in server.log_tail(500).splitlines() if "collab.hub" in line]

    await server.start()
    restored = {name: await restored_ids(server.url, name) for name in docs}
    await server.stop()
    lost = {name: ids for name, ids in expected.items() if restored[name] != ids}
    assert not lost, f"{len(lost)} of {len(docs)} documents lost updates; {shutdown_log[-1:]}"
    return restored


async def test_sigterm_flushes_dirty_rooms_and_exits_0(launch: Any) -> None:
    # A wide commit window keeps every room dirty until the signal (checked through /healthz):
    # only the shutdown flush can save these updates.
    server = launch("--commit-window-ms", "3000")
    await sigterm_with_dirty_rooms(server, [f"sigterm/{i}" for i in range(30)])


async def test_sigterm_does_not_wait_out_a_long_commit_window(launch: Any) -> None:
    # The flush must cut the group-commit gathering wait short: waiting out 30 s here would pass
    # the 2 s shutdown deadline and drop every room.
    server = launch("--commit-window-ms", "60000", "--shutdown-timeout-s", "2")
    await sigterm_with_dirty_rooms(server, [f"sigterm/{i}" for i in range(5)])


async def test_kill_9_loses_nothing_older_than_the_commit_window(launch: Any) -> None:
    server = launch()
    in_time = await crash_cycles(
        server,
        docs=[f"crash/{i}" for i in range(4)],
        cycles=4,
        per_second=200,
        kill_after=(0.5, 1.5),
        seed=random.randrange(1 << 30),
    )
    assert in_time > 200, "the observers saw too little for the test to mean anything"


async def test_kill_9_during_compaction_loses_and_duplicates_nothing(launch: Any) -> None:
    server = launch("--compact-after-rows", "20", "--compact-log-share", "0")
    in_time = await crash_cycles(
        server,
        docs=[f"compact/{i}" for i in range(3)],
        cycles=8,
        per_second=200,
        kill_after=(0.3, 1.2),
        seed=random.randrange(1 << 30),
        filler_items=20_000,
    )
    assert in_time > 200, "the observers saw too little for the test to mean anything"
    # ~20-50 ms each (the filler makes them real work), a few per second: several kills
    # should land inside one.
    compactions = server.log_tail(100_000).count("storage.sql: compacted ")
    assert compactions >= 12, f"only {compactions} compactions: the kills did not race them"


async def test_writers_resend_what_a_crash_lost(launch: Any) -> None:
    # A wide commit window makes the crash lose updates for certain (the server holds up to
    # half a second of them); the writers' own documents still have everything.
    server = launch("--commit-window-ms", "1000")
    await server.start()
    docs = [f"resend/{i}" for i in range(3)]
    written: set[str] = set()
    stop = anyio.Event()
    async with in_rooms(server.url, docs) as writers, anyio.create_task_group() as tg:
        for k, writer in enumerate(writers.values()):
            tg.start_soon(write_ids, writer.doc, f"d{k}", 200 / len(docs), stop, written)
        await anyio.sleep(random.uniform(0.6, 1.2))  # the deliberate random instant
        stop.set()
        server.kill()
    assert await server.wait_exit(10) == -signal.SIGKILL
    docs_of = {name: w.doc for name, w in writers.items()}
    sent = {name: set(ids_of(doc)) for name, doc in docs_of.items()}
    for k, doc in enumerate(docs_of.values()):  # edits made while offline travel too
        for i in range(3):
            value = f"offline-d{k}-{i}"
            written.add(value)
            doc.get("ids", type=Array).append(value)

    await server.start()
    survived = {name: set(await restored_ids(server.url, name)) for name in docs}
    lost = sum(len(sent[name] - survived[name]) for name in docs)
    assert lost > 0, "the crash lost nothing that was sent: this test did not exercise resending"
    expected = {name: set(ids_of(doc)) for name, doc in docs_of.items()}

    async with AsyncExitStack() as stack:
        watchers = {n: await stack.enter_async_context(connected(server.url, n)) for n in docs}
        for name, doc in docs_of.items():  # a y-websocket reconnect: same Doc, new socket
            await stack.enter_async_context(connected(server.url, name, doc=doc))
        for name, watcher in watchers.items():
            await watcher.wait_for(lambda w=watcher, n=name: set(ids_of(w.doc)) >= expected[n])
    await server.stop()

    store = await open_store(server.database_url)
    try:
        for name in docs:
            stored = await store.load(name)
            doc: Doc[Any] = Doc()
            doc.apply_update(fold([stored.snapshot] if stored.snapshot else [], stored.updates))
            ids = ids_of(doc)
            assert len(ids) == len(set(ids)), f"{name}: duplicated ids"
            assert set(ids) == expected[name], f"{name}: store differs from what was written"
            assert set(ids) <= written
    finally:
        await store.close()
