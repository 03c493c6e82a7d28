"""GET /api/documents: the documents the caller may see, through the documents service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..documents import DocumentService
from ..errors import ApiError, HttpStatus
from .access import access_of


async def list_documents(request: Request) -> Response:
    """`?prefix=`: only names starting with it (403 when the caller's scope reaches none)."""
    access = await access_of(request)
    prefix = request.query_params.get("prefix", "")
    if not access.reaches(prefix):
        raise ApiError(HttpStatus.FORBIDDEN, "token not valid for these documents")
    documents: DocumentService = request.app.state.documents
    return JSONResponse(
        [
            {
                "name": d.name,
                "created_at_ms": d.created_at_ms,
                "updated_at_ms": d.updated_at_ms,
                "size_bytes": d.size_bytes,
                "online": d.online,
            }
            for d in await documents.list_documents(access, prefix)
        ]
    )
