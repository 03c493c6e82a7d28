"""What the API tests share: a server on SQLite or PostgreSQL (the `db` fixture's parameter),
an httpx client, documents written through the API, and the error body's exact shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pycrdt import Doc, Map, Text

from collab.errors import ERROR_CODES
from collab.extensions.token_auth import mint_token
from collab.settings import Settings

SECRET = "api-secret-0123456789-abcdefghijklmnopq"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's settings on SQLite, then on a PostgreSQL database of its own."""
    if request.param == "postgres":
        return settings.replace(database_url=request.getfixturevalue("pg_database"))
    return settings


def path(name: str, *rest: str) -> str:
    """/api/documents/<name, one encoded segment>/<rest...>."""
    return "/".join(["/api/documents", quote(name, safe=""), *rest])


@asynccontextmanager
async def api(base: str, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False) as http:
        yield http


def token(doc: str = "*", *, write: bool = False, user: str | None = None, **kw: Any) -> str:
    kw.setdefault("secret", SECRET)
    return mint_token(doc=doc, write=write, ttl_s=kw.pop("ttl", 60), user=user, **kw)


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    """The one error shape: {"error": {"code", "message", "status"}} with the table's code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == ERROR_CODES[status]
    assert body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if message is not None:
        assert body["error"]["message"] == message


def text_update(text: str, field: str = "codemirror") -> bytes:
    doc: Doc[Any] = Doc()
    doc.get(field, type=Text).insert(0, text)
    update: bytes = doc.get_update()
    return update


def map_update(root: str, values: dict[str, Any]) -> bytes:
    doc: Doc[Any] = Doc()
    m = doc.get(root, type=Map)
    for key, value in values.items():
        m[key] = value
    update: bytes = doc.get_update()
    return update


async def write(http: httpx.AsyncClient, name: str, update: bytes) -> None:
    response = await http.post(
        path(name, "update"),
        content=update,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"name": name, "applied": True}
