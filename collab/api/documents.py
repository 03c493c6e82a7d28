"""The documents routes: list, read (JSON, one text, a Yjs update), write (a Yjs update, a
patch), delete. Each is one `Operation`; all go through the documents service."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.responses import PlainTextResponse, Response

from ..errors import ApiError, DocumentNotFound, HttpStatus, ProtocolError
from .models import (
    Applied,
    Content,
    ContentQuery,
    DocumentPage,
    DocumentSummary,
    ListQuery,
    Patch,
    UpdateQuery,
)
from .router import BINARY, TEXT, Call, Operation

DOCUMENTS = "/api/documents"
DOCUMENT = DOCUMENTS + "/{name}"


async def list_documents(call: Call) -> DocumentPage:
    query: ListQuery = call.query
    if not call.access.reaches(query.prefix):
        raise ApiError(HttpStatus.FORBIDDEN, "token not valid for these documents")
    try:
        page, next_cursor = await call.documents.list_page(
            call.access, query.prefix, query.limit, query.cursor
        )
    except ValueError:
        raise ApiError(HttpStatus.BAD_REQUEST, "invalid cursor") from None
    return DocumentPage(
        documents=[
            DocumentSummary(
                name=d.name,
                created_at_ms=d.created_at_ms,
                updated_at_ms=d.updated_at_ms,
                size_bytes=d.size_bytes,
                online=d.online,
                versions=d.versions,
            )
            for d in page
        ],
        next_cursor=next_cursor,
    )


async def get_content(call: Call) -> Content:
    query: ContentQuery = call.query
    return content_of(call.name, await call.documents.content(call.name, query.format))


def content_of(name: str, read: dict[str, Any]) -> Content:
    return Content(name=name, content=read["content"], types=read["types"])


async def get_text(call: Call) -> Response:
    text = await call.documents.text(call.name, call.path["field"])
    return PlainTextResponse(text)


async def get_update(call: Call) -> Response:
    query: UpdateQuery = call.query
    state_vector = decode_base64(query.sv) if query.sv is not None else None
    try:
        update = await call.documents.read(call.name, state_vector)
    except DocumentNotFound:
        raise
    except ProtocolError as exc:  # the state vector, not an update of the caller's
        raise ApiError(HttpStatus.BAD_REQUEST, f"invalid state vector: {exc.reason}") from None
    return Response(update, media_type=BINARY)


def decode_base64(text: str) -> bytes:
    """Standard or url-safe base64, padded or not (400 otherwise)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(HttpStatus.BAD_REQUEST, "sv is not base64") from None


async def post_update(call: Call) -> Applied:
    await call.documents.apply_update(call.name, call.body, author=call.author)
    return Applied(name=call.name, applied=True)


async def patch_document(call: Call) -> Content:
    patch: Patch = call.body
    read = await call.documents.patch(call.name, patch.text, patch.map, author=call.author)
    return content_of(call.name, read)


async def delete_document(call: Call) -> None:
    if not await call.documents.delete(call.name):
        raise DocumentNotFound(f"no document named {call.name!r}")


OPERATIONS = [
    Operation(
        "GET",
        DOCUMENTS,
        "listDocuments",
        "List documents",
        list_documents,
        query=ListQuery,
        response=DocumentPage,
        description="The documents the token's scope covers, sorted by name, a page at a time.",
    ),
    Operation(
        "GET",
        DOCUMENT,
        "getDocument",
        "Read a document's content as JSON",
        get_content,
        query=ContentQuery,
        response=Content,
    ),
    Operation(
        "PATCH",
        DOCUMENT,
        "patchDocument",
        "Set text fields (by a minimal diff) and map keys",
        patch_document,
        write=True,
        body=Patch,
        response=Content,
        errors=(HttpStatus.CONFLICT,),
        description="Creates the document when it does not exist. Connected users' cursors and"
        " concurrent edits survive: only the changed characters are inserted and deleted.",
    ),
    Operation(
        "DELETE",
        DOCUMENT,
        "deleteDocument",
        "Delete a document, its history and versions",
        delete_document,
        write=True,
        status=204,
        description='Its connections are closed with 4404 "document deleted".',
    ),
    Operation(
        "GET",
        DOCUMENT + "/text/{field}",
        "getText",
        "Read one text field as plain text",
        get_text,
        response=TEXT,
        errors=(HttpStatus.CONFLICT,),
    ),
    Operation(
        "GET",
        DOCUMENT + "/update",
        "getUpdate",
        "Read the document as a binary Yjs update",
        get_update,
        query=UpdateQuery,
        response=BINARY,
    ),
    Operation(
        "POST",
        DOCUMENT + "/update",
        "postUpdate",
        "Apply a binary Yjs update",
        post_update,
        write=True,
        body=BINARY,
        response=Applied,
        errors=(HttpStatus.CONTENT_TOO_LARGE, HttpStatus.UNPROCESSABLE),
        description="Validated like a client's update (422 and nothing changed when invalid),"
        " sent to connected clients, and stored before the answer.",
    ),
]
