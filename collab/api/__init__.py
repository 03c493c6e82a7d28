"""The HTTP API under /api: JSON in and out (binary for Yjs updates), every route declared once
as an `Operation` (collab.api.router) that drives both the router and the OpenAPI schema
(collab.api.openapi), every route behind the same access check (`access_of`), every document
reached through the documents service. Errors are JSON `{"error": {"code", "message",
"status"}}` (collab.errors is the table). /healthz and /readyz (health.py) are operations
too, outside /api and open.

The routes come in two parts so that extensions' routes can go between them
(collab.app): the API's own routes first, the catch-all 404 of /api last.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import ApiError, HttpStatus
from . import admin, comments, deliveries, documents, events, health, meta, versions
from .access import access_of, bearer_token
from .errors import EXCEPTION_HANDLERS, PREFIX, error_response
from .openapi import build
from .paths import raw_segments
from .router import Operation, OperationRoute

__all__ = [
    "EXCEPTION_HANDLERS",
    "OPERATIONS",
    "PREFIX",
    "access_of",
    "api_routes",
    "bearer_token",
    "catch_all",
    "error_response",
    "openapi_schema",
]

# Every operation of the API, in the order the schema lists them.
OPERATIONS: list[Operation] = [
    *documents.OPERATIONS,
    *versions.OPERATIONS,
    *comments.OPERATIONS,
    *events.OPERATIONS,
    *deliveries.OPERATIONS,
    *admin.OPERATIONS,
    *meta.OPERATIONS,
    *health.OPERATIONS,
]


def openapi_schema() -> dict[str, object]:
    return build(OPERATIONS, meta.package_version())


def api_routes() -> list[BaseRoute]:
    return [OperationRoute(op) for op in OPERATIONS]


def catch_all() -> list[BaseRoute]:
    """Any other /api path: 404 (405 for other methods), only to a caller with access."""
    return [
        Route(
            PREFIX + "/{rest:path}",
            not_found,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        )
    ]


async def not_found(request: Request) -> Response:
    """404, or 405 for a path an operation has with another method (Starlette would have
    answered 405 itself but this catch-all takes every method)."""
    segments = raw_segments(request.scope)
    matching = [op for op in OPERATIONS if op.template.match(segments) is not None]
    if not matching or not all(op.public for op in matching):
        await access_of(request)  # not even which routes exist, without a token
    if matching:
        allow = ", ".join(sorted({op.method for op in matching}))
        raise ApiError(HttpStatus.METHOD_NOT_ALLOWED, f"method not allowed (allowed: {allow})")
    raise ApiError(HttpStatus.NOT_FOUND, "no such API route")
