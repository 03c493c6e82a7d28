"""GET /metrics: the Prometheus text format (collab/metrics.py makes it).

On the main port (`metrics_port` 0) it is open on a server without authentication, and
otherwise needs a token whose access reads the metrics (`collab token --metrics`, or an admin
token): 401 without one, 403 for any other, as the API answers. With `metrics_port` set, it is
served on that port only (same host), without authentication, as a Prometheus scrape target on
a port the outside world does not reach usually is; the main port answers 404. With `metrics`
off there is no /metrics at all.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import ApiError, HttpStatus
from ..metrics import Metrics
from ..settings import Settings
from .access import access_of

log = logging.getLogger(__name__)

PATH = "/metrics"


async def metrics_endpoint(request: Request) -> Response:
    """/metrics on the main port: for a caller whose access reads the metrics."""
    access = await access_of(request)
    if not access.reads_metrics:
        raise ApiError(HttpStatus.FORBIDDEN, "this token may not read the metrics")
    return await _answer(request.app.state.metrics)


async def _answer(metrics: Metrics) -> Response:
    return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def metrics_routes(settings: Settings) -> list[BaseRoute]:
    """The main app's /metrics route, when it is served there."""
    if not settings.metrics or settings.metrics_port:
        return []
    return [Route(PATH, metrics_endpoint, methods=["GET"])]


class _QuietServer(uvicorn.Server):
    """A uvicorn server inside another's process: the signals are the main server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class MetricsServer:
    """/metrics on `settings.metrics_port`, without authentication, in the app's lifespan.

    Under `--workers N` every worker binds the port with SO_REUSEPORT (the kernel hands each
    scrape to one of them, and any of them answers for all: multiprocess mode)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        async def answer(request: Request) -> Response:
            return await _answer(metrics)

        app = Starlette(routes=[Route(PATH, answer, methods=["GET"])])
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
        self.server = _QuietServer(config)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.workers > 1:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind((settings.host, settings.metrics_port))
        self.socket.listen(64)
        log.info("serving /metrics on %s:%d", settings.host, settings.metrics_port)

    async def serve(self) -> None:
        try:
            await self.server.serve(sockets=[self.socket])
        finally:
            self.socket.close()

    def stop(self) -> None:
        self.server.should_exit = True
