"""The documents routes of the REST API (issue 12), on SQLite and PostgreSQL: list (paginated),
content as JSON, one text, the state as a Yjs update, apply an update, patch, delete; and every
error each answers, in the one error shape."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from tests.conftest import serving
from tests.integration import api_support
from tests.integration.api_support import (
    api,
    assert_error,
    map_update,
    path,
    text_update,
    write,
)
from tests.integration.hooks.support import doc_from
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL


def codemirror(client: YClient | Doc[Any]) -> str:
    doc = client.doc if isinstance(client, YClient) else client
    return str(doc.get("codemirror", type=Text))


async def test_list_is_sorted_by_name_and_paginated(db_settings):
    names = ["b/2", "a", "b/1", "c", "b/3"]
    async with serving(db_settings) as srv, api(srv.http) as http:
        empty = await http.get("/api/documents")
        assert empty.json() == {"documents": [], "next_cursor": None}
        for name in names:
            await write(http, name, text_update(name))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/documents", params=params)).json()
            assert set(page) == {"documents", "next_cursor"}
            assert len(page["documents"]) <= 2
            seen += [d["name"] for d in page["documents"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(names) and pages == 3
        [doc] = (await http.get("/api/documents", params={"prefix": "c"})).json()["documents"]
        assert set(doc) == {
            "name",
            "created_at_ms",
            "updated_at_ms",
            "size_bytes",
            "online",
            "versions",
        }
        assert doc["name"] == "c" and doc["size_bytes"] > 0 and doc["online"] == 0
        prefixed = (await http.get("/api/documents", params={"prefix": "b/"})).json()
        assert [d["name"] for d in prefixed["documents"]] == ["b/1", "b/2", "b/3"]


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"cursor": "__4"}],
)
async def test_list_refuses_bad_parameters(settings, params):
    async with serving(settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("x"))
        assert_error(await http.get("/api/documents", params=params), 400)


async def test_content_as_json_and_as_delta(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "team/notes", text_update("hello"))
        await write(http, "team/notes", map_update("meta", {"title": "Notes", "n": 2}))
        got = await http.get(path("team/notes"))
        assert got.status_code == 200, got.text
        assert got.json() == {
            "name": "team/notes",
            "content": {"codemirror": "hello", "meta": {"title": "Notes", "n": 2}},
            "types": {"codemirror": "text", "meta": "map"},
        }
        delta = (await http.get(path("team/notes"), params={"format": "delta"})).json()
        assert delta["content"]["codemirror"] == [{"insert": "hello"}]
        assert_error(await http.get(path("team/notes"), params={"format": "xml"}), 400)


async def test_one_text_as_plain_text(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("héllo 👋 世界"))
        await write(http, "doc", map_update("meta", {"k": 1}))
        got = await http.get(path("doc", "text", "codemirror"))
        assert got.status_code == 200
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        assert got.text == "héllo 👋 世界"
        assert_error(await http.get(path("doc", "text", "nothing")), 404)
        assert_error(await http.get(path("doc", "text", "meta")), 409)  # a map, not a text
        assert_error(await http.get(path("missing", "text", "codemirror")), 404)


async def test_the_state_as_an_update_whole_and_since_a_state_vector(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("base"))
        got = await http.get(path("doc", "update"))
        assert got.headers["content-type"] == "application/octet-stream"
        mine = doc_from([got.content])
        assert codemirror(mine) == "base"
        state = mine.get_state()
        async with YClient(srv.url, "doc") as client:
            await client.wait_for(lambda: codemirror(client) == "base")
            client.doc.get("codemirror", type=Text).insert(4, "+more")
            with anyio.fail_after(5):
                while codemirror(doc_from([(await http.get(path("doc", "update"))).content])) != (
                    "base+more"
                ):
                    await anyio.sleep(0.02)
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            sv = encode(state).decode().rstrip("=")
            since = await http.get(path("doc", "update"), params={"sv": sv})
            assert since.status_code == 200
            assert len(since.content) < len(got.content) + len(b"+more") + 20
            mine.apply_update(since.content)
            assert codemirror(mine) == "base+more"
        assert_error(await http.get(path("doc", "update"), params={"sv": "%%%"}), 400)
        garbage = base64.b64encode(b"\xff\xff\xff").decode()
        assert_error(await http.get(path("doc", "update"), params={"sv": garbage}), 400)
        assert_error(await http.get(path("missing", "update")), 404)


async def test_an_update_reaches_clients_and_is_stored_before_200(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        async with YClient(srv.url, "live") as client:
            await client.wait_for(lambda: client.synced)
            await write(http, "live", text_update("from the api"))
            # persisted before the answer: the store has it now, without waiting
            stored = await srv.hub.store.load("live")
            updates = ([stored.snapshot] if stored.snapshot else []) + list(stored.updates)
            assert codemirror(doc_from(updates)) == "from the api"
            await client.wait_for(lambda: codemirror(client) == "from the api")


async def test_an_invalid_update_is_422_and_changes_nothing(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("kept"))
        before = (await http.get(path("doc", "update"))).content
        for bad in (b"", b"\x01\x02garbage", text_update("x")[:-3]):
            response = await http.post(path("doc", "update"), content=bad)
            assert_error(response, 422)
        assert (await http.get(path("doc", "update"))).content == before
        assert (await http.get(path("doc"))).json()["content"] == {"codemirror": "kept"}


async def test_an_update_over_the_message_limit_is_413(settings):
    async with serving(settings.replace(max_message_bytes=1024)) as srv, api(srv.http) as http:
        big = text_update("x" * 4000)
        assert_error(await http.post(path("doc", "update"), content=big), 413)

        async def chunks():  # no Content-Length: the limit holds while reading
            yield big[:1000]
            yield big[1000:]

        assert_error(await http.post(path("doc", "update"), content=chunks()), 413)
        assert_error(await http.get(path("doc")), 404)


async def test_patch_sets_text_by_a_minimal_diff_and_map_keys(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("hello world"))
        async with YClient(srv.url, "doc") as client:
            await client.wait_for(lambda: codemirror(client) == "hello world")
            patched = await http.patch(
                path("doc"),
                json={"text": {"codemirror": "hello brave world"}, "map": {"meta": {"a": [1]}}},
            )
            assert patched.status_code == 200, patched.text
            assert patched.json() == {
                "name": "doc",
                "content": {"codemirror": "hello brave world", "meta": {"a": [1]}},
                "types": {"codemirror": "text", "meta": "map"},
            }
            await client.wait_for(lambda: codemirror(client) == "hello brave world")
        created = await http.patch(path("new/doc"), json={"text": {"body": "fresh"}})
        assert created.status_code == 200 and created.json()["content"] == {"body": "fresh"}


async def test_patch_errors(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", map_update("meta", {"k": 1}))
        assert_error(await http.patch(path("doc"), content=b"{not json"), 400)
        assert_error(await http.patch(path("doc"), json={"text": {"codemirror": 5}}), 422)
        assert_error(await http.patch(path("doc"), json={"other": 1}), 422)
        assert_error(await http.patch(path("doc"), json={"text": {"meta": "x"}}), 409)


async def test_delete_closes_connections_with_4404_and_forgets_the_document(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "gone", text_update("bye"))
        async with YClient(srv.url, "gone") as client:
            await client.wait_for(lambda: codemirror(client) == "bye")
            deleted = await http.delete(path("gone"))
            assert deleted.status_code == 204 and deleted.content == b""
            await client.wait_for(lambda: client.close_code is not None)
            assert (client.close_code, client.close_reason) == (4404, "document deleted")
        assert_error(await http.get(path("gone")), 404)
        assert (await http.get("/api/documents")).json()["documents"] == []
        assert_error(await http.delete(path("gone")), 404)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("%FF", "document name is not valid UTF-8"),
        ("a%00b", "document name contains control characters"),
        ("x" * 513, "document name longer than 512 bytes"),
    ],
)
async def test_invalid_names_are_404_with_the_ws_reasons(settings, raw, message):
    async with serving(settings) as srv, api(srv.http) as http:
        for suffix in ("", "/update", "/text/t", "/versions"):
            assert_error(await http.get(f"/api/documents/{raw}{suffix}"), 404, message)


async def test_a_name_is_one_encoded_segment(settings):
    async with serving(settings) as srv, api(srv.http) as http:
        await write(http, "team/notes", text_update("slash"))
        assert (await http.get("/api/documents/team%2Fnotes")).json()["name"] == "team/notes"
        assert (await http.get("/api/documents/team%2fnotes")).status_code == 200
        # unencoded, "team/notes" is a document "team" and a path "notes" the API does not have
        assert_error(await http.get("/api/documents/team/notes"), 404, "no such API route")
        assert_error(await http.put(path("team/notes")), 405)
