"""Who is asking: `access_of(request)`, the one access check of every HTTP route.

It asks the extensions' on_request hooks (the built-in token auth is one: `Authorization: Bearer
<token>` or `?token=`) what the caller may see. A server without any authentication answers
everyone, as its WebSocket route does; a server whose connections need a token answers 401 to a
request without one, and shows a token only the documents its scope covers (403 for a document
outside it). An extension's routes that show documents ask it too.
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from ..access import EVERYTHING, Access
from ..errors import ApiError, CollabError, HttpStatus, api_error_from
from ..hooks import HookRunner, OnRequestPayload

log = logging.getLogger(__name__)


def bearer_token(request: Request) -> str | None:
    """`Authorization: Bearer <token>`, else `?token=` (EventSource cannot send headers)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


async def access_of(request: Request) -> Access:
    """What the caller may see, or ApiError(401/403)."""
    hooks: HookRunner = request.app.state.hub.hooks
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
        access = await hooks.request(payload)
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
