"""CollabClient: the REST API as typed async methods, and `open()` for a live document.

    async with CollabClient("http://localhost:8000", token=api_token) as client:
        page = await client.list_documents(prefix="team/")
        print(await client.text("team/notes", "codemirror"))
        async with client.open("team/notes") as live:
            await live.synced()
            live.doc.get("codemirror", type=Text).insert(0, "hello ")

httpx is imported when a client is entered, not when this module is (`import collab` stays as
light as it was); so is `websockets`, by the live document.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pycrdt import Doc

from .errors import ApiError
from .live import LiveDocument
from .models import (
    Content,
    Diff,
    DocumentInfo,
    DocumentPage,
    Restore,
    Version,
    VersionContent,
    VersionPage,
)

if TYPE_CHECKING:
    import httpx

Format = Literal["json", "delta"]


def document_path(name: str) -> str:
    """`/api/documents/<name>` with the name as ONE percent-encoded segment (`/` is `%2F`)."""
    return "/api/documents/" + quote(name, safe="")


class CollabClient:
    """A client of one Collab server. `token`: a JWT from `collab token` (`--api` for a backend
    key); sent as `Authorization: Bearer` to the API and as `?token=` to the WebSocket."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> CollabClient:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout_s
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- live documents ----------------------------------------------------------------------

    def open(self, name: str, *, doc: Doc[Any] | None = None, **options: Any) -> LiveDocument:
        """A live document to enter with `async with`: see collab.client.live.LiveDocument for
        `options` (backoff, timeouts). Needs no `async with` on the client itself."""
        return LiveDocument(self.base_url, name, token=self.token, doc=doc, **options)

    # -- HTTP --------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("use `async with CollabClient(...) as client:` for API calls")
        params = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self._http.request(
            method, path, params=params, json=json, content=content, headers=headers
        )
        if response.is_error:
            raise _api_error(response)
        return response

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        data: dict[str, Any] = (await self._request(method, path, **kw)).json()
        return data

    # -- documents ---------------------------------------------------------------------------

    async def list_documents(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> DocumentPage:
        """One page of documents whose names start with `prefix`, sorted by name; pass the
        page's `next_cursor` back for the next one."""
        params = {"prefix": prefix or None, "limit": limit, "cursor": cursor}
        return DocumentPage.from_json(await self._json("GET", "/api/documents", params=params))

    async def documents(
        self, prefix: str = "", *, page_size: int = 100
    ) -> AsyncIterator[DocumentInfo]:
        """Every document under `prefix`, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_documents(prefix, limit=page_size, cursor=cursor)
            for info in page.documents:
                yield info
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def content(self, name: str, *, format: Format = "json") -> Content:
        """Every root of the document: text as a string (or a delta), map, array, XML."""
        params = {"format": format if format != "json" else None}
        return Content.from_json(await self._json("GET", document_path(name), params=params))

    async def text(self, name: str, field: str) -> str:
        """One Y.Text root as plain text."""
        path = f"{document_path(name)}/text/{quote(field, safe='')}"
        return (await self._request("GET", path)).text

    async def get_update(self, name: str, state_vector: bytes | None = None) -> bytes:
        """The document as one Yjs v1 update, or only what `state_vector` lacks."""
        sv = base64.urlsafe_b64encode(state_vector).decode() if state_vector is not None else None
        response = await self._request("GET", f"{document_path(name)}/update", params={"sv": sv})
        return response.content

    async def apply_update(self, name: str, update: bytes) -> None:
        """Apply a Yjs v1 update: validated, sent to every connected client and persisted
        when this returns. ApiError 422 (and nothing changed) for an invalid update."""
        headers = {"Content-Type": "application/octet-stream"}
        path = f"{document_path(name)}/update"
        await self._request("POST", path, content=update, headers=headers)

    async def patch(
        self,
        name: str,
        *,
        text: dict[str, str] | None = None,
        map: dict[str, dict[str, Any]] | None = None,
    ) -> Content:
        """Set text roots to new full texts (applied as a minimal diff, so the cursors and
        concurrent edits of connected users survive) and map roots' keys; returns the new
        content. Creates the document if there is none."""
        body: dict[str, Any] = {}
        if text is not None:
            body["text"] = text
        if map is not None:
            body["map"] = map
        return Content.from_json(await self._json("PATCH", document_path(name), json=body))

    async def delete(self, name: str) -> None:
        """Delete the document, its log, snapshots and versions; its connections are closed
        with 4404 "document deleted"."""
        await self._request("DELETE", document_path(name))

    # -- versions ----------------------------------------------------------------------------

    async def list_versions(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> VersionPage:
        """One page of versions, newest first."""
        params = {"limit": limit, "cursor": cursor}
        data = await self._json("GET", f"{document_path(name)}/versions", params=params)
        return VersionPage.from_json(data)

    async def versions(self, name: str, *, page_size: int = 100) -> AsyncIterator[Version]:
        """Every version of the document, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_versions(name, limit=page_size, cursor=cursor)
            for version in page.versions:
                yield version
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def create_version(self, name: str, label: str | None = None) -> Version:
        """A named version of the document as it is now."""
        body = {"label": label} if label is not None else {}
        return Version.from_json(
            await self._json("POST", f"{document_path(name)}/versions", json=body)
        )

    async def version(
        self, name: str, version_id: int, *, format: Format = "json"
    ) -> VersionContent:
        """The content of the document at that version."""
        params = {"format": format if format != "json" else None}
        path = f"{document_path(name)}/versions/{int(version_id)}"
        return VersionContent.from_json(await self._json("GET", path, params=params))

    async def diff(self, name: str, from_id: int, to_id: int | None = None) -> Diff:
        """What changed in each text root from version `from_id` to `to_id` (None: now)."""
        path = f"{document_path(name)}/versions/{int(from_id)}/diff"
        params = {"to": int(to_id) if to_id is not None else None}
        return Diff.from_json(await self._json("GET", path, params=params))

    async def restore(self, name: str, version_id: int) -> Restore:
        """Make the document look like that version again, as a new edit every connected
        client receives; `before` is the version to restore to undo it."""
        path = f"{document_path(name)}/versions/{int(version_id)}/restore"
        return Restore.from_json(await self._json("POST", path))

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI 3.1 schema."""
        return await self._json("GET", "/api/openapi.json")


def _api_error(response: httpx.Response) -> ApiError:
    """`{"error": {"code", "message", "status"}}`; anything else (a proxy's page, an older
    server's `{"error": message}`) still becomes an ApiError with the HTTP status."""
    status = response.status_code
    code, message = f"http_{status}", response.reason_phrase or ""
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    if isinstance(error, dict):
        code = str(error.get("code", code))
        message = str(error.get("message", message))
    elif isinstance(error, str):
        message = error
    return ApiError(status, code, message)
