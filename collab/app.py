"""create_app(settings, *, store=None): the routes, and the lifespan that owns the hub."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from storage import DocumentStore, SqlStore

from . import extras
from .admission import Admission
from .api import api_error, api_routes, http_exception
from .asgi_endpoint import websocket_routes
from .auth import TokenAuth
from .cluster import Bus
from .errors import ApiError
from .hooks import Extension
from .hub import Hub
from .settings import Settings
from .static import frontend_routes

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    store: DocumentStore | None = None,
    extensions: Sequence[Extension] = (),
) -> Starlette:
    """The ASGI app. A store passed in is opened but not closed: its owner closes it.

    Token auth is added when `settings.auth_secret` or `settings.auth_public_key` is set.
    Raises MissingExtra (an ImportError) when the settings need a package that is not installed.
    """
    settings = settings or Settings()
    extras.check(settings, store=store is None)
    active_extensions = list(extensions)
    if settings.auth_secret or settings.auth_public_key:
        active_extensions.insert(
            0, TokenAuth(secret=settings.auth_secret, public_key=settings.auth_public_key)
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        active: DocumentStore = (
            store if store is not None else SqlStore.from_url(settings.database_url)
        )
        await active.open()
        try:
            async with anyio.create_task_group() as tg:
                hub = Hub(settings, active, tg, active_extensions, bus=make_bus(settings))
                app.state.hub = hub
                app.state.admission = Admission(hub, settings)
                hub.start()
                # Everything allocated so far lives as long as the process: keep it out of the
                # collector's full passes, which otherwise stall the loop for 70-150 ms under load.
                gc.freeze()
                log.info(
                    "collab ready on %s:%d, store %s",
                    settings.host,
                    settings.port,
                    _safe_url(settings.database_url) if own_store else type(active).__name__,
                )
                try:
                    yield
                finally:
                    await hub.shutdown()
                    tg.cancel_scope.cancel()
        finally:
            if own_store:
                await active.close()

    routes: list[BaseRoute] = [Route("/healthz", healthz), *api_routes()]
    routes += frontend_routes(settings)  # the browser editor: /, /d/<name>, /assets/
    routes += websocket_routes()  # /ws under any ASGI server (collab serve: collab/endpoint.py)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: api_error, HTTPException: http_exception},
        middleware=[Middleware(RequireLifespan)],
    )
    app.state.settings = settings  # what collab.serve(app) listens with
    return app


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


async def healthz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    return JSONResponse(
        {
            "status": "ok" if hub.accepting else "shutting down",
            "rooms": len(hub.rooms),
            "connections": len(hub.connections),
            "uncommitted_updates": hub.saver.recorded - hub.saver.committed,
            "recorded_updates": hub.saver.recorded,
            "committed_updates": hub.saver.committed,
        },
        status_code=200 if hub.accepting else 503,
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def make_bus(settings: Settings) -> Bus | None:
    """The cluster bus the settings ask for, or None for a single process."""
    if settings.redis_url:
        from .redis_bus import RedisBus

        return RedisBus(settings.redis_url)
    if settings.bus == "postgres":
        from .pg_bus import PgBus, asyncpg_dsn

        return PgBus(asyncpg_dsn(settings.database_url))
    return None
