"""GET /api/openapi.json (the schema, built once per app from the operations) and GET /api/docs
(Swagger UI from our own assets: frontend/dist/api-docs.html, written by frontend/build.mjs
with swagger-ui-dist bundled; no CDN). Both are open: the schema is the same for every Collab
server and shows no document."""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from .._version import __version__
from ..static import PAGE_HEADERS, frontend_dir
from .router import HTML, JSON, Call, Operation

# Swagger UI sets inline styles and shows data: images (its icons); nothing else is relaxed.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def package_version() -> str:
    return __version__


async def get_openapi(call: Call) -> Response:
    schema: dict[str, Any] = call.request.app.state.openapi
    return JSONResponse(schema)


async def get_docs(call: Call) -> Response:
    page = frontend_dir(call.request.app.state.settings) / "api-docs.html"
    headers = {**PAGE_HEADERS, "Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}
    try:
        return HTMLResponse(page.read_bytes(), headers=headers)
    except OSError:
        return HTMLResponse(
            "<!doctype html><title>Collab API</title><p>The API documentation page is not"
            " built: run <code>make frontend</code>. The schema is at"
            ' <a href="/api/openapi.json">/api/openapi.json</a>.</p>',
            status_code=503,
            headers=headers,
        )


OPERATIONS = [
    Operation(
        "GET",
        "/api/openapi.json",
        "getOpenApi",
        "This schema (OpenAPI 3.1)",
        get_openapi,
        tag="meta",
        public=True,
        response=JSON,
    ),
    Operation(
        "GET",
        "/api/docs",
        "getDocs",
        "A page that renders this schema (Swagger UI)",
        get_docs,
        tag="meta",
        public=True,
        response=HTML,
    ),
]
