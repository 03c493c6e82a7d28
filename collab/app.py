"""create_app(settings, *, store=None, extensions=()): the routes, and the lifespan that owns the
store, the hub and the extensions' lifecycle.

The lifespan, in order: open the store, start the hub, run the on_startup hooks, serve; then
close every client and flush every room (hub.shutdown), run the on_shutdown hooks, cancel the
tasks left in the lifespan's task group (the hub's and the extensions'), close the store.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from storage import DocumentStore, SqlStore

from . import affinity, extras
from .admission import Admission
from .api import EXCEPTION_HANDLERS, api_routes, catch_all, openapi_schema
from .api.health import Readiness
from .api.metrics import MetricsServer, metrics_routes
from .api.router import OperationRoute
from .asgi_endpoint import websocket_routes
from .cluster import Bus
from .documents import DocumentService
from .errors import StartupError
from .events.feed import EventFeed
from .extensions import TokenAuth, amqp, webhooks
from .hooks import Extension, OnShutdownPayload, OnStartupPayload
from .hub import Hub
from .metrics import Metrics
from .protocols import signaling
from .protocols.signal_socket import AsgiSignal
from .settings import Settings
from .static import frontend_routes

log = logging.getLogger(__name__)

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None,
    *,
    store: DocumentStore | None = None,
    extensions: Sequence[Extension] = (),
) -> Starlette:
    """The ASGI app. A store passed in is opened but not closed: its owner closes it.

    Token auth is added when `settings.auth_secret` or `settings.auth_public_key` is set, the
    RabbitMQ sink when `settings.amqp_url` is, webhooks when `settings.webhook_urls` names any
    (ValueError without a secret).
    Raises MissingExtra (an ImportError) when the settings need a package that is not installed,
    and ValueError when an extension's route takes a path already served.
    """
    settings = settings or Settings()
    extras.check(settings, store=store is None)
    builtin = [*amqp.from_settings(settings), *webhooks.from_settings(settings)]
    active = with_token_auth(settings, [*extensions, *builtin])
    app = Starlette(
        routes=routes(settings, active),
        lifespan=_lifespan(settings, store, active),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequireLifespan)],
    )
    app.state.settings = settings  # what collab.serve(app) listens with
    app.state.openapi = openapi_schema()  # GET /api/openapi.json
    return app


def with_token_auth(settings: Settings, extensions: Sequence[Extension]) -> list[Extension]:
    """The extensions, after the built-in token auth when the settings switch it on."""
    if not (settings.auth_secret or settings.auth_public_key):
        return list(extensions)
    auth = TokenAuth(secret=settings.auth_secret, public_key=settings.auth_public_key)
    return [auth, *extensions]


def routes(settings: Settings, extensions: Sequence[Extension]) -> list[BaseRoute]:
    """The API's routes, then the extensions' (so /api/<theirs> is not the API's 404), the
    API's catch-all, and the browser editor (/, /d/<name>, /assets/)."""
    api, last = (
        [*api_routes(), *metrics_routes(settings)],
        [*catch_all(), *frontend_routes(settings)],
    )
    taken = {_path(route) for route in (*api, *last)}
    theirs: list[BaseRoute] = []
    for extension in extensions:
        for route in extension.routes():
            path = _path(route)
            if path in taken:
                raise ValueError(f"{type(extension).__name__} serves {path!r}, already served")
            taken.add(path)
            theirs.append(route)
    # /ws and /signal under any ASGI server (under collab serve, uvicorn hands upgrades to
    # collab/endpoint.py)
    signal = WebSocketRoute(signaling.ROUTE, AsgiSignal())
    return [*api, *theirs, *last, *websocket_routes(), signal]


def _path(route: BaseRoute) -> str | None:
    return route.path if isinstance(route, Route | Mount | OperationRoute) else None


def _lifespan(
    settings: Settings, store: DocumentStore | None, extensions: Sequence[Extension]
) -> Lifespan:
    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        failed: StartupError | None = None
        async with _opened(settings, store) as active, anyio.create_task_group() as tg:
            hub = Hub(settings, active, tg, extensions, bus=make_bus(settings))
            app.state.hub = hub
            admission = app.state.admission = Admission(hub, settings)
            signals = app.state.signaling = signaling.Signaling(admission, hub.hooks, hub.cluster)
            if hub.cluster is not None:
                hub.cluster.on_signal = signals.remote
            hub.start()
            tg.start_soon(signals.run, hub.tick_s)
            documents = app.state.documents = DocumentService(active, hub)
            events = app.state.events = EventFeed(active, settings)
            defer = affinity.others_documents(settings, hub.rooms)
            events.start(tg, documents, hub.saver, hub, defer=defer)
            app.state.readiness = Readiness(active, hub, tg)
            metrics = app.state.metrics = Metrics(settings, hub, events, signals)
            metrics.start(tg)
            metrics_server = None
            if settings.metrics and settings.metrics_port:
                metrics_server = MetricsServer(settings, metrics)
                tg.start_soon(metrics_server.serve)
            try:
                try:
                    await hub.hooks.startup(OnStartupPayload(app, settings, documents, tg, events))
                except StartupError as exc:
                    log.error("not serving: %s", exc)
                    failed = exc  # raised below, once the task group is done (unwrapped)
                else:
                    await events.open_sinks()
                    _ready(settings, active, own_store=store is None)
                    yield
            finally:
                signals.close_all(1001, "server shutting down")
                if metrics_server is not None:
                    metrics_server.stop()
                await hub.shutdown()
                await events.stop(settings.shutdown_timeout_s)
                shutdown = OnShutdownPayload(app, settings, documents)
                await hub.hooks.shutdown(shutdown, settings.shutdown_timeout_s)
                tg.cancel_scope.cancel()
        if failed is not None:
            raise failed

    return run


@asynccontextmanager
async def _opened(settings: Settings, store: DocumentStore | None) -> AsyncIterator[DocumentStore]:
    """The store to use, open; closed after if it is ours (one passed in belongs to its owner)."""
    active: DocumentStore = store if store is not None else SqlStore.from_url(settings.database_url)
    await active.open()
    try:
        yield active
    finally:
        if store is None:
            await active.close()


def _ready(settings: Settings, store: DocumentStore, *, own_store: bool) -> None:
    # Everything allocated so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise stall the loop for 70-150 ms under load.
    gc.freeze()
    log.info(
        "collab ready on %s:%d, store %s",
        settings.host,
        settings.port,
        _safe_url(settings.database_url) if own_store else type(store).__name__,
    )


def lifespan(app: Starlette) -> AbstractAsyncContextManager[None]:
    """The lifespan of an app made by create_app, for the app it is mounted in.

    Starlette (and FastAPI) run only the outermost app's lifespan, never a mounted one's, and
    the collab app's lifespan is what opens the store and starts the hub. So the host enters
    this in its own lifespan:

        collab_app = create_app(settings)

        @asynccontextmanager
        async def host_lifespan(host):
            async with collab.lifespan(collab_app):
                yield

        host = Starlette(routes=[Mount("/collab", app=collab_app)], lifespan=host_lifespan)
    """
    return cast(AbstractAsyncContextManager[None], app.router.lifespan_context(app))


NOT_STARTED = (
    "collab: this app's lifespan has not run, so nothing is open to serve this request. "
    "Mounted in another app? Starlette runs only the outer app's lifespan: enter "
    "collab.lifespan(collab_app) in the host app's lifespan (see the README)."
)


class RequireLifespan:
    """Answers every request with what is wrong (HTTP 500, and an error in the log) while the
    app's lifespan has not run, instead of an AttributeError deep in a handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or hasattr(scope["app"].state, "hub"):
            await self.app(scope, receive, send)
            return
        log.error("%s", NOT_STARTED)
        if scope["type"] == "http":
            await PlainTextResponse(NOT_STARTED, status_code=500)(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            if "websocket.http.response" in scope.get("extensions", {}):
                await PlainTextResponse(NOT_STARTED, status_code=500)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1011})  # HTTP 403


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def make_bus(settings: Settings) -> Bus | None:
    """The cluster bus the settings ask for, or None for a single process."""
    if settings.redis_url:
        from .cluster.redis import RedisBus

        return RedisBus(settings.redis_url)
    if settings.bus == "postgres":
        from .cluster.postgres import PgBus, asyncpg_dsn

        return PgBus(asyncpg_dsn(settings.database_url))
    return affinity.local_bus()  # a `--workers` process on one machine: its supervisor relays
