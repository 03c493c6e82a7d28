"""Run the app under uvicorn, with a shutdown that closes clients with 1001 before uvicorn's own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import tempfile
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from .app import create_app
from .endpoint import Endpoint
from .errors import CloseCode
from .front import FrontDoor
from .settings import Settings

log = logging.getLogger(__name__)

# uvicorn's housekeeping (its Date header, its request limit): once a second.
TICK_S = 1.0


def uvicorn_config(app: Starlette, settings: Settings, **extra: Any) -> uvicorn.Config:
    # WebSockets are ours (collab/wire.py, collab/endpoint.py); uvicorn's ws_* settings do not
    # apply. Each connection's first request goes to FrontDoor (collab/front.py): an upgrade to
    # our socket at once, anything else to uvicorn's HTTP protocol (`http`, as uvicorn names it).
    if settings.trusted_proxies:
        extra.setdefault("forwarded_allow_ips", settings.trusted_proxies)
    http = extra.pop("http", "auto")
    http_class = (
        import_from_string(HTTP_PROTOCOLS.get(http, http)) if isinstance(http, str) else http
    )
    endpoint = Endpoint(app)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=FrontDoor(endpoint, http_class),  # type: ignore[arg-type]
        ws=endpoint,  # type: ignore[arg-type]
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
        **extra,
    )


class CollabServer(uvicorn.Server):
    """On SIGTERM/SIGINT: /readyz answers 503 at once; the server keeps serving (HTTP and new
    WebSockets alike) for `drain_s`, so a balancer probing /readyz stops sending it clients;
    then it stops listening, closes every client with 1001, and lets uvicorn exit (its lifespan
    shutdown flushes every room) with status 0. A second Ctrl-C exits at once; a repeated
    SIGTERM changes nothing (systemd signals every process of the group, and a supervisor
    forwards the signal too: the drain must survive both arriving).

    uvicorn re-raises a captured signal after shutdown (so the process would die of SIGTERM);
    a server that drained and flushed has done what the signal asked, so we exit normally.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        self._exit = asyncio.Event()  # set with should_exit: wakes main_loop (before super())
        super().__init__(config)
        self.app = app
        self._draining: asyncio.Task[None] | None = None
        self._holding = False  # in the drain period: still serving, /readyz 503

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def main_loop(self) -> None:
        """uvicorn's loop, with its housekeeping once a second (TICK_S) instead of ten times: it
        refreshes the Date header once a second anyway, and each tick woke an idle process (an
        asyncio.wait_for each time: ~2.7 ms of CPU a second, three quarters of what an idle
        server spent). A stop ends the wait at once instead of at the next tick (a test suite
        stopping hundreds of servers waited ~95 ms on each with uvicorn's 0.1 s sleep)."""
        should_exit = await self.on_tick(0)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), TICK_S)
            # counter 0: what uvicorn does every tenth tick (Date header) on every tick
            should_exit = await self.on_tick(0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        hub = getattr(self.app.state, "hub", None)
        if self._holding and sig != signal.SIGINT:
            return  # a repeated SIGTERM: the drain period goes on
        if self._draining is not None or hub is None or self.should_exit:
            # A repeated SIGTERM (systemd and `timeout` signal the whole process group, and a
            # supervisor forwards it too) must not skip the flush; a second Ctrl-C may.
            if sig == signal.SIGINT and (self.should_exit or self._draining is not None):
                self.force_exit = True
                if self._holding and self._draining is not None:
                    self._draining.cancel()  # (its sleep; uvicorn exits without the flush)
            self.should_exit = True
            return
        self._draining = asyncio.get_event_loop().create_task(self._drain(hub))

    async def _drain(self, hub: Any) -> None:
        readiness = getattr(self.app.state, "readiness", None)
        if readiness is not None:
            readiness.shutting_down()
        settings: Settings | None = getattr(self.app.state, "settings", None)
        drain_s = settings.drain_s if settings is not None else 0.0
        if drain_s > 0:
            log.info("shutting down: /readyz answers 503; serving for %g s more", drain_s)
            self._holding = True
            try:
                await asyncio.sleep(drain_s)
            finally:
                self._holding = False
        log.info("shutting down: closing clients with 1001")
        for server in getattr(self, "servers", []):
            server.close()
        try:
            await hub.close_all(CloseCode.GOING_AWAY, "server shutting down", wait_s=2.0)
        finally:
            self.should_exit = True

    async def stop(self) -> None:
        """What SIGTERM does, for code that runs the server in-process (tests)."""
        self.handle_exit(signal.SIGTERM, None)
        if self._draining is not None:
            await self._draining


def serve(app: Starlette, settings: Settings | None = None) -> int:
    """Serve an app made with create_app (and your extensions) as `collab serve` would."""
    return serve_once(settings or getattr(app.state, "settings", None) or Settings(), app=app)


def serve_once(
    settings: Settings, sock: socket.socket | None = None, app: Starlette | None = None
) -> int:
    app = app if app is not None else create_app(settings)
    config = uvicorn_config(app, settings)
    server = CollabServer(config, app)
    server.run(sockets=[sock] if sock is not None else None)
    hub = getattr(app.state, "hub", None)
    if hub is None or not server.started:
        return 1  # never got to serve (port taken, store unreachable): uvicorn logged why
    return 1 if hub.flush_failed else 0


def _multiprocess_metrics(settings: Settings) -> str | None:
    """Give the workers prometheus-client's multiprocess mode: a fresh directory for their
    value files, in the environment they inherit (it must be set before they import the
    library). None with metrics off."""
    if not settings.metrics:
        return None
    directory = tempfile.mkdtemp(prefix="collab-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    log.info("metrics: multiprocess mode in %s", directory)
    return directory


def _worker_gone(pid: int) -> None:
    """A worker exited: its live gauges leave the sums (its counters stay, as counters must)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
