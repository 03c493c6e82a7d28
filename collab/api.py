"""The HTTP API under /api: JSON in and out, every route behind the same access check.

`access_of(request)` is the one door: it asks the extensions' on_request hooks (the built-in
token auth is one: `Authorization: Bearer <token>` or `?token=`) what the caller may see. A
server without any authentication answers everyone, as its WebSocket route does; a server whose
connections need a token answers 401 to a request without one, and shows a token only the
documents its scope covers (403 for a document outside it). Errors are JSON:
`{"error": message, "status": code}`.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .access import EVERYTHING, Access
from .errors import ApiError, CollabError, HttpStatus, api_error_from
from .hooks import OnRequestPayload

log = logging.getLogger(__name__)

PREFIX = "/api"


def bearer_token(request: Request) -> str | None:
    """`Authorization: Bearer <token>`, else `?token=` (EventSource cannot send headers)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


async def access_of(request: Request) -> Access:
    """What the caller may see, or ApiError(401/403)."""
    hooks = request.app.state.hub.hooks
    if not (hooks.has("on_request") or hooks.has("on_authenticate")):
        return EVERYTHING
    client = request.client
    payload = OnRequestPayload(
        request.method,
        request.url.path,
        bearer_token(request),
        request.headers,
        {k: v for k, v in request.query_params.items() if k != "token"},
        f"{client.host}:{client.port}" if client else "?",
    )
    try:
        access: Access | None = await hooks.request(payload)
    except CollabError as exc:
        raise api_error_from(exc) from None
    if access is None:
        if not hooks.has("on_request"):
            log.info(
                "API request refused: connections are authenticated by an extension without"
                " an on_request hook, so nothing vouches for HTTP callers"
            )
        raise ApiError(HttpStatus.UNAUTHORIZED, "authentication required")
    return access


async def list_documents(request: Request) -> Response:
    """`?prefix=`: only names starting with it (403 when the caller's scope reaches none)."""
    access = await access_of(request)
    prefix = request.query_params.get("prefix", "")
    if not access.reaches(prefix):
        raise ApiError(HttpStatus.FORBIDDEN, "token not valid for these documents")
    hub = request.app.state.hub
    docs = [d for d in await hub.store.list_documents() if d.name.startswith(prefix)]
    return JSONResponse(
        [
            {
                "name": d.name,
                "created_at_ms": d.created_at_ms,
                "updated_at_ms": d.updated_at_ms,
                "size_bytes": d.size_bytes,
                "online": len(hub.rooms[d.name].members) if d.name in hub.rooms else 0,
            }
            for d in docs
            if access.covers(d.name)
        ]
    )


async def not_found(request: Request) -> Response:
    await access_of(request)  # not even which routes exist, without a token
    raise ApiError(HttpStatus.NOT_FOUND, "no such API route")


def api_routes() -> list[BaseRoute]:
    return [
        Route(PREFIX + "/documents", list_documents),
        Route(
            PREFIX + "/{rest:path}",
            not_found,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == HttpStatus.UNAUTHORIZED else None
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: JSON under /api, plain text elsewhere (as before)."""
    assert isinstance(exc, HTTPException)
    if request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/"):
        return error_response(exc.status_code, str(exc.detail).lower())
    headers: dict[str, Any] = dict(exc.headers or {})
    return Response(str(exc.detail), status_code=exc.status_code, headers=headers)
