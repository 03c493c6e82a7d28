"""HTTP errors as JSON under /api: `{"error": {"code", "message", "status"}}` (the code and
status from the one table in collab/errors.py)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import ApiError, CollabError, HttpStatus, api_error_from

PREFIX = "/api"


def error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    return render(ApiError(status, message, code))


def render(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == HttpStatus.UNAUTHORIZED else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return render(exc)


async def collab_error(request: Request, exc: Exception) -> Response:
    """A CollabError a route let through (DocumentNotFound, an invalid update...): its status."""
    assert isinstance(exc, CollabError)
    return render(api_error_from(exc))


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: JSON under /api, plain text elsewhere (as before)."""
    assert isinstance(exc, HTTPException)
    if request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/"):
        return error_response(exc.status_code, str(exc.detail).lower())
    headers: dict[str, Any] = dict(exc.headers or {})
    return Response(str(exc.detail), status_code=exc.status_code, headers=headers)


EXCEPTION_HANDLERS = {
    ApiError: api_error,
    CollabError: collab_error,
    HTTPException: http_exception,
}
