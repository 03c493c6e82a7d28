"""The versions routes of the REST API (issue 12), on SQLite and PostgreSQL: name a version,
list (newest first, paginated), read one, diff two (or one and now), restore one while a client
is connected; and their errors."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Text

from tests.conftest import serving
from tests.integration import api_support
from tests.integration.api_support import (
    api,
    assert_error,
    path,
    text_update,
    write,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL

VERSION_KEYS = {"id", "created_at_ms", "kind", "label", "authors", "size_bytes"}


def codemirror(client: YClient) -> str:
    return str(client.doc.get("codemirror", type=Text))


async def named(http: Any, name: str, label: str | None) -> dict[str, Any]:
    response = await http.post(path(name, "versions"), json={"label": label} if label else {})
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()
    assert set(version) == VERSION_KEYS
    assert version["kind"] == "named" and version["label"] == label
    assert version["size_bytes"] > 0
    return version


async def test_name_list_and_read_versions(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("first"))
        one = await named(http, "doc", "draft")
        await http.patch(path("doc"), json={"text": {"codemirror": "second"}})
        two = await named(http, "doc", None)
        assert two["id"] != one["id"]
        listed = (await http.get(path("doc", "versions"))).json()
        assert set(listed) == {"versions", "next_cursor"}
        ids = [v["id"] for v in listed["versions"]]
        assert ids.index(two["id"]) < ids.index(one["id"])  # newest first
        # a page at a time
        page = (await http.get(path("doc", "versions"), params={"limit": 1})).json()
        assert len(page["versions"]) == 1 and page["next_cursor"]
        rest = await http.get(
            path("doc", "versions"), params={"limit": 1000, "cursor": page["next_cursor"]}
        )
        assert [v["id"] for v in page["versions"] + rest.json()["versions"]] == ids
        read = (await http.get(path("doc", "versions", str(one["id"])))).json()
        assert read == {
            "name": "doc",
            "version": one,
            "content": {"codemirror": "first"},
            "types": {"codemirror": "text"},
        }
        delta = await http.get(path("doc", "versions", str(one["id"])), params={"format": "delta"})
        assert delta.json()["content"] == {"codemirror": [{"insert": "first"}]}


async def test_diff_between_versions_and_against_now(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("hello world"))
        one = await named(http, "doc", "one")
        await http.patch(path("doc"), json={"text": {"codemirror": "hello brave world"}})
        two = await named(http, "doc", "two")
        await http.patch(path("doc"), json={"text": {"codemirror": "hello brave"}})
        diff = (await http.get(path("doc", "versions", str(one["id"]), "diff"))).json()
        assert diff["name"] == "doc" and diff["from"] == one["id"] and diff["to"] is None
        segments = diff["fields"]["codemirror"]
        assert all(set(s) == {"type", "text", "author"} for s in segments)
        inserted = "".join(s["text"] for s in segments if s["type"] == "insert")
        deleted = "".join(s["text"] for s in segments if s["type"] == "delete")
        assert "brave" in inserted and "world" in deleted
        assert {s["author"] for s in segments if s["type"] == "insert"} == {"api"}
        between = await http.get(
            path("doc", "versions", str(one["id"]), "diff"), params={"to": two["id"]}
        )
        assert between.json()["to"] == two["id"]
        kinds = {(s["type"], s["text"].strip()) for s in between.json()["fields"]["codemirror"]}
        assert ("insert", "brave") in kinds and not any(k == "delete" for k, _ in kinds)


async def test_restore_reaches_connected_clients_and_keeps_both_states(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("the good text"))
        good = await named(http, "doc", "good")
        async with YClient(srv.url, "doc") as client:
            await client.wait_for(lambda: codemirror(client) == "the good text")
            client.doc.get("codemirror", type=Text).insert(0, "VANDAL ")
            room = srv.hub.rooms["doc"]
            with anyio.fail_after(5):  # no event for "the server applied it": poll the room
                while not str(room.doc.get("codemirror", type=Text)).startswith("VANDAL"):
                    await anyio.sleep(0.01)
            restored = await http.post(path("doc", "versions", str(good["id"]), "restore"))
            assert restored.status_code == 200, restored.text
            body = restored.json()
            assert set(body) == {"name", "before", "after"} and body["name"] == "doc"
            assert body["before"]["kind"] == body["after"]["kind"] == "restore"
            assert body["after"]["id"] > body["before"]["id"] > good["id"]
            await client.wait_for(lambda: codemirror(client) == "the good text")
        before = await http.get(path("doc", "versions", str(body["before"]["id"])))
        assert before.json()["content"]["codemirror"] == "VANDAL the good text"
        assert (await http.get(path("doc"))).json()["content"]["codemirror"] == "the good text"


async def test_version_errors(db_settings):
    async with serving(db_settings) as srv, api(srv.http) as http:
        await write(http, "doc", text_update("x"))
        version = await named(http, "doc", "v")
        vid = str(version["id"])
        for missing in ("999999", "0", "-1", "abc"):
            assert_error(await http.get(path("doc", "versions", missing)), 404)
            assert_error(await http.get(path("doc", "versions", missing, "diff")), 404)
            assert_error(await http.post(path("doc", "versions", missing, "restore")), 404)
        assert_error(
            await http.get(path("doc", "versions", vid, "diff"), params={"to": 999999}), 404
        )
        assert_error(await http.get(path("doc", "versions", vid, "diff"), params={"to": "x"}), 400)
        assert_error(await http.get(path("doc", "versions"), params={"limit": 0}), 400)
        assert_error(await http.post(path("doc", "versions"), json={"label": 5}), 422)
        assert_error(await http.post(path("doc", "versions"), content=b"[oops"), 400)
        assert_error(await http.get(path("doc", "versions", vid), params={"format": "x"}), 400)
        assert_error(await http.get(path("other", "versions", vid)), 404)  # not that doc's
        assert_error(await http.post(path("missing", "versions"), json={}), 404)
