"""The admin API (issue 14, collab/api/admin.py): who may use it (an admin token yes; a
document token, even for every document with write, no; a metrics token no; no token 401),
and every action against a real server with real clients: the overview, the documents search,
a document's connections, closing one and all (4000, and the client is really gone), compact,
a version, delete."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from pycrdt import Text

from collab.errors import CloseCode
from tests.conftest import free_port, serving
from tests.integration import test_cluster as cluster
from tests.integration.api_support import SECRET, api, assert_error, text_update, token, write
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NAME = "team/notes"


def admin_path(name: str, *rest: str) -> str:
    return "/".join(["/api/admin/documents", quote(name, safe=""), *rest])


def admin_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """Every admin operation once (the schema test below checks that this is all of them)."""
    return [
        ("GET", "/api/admin/overview", {}),
        ("GET", "/api/admin/documents", {}),
        ("GET", admin_path(NAME), {}),
        ("DELETE", admin_path(NAME, "connections", "1"), {}),
        ("DELETE", admin_path(NAME, "connections"), {}),
        ("POST", admin_path(NAME, "compact"), {}),
        ("POST", admin_path(NAME, "versions"), {"json": {"label": "x"}}),
        ("DELETE", admin_path(NAME), {}),
    ]


def admin_token() -> str:
    return token("*", write=True, user="admin", role="admin")


async def test_only_an_admin_token_reaches_the_admin_api(settings):
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        async with api(srv.http, admin_token()) as admin:
            await write(admin, NAME, text_update("hello"))
        others = {
            "document token": token("*", write=True, user="ada"),
            "metrics token": token("", role="metrics"),
        }
        for method, url, kw in admin_requests():
            async with api(srv.http) as anonymous:
                assert_error(await anonymous.request(method, url, **kw), 401)
            async with api(srv.http, "not.a.jwt") as bad:
                assert_error(await bad.request(method, url, **kw), 401, "invalid token")
            for who, value in others.items():
                async with api(srv.http, value) as other:
                    response = await other.request(method, url, **kw)
                    assert response.status_code == 403, who
                    assert_error(response, 403, "an admin token is required")
        async with api(srv.http, admin_token()) as admin:
            for method, url, kw in admin_requests():
                response = await admin.request(method, url, **kw)
                # the connection does not exist; everything else succeeds (delete last)
                assert response.status_code in (200, 201, 204, 404), response.text
                if response.status_code == 404:
                    assert "/connections/1" in url
            # ?token= works too (the page accepts it in its address)
            response = await admin.get(
                "/api/admin/overview", params={"token": admin_token()}, headers={}
            )
            assert response.status_code == 200


async def test_every_admin_operation_is_in_the_schema_and_tested_here(settings):
    async with serving(settings) as srv, api(srv.http) as http:
        schema = (await http.get("/api/openapi.json")).json()
    ops = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, spec in item.items()
        if "admin" in spec.get("tags", [])
    }
    assert all(path.startswith("/api/admin/") for _, path in ops)
    assert len(ops) == len(admin_requests()) == 8
    responses = schema["paths"]["/api/admin/overview"]["get"]["responses"]
    assert {"200", "401", "403"} <= set(responses)


async def test_overview_counts_connections_and_carries_the_series(settings):
    async with serving(settings) as srv, api(srv.http) as http:
        async with YClient(srv.url, "a") as a, YClient(srv.url, "b") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            body = (await http.get("/api/admin/overview")).json()
        process = body["process"]
        assert process["connections"] == 2 and process["rooms"] == 2
        assert process["accepting"] is True and process["pid"] > 0
        assert process["uptime_s"] >= 0 and process["version"]
        assert body["cluster"] == {
            "bus": None,
            "processes": [],
        }
        # the metrics take a first sample when the server starts
        assert body["series"], body
        sample = body["series"][-1]
        assert set(sample) == {
            "t",
            "connections",
            "rooms",
            "messages_in_per_s",
            "messages_out_per_s",
            "updates_per_s",
            "commit_latency_ms",
        }


async def test_documents_search_shows_size_log_rows_versions_and_who_is_online(settings):
    secure = settings.replace(auth_secret=SECRET)
    async with serving(secure) as srv, api(srv.http, admin_token()) as admin:
        await write(admin, "team/a", text_update("one"))
        await write(admin, "team/b", text_update("two"))
        await write(admin, "other", text_update("three"))
        ada = token("team/*", write=True, user="ada")
        async with YClient(srv.url, "team/a", query=f"token={ada}") as client:
            await client.wait_for(lambda: str(client.doc.get("codemirror", type=Text)) == "one")
            found = (await admin.get("/api/admin/documents", params={"prefix": "team/"})).json()
        assert [d["name"] for d in found["documents"]] == ["team/a", "team/b"]
        a, b = found["documents"]
        assert a["online"] == 1 and a["users"] == ["ada"]
        assert b["online"] == 0 and b["users"] == []
        assert a["log_rows"] == 1 and a["size_bytes"] > 0 and a["updated_at_ms"] > 0
        assert found["next_cursor"] is None
        page = (await admin.get("/api/admin/documents", params={"limit": 1})).json()
        assert [d["name"] for d in page["documents"]] == ["other"] and page["next_cursor"]
        assert_error(await admin.get("/api/admin/documents", params={"cursor": "!"}), 400)


async def test_a_document_lists_its_connections_and_closes_one_then_all(settings):
    secure = settings.replace(auth_secret=SECRET)
    async with serving(secure) as srv, api(srv.http, admin_token()) as admin:
        await write(admin, NAME, text_update("hello"))
        ada = token(NAME, write=True, user="ada")
        bob = token(NAME, user="bob")  # read-only
        async with (
            YClient(srv.url, NAME, query=f"token={ada}") as a,
            YClient(srv.url, NAME, query=f"token={bob}") as b,
        ):
            await a.wait_for(lambda: str(a.doc.get("codemirror", type=Text)) == "hello")
            await b.wait_for(lambda: b.synced)
            detail = (await admin.get(admin_path(NAME))).json()
            assert detail["document"]["name"] == NAME and detail["document"]["online"] == 2
            connections = detail["connections"]
            assert [c["user"] for c in connections] == ["ada", "bob"]
            assert [c["read_only"] for c in connections] == [False, True]
            for c in connections:
                assert c["protocol"] == "websocket" and c["address"].startswith("127.0.0.1:")
                assert c["bytes_in"] > 0 and c["bytes_out"] > 0 and c["since_ms"] > 0
            ada_id, bob_id = (c["id"] for c in connections)

            closed = await admin.delete(admin_path(NAME, "connections", str(ada_id)))
            assert closed.status_code == 204, closed.text
            await a.wait_for(lambda: a.close_code is not None)
            assert (a.close_code, a.close_reason) == (
                CloseCode.CLOSED_BY_ADMIN,
                "closed by an administrator",
            )
            assert b.close_code is None
            left = (await admin.get(admin_path(NAME))).json()["connections"]
            assert [c["id"] for c in left] == [bob_id]
            gone = await admin.delete(admin_path(NAME, "connections", str(ada_id)))
            assert_error(gone, 404, "no such connection")

            everyone = await admin.delete(admin_path(NAME, "connections"))
            assert everyone.json() == {"closed": 1}
            await b.wait_for(lambda: b.close_code is not None)
            assert b.close_code == CloseCode.CLOSED_BY_ADMIN
        assert_error(await admin.get(admin_path("nothing")), 404)
        assert (await admin.delete(admin_path("nothing", "connections"))).json() == {"closed": 0}


async def test_compact_version_and_delete(settings):
    async with serving(settings) as srv, api(srv.http) as admin:
        for word in ("a", "b", "c"):
            await write(admin, NAME, text_update(word))
        async with YClient(srv.url, NAME) as client:
            await client.wait_for(lambda: len(str(client.doc.get("codemirror", type=Text))) == 3)
            rows = (await admin.get(admin_path(NAME))).json()["document"]["log_rows"]
            assert rows == 3
            compacted = (await admin.post(admin_path(NAME, "compact"))).json()
            assert compacted["compacted"] is True and compacted["rows"] == 3
            assert (await admin.get(admin_path(NAME))).json()["document"]["log_rows"] == 0
            again = (await admin.post(admin_path(NAME, "compact"))).json()
            assert again["compacted"] is False

            made = await admin.post(admin_path(NAME, "versions"), json={"label": "by the admin"})
            assert made.status_code == 201 and made.json()["label"] == "by the admin"
            versions = (await admin.get(f"/api/documents/{quote(NAME, safe='')}/versions")).json()
            assert [v["label"] for v in versions["versions"]] == ["by the admin"]

            deleted = await admin.delete(admin_path(NAME))
            assert deleted.status_code == 204
            await client.wait_for(lambda: client.close_code is not None)
            assert client.close_code == CloseCode.NOT_FOUND
        assert_error(await admin.get(admin_path(NAME)), 404)
        assert_error(await admin.delete(admin_path(NAME)), 404)
        assert_error(await admin.post(admin_path(NAME, "compact")), 404)


async def test_the_admin_page_is_served(settings):
    async with serving(settings) as srv, api(srv.http) as http:
        response = await http.get("/admin")
    # built: the page; not built: the 503 page saying how to build it
    assert response.status_code in (200, 503)
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "<html" in response.text


redis = cluster.redis  # a fixture: a redis-server of the test's own


@pytest.mark.redis
async def test_the_overview_lists_the_cluster_processes_with_their_load(settings, redis):
    shared = settings.replace(bus="redis", redis_url=redis.url)
    async with (
        serving(shared) as a,
        serving(shared.replace(port=free_port())) as b,
        api(a.http) as on_a,
    ):
        async with YClient(b.url, "x") as client:
            await client.wait_for(lambda: client.synced)

            overview: dict[str, Any] = {}

            def b_as_a_sees_it() -> dict[str, Any] | None:
                processes = overview.get("cluster", {}).get("processes", [])
                others = [p for p in processes if not p["this_process"]]
                return others[0] if others and others[0]["connections"] == 1 else None

            async def ask() -> None:
                overview.update((await on_a.get("/api/admin/overview")).json())

            # heartbeats go once a second: poll the overview until b's carries its connection
            with anyio.fail_after(10):
                await ask()
                while b_as_a_sees_it() is None:
                    await anyio.sleep(cluster.POLL_S)
                    await ask()
        cluster_view = overview["cluster"]
        assert cluster_view["bus"] == "redis"
        here, there = cluster_view["processes"][0], b_as_a_sees_it()
        assert here["this_process"] and here["connections"] == 0
        assert there is not None and there["pid"] == os.getpid()  # (both in this test process)
        assert there["rooms"] == 1 and there["host"] and there["started_at_ms"] > 0
        assert here["id"] != there["id"] and there["silent_ticks"] >= 0
