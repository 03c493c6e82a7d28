"""`collab serve --workers N`: N server processes on one machine, each document in one of them.

The supervisor holds the listening socket and accepts. For each connection it peeks at the
request line (MSG_PEEK: the bytes stay in the socket), takes the document the path names
(/ws/<name>, /api/documents/<name>/..., /api/admin/documents/<name>/..., under any mount
prefix), and hands the socket to the worker that owns that document (a stable hash of its
name) over a Unix socket (SCM_RIGHTS); a path that names no document goes to the workers in
turn. The worker serves it as if it had accepted it (uvicorn's protocol on the socket), so its
peer address is the client's.

A document open in two workers (reached by /hocuspocus, which carries many documents on one
socket, or by a keep-alive connection's later request) is kept in step by the local bus
(collab/cluster/local.py), which the supervisor relays; it costs nothing for a document open
in one worker. With an external bus (--redis-url, --bus postgres: other machines) the workers
use that one instead, and the routing still keeps each document's clients in one worker.

A connection whose request line does not come within PEEK_TIMEOUT_S (or that sends more than
PEEK_BYTES without ending a line) goes to the next worker in turn, which deals with it as a
single server would: nothing a client does (or does not) holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import uvicorn
from starlette.applications import Starlette

from . import affinity
from .affinity import owner
from .cluster import BYE, PID_BYTES, encode
from .cluster.local import (
    ALL,
    ALONE,
    JOIN,
    JOINED,
    LEAVE,
    MESSAGE,
    PUBLISH,
    SHARED,
    frame,
    read_frame,
)
from .settings import Settings

log = logging.getLogger(__name__)

PEEK_BYTES = 8192  # a request line longer than this names no document we route by
PEEK_TIMEOUT_S = 5.0
MAX_FDS = 250  # sockets per hand-off message (SCM_MAX_FD is 253)
WS_MARK = "/ws/"
API_MARKS = ("/api/documents/", "/api/admin/documents/")

# -- routing ----------------------------------------------------------------------------------


def document_of(request_line: bytes) -> str | None:
    """The document a request line's path names, or None (any worker may serve it)."""
    parts = request_line.split(b" ", 2)
    if len(parts) < 2:
        return None
    path = parts[1].partition(b"?")[0].decode("latin-1")
    raw: str | None = None
    at = path.find(WS_MARK)
    if at >= 0:
        raw = path[at + len(WS_MARK) :]
    else:
        for mark in API_MARKS:
            at = path.find(mark)
            if at >= 0:
                raw = path[at + len(mark) :].partition("/")[0]
                break
    if not raw:
        return None
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- the worker's side ------------------------------------------------------------------------


class HandedSockets:
    """In a worker, what uvicorn's listening server is elsewhere: it receives the sockets the
    supervisor accepted and starts uvicorn's protocol on each."""

    def __init__(self, channel: socket.socket, protocol: Callable[[], asyncio.Protocol]) -> None:
        self._channel = channel
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        self._starting: set[asyncio.Task[None]] = set()  # (the loop keeps weak references)
        self._stopping = False  # close() was called: we are draining
        channel.setblocking(False)
        self._loop.add_reader(channel.fileno(), self._receive)

    def _receive(self) -> None:
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(self._channel, MAX_FDS, MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds, flags = b"", [], 0
            if not data:  # the supervisor is gone
                killed = not self._stopping
                self.close()
                if killed:
                    # (killed: nobody hands us clients or forwards a signal any more) drain
                    # as on SIGTERM instead of serving the clients we hold as an orphan
                    log.warning("the supervisor is gone; stopping as on SIGTERM")
                    os.kill(os.getpid(), signal.SIGTERM)
                return
            if flags & socket.MSG_CTRUNC:  # out of descriptors: the kernel closed the rest
                log.warning(
                    "%d sockets handed over were lost (file descriptor limit?)",
                    len(data) - len(fds),
                )
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                task = self._loop.create_task(self._serve(sock))
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, sock)
        except OSError:
            sock.close()

    def close(self) -> None:
        """Take no more sockets (the supervisor gives the others those it still had for us)."""
        self._stopping = True
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._channel.fileno())
        self._channel.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()


def _worker_server_class() -> Any:
    from .server import CollabServer

    class WorkerServer(CollabServer):
        """A CollabServer that listens on nothing: the supervisor hands it its sockets."""

        def __init__(self, config: uvicorn.Config, app: Starlette, channel: socket.socket):
            super().__init__(config, app)
            self._channel = channel

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                sys.exit(3)  # (uvicorn's STARTUP_FAILURE)
            config = self.config

            def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> Any:
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=_loop,
                )

            self.servers = [HandedSockets(self._channel, create_protocol)]  # type: ignore[list-item]
            self.started = True

    return WorkerServer


def worker_main(
    settings: Settings, index: int, channel: socket.socket, bus: socket.socket | None
) -> None:
    """A worker process: serve what the supervisor hands over until SIGTERM."""
    from . import logs
    from .app import create_app
    from .server import uvicorn_config

    logs.configure(settings.log_level, settings.log_format)
    affinity.become_worker(index, bus)
    app = create_app(settings)
    server = _worker_server_class()(uvicorn_config(app, settings), app, channel)
    server.run()
    hub = getattr(app.state, "hub", None)
    if hub is None or not server.started:
        sys.exit(1)
    sys.exit(1 if hub.flush_failed else 0)


# -- the supervisor ---------------------------------------------------------------------------


class Worker:
    """One worker process as the supervisor sees it: its sockets and its channels."""

    def __init__(self, index: int, process: Any, channel: socket.socket, bus: socket.socket):
        self.index = index
        self.process = process
        self.channel = channel  # SOCK_SEQPACKET: sockets handed over
        self.bus = bus  # SOCK_STREAM: the local bus
        self.queue: list[socket.socket] = []  # sockets waiting to be handed over
        self.writing = False  # waiting for the channel to take more
        self.writer: asyncio.StreamWriter | None = None
        self.joined: set[bytes] = set()
        self.process_id: bytes | None = None  # its bus id, once heard
        self.gone = False
        self.refusing = False  # it closed its end: drained, or dying


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        import multiprocessing

        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._local_bus = not settings.redis_url and settings.bus != "postgres"
        self.workers: list[Worker] = []
        self._channels: dict[bytes, set[Worker]] = {}  # document -> workers that joined it
        self._turn = itertools.count()
        self._stopping = False
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peeking: dict[int, tuple[socket.socket, float]] = {}
        self._exited = asyncio.Event()  # a worker's process ended
        self.statuses: dict[int, int] = {}

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, index: int) -> Worker:
        channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bus = bus_theirs = None
        if self._local_bus:
            bus, bus_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = self._context.Process(
            target=worker_main, args=(self.settings, index, theirs, bus_theirs), daemon=False
        )
        process.start()
        assert self._loop is not None
        self._loop.add_reader(process.sentinel, self._exited.set)
        theirs.close()
        if bus_theirs is not None:
            bus_theirs.close()
        channel.setblocking(False)
        worker = Worker(index, process, channel, bus)  # type: ignore[arg-type]
        if bus is not None:
            assert self._loop is not None
            self._loop.create_task(self._relay(worker))
        return worker

    def _gone(self, worker: Worker) -> None:
        worker.gone = True
        assert self._loop is not None
        self._loop.remove_reader(worker.process.sentinel)
        with contextlib.suppress(Exception):
            self._loop.remove_writer(worker.channel.fileno())
        self._reroute(worker)
        worker.channel.close()
        if worker.writer is not None:
            worker.writer.close()
        for name in list(worker.joined):
            self._leave(worker, name)
        if worker.process_id is not None:  # its peers let its users' cursors go now
            bye = encode(BYE, worker.process_id, b"")
            for other in self.workers:
                if other is not worker:
                    self._write(other, frame(MESSAGE, ALL, bye))

    async def _watch(self) -> None:
        """Replace a worker that dies; return once all have exited after SIGTERM."""
        from .server import _worker_gone

        while True:
            # (each process's sentinel turns readable when it ends: no polling)
            await self._exited.wait()
            self._exited.clear()
            for worker in list(self.workers):
                process = worker.process
                if process.exitcode is None:
                    continue
                process.join()
                if self.settings.metrics and process.pid is not None:
                    _worker_gone(process.pid)
                self._gone(worker)
                if self._stopping:
                    self.statuses[process.pid or 0] = process.exitcode
                    self.workers.remove(worker)
                else:
                    log.error(
                        "worker %s exited with %s; starting another", process.pid, process.exitcode
                    )
                    self.workers[self.workers.index(worker)] = self._spawn(worker.index)
            if not self.workers:
                return

    def _signal(self, sig: int) -> None:
        first = not self._stopping
        self._stopping = True
        for worker in self.workers:
            if worker.process.pid is not None and worker.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, sig)
        if first and self._loop is not None:
            # The workers serve (new connections too) for drain_s, then stop taking sockets.
            self._loop.call_later(self.settings.drain_s, self._stop_listening)

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and self._loop is not None:
            self._loop.remove_reader(listener.fileno())
            listener.close()

    # -- accepting and routing ----------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(512):  # then let the loop breathe
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the kernel keeps them queued
                log.warning("accept: %s", exc)
                return
            sock.setblocking(False)
            self._peek(sock)

    def _peek(self, sock: socket.socket) -> None:
        """Route `sock` if its request line is there; else wait (without blocking) for it."""
        assert self._loop is not None
        fd = sock.fileno()
        try:
            head = sock.recv(PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            head = None
        except OSError:
            head = b""
        if head == b"":  # closed before it asked anything
            self._forget(fd)
            sock.close()
            return
        if head is not None:
            line, newline, _ = head.partition(b"\n")
            if newline or len(head) >= PEEK_BYTES:
                self._forget(fd)
                self._route(sock, document_of(line) if newline else None)
                return
        # Nothing yet, or half a line: wait for more, within PEEK_TIMEOUT_S.
        now = time.monotonic()
        started = self._peeking.get(fd, (sock, now))[1]
        if now - started > PEEK_TIMEOUT_S:
            self._forget(fd)
            self._route(sock, None)
            return
        if fd not in self._peeking:
            self._peeking[fd] = (sock, started)
            self._loop.add_reader(fd, self._readable, fd)
            self._loop.call_later(PEEK_TIMEOUT_S + 0.1, self._timeout, fd, sock)
        elif head:  # half a line: readable stays set, so poll rather than spin
            self._loop.remove_reader(fd)
            self._loop.call_later(0.02, self._readable, fd)

    def _readable(self, fd: int) -> None:
        entry = self._peeking.get(fd)
        if entry is not None:
            self._peek(entry[0])

    def _timeout(self, fd: int, sock: socket.socket) -> None:
        entry = self._peeking.get(fd)
        if entry is not None and entry[0] is sock:
            self._forget(fd)
            self._route(sock, None)

    def _forget(self, fd: int) -> None:
        if self._peeking.pop(fd, None) is not None and self._loop is not None:
            self._loop.remove_reader(fd)

    def _route(self, sock: socket.socket, document: str | None) -> None:
        worker = self._pick(document)
        if worker is None:
            sock.close()
            return
        if not worker.queue and not worker.writing:
            assert self._loop is not None
            self._loop.call_soon(self._hand_over, worker)
        worker.queue.append(sock)

    def _pick(self, document: str | None) -> Worker | None:
        """The document's worker (the next in turn for None); when that one takes no more
        sockets (it died, or its drain ended), the next that does: any worker serves any
        document correctly (the local bus), the owner only does it cheapest."""
        workers = self.workers
        if not workers:
            return None
        if document is None:
            first = next(self._turn) % len(workers)
        else:
            first = owner(document, len(workers))
        for i in range(len(workers)):
            worker = workers[(first + i) % len(workers)]
            if not worker.gone and not worker.refusing:
                return worker
        return None

    def _hand_over(self, worker: Worker) -> None:
        """Send the worker its queued sockets, as many a message as SCM_RIGHTS takes."""
        assert self._loop is not None
        while worker.queue and not worker.gone:
            batch = worker.queue[:MAX_FDS]
            try:
                socket.send_fds(worker.channel, [bytes(len(batch))], [s.fileno() for s in batch])
            except (BlockingIOError, InterruptedError):
                if not worker.writing:
                    worker.writing = True
                    self._loop.add_writer(worker.channel.fileno(), self._writable, worker)
                return
            except OSError as exc:  # the worker takes no more sockets (drained, dying)
                log.debug("handing sockets to worker %s: %s", worker.process.pid, exc)
                worker.refusing = True
                self._reroute(worker)
                break
            del worker.queue[: len(batch)]
            for sock in batch:
                sock.close()
        if worker.writing:
            worker.writing = False
            with contextlib.suppress(Exception):
                self._loop.remove_writer(worker.channel.fileno())

    def _reroute(self, worker: Worker) -> None:
        """What was queued for a worker that takes no more goes to the others."""
        queue, worker.queue = worker.queue, []
        for sock in queue:
            self._route(sock, None)

    def _writable(self, worker: Worker) -> None:
        self._hand_over(worker)

    # -- the local bus ------------------------------------------------------------------------

    async def _relay(self, worker: Worker) -> None:
        assert worker.bus is not None
        reader, worker.writer = await asyncio.open_connection(sock=worker.bus)
        try:
            while True:
                op, name, data, whole = await read_frame(reader)
                if op == PUBLISH:
                    if worker.process_id is None and len(data) >= 2 + PID_BYTES:
                        worker.process_id = data[2 : 2 + PID_BYTES]
                    out = bytearray(whole)
                    out[4] = MESSAGE
                    if name == ALL:
                        for other in self.workers:  # the sender too: it times its heartbeats
                            self._write(other, out)
                    else:
                        for other in self._channels.get(name, ()):
                            if other is not worker:
                                self._write(other, out)
                elif op == JOIN:
                    self._join(worker, name)
                elif op == LEAVE:
                    self._leave(worker, name)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the worker is gone: _watch cleans up

    def _write(self, worker: Worker, data: bytes | bytearray) -> None:
        writer = worker.writer
        if writer is not None and not worker.gone and not writer.is_closing():
            writer.write(data)

    def _join(self, worker: Worker, name: bytes) -> None:
        holders = self._channels.setdefault(name, set())
        holders.add(worker)
        worker.joined.add(name)
        if len(holders) == 2:
            for other in holders:
                if other is not worker:
                    self._write(other, frame(SHARED, name))
        self._write(worker, frame(JOINED, name, b"\x01" if len(holders) > 1 else b"\x00"))

    def _leave(self, worker: Worker, name: bytes) -> None:
        worker.joined.discard(name)
        holders = self._channels.get(name)
        if holders is None:
            return
        holders.discard(worker)
        if len(holders) == 1:
            for other in holders:
                self._write(other, frame(ALONE, name))
        elif not holders:
            del self._channels[name]

    # -- running ------------------------------------------------------------------------------

    async def run(self, listener: socket.socket) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._listener = listener
        listener.setblocking(False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)
        self.workers = [self._spawn(i) for i in range(self.settings.workers)]
        log.info(
            "supervising %d workers on %s:%d (documents routed by name, %s)",
            len(self.workers),
            self.settings.host,
            self.settings.port,
            "local bus" if self._local_bus else "their own bus",
        )
        loop.add_reader(listener.fileno(), self._accept)
        try:
            await self._watch()
        finally:
            self._stop_listening()
            for fd, (sock, _) in list(self._peeking.items()):
                self._forget(fd)
                sock.close()


def run_workers(settings: Settings) -> int:
    """Serve with `settings.workers` processes; exit 0 when every worker exited 0."""
    import shutil

    from .server import _multiprocess_metrics

    listener = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.host, settings.port))
    listener.listen(2048)
    metrics_dir = _multiprocess_metrics(settings)
    supervisor = Supervisor(settings)
    try:
        asyncio.run(supervisor.run(listener))
    finally:
        listener.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if all(code == 0 for code in supervisor.statuses.values()) else 1
