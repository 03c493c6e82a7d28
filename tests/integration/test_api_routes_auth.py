"""Auth on every route of the REST API (issue 12), on SQLite and PostgreSQL: without a token
401, a bad one 401, a token for another document 403, a read token 403 on writes and 200 on
reads, a write token everywhere; the schema and its page stay open. `collab token --api` mints
the backend's token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import serving
from tests.integration import api_support
from tests.integration.api_support import (
    SECRET,
    api,
    assert_error,
    path,
    text_update,
    token,
    write,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL

NAME = "team/notes"


def requests(version: int) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(method, url, httpx kwargs, is a write) for every documents/versions operation."""
    v = str(version)
    return [
        ("GET", "/api/documents", {}, False),
        ("GET", path(NAME), {}, False),
        ("GET", path(NAME, "text", "codemirror"), {}, False),
        ("GET", path(NAME, "update"), {}, False),
        ("GET", path(NAME, "versions"), {}, False),
        ("GET", path(NAME, "versions", v), {}, False),
        ("GET", path(NAME, "versions", v, "diff"), {}, False),
        ("POST", path(NAME, "update"), {"content": text_update("!")}, True),
        ("PATCH", path(NAME), {"json": {"text": {"codemirror": "patched"}}}, True),
        ("POST", path(NAME, "versions"), {"json": {"label": "mine"}}, True),
        ("POST", path(NAME, "versions", v, "restore"), {}, True),
        ("DELETE", path(NAME), {}, True),
    ]


async def seeded(http: httpx.AsyncClient) -> int:
    await write(http, NAME, text_update("hello"))
    response = await http.post(path(NAME, "versions"), json={"label": "seed"})
    assert response.status_code == 201, response.text
    version: int = response.json()["id"]
    return version


async def test_every_route_needs_a_token_and_the_right_scope(db_settings):
    async with serving(db_settings.replace(auth_secret=SECRET)) as srv:
        async with api(srv.http, token(NAME, write=True, user="ada")) as writer:
            version = await seeded(writer)
        for method, url, kw, _ in requests(version):
            async with api(srv.http) as anonymous:
                response = await anonymous.request(method, url, **kw)
                assert_error(response, 401, "authentication required")
                assert response.headers["www-authenticate"] == "Bearer"
            async with api(srv.http, "not.a.jwt") as bad:
                assert_error(await bad.request(method, url, **kw), 401, "invalid token")
            async with api(srv.http, token(NAME, ttl=-10)) as expired:
                assert_error(await expired.request(method, url, **kw), 401, "token expired")
            if url != "/api/documents":
                async with api(srv.http, token("other/*", write=True)) as elsewhere:
                    response = await elsewhere.request(method, url, **kw)
                    assert_error(response, 403, "token not valid for this document")
        for method, url, kw, is_write in requests(version):
            async with api(srv.http, token("team/*")) as reader:
                response = await reader.request(method, url, **kw)
                if is_write:
                    assert_error(response, 403, "token is read-only")
                else:
                    assert response.status_code == 200, (url, response.text)
        for method, url, kw, _ in requests(version):
            async with api(srv.http, token("*", write=True, user="ada")) as writer:
                response = await writer.request(method, url, **kw)
                assert response.status_code in (200, 201, 204), (method, url, response.text)


async def test_an_edit_through_the_api_is_by_the_tokens_user(settings):
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        async with api(srv.http, token("*", write=True, user="grace")) as http:
            await write(http, "doc", text_update("one"))
            first = (await http.post(path("doc", "versions"), json={"label": "a"})).json()
            await http.patch(path("doc"), json={"text": {"codemirror": "one two"}})
            diff = (await http.get(path("doc", "versions", str(first["id"]), "diff"))).json()
        inserts = [s for s in diff["fields"]["codemirror"] if s["type"] == "insert"]
        assert inserts and {s["author"] for s in inserts} == {"grace"}


async def test_the_schema_and_its_page_are_open(settings):
    async with serving(settings.replace(auth_secret=SECRET)) as srv, api(srv.http) as http:
        assert (await http.get("/api/openapi.json")).status_code == 200
        assert (await http.get("/api/docs")).status_code in (200, 503)  # 503: dist not built
        assert_error(await http.post("/api/openapi.json"), 405)
