"""HTTP errors as JSON: `{"error": message, "status": code}` under /api."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import ApiError, HttpStatus

PREFIX = "/api"


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


EXCEPTION_HANDLERS = {ApiError: api_error, HTTPException: http_exception}
