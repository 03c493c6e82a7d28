"""Cluster mode over Redis: several `collab serve` processes sharing every document.

Each test starts real server processes (`python -m collab serve --redis-url ... --database-url
<PostgreSQL>`), its own redis-server on a free port (so it may kill, restart or pause it without
touching the machine's shared Redis, and no other test run's heartbeats reach it) and a fresh
PostgreSQL database of its own (tests/pg.py), dropped afterwards. Clients are tests/ywire.py's
YClient; one that loses its server reconnects elsewhere with the same Doc, as a y-websocket
provider does.

What issue 5 asks to see:
- random concurrent edits (Text, Map, Array) on 3 processes x 10 documents converge, in every
  client and in the store, before and after SIGTERM (COLLAB_CLUSTER_SECONDS of editing: 120 in
  CI, 20 elsewhere);
- kill -9 of a process while its clients write loses nothing, for the clients and the store;
- Redis killed and restarted, or paused for 5 s: local clients keep working meanwhile, and all
  clients converge within 5 s of its return;
- awareness across processes: shown, removed on close within 2 s, and on kill -9 of the holder
  within the peer timeout;
- a process that opens a document gets the edits another process holds only in memory;
- (`--workers 2`, documents routed to one worker, Redis or a local bus between workers:
  tests/integration/test_workers.py).
Cross-process update latency (idle, and under the soak's load) and the bytes Redis moves per
update are printed, not asserted: run with `-s` to see them.

The last tests (and test_survivor_stopped_soon_after_a_crash_keeps_the_crashed_peers_edits)
pin down five bugs these tests found, each with the smallest setup that showed it; section 6
(issue 10) shows the bus heal by itself: a subscription Redis confirms late, Redis paused while
a process opens a document, a process whose loop stood still, a peer back from silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import re
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process, TaskStatus
from pycrdt import Array, Doc, Map, Text

from collab import protocol as p
from storage import fold, open_store
from tests.conftest import free_port, require
from tests.procs import ServerProcess, children
from tests.ywire import YClient, connected, ids_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("COLLAB_TEST_REQUIRE_SERVICES"))
# How long the three-process soaks edit (over Redis and over PostgreSQL, side by side). The
# issue asks for 2 minutes; the whole file then takes about 2.5 minutes in CI. Elsewhere a
# shorter default keeps `make test` quick.
SOAK_SECONDS = float(os.environ.get("COLLAB_CLUSTER_SECONDS") or (120 if IN_CI else 20))
POLL_S = 0.02
TICK_S = 1.0  # collab.hub.TICK_S: heartbeats go out, and silent peers are noticed, once a tick
DEFAULT_PEER_TIMEOUT_S = 5.0  # Settings.peer_timeout_s


# -- conditions ------------------------------------------------------------------------------


async def until(
    predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str]
) -> float:
    """Wait until `predicate()` holds (checked every POLL_S); fail with `what` after `timeout`.
    Returns the seconds it took."""
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout):
            while not predicate():
                await anyio.sleep(POLL_S)
    except TimeoutError:
        # An AssertionError, not pytest.fail: an OutcomeException wrapped in a task group's
        # exception group would stop anyio's test runner before the fixtures' teardown.
        message = what() if callable(what) else what
        raise AssertionError(f"not within {timeout:.1f} s: {message}") from None
    return time.monotonic() - started


async def first_of(*waits: Callable[[], Awaitable[Any]]) -> None:
    """Return as soon as any of the awaitables made by `waits` completes."""
    async with anyio.create_task_group() as tg:

        async def run(wait: Callable[[], Awaitable[Any]]) -> None:
            await wait()
            tg.cancel_scope.cancel()

        for wait in waits:
            tg.start_soon(run, wait)


def percentiles(samples: list[float]) -> str:
    if len(samples) < 2:
        return f"{len(samples)} samples"
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, "
        f"max {max(samples) * 1000:.2f} ms ({len(samples)} samples)"
    )


# -- services: our own redis-server, a fresh PostgreSQL database ------------------------------


class RedisServer:
    """A redis-server of our own on a free port, keeping nothing on disk; killed at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.proc is None
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.proc = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        with anyio.fail_after(10):
            while True:
                if self.proc.returncode is not None:  # not pytest.fail: see until()
                    raise AssertionError(f"redis-server exited with {self.proc.returncode}")
                try:
                    if await self.command("PING") == b"+PONG":
                        return
                except OSError:
                    pass
                await anyio.sleep(POLL_S)

    def pause(self) -> None:
        """SIGSTOP: Redis does nothing at all (reads, runs, answers) until resume()."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        await self.proc.aclose()
        self.proc = None

    async def command(self, *args: str) -> bytes:
        """One command over a fresh connection; the raw reply (bulk strings: their content)."""
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            request += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
        async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
            await stream.send(request)
            reply = b""
            while b"\r\n" not in reply:
                reply += await stream.receive()
            head, _, rest = reply.partition(b"\r\n")
            if not head.startswith(b"$"):
                return head
            length = int(head[1:])
            while len(rest) < length + 2:
                rest += await stream.receive()
            return rest[:length]

    async def stats(self) -> dict[str, int]:
        info = (await self.command("INFO", "stats")).decode()
        return {
            key: int(value)
            for key, _, value in (line.partition(":") for line in info.splitlines())
            if value.strip().isdigit()
        }


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    import shutil

    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    await server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            await server.kill()


class HeldProxy:
    """A TCP proxy to a local port that holds what clients send until release(); with `only`,
    only what the connection of that number (0: the first) sends, and from hold() on."""

    def __init__(self, target_port: int, only: int | None = None) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self.only = only
        self._released = anyio.Event()
        if only is not None:
            self._released.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hold(self) -> None:
        if self._released.is_set():
            self._released = anyio.Event()

    def release(self) -> None:
        self._released.set()

    async def serve(self, *, task_status: TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        async with listener:
            task_status.started()
            await listener.serve(self._relay)

    async def _relay(self, client: Any) -> None:
        number = self.connections
        self.connections += 1
        hold = self.only is None or self.only == number
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as upstream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, client, upstream, hold)
                tg.start_soon(self._pipe, upstream, client, False)

    async def _pipe(self, source: Any, sink: Any, hold: bool) -> None:
        try:
            async for chunk in source:
                if hold:
                    await self._released.wait()  # (the event of the moment: hold() replaces it)
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await sink.send_eof()


@pytest.fixture
def database(pg_database: str) -> str:
    """A new, empty PostgreSQL database (the production store) of this test's own, dropped
    afterwards (tests/pg.py). The processes of a test create its tables, starting at once."""
    return pg_database


# -- server processes --------------------------------------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    """The `--workers` processes a supervisor spawned (multiprocessing's spawn_main)."""
    pids = []
    for pid in children(supervisor):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


Spawn = Callable[..., ServerProcess]


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Spawn]:
    """spawn(label, *flags) -> a ServerProcess (not started) with its own directory and log.
    Whatever is still running afterwards is killed (workers of a supervisor too), and the end
    of every log is printed (pytest shows it when the test failed)."""
    made: list[tuple[str, ServerProcess]] = []
    logs = []

    def make(label: str, *flags: str) -> ServerProcess:
        directory = tmp_path / label
        directory.mkdir()
        log = (directory / "server.log").open("ab")
        logs.append(log)
        server = ServerProcess(directory, log, *flags)
        made.append((label, server))
        return server

    try:
        yield make
    finally:
        for label, server in made:
            if server.proc is None:
                continue
            server.kill_tree()
            try:
                await server.wait_exit(10)
            except TimeoutError:
                print(f"{label}: still running 10 s after SIGKILL")
        for label, server in made:
            print(f"--- {label} (port {server.port}) ---\n{server.log_tail(30)}")
        for log in logs:
            log.close()


def cluster_flags(redis: RedisServer, database: str) -> tuple[str, ...]:
    # A later --database-url wins over the SQLite one ServerProcess passes first.
    return ("--redis-url", redis.url, "--database-url", database)


def this_run(server: ServerProcess) -> str:
    """The server's log since it was last started."""
    return server.log_path.read_text(errors="replace").rpartition("=== start:")[2]


async def bus_connected(server: ServerProcess, processes: int = 1) -> None:
    """Wait until the server (each of its `processes`) has connected to Redis (/healthz answers
    before that). Documents opened while the bus connects have a test of their own
    (test_document_opened_while_the_bus_connects_is_subscribed); the others start from a
    connected cluster."""
    with anyio.fail_after(10):
        while len(re.findall(r"connected to the (Redis|PostgreSQL) bus", this_run(server))) < (
            processes
        ):
            await anyio.sleep(POLL_S)


async def start_all(*servers: ServerProcess) -> None:
    """Start them at once (a deploy does) and wait for their bus; the first that cannot start
    fails the test."""
    failures: list[str] = []

    async def start(server: ServerProcess) -> None:
        try:
            await server.start()
            await bus_connected(server)
        except pytest.fail.Exception as exc:  # see until()
            failures.append(str(exc))

    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(start, server)
    assert not failures, failures[0]


async def cluster_of(
    spawn: Spawn, redis: RedisServer, database: str, count: int, *flags: str
) -> list[ServerProcess]:
    servers = [spawn("abcdefgh"[i], *cluster_flags(redis, database), *flags) for i in range(count)]
    await start_all(*servers)
    return servers


# -- clients and documents ---------------------------------------------------------------------


def content(doc: Doc[Any]) -> tuple[str, Any, Any, Any]:
    return (
        str(doc.get("text", type=Text)),
        doc.get("map", type=Map).to_py(),
        doc.get("array", type=Array).to_py(),
        doc.get("ids", type=Array).to_py(),
    )


def state_vector(doc: Doc[Any]) -> dict[int, int]:
    data = doc.get_state()
    count, pos = p.read_var_uint(data, 0)
    result = {}
    for _ in range(count):
        client, pos = p.read_var_uint(data, pos)
        clock, pos = p.read_var_uint(data, pos)
        result[client] = clock
    return result


def same_everywhere(docs: list[Doc[Any]]) -> bool:
    first = docs[0]
    return all(
        content(d) == content(first) and state_vector(d) == state_vector(first) for d in docs[1:]
    )


def differences(groups: dict[str, list[Doc[Any]]]) -> str:
    lines = []
    for name, docs in groups.items():
        if not same_everywhere(docs):
            svs = [sorted(state_vector(d).values()) for d in docs]
            lengths = [tuple(len(part) for part in content(d)) for d in docs]
            lines.append(f"{name}: clocks {svs}, (text, map, array, ids) sizes {lengths}")
    return "; ".join(lines) or "(converged just now)"


async def stored_docs(database: str, names: list[str]) -> dict[str, Doc[Any]]:
    """What the store holds for each document: snapshot + log, folded."""
    store = await open_store(database)
    try:
        result = {}
        for name in names:
            stored = await store.load(name)
            doc: Doc[Any] = Doc()
            base = [stored.snapshot] if stored.snapshot else []
            if base or stored.updates:
                doc.apply_update(fold(base, stored.updates))
            result[name] = doc
        return result
    finally:
        await store.close()


# ASCII only in the Text: pycrdt counts a Text's length and positions in UTF-8 bytes, so a random
# position could fall inside a character. Map values carry the other characters.
WORDS = ("alpha ", "beta ", "gamma ", "delta\n", "e", "ff", "ggg ")


class Editor:
    """Random edits to one client's Text, Map and Array. Array inserts are unique tags; when
    another client sees a tag inserted, the time since its insert is one latency sample."""

    def __init__(self, label: str, process: int, rng: random.Random, clock: dict[str, Any]):
        self.label = label
        self.process = process
        self.rng = rng
        self.sent = clock  # shared: tag -> (perf_counter at insert, process, label)
        self.seq = 0
        self.edits = 0
        self.subscription: Any = None

    def observe(self, doc: Doc[Any], remote: list[float], local: list[float]) -> None:
        """Samples into `remote` for tags from clients of other processes, into `local` for
        those of other clients of the same process (the baseline without the bus)."""

        def on_array(event: Any) -> None:
            now = time.perf_counter()
            for op in event.delta:
                for value in op.get("insert", ()):
                    origin = self.sent.get(value)
                    if origin is None or origin[2] == self.label:
                        continue
                    (remote if origin[1] != self.process else local).append(now - origin[0])

        self.subscription = doc.get("array", type=Array).observe(on_array)  # kept: or it stops

    def edit(self, doc: Doc[Any]) -> None:
        rng = self.rng
        text = doc.get("text", type=Text)
        map_ = doc.get("map", type=Map)
        array = doc.get("array", type=Array)
        with doc.transaction():
            for _ in range(rng.choice((1, 1, 1, 2, 4))):
                self.edits += 1
                kind = rng.random()
                if kind < 0.4:
                    n = len(text)
                    if n > 1500 or (n and rng.random() < 0.3):
                        start = rng.randrange(n)
                        del text[start : start + rng.randint(1, min(12, n - start))]
                    else:
                        text.insert(rng.randint(0, n), rng.choice(WORDS))
                elif kind < 0.65:
                    keys = list(map_.keys())
                    if keys and rng.random() < 0.2:
                        del map_[rng.choice(keys)]
                    else:
                        key = f"k{rng.randrange(24)}"
                        choice = rng.random()
                        if choice < 0.1:
                            map_[key] = Map({"by": self.label, "n": self.seq})
                        elif choice < 0.2:
                            map_[key] = Array([self.label, self.seq])
                        else:
                            map_[key] = rng.choice((self.seq, "γάμμα 🙂", True, None, 1.5))
                else:
                    n = len(array)
                    if n > 150 or (n and rng.random() < 0.3):
                        del array[rng.randrange(n)]
                    else:
                        tag = f"{self.label}.{self.seq}"
                        self.sent[tag] = (time.perf_counter(), self.process, self.label)
                        array.insert(rng.randint(0, n), tag)
                self.seq += 1


# -- 1. random concurrent edits on three processes ---------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(SOAK_SECONDS + 150)
async def test_random_edits_on_three_processes_converge_over_redis_and_over_postgres(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """Two soaks side by side (in CI both edit for 2 minutes in the same 2 minutes, which keeps
    CI within its time): three processes on the Redis bus, and three on the LISTEN/NOTIFY bus
    with no Redis at all, each cluster over ten documents of its own in one database."""
    over_redis = [spawn("abc"[i], *cluster_flags(redis, database)) for i in range(3)]
    over_postgres = [
        spawn("def"[i], "--bus", "postgres", "--database-url", database) for i in range(3)
    ]
    await start_all(*over_redis, *over_postgres)
    async with anyio.create_task_group() as tg:
        tg.start_soon(soak, over_redis, database, "redis")
        tg.start_soon(soak, over_postgres, database, "postgres")


async def soak(servers: list[ServerProcess], database: str, bus: str) -> None:
    names = [f"soak-{bus}/{i}" for i in range(10)]
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # One client per process on every document, and a second one on one process for three of
    # them (so edits also fan out to a neighbour on the same process).
    placement = [(name, k) for name in names for k in range(3)]
    placement += [(names[i], i % 3) for i in range(3)]
    sent: dict[str, Any] = {}
    remote: list[float] = []
    local: list[float] = []
    per_client_rate = 5.0  # edit transactions per second per client: ~165/s in all

    async with AsyncExitStack() as stack:
        clients: list[tuple[str, YClient, Editor]] = []
        for i, (name, k) in enumerate(placement):
            client = await stack.enter_async_context(connected(servers[k].url, name))
            editor = Editor(f"c{i}", k, random.Random(rng.getrandbits(32)), sent)
            editor.observe(client.doc, remote, local)
            clients.append((name, client, editor))
        groups = {name: [c.doc for n, c, _ in clients if n == name] for name in names}

        async def keep_editing(client: YClient, editor: Editor, stop: anyio.Event) -> None:
            while not stop.is_set():
                editor.edit(client.doc)
                await anyio.sleep(editor.rng.expovariate(per_client_rate))

        stop = anyio.Event()
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _, client, editor in clients:
                tg.start_soon(keep_editing, client, editor, stop)
            await anyio.sleep(SOAK_SECONDS)  # deliberate: the soak's length
            stop.set()
        edits = sum(editor.edits for _, _, editor in clients)
        print(
            f"\nsoak over {bus} (seed {seed}): {edits} edits by {len(clients)} clients on 3 "
            f"processes in {time.monotonic() - started:.0f} s"
        )
        took = await until(
            lambda: all(same_everywhere(docs) for docs in groups.values()),
            15,
            lambda: f"clients diverge (seed {seed}): {differences(groups)}",
        )
        print(f"{bus}: clients converged {took * 1000:.0f} ms after the last edit")
        print(f"{bus}: update latency under load, across processes: {percentiles(remote)}")
        print(f"{bus}: update latency under load, same process: {percentiles(local)}")
        expected = {name: content(docs[0]) for name, docs in groups.items()}
        assert all(len(expected[name][2]) > 0 for name in names), "the soak edited nothing?"

    # The store, with the processes still up: each commits what its clients sent (within its
    # commit window, so this polls the store itself rather than trusting a counter).
    wrong = names
    with anyio.move_on_after(10):
        while wrong:
            stored = await stored_docs(database, names)
            wrong = [name for name in names if content(stored[name]) != expected[name]]
            await anyio.sleep(0.1 if wrong else 0)
    assert not wrong, f"the store differs from the clients for {wrong} (seed {seed})"

    # And once they are stopped (at once, as a deploy does).
    await stop_together(servers)
    stored = await stored_docs(database, names)
    wrong = [name for name in names if content(stored[name]) != expected[name]]
    assert not wrong, f"after SIGTERM the store differs from the clients for {wrong} (seed {seed})"

    # A fresh client of a freshly started process (nothing in memory) gets the same content.
    await start_all(servers[0])
    for name in names:
        async with connected(servers[0].url, name) as fresh:
            assert content(fresh.doc) == expected[name], f"{name}: a fresh client differs"
    await servers[0].stop()


# -- 2. kill -9 of a process while its clients write -------------------------------------------


class Writer:
    """Appends unique ids to its document's "ids" array at a steady rate, whatever the state of
    its connection. When its server dies it reconnects to `fallback` with the same Doc, as a
    y-websocket provider does, so what it wrote meanwhile travels in the new sync."""

    RECONNECT_DELAY_S = 0.2  # a provider's first backoff

    def __init__(self, name: str, prefix: str, url: str, fallback: str | None = None) -> None:
        self.name = name
        self.prefix = prefix
        self.url = url
        self.fallback = fallback
        self.doc: Doc[Any] = Doc()
        self.client: YClient | None = None
        self.written: set[str] = set()
        self.reconnected = anyio.Event()

    async def connection(self, leave: anyio.Event, *, task_status: TaskStatus[None]) -> None:
        async with connected(self.url, self.name, self.doc) as client:
            self.client = client
            task_status.started()
            await first_of(
                leave.wait,
                lambda: client.wait_for(lambda: client.close_code is not None, timeout=3600),
            )
        if leave.is_set() or self.fallback is None:
            return
        await anyio.sleep(self.RECONNECT_DELAY_S)  # deliberate: the provider's backoff
        async with connected(self.fallback, self.name, self.doc) as client:
            self.client = client
            self.reconnected.set()
            await leave.wait()

    async def write(self, per_second: float, stop: anyio.Event) -> None:
        ids = self.doc.get("ids", type=Array)
        due = time.monotonic()
        n = 0
        while not stop.is_set():
            value = f"{self.prefix}-{n}"
            self.written.add(value)
            ids.append(value)
            n += 1
            due += 1 / per_second
            await anyio.sleep(max(0.0, due - time.monotonic()))


@asynccontextmanager
async def killed_while_writing(
    victim: ServerProcess, survivors: list[ServerProcess], names: list[str]
) -> AsyncIterator[tuple[list[Writer], dict[str, set[str]]]]:
    """One writer per document on every process; kill -9 the victim once it holds uncommitted
    updates; its writers reconnect to the survivors and everyone writes on for a second. Yields
    (writers, ids written per document) once every client has every id, still connected."""
    writers = []
    for i, name in enumerate(names):
        fallback = survivors[i % len(survivors)].url
        writers.append(Writer(name, f"{name}-victim", victim.url, fallback))
        writers += [Writer(name, f"{name}-{k}", s.url) for k, s in enumerate(survivors)]
    leave, stop = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        for writer in writers:
            await tg.start(writer.connection, leave)
        for writer in writers:
            tg.start_soon(writer.write, 20.0, stop)
        await anyio.sleep(random.uniform(0.8, 1.6))  # deliberate: a random instant...
        with anyio.fail_after(5):  # ...once the victim holds updates it has not committed
            while (await victim.health())["uncommitted_updates"] < 5:
                await anyio.sleep(POLL_S)
        victim.kill()
        assert await victim.wait_exit(10) == -signal.SIGKILL
        for writer in writers:
            if writer.fallback is not None:
                with anyio.fail_after(10):
                    await writer.reconnected.wait()
        await anyio.sleep(1.0)  # deliberate: keep writing through the survivors for a while
        stop.set()

        expected: dict[str, set[str]] = {name: set() for name in names}
        for writer in writers:
            expected[writer.name] |= writer.written

        def complete() -> bool:
            return all(
                len(ids := ids_of(w.doc)) == len(set(ids)) and set(ids) == expected[w.name]
                for w in writers
            )

        def missing() -> str:
            return ", ".join(
                f"{w.prefix}: {len(expected[w.name] - set(ids_of(w.doc)))} missing, "
                f"{len(ids_of(w.doc)) - len(set(ids_of(w.doc)))} twice"
                for w in writers
            )

        await until(complete, 10, lambda: f"clients incomplete: {missing()}")
        yield writers, expected
        leave.set()


async def stop_together(servers: list[ServerProcess]) -> None:
    """SIGTERM to all at once (a deploy, `docker compose down`), each must exit 0."""
    for server in servers:
        server.terminate()
    for server in servers:
        status = await server.wait_exit(15)
        assert status == 0, f"SIGTERM ended a server with {status}:\n{server.log_tail()}"


async def check_store(database: str, expected: dict[str, set[str]]) -> None:
    stored = await stored_docs(database, list(expected))
    for name, written in expected.items():
        ids = ids_of(stored[name])
        assert len(ids) == len(set(ids)), f"{name}: ids stored twice"
        lost = written - set(ids)
        assert not lost, f"{name}: the store lost {len(lost)} of {len(written)}: {sorted(lost)[:4]}"
        assert set(ids) <= written


@pytest.mark.redis
@pytest.mark.postgres
async def test_kill_9_of_one_process_loses_nothing(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    peer_timeout = 3.0
    common = (*cluster_flags(redis, database), "--peer-timeout-s", str(peer_timeout))
    # The victim commits lazily, so the kill is sure to take uncommitted updates with it.
    victim = spawn("victim", *common, "--commit-window-ms", "1000")
    survivors = [spawn("b", *common), spawn("c", *common)]
    await start_all(victim, *survivors)
    names = [f"kill/{i}" for i in range(4)]
    async with killed_while_writing(victim, survivors, names) as (_, expected):
        killed_at = time.monotonic()
        total = sum(len(ids) for ids in expected.values())
        print(f"\n{total} ids written; after the kill every client had every one of them")
        # Quiescence: the survivors notice the victim is gone and store what they hold of it.
        store_view: dict[str, set[str]] = {}
        deadline = peer_timeout + 2 * TICK_S + 2
        with anyio.move_on_after(deadline):
            while True:
                docs = await stored_docs(database, names)
                store_view = {n: set(ids_of(d)) for n, d in docs.items()}
                if all(store_view[n] == expected[n] for n in names):
                    break
                await anyio.sleep(0.2)
        lacking = {n: len(expected[n] - store_view[n]) for n in names}
        assert not any(lacking.values()), (
            f"{time.monotonic() - killed_at:.1f} s after the kill the store lacks {lacking}"
        )
    await stop_together(survivors)
    await check_store(database, expected)


@pytest.mark.redis
@pytest.mark.postgres
async def test_survivor_stopped_soon_after_a_crash_keeps_the_crashed_peers_edits(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """What a crashed peer published but had not committed lives only in the survivors'
    memory until its heartbeat times out; a survivor stopped before then must store it too
    (it once did not: shutdown flushed only its own clients' updates)."""
    # Two processes: the victim dies with updates it published but had not committed; its
    # writers reconnect to the survivor, which already has those updates (so their sync adds
    # nothing); then the survivor is stopped, well within the 5 s peer timeout.
    victim = spawn("victim", *cluster_flags(redis, database), "--commit-window-ms", "1000")
    survivor = spawn("survivor", *cluster_flags(redis, database))
    await start_all(victim, survivor)
    names = [f"early-stop/{i}" for i in range(2)]
    async with killed_while_writing(victim, [survivor], names) as (_, expected):
        pass
    await stop_together([survivor])
    await check_store(database, expected)


# -- 3. Redis killed and restarted, or paused ---------------------------------------------------


class Pairs:
    """Two processes; on each, two clients of each document."""

    def __init__(self, servers: list[ServerProcess], names: list[str]) -> None:
        self.servers = servers
        self.names = names
        self.clients: dict[tuple[str, int], list[YClient]] = {}

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[Pairs]:
        async with AsyncExitStack() as stack:
            for name in self.names:
                for k, server in enumerate(self.servers):
                    self.clients[name, k] = [
                        await stack.enter_async_context(connected(server.url, name))
                        for _ in range(2)
                    ]
            yield self

    def docs(self, name: str) -> list[Doc[Any]]:
        return [c.doc for k in range(len(self.servers)) for c in self.clients[name, k]]

    def groups(self) -> dict[str, list[Doc[Any]]]:
        return {name: self.docs(name) for name in self.names}

    def converged(self) -> bool:
        return all(same_everywhere(docs) for docs in self.groups().values())

    async def write_everywhere(self, tag: str) -> list[str]:
        """The first client of each document on each process appends `tag`-name-k; its
        neighbour on the same process must see it within 2 s. Returns what was written."""
        written = []
        for (name, k), (first, _) in self.clients.items():
            value = f"{tag}-{name}-{k}"
            first.doc.get("ids", type=Array).append(value)
            written.append(value)
        for (name, k), (_, neighbour) in self.clients.items():
            value = f"{tag}-{name}-{k}"
            await until(
                lambda n=neighbour, v=value: v in ids_of(n.doc),  # type: ignore[misc]
                2,
                f"{value} did not reach the other client of process {k}",
            )
        return written

    def seen_elsewhere(self, values: list[str]) -> list[str]:
        """Which of `values` (from write_everywhere) reached a client of another process."""
        seen = []
        for (name, k), clients in self.clients.items():
            for client in clients:
                ids = set(ids_of(client.doc))
                seen += [v for v in values if v in ids and not v.endswith(f"-{name}-{k}")]
        return seen

    def everywhere(self, values: list[str]) -> bool:
        return all(
            {v for v in values if f"-{name}-" in v} <= set(ids_of(doc))
            for name in self.names
            for doc in self.docs(name)
        )


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_killed_and_restarted(redis: RedisServer, database: str, spawn: Spawn) -> None:
    # (A Redis error once escaped the bus as an ExceptionGroup and stopped every process: they
    # closed their clients and answered 503 until restarted. The pause below did the same
    # through redis-py's 5 s socket timeout.)
    servers = await cluster_of(spawn, redis, database, 2)
    pairs = Pairs(servers, ["redis-down/0", "redis-down/1"])
    async with pairs.connected():
        await pairs.write_everywhere("before")
        await until(pairs.converged, 5, lambda: f"before the fault: {differences(pairs.groups())}")

        await redis.kill()
        down = []
        for round_ in range(3):  # every process keeps serving its own clients
            down += await pairs.write_everywhere(f"down{round_}")
        # The outage lasts a few seconds (below the peer timeout, so only the reconnect resync
        # can bring the processes together again).
        await anyio.sleep(2.0)  # deliberate: the outage
        leaked = pairs.seen_elsewhere(down)
        assert not leaked, f"edits crossed processes with Redis down?! {leaked[:3]}"
        down += await pairs.write_everywhere("down-last")

        await redis.start()
        took = await until(
            pairs.converged, 5, lambda: f"after Redis came back: {differences(pairs.groups())}"
        )
        print(f"\nconverged {took:.2f} s after Redis came back")
        assert pairs.everywhere(down)

        after = await pairs.write_everywhere("after")  # and the bus carries live edits again
        await until(lambda: pairs.everywhere(after), 5, "live edits after Redis came back")


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_paused_for_5_s(redis: RedisServer, database: str, spawn: Spawn) -> None:
    servers = await cluster_of(spawn, redis, database, 2)
    pairs = Pairs(servers, ["redis-pause/0", "redis-pause/1"])
    async with pairs.connected():
        await pairs.write_everywhere("before")
        await until(pairs.converged, 5, lambda: f"before the pause: {differences(pairs.groups())}")

        assert await redis.command("CLIENT", "PAUSE", "5000", "ALL") == b"+OK"
        paused_at = time.monotonic()
        during = await pairs.write_everywhere("paused")
        leaked = pairs.seen_elsewhere(during)
        assert not leaked, f"edits crossed processes during the pause?! {leaked[:3]}"
        await anyio.sleep(max(0.0, paused_at + 5 - time.monotonic()))  # deliberate: the pause
        took = await until(
            pairs.converged, 5, lambda: f"after the pause: {differences(pairs.groups())}"
        )
        print(f"\nconverged {took:.2f} s after the pause ended")


# -- 4. awareness across processes ---------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_awareness_across_processes(redis: RedisServer, database: str, spawn: Spawn) -> None:
    peer_timeout = 3.0
    a, b = await cluster_of(spawn, redis, database, 2, "--peer-timeout-s", str(peer_timeout))
    name = "aware/doc"
    cursor = {"user": {"name": "alice"}, "cursor": {"anchor": 3, "head": 7}}
    async with connected(b.url, name) as watcher:
        async with connected(a.url, name) as alice:
            await alice.set_awareness(cursor)
            await until(
                lambda: watcher.present().get(alice.client_id) == cursor,
                5,
                f"B's client never saw A's cursor: {watcher.present()}",
            )
            await watcher.set_awareness({"user": {"name": "bob"}})
            await until(lambda: watcher.client_id in alice.present(), 5, "A's client never saw B's")
            await alice.close()
            took = await until(
                lambda: alice.client_id not in watcher.present(),
                2,
                "closing A's client did not remove its cursor on B",
            )
            print(f"\nclosed on A: gone on B after {took * 1000:.0f} ms")

        async with connected(a.url, name) as carol:
            await carol.set_awareness({"user": {"name": "carol"}})
            await until(lambda: carol.client_id in watcher.present(), 5, "carol not shown on B")
            # A late joiner on B is shown A's users too (B keeps them for its own clients).
            async with connected(b.url, name) as late:
                await until(lambda: carol.client_id in late.present(), 5, "not to late joiners")

            a.kill()
            killed_at = time.monotonic()
            assert await a.wait_exit(10) == -signal.SIGKILL
            # A's last heartbeat went out at most a tick before the kill; B checks once a tick.
            await until(
                lambda: carol.client_id not in watcher.present(),
                peer_timeout + TICK_S + 1.0 - (time.monotonic() - killed_at),
                "kill -9 of A did not remove A's users on B within the peer timeout",
            )
            took = time.monotonic() - killed_at
            print(f"kill -9 of A: its users gone on B after {took:.2f} s (peer timeout 3 s)")
            assert watcher.present().keys() == {watcher.client_id}


# -- 5. opening a document another process holds; --workers ----------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_opening_a_document_gets_edits_held_only_in_another_process(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    # The holder commits only every 5 s: its edit is in its memory, not in the store.
    holder = spawn("holder", *cluster_flags(redis, database), "--commit-window-ms", "5000")
    opener = spawn("opener", *cluster_flags(redis, database))
    await start_all(holder, opener)
    name = "open/doc"
    async with connected(holder.url, name) as writer:
        writer.doc.get("text", type=Text).insert(0, "held in memory")
        with anyio.fail_after(5):
            while (await holder.health())["uncommitted_updates"] == 0:
                await anyio.sleep(POLL_S)
        assert (await opener.health())["rooms"] == 0
        async with connected(opener.url, name) as reader:
            await until(
                lambda: str(reader.doc.get("text", type=Text)) == "held in memory",
                3,
                "the opener did not get the edit the holder had not committed",
            )
            health = await holder.health()
            assert health["uncommitted_updates"] > 0, "committed meanwhile: proves nothing"
            reader.doc.get("text", type=Text).insert(0, ">> ")
            await until(
                lambda: str(writer.doc.get("text", type=Text)) == ">> held in memory",
                3,
                "and back",
            )


def connection_owners(port: int, pids: list[int]) -> dict[int, int]:
    """pid -> how many established TCP connections to `port` (server side) it holds."""
    owner = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[int(target[8:-1])] = pid
    counts = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01" and int(fields[9]) in owner:
                counts[owner[int(fields[9])]] += 1
    return counts


# `--workers N` (one machine, documents routed to the worker that holds them, a local bus or
# Redis between workers): tests/integration/test_workers.py


# -- more that several processes must get right -----------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_document_opened_while_the_bus_connects_is_subscribed(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """A document opened after the bus chose the channels to subscribe, but before it counted
    itself connected, was never subscribed on that connection: the process missed every update
    for it. Seen with --workers 2, a client reaching a worker just after it started."""
    holder = spawn("holder", *cluster_flags(redis, database))
    name = "connecting/doc"
    async with anyio.create_task_group() as tg:
        # The late process reaches Redis through a proxy that holds its bytes: its bus stays
        # connecting (handshake sent, no answer) for as long as the test wants.
        proxy = HeldProxy(redis.port)
        await tg.start(proxy.serve)
        late = spawn("late", "--redis-url", proxy.url, "--database-url", database)
        await start_all(holder)
        async with connected(holder.url, name) as writer:
            writer.doc.get("ids", type=Array).append("before")
            await late.start()
            with anyio.fail_after(5):
                while not proxy.connections:
                    await anyio.sleep(POLL_S)
            async with connected(late.url, name) as reader:  # opens the document meanwhile
                assert "connected to the Redis bus" not in this_run(late)
                proxy.release()
                writer.doc.get("ids", type=Array).append("after")
                await until(
                    lambda: ids_of(reader.doc) == ["before", "after"],
                    3,
                    lambda: f"the late process's client has {ids_of(reader.doc)}",
                )
        tg.cancel_scope.cancel()


@pytest.mark.redis
@pytest.mark.postgres
async def test_first_commits_of_new_documents_from_several_processes(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """No commit may fail: processes once created new documents' rows in per-process (salted
    hash) order, and overlapping first commits deadlocked in PostgreSQL (1 s stall, retry)."""
    # Every process gets an edit of the same ten new documents at the same moment, so their
    # first commits (each with all ten) overlap. Three rounds, to make an overlap certain.
    servers = await cluster_of(spawn, redis, database, 3, "--commit-window-ms", "400")
    for round_ in range(3):
        names = [f"new/{round_}/{i}" for i in range(10)]
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(connected(server.url, name))
                for server in servers
                for name in names
            ]
            for client in clients:
                client.doc.get("ids", type=Array).append("x")
            with anyio.fail_after(10):
                while any([(await s.health())["uncommitted_updates"] for s in servers]):
                    await anyio.sleep(POLL_S)
    failed = [line for s in servers for line in this_run(s).splitlines() if "will retry" in line]
    deadlocks = sum(this_run(s).count("deadlock detected") for s in servers)
    assert not failed, f"{len(failed)} commits failed ({deadlocks} deadlocks): {failed[0]}"


@pytest.mark.postgres
async def test_processes_starting_at_once_on_an_empty_database(database: str) -> None:
    """Creating the tables raced (UniqueViolation, 'already exists'): `collab serve` exited 3."""
    # What every `collab serve` does first, once per process (a SqlStore each), all at once.
    from storage import SqlStore

    stores = [SqlStore.from_url(database) for _ in range(4)]
    errors: list[str] = []

    async def open_one(store: SqlStore) -> None:
        try:
            await store.open()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    try:
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(open_one, store)
    finally:
        for store in stores:
            await store.close()
    assert not errors, f"{len(errors)} of 4 could not open the store: {errors[0]}"


# -- latency ---------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_cross_process_update_latency(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """Printed for the closing note, not asserted: one update at a time from a client of A
    until a client of B has it, and what Redis moved for each."""
    a, b = await cluster_of(spawn, redis, database, 2)
    name = "latency/doc"
    rounds = 300
    async with connected(a.url, name) as sender, connected(b.url, name) as receiver:
        counter = sender.doc.get("map", type=Map)
        seen = receiver.doc.get("map", type=Map)
        arrived: dict[int, float] = {}
        event = anyio.Event()

        def on_change(_: Any) -> None:
            nonlocal event
            arrived[int(seen.get("n", -1))] = time.perf_counter()
            event.set()
            event = anyio.Event()

        seen.observe(on_change)
        samples = []
        before = await redis.stats()
        for n in range(rounds):
            sent_at = time.perf_counter()
            counter["n"] = n
            with anyio.move_on_after(5):
                while n not in arrived:
                    await event.wait()
            assert n in arrived, f"update {n} from A's client never reached B's"
            if n >= 20:  # warmed up
                samples.append(arrived[n] - sent_at)
        after = await redis.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print(f"\ncross-process update latency (Redis bus, idle): {percentiles(samples)}")
    print(
        "Redis per update: "
        f"{delta['total_net_input_bytes'] / rounds:.0f} bytes in, "
        f"{delta['total_net_output_bytes'] / rounds:.0f} bytes out, "
        f"{delta['total_commands_processed'] / rounds:.2f} commands "
        "(includes heartbeats and these INFO calls)"
    )


# -- 6. the bus heals by itself (issue 10) -------------------------------------------------------


def sees(client: YClient, *others: YClient) -> bool:
    return all(other.client_id in client.present() for other in others)


def cursors(clients: list[YClient]) -> str:
    return "; ".join(f"{c.client_id} sees {sorted(c.present())}" for c in clients)


def removals_seen(client: YClient, other: YClient) -> int:
    """How often `client` was told that `other`'s awareness state was removed."""
    count = 0
    for message in client.received:
        if message[0] == p.MSG_AWARENESS:
            entries = p.decode_awareness_update(p.parse_awareness(message))
            count += sum(
                1 for e in entries if e.client_id == other.client_id and e.state == p.NULL_STATE
            )
    return count


def peers_gone(server: ServerProcess) -> list[str]:
    return [
        line for line in this_run(server).splitlines() if "cluster peer" in line and "gone" in line
    ]


@pytest.mark.redis
@pytest.mark.postgres
async def test_subscription_confirmed_late_repeats_the_state_exchange(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """B's subscribing connection is held up (a lossy link, a proxy) while B opens a document
    A holds: B's subscribe wait expires, B loads and publishes its state vector on its other
    connection, and A's answer (the edit A holds in memory only, A's cursor) is published
    before B listens: lost. Once the subscription is confirmed the exchange must happen again;
    it did not, and B's client never got A's edit (A even stopped publishing there: its answer
    had reached no other process)."""
    name = "late-subscription/doc"
    async with anyio.create_task_group() as tg:
        proxy = HeldProxy(redis.port, only=0)  # B's bus opens its subscribing connection first
        await tg.start(proxy.serve)
        a = spawn("a", *cluster_flags(redis, database), "--commit-window-ms", "30000")
        b = spawn("b", "--redis-url", proxy.url, "--database-url", database)
        await start_all(a, b)
        assert proxy.connections == 2, "B's bus: one subscribing, one publishing connection"
        async with connected(a.url, name) as alice:
            alice.doc.get("ids", type=Array).append("from A")
            await alice.set_awareness({"user": {"name": "alice"}})
            proxy.hold()
            async with connected(b.url, name) as bob:  # after B's subscribe wait (2 s)
                await bob.set_awareness({"user": {"name": "bob"}})
                bob.doc.get("ids", type=Array).append("from B")
                await until(lambda: sees(alice, bob), 5, "A's client never saw B's cursor")
                proxy.release()
                both = {"from A", "from B"}
                await until(
                    lambda: set(ids_of(bob.doc)) == both and set(ids_of(alice.doc)) == both,
                    5,
                    lambda: f"A's client has {ids_of(alice.doc)}, B's {ids_of(bob.doc)}",
                )
                await until(lambda: sees(bob, alice), 5, lambda: cursors([alice, bob]))
                assert (await a.health())["uncommitted_updates"] > 0, "A committed: no proof"
        tg.cancel_scope.cancel()


PAUSE_S = 3.5  # longer than the peer timeout below; shorter than the bus's 5 s of silence


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_paused_while_a_process_opens_a_document(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """Redis stopped (SIGSTOP) for longer than the peer timeout while B opens a document A holds
    (B's subscribe wait expires) and a client of B types in a document both hold. Once Redis
    runs again, everything converges with no further edit: the documents, and every cursor on
    both sides, and no process takes the other for gone. (Both did, while nothing could be
    heard; and A, whose first news of B afterwards was an update rather than a heartbeat,
    never asked B for its state again: A's clients lost B's users' cursors.)"""
    a, b = await cluster_of(
        spawn, redis, database, 2, "--peer-timeout-s", "2", "--commit-window-ms", "30000"
    )
    shared, opened = "paused/shared", "paused/opened"
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(connected(a.url, shared))
        carol = await stack.enter_async_context(connected(b.url, shared))
        holder = await stack.enter_async_context(connected(a.url, opened))
        holder.doc.get("ids", type=Array).append("from A")
        for client, user in ((alice, "alice"), (carol, "carol"), (holder, "holder")):
            await client.set_awareness({"user": {"name": user}})
        await until(lambda: sees(alice, carol) and sees(carol, alice), 5, "before the pause")
        redis.pause()
        paused_at = time.monotonic()
        try:
            carol.doc.get("ids", type=Array).append("typed during the pause")
            bob = await stack.enter_async_context(connected(b.url, opened))  # waits it out
            await bob.set_awareness({"user": {"name": "bob"}})
            bob.doc.get("ids", type=Array).append("from B")
            assert time.monotonic() - paused_at < PAUSE_S, "B opened the document too slowly"
            await anyio.sleep(paused_at + PAUSE_S - time.monotonic())  # deliberate: the pause
        finally:
            redis.resume()
        docs = {shared: [alice.doc, carol.doc], opened: [holder.doc, bob.doc]}
        await until(
            lambda: all(same_everywhere(d) for d in docs.values()),
            5,
            lambda: f"after the pause: {differences(docs)}",
        )
        assert set(ids_of(bob.doc)) == {"from A", "from B"}
        assert set(ids_of(alice.doc)) == {"typed during the pause"}
        await until(
            lambda: (
                sees(alice, carol)
                and sees(carol, alice)
                and sees(holder, bob)
                and sees(bob, holder)
            ),
            5,
            lambda: f"cursors after the pause: {cursors([alice, carol, holder, bob])}",
        )
        assert (await a.health())["uncommitted_updates"] > 0, "A committed: no proof"
    for server in (a, b):
        assert not peers_gone(server), f"a Redis pause is no peer's death: {peers_gone(server)}"


STALL_S = 3.5  # longer than the peer timeout below


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_stalled_process_keeps_its_peers_and_gets_its_cursors_back(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """B's event loop makes no progress for longer than the peer timeout (SIGSTOP: as a long
    blocking call would) while C floods the document with edits and a client of B types.
    When B runs again its ticker may well run before it has read anything (uvloop does,
    after SIGCONT), and it has a backlog of C's edits to read before A's latest heartbeats:
    it must not take A or C for gone for all that (it did: by the clock, neither had been
    heard for 3.5 s). A and C rightly took B for gone; they must get B's edit and its
    client's cursor back by themselves, and the documents converge."""
    a, b, c = await cluster_of(spawn, redis, database, 3, "--peer-timeout-s", "2")
    assert b.proc is not None
    name = "stalled/doc"
    async with AsyncExitStack() as stack:
        alice, bob, carl = [
            await stack.enter_async_context(connected(s.url, name)) for s in (a, b, c)
        ]
        for client, user in ((alice, "alice"), (bob, "bob"), (carl, "carl")):
            await client.set_awareness({"user": {"name": user}})
        everyone = [alice, bob, carl]
        await until(
            lambda: all(sees(x, *(y for y in everyone if y is not x)) for x in everyone),
            5,
            lambda: f"before the stall: {cursors(everyone)}",
        )
        os.kill(b.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            bob.doc.get("ids", type=Array).append("typed on B meanwhile")
            blobs = carl.doc.get("map", type=Map)
            n = 0
            while time.monotonic() < stopped_at + STALL_S:  # ~1 MB/s through Redis to B
                blobs["blob"] = f"{n:06d}" + "x" * 50_000
                n += 1
                await anyio.sleep(0.05)  # deliberate: the flood's pace
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        await until(
            lambda: same_everywhere([x.doc for x in everyone]),
            10,
            lambda: f"after the stall: {differences({name: [x.doc for x in everyone]})}",
        )
        assert ids_of(alice.doc) == ["typed on B meanwhile"]
        await until(
            lambda: all(sees(x, *(y for y in everyone if y is not x)) for x in everyone),
            5,
            lambda: f"cursors after the stall: {cursors(everyone)}",
        )
        assert not peers_gone(b), f"B took a live peer for gone: {peers_gone(b)}"
        assert removals_seen(bob, alice) == 0, "B's client was told A's user had left"
        print(f"\n{n} edits of 50 KB from C while B stood still; gone on A: {peers_gone(a)}")


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_peer_back_from_silence_with_an_update_first_gets_its_cursors_back(
    redis: RedisServer, database: str, spawn: Spawn
) -> None:
    """What B publishes is held up for longer than the peer timeout (its publishing connection
    stalls), so A rightly takes B for gone and drops its users' cursors. When B's messages flow
    again the first is an update, not a heartbeat: A must still exchange state with B and show
    B's cursors again (it only did when a heartbeat came first, and B's users stayed invisible
    on A until they moved)."""
    async with anyio.create_task_group() as tg:
        proxy = HeldProxy(redis.port, only=1)  # B's bus opens its publishing connection second
        await tg.start(proxy.serve)
        a = spawn("a", *cluster_flags(redis, database), "--peer-timeout-s", "2")
        b = spawn("b", "--redis-url", proxy.url, "--database-url", database)
        await start_all(a, b)
        name = "back-from-silence/doc"
        async with connected(a.url, name) as alice, connected(b.url, name) as bob:
            await alice.set_awareness({"user": {"name": "alice"}})
            await bob.set_awareness({"user": {"name": "bob"}})
            await until(lambda: sees(alice, bob) and sees(bob, alice), 5, "before the stall")
            proxy.hold()
            bob.doc.get("ids", type=Array).append("first after the stall")  # before B's next tick
            await until(lambda: not sees(alice, bob), 5, "A never took B for gone")
            proxy.release()
            await until(lambda: ids_of(alice.doc) == ["first after the stall"], 5, "B's edit on A")
            await until(lambda: sees(alice, bob), 5, lambda: cursors([alice, bob]))
            assert removals_seen(bob, alice) == 0, "B took A for gone"
        tg.cancel_scope.cancel()


@pytest.mark.redis
async def test_messages_the_bus_dropped_are_followed_by_a_state_exchange(
    redis: RedisServer,
) -> None:
    """Beyond its limit the bus's outbox drops what the hub publishes (more than Redis takes
    for a while): those messages reach no one, and no reconnect follows to resync. Once the
    outbox has drained the bus must have the hub exchange state again (on_connected)."""
    from collab import cluster
    from collab.cluster.redis import RedisBus

    bus = RedisBus(redis.url)
    exchanges: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            bus.run,
            lambda document, envelope: None,
            lambda: exchanges.append(time.monotonic()),
            lambda document: None,
        )
        await until(lambda: len(exchanges) == 1, 5, "the bus never connected")
        await bus.join("overflow/doc")
        bus._outbox.limit = 10  # (100,000 in earnest)
        for _ in range(25):  # in one loop turn, as a burst of edits would
            bus.publish("overflow/doc", cluster.UPDATE, b"\x00\x00")
        assert bus._outbox.dropped == 15
        await until(lambda: len(exchanges) == 2, 5, "no state exchange after the overflow")
        for _ in range(5):  # within the limit: nothing lost, no exchange
            bus.publish("overflow/doc", cluster.UPDATE, b"\x00\x00")
        await bus._outbox.flushed(5)
        assert len(exchanges) == 2
        tg.cancel_scope.cancel()


@pytest.mark.postgres
async def test_the_postgres_bus_carries_a_message_too_big_for_one_notify_in_parts(
    database: str,
) -> None:
    """A NOTIFY carries 8,000 bytes: a y-webrtc offer, a room's cursors at once or a long
    stateless message goes in parts, whole to the other process, in order with the rest;
    beyond MAX_MESSAGE it is not sent, and counted."""
    from collab import cluster
    from collab.cluster.postgres import MAX_MESSAGE, PgBus, asyncpg_dsn

    sender, receiver = PgBus(asyncpg_dsn(database)), PgBus(asyncpg_dsn(database))
    heard: list[tuple[str | None, int, bytes]] = []
    up = [anyio.Event(), anyio.Event()]

    def handler(document: str | None, envelope: cluster.Envelope) -> None:
        if envelope.kind != cluster.HEARTBEAT:
            heard.append((document, envelope.kind, envelope.payload))

    sent = [
        ("doc", cluster.AWARENESS, bytes(range(256)) * 80),  # 20 KB: 4 parts
        ("doc", cluster.AWARENESS, b"small"),
        (None, cluster.SIGNAL, b"s" * 64 * 1024),  # the largest /signal message: 12 parts
        ("doc", cluster.STATELESS, "é".encode() * 5_000),
    ]
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run, lambda *_: None, up[0].set, lambda document: None)
        tg.start_soon(receiver.run, handler, up[1].set, lambda document: None)
        with anyio.fail_after(5):
            for event in up:
                await event.wait()
        sender.publish("doc", cluster.STATELESS, b"x" * (MAX_MESSAGE + 1))
        assert sender.message_counts()[1] == 1  # too big: dropped, counted
        for document, kind, payload in sent:
            sender.publish(document, kind, payload)
        await until(lambda: len(heard) >= len(sent), 10, "not every message came through")
        assert heard == sent
        assert sender.message_counts() == (4 + 1 + 12 + 2, 1)  # notifications, dropped
        tg.cancel_scope.cancel()


class SniffioLike:
    """What anyio asks when sniffio is installed (httpx 0.27 needs it, and many packages bring
    it): the library named in the context variable, else asyncio inside a task, else none. So
    outside a task (a loop callback) anyio finds no event loop, where without sniffio it asks
    asyncio for the running loop."""

    class AsyncLibraryNotFoundError(RuntimeError):
        pass

    current_async_library_cvar: contextvars.ContextVar[str | None] = contextvars.ContextVar(
        "current_async_library_cvar", default=None
    )

    @classmethod
    def current_async_library(cls) -> str:
        named = cls.current_async_library_cvar.get()
        if named is not None:
            return named
        if asyncio.current_task() is not None:
            return "asyncio"
        raise cls.AsyncLibraryNotFoundError("not in async context")


@pytest.mark.postgres
async def test_the_postgres_bus_hands_messages_over_in_a_task(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg calls a listener from the event loop outside any task. The bus handed each
    message to the cluster's handler right there, whose task group then refused to start the
    fetch of the rows a peer committed when sniffio was installed: every process lost the
    others' updates (the three-process soak over PostgreSQL diverged)."""
    import anyio._core._eventloop

    from collab import cluster
    from collab.cluster.postgres import PgBus, asyncpg_dsn

    monkeypatch.setattr(anyio._core._eventloop, "sniffio", SniffioLike)
    sender, receiver = PgBus(asyncpg_dsn(database)), PgBus(asyncpg_dsn(database))
    up = [anyio.Event(), anyio.Event()]
    fetched: list[bytes] = []

    async with anyio.create_task_group() as tg:

        async def fetch(payload: bytes) -> None:
            fetched.append(payload)

        def handler(document: str | None, envelope: cluster.Envelope) -> None:
            if envelope.kind == cluster.STATELESS:
                tg.start_soon(fetch, envelope.payload)  # (as ClusterSync does for a commit)

        tg.start_soon(sender.run, lambda *_: None, up[0].set, lambda document: None)
        tg.start_soon(receiver.run, handler, up[1].set, lambda document: None)
        with anyio.fail_after(5):
            for event in up:
                await event.wait()
        for n in range(3):
            sender.publish("doc", cluster.STATELESS, b"%d" % n)
        await until(lambda: len(fetched) == 3, 10, "the handler could not start its tasks")
        assert fetched == [b"0", b"1", b"2"]
        tg.cancel_scope.cancel()


@pytest.mark.postgres
async def test_the_postgres_bus_hands_back_our_own_heartbeats_and_nothing_else_of_ours(
    database: str,
) -> None:
    """The hub counts its peers' silence in its own heartbeats back from the bus: a bus that
    never handed them back would never let a dead peer go."""
    from collab import cluster
    from collab.cluster.postgres import PgBus, asyncpg_dsn

    bus = PgBus(asyncpg_dsn(database))
    heard: list[tuple[str | None, int, bool]] = []
    connected = anyio.Event()

    def handler(document: str | None, envelope: cluster.Envelope) -> None:
        heard.append((document, envelope.kind, envelope.sender == bus.process_id))

    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.run, handler, connected.set, lambda document: None)
        with anyio.fail_after(5):
            await connected.wait()
        bus.publish("doc", cluster.AWARENESS, b"[]")
        bus.publish(None, cluster.HEARTBEAT, b"")
        await until(lambda: bool(heard), 5, "our heartbeat never came back")
        assert heard == [(None, cluster.HEARTBEAT, True)]  # (NOTIFYs arrive in order)
        tg.cancel_scope.cancel()
