"""The HTTP API when auth is on (issue 10, point 5): document names are data ("hr/layoffs-2027"),
so with a secret or a public key set, every /api route needs a token and shows only what the
token's scope covers; /healthz stays open and shows counts only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pycrdt import Text

from collab.access import Access
from collab.errors import Reject
from collab.extensions.token_auth import mint_token
from collab.hooks import Extension, OnAuthenticatePayload, OnRequestPayload
from collab.settings import Settings
from tests.conftest import RunningServer, serving
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "api-secret-0123456789-abcdefghijklmnopq"
NAMES = ["team/a", "team/b", "hr/layoffs-2027", "notes"]


def token(doc: str, *, write: bool = False, ttl: float = 60, **kw: Any) -> str:
    kw.setdefault("secret", SECRET)
    return mint_token(doc=doc, write=write, ttl_s=ttl, **kw)


async def seed(srv: RunningServer, names: list[str], query: str = "") -> None:
    """Write something into each document and wait until the store has it."""
    for name in names:
        q = query or f"token={token(name, write=True)}"
        async with YClient(srv.url, name, query=q) as c:
            await c.wait_for(lambda c=c: c.synced or c.close_code is not None)
            assert c.close_code is None, c.close_reason
            c.doc.get("t", type=Text).insert(0, "x")
            with anyio.fail_after(5):  # no event for "the server applied it": poll the room
                while str(srv.hub.rooms[name].doc.get("t", type=Text)) != "x":
                    await anyio.sleep(0.01)
    with anyio.fail_after(5):
        while srv.hub.saver.committed < srv.hub.saver.recorded:
            await anyio.sleep(0.01)


@asynccontextmanager
async def api(srv: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
        yield http


def listed(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(d["name"] for d in response.json()["documents"])


@pytest.fixture
async def auth_server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        await seed(srv, NAMES)
        yield srv


async def test_without_a_token_the_api_answers_401_in_json(auth_server):
    async with api(auth_server) as http:
        for path in ("/api/documents", "/api/documents/notes", "/api/nothing-here"):
            response = await http.get(path)
            assert response.status_code == 401, path
            assert response.headers["content-type"] == "application/json"
            assert response.headers["www-authenticate"] == "Bearer"
            body = response.json()
            assert body == {
                "error": {
                    "code": "unauthorized",
                    "message": "authentication required",
                    "status": 401,
                }
            }
            assert "layoffs" not in response.text


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (token("*", ttl=-10), "token expired"),
        (token("*", secret="another-secret-0123456789-abcdefghijk"), "invalid token"),
        ("not.a.jwt", "invalid token"),
    ],
)
async def test_a_bad_token_is_401(auth_server, bad, message):
    async with api(auth_server) as http:
        for response in (
            await http.get("/api/documents", headers={"Authorization": f"Bearer {bad}"}),
            await http.get("/api/documents", params={"token": bad}),
        ):
            assert response.status_code == 401
            assert response.json() == {
                "error": {"code": "unauthorized", "message": message, "status": 401}
            }


async def test_a_token_lists_only_what_its_scope_covers(auth_server):
    async with api(auth_server) as http:
        team = token("team/*")
        by_header = await http.get("/api/documents", headers={"Authorization": f"Bearer {team}"})
        assert listed(by_header) == ["team/a", "team/b"]
        # ?token= for EventSource and links: the same answer
        assert listed(await http.get("/api/documents", params={"token": team})) == [
            "team/a",
            "team/b",
        ]
        one = {"Authorization": f"Bearer {token('notes')}"}
        assert listed(await http.get("/api/documents", headers=one)) == ["notes"]
        everything = {"Authorization": f"bearer {token('*')}"}  # the scheme is case-insensitive
        assert listed(await http.get("/api/documents", headers=everything)) == sorted(NAMES)
        nothing = {"Authorization": f"Bearer {token('sales/*')}"}
        assert listed(await http.get("/api/documents", headers=nothing)) == []


async def test_a_prefix_outside_the_scope_is_403(auth_server):
    async with api(auth_server) as http:
        team = {"Authorization": f"Bearer {token('team/*')}"}
        assert listed(await http.get("/api/documents?prefix=team/a", headers=team)) == ["team/a"]
        assert listed(await http.get("/api/documents?prefix=te", headers=team)) == [
            "team/a",
            "team/b",
        ]
        refused = await http.get("/api/documents?prefix=hr/", headers=team)
        assert refused.status_code == 403
        assert refused.json() == {
            "error": {
                "code": "forbidden",
                "message": "token not valid for these documents",
                "status": 403,
            }
        }
        assert "layoffs" not in refused.text
        one = {"Authorization": f"Bearer {token('notes')}"}
        assert listed(await http.get("/api/documents?prefix=no", headers=one)) == ["notes"]
        assert (await http.get("/api/documents?prefix=team/", headers=one)).status_code == 403


async def test_an_unknown_api_route_is_a_json_404_with_a_token(auth_server):
    async with api(auth_server) as http:
        response = await http.get("/api/nothing-here", params={"token": token("*")})
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "no such API route", "status": 404}
        }


async def test_healthz_stays_open_and_shows_counts_only(auth_server):
    async with api(auth_server) as http:
        response = await http.get("/healthz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert all(isinstance(v, int) for k, v in body.items() if k not in ("status", "events"))
        assert all(isinstance(v, int) for v in body["events"].values())  # the feeds' backlog
        for name in NAMES:
            assert name not in response.text


async def test_public_key_tokens_work_for_the_api(settings, tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    async with serving(settings.replace(auth_public_key=public)) as srv:
        writer = mint_token(doc="*", write=True, ttl_s=60, private_key=pem)
        await seed(srv, ["team/x", "hr/y"], query=f"token={writer}")
        async with api(srv) as http:
            assert (await http.get("/api/documents")).status_code == 401
            scoped = mint_token(doc="team/*", write=False, ttl_s=60, private_key=pem)
            headers = {"Authorization": f"Bearer {scoped}"}
            assert listed(await http.get("/api/documents", headers=headers)) == ["team/x"]


async def test_without_auth_the_api_is_open_as_the_websocket_route(server):
    await seed(server, ["open/doc"], query="x=1")
    async with api(server) as http:
        assert listed(await http.get("/api/documents")) == ["open/doc"]
        missing = await http.get("/api/nothing-here")
        assert missing.status_code == 404 and missing.json()["error"]["status"] == 404


class Sessions(Extension):
    """An application's own auth: a session cookie for HTTP, a ticket for WebSockets."""

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        if payload.token != "ticket":
            raise Reject(4401, "no ticket")
        return None

    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        cookie = payload.headers.get("cookie", "")
        if "session=team" in cookie:
            return Access("team/*")
        if "session=" in cookie:
            raise Reject(4403, "session has no access to documents")
        return None


class TicketsOnly(Extension):
    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        if payload.token != "ticket":
            raise Reject(4401, "no ticket")
        return None


async def test_an_extension_decides_for_http_with_on_request(settings):
    async with serving(settings, extensions=[Sessions()]) as srv:
        await seed(srv, ["team/a", "hr/b"], query="token=ticket")
        async with api(srv) as http:
            assert (await http.get("/api/documents")).status_code == 401
            ok = await http.get("/api/documents", headers={"Cookie": "session=team"})
            assert listed(ok) == ["team/a"]
            refused = await http.get("/api/documents", headers={"Cookie": "session=guest"})
            assert refused.status_code == 403
            assert refused.json() == {
                "error": {
                    "code": "forbidden",
                    "message": "session has no access to documents",
                    "status": 403,
                }
            }


async def test_an_extension_that_authenticates_only_websockets_closes_the_api(settings):
    """Nothing vouches for HTTP callers: the API does not show what the sockets protect."""
    async with serving(settings, extensions=[TicketsOnly()]) as srv:
        await seed(srv, ["secret/doc"], query="token=ticket")
        async with api(srv) as http:
            response = await http.get("/api/documents", params={"token": "ticket"})
            assert response.status_code == 401
            assert "secret" not in response.text
