"""The SDK's REST methods (collab.client.CollabClient) against a real server, on SQLite and
PostgreSQL: every call of the documents API, its errors as ApiError, auth, and the API and a live
SDK document seeing each other's changes (a patch, a restore, a delete)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from collab.client import ApiError, CollabClient, DocumentClosed, LiveDocument
from collab.extensions.token_auth import mint_token
from tests.conftest import serving
from tests.integration import api_support
from tests.integration.api_support import SECRET, map_update, text_update

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
db_settings = api_support.db_settings  # a fixture: SQLite, then PostgreSQL


def codemirror(live: LiveDocument) -> str:
    return str(live.doc.get("codemirror", type=Text))


async def until(live: LiveDocument, predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        await live.wait_until(predicate)


async def test_documents_content_updates_and_patch(db_settings: Any) -> None:
    async with serving(db_settings) as srv, CollabClient(srv.http) as client:
        await client.apply_update("team/notes", text_update("hello"))
        await client.apply_update("team/notes", map_update("meta", {"owner": "ada"}))

        content = await client.content("team/notes")
        assert content.name == "team/notes"
        assert content.content == {"codemirror": "hello", "meta": {"owner": "ada"}}
        assert content.types == {"codemirror": "text", "meta": "map"}
        delta = await client.content("team/notes", format="delta")
        assert delta.content["codemirror"] == [{"insert": "hello"}]
        assert await client.text("team/notes", "codemirror") == "hello"

        # The whole state, then only what a state vector lacks.
        mirror: Doc[Any] = Doc()
        mirror.apply_update(await client.get_update("team/notes"))
        assert str(mirror.get("codemirror", type=Text)) == "hello"
        assert await client.get_update("team/notes", mirror.get_state()) == b"\x00\x00"

        patched = await client.patch(
            "team/notes", text={"codemirror": "hello, world"}, map={"meta": {"done": True}}
        )
        assert patched.content == {
            "codemirror": "hello, world",
            "meta": {"owner": "ada", "done": True},
        }
        # A patch is a minimal diff: the text we already had keeps its items.
        mirror.apply_update(await client.get_update("team/notes", mirror.get_state()))
        assert str(mirror.get("codemirror", type=Text)) == "hello, world"


async def test_listing_pages_through_every_document(db_settings: Any) -> None:
    async with serving(db_settings) as srv, CollabClient(srv.http) as client:
        for name in ("p/c", "p/a", "p/b", "q/other"):
            await client.apply_update(name, text_update(name))
        page = await client.list_documents("p/", limit=2)
        assert [d.name for d in page.documents] == ["p/a", "p/b"]
        assert page.next_cursor is not None
        rest = await client.list_documents("p/", limit=2, cursor=page.next_cursor)
        assert [d.name for d in rest.documents] == ["p/c"] and rest.next_cursor is None
        every = [d async for d in client.documents("p/", page_size=1)]
        assert [d.name for d in every] == ["p/a", "p/b", "p/c"]
        info = every[0]
        assert info.size_bytes > 0 and info.online == 0 and info.versions >= 0
        assert info.created_at_ms <= info.updated_at_ms


async def test_versions_diff_and_restore(db_settings: Any) -> None:
    async with serving(db_settings) as srv, CollabClient(srv.http) as client:
        name = "team/history"
        await client.apply_update(name, text_update("first draft"))
        draft = await client.create_version(name, "draft")
        assert (draft.kind, draft.label) == ("named", "draft") and draft.size_bytes > 0
        await client.patch(name, text={"codemirror": "second draft, longer"})
        unnamed = await client.create_version(name)
        assert unnamed.label is None

        ids = [v.id async for v in client.versions(name, page_size=1)]
        assert ids.index(unnamed.id) < ids.index(draft.id)  # newest first
        page = await client.list_versions(name, limit=1)
        assert len(page.versions) == 1 and page.next_cursor is not None

        old = await client.version(name, draft.id)
        assert old.version == draft and old.content == {"codemirror": "first draft"}
        assert old.types == {"codemirror": "text"}

        diff = await client.diff(name, draft.id)  # against now
        assert diff.from_id == draft.id and diff.to_id is None
        segments = diff.fields["codemirror"]
        assert "".join(s.text for s in segments if s.type != "delete") == "second draft, longer"
        assert "".join(s.text for s in segments if s.type != "insert") == "first draft"
        assert any(s.type == "insert" and s.author == "api" for s in segments)
        between = await client.diff(name, draft.id, unnamed.id)
        assert between.to_id == unnamed.id and between.fields == diff.fields

        restored = await client.restore(name, draft.id)
        assert restored.before.kind == restored.after.kind == "restore"
        assert await client.text(name, "codemirror") == "first draft"
        # Undo: restore what it was before.
        await client.restore(name, restored.before.id)
        assert await client.text(name, "codemirror") == "second draft, longer"


async def test_errors_come_back_as_api_errors(db_settings: Any) -> None:
    async with serving(db_settings) as srv, CollabClient(srv.http) as client:
        with pytest.raises(ApiError) as missing:
            await client.content("nobody/here")
        assert (missing.value.status, missing.value.code) == (404, "not_found")

        with pytest.raises(ApiError) as invalid:
            await client.apply_update("bad", b"\x01\x02garbage")
        assert (invalid.value.status, invalid.value.code) == (422, "invalid")

        await client.apply_update("typed", map_update("meta", {"a": 1}))
        with pytest.raises(ApiError) as mismatch:
            await client.text("typed", "meta")
        assert (mismatch.value.status, mismatch.value.code) == (409, "conflict")
        with pytest.raises(ApiError) as no_field:
            await client.text("typed", "nothing")
        assert no_field.value.status == 404
        with pytest.raises(ApiError) as no_version:
            await client.version("typed", 999_999)
        assert no_version.value.status == 404

        await client.delete("typed")
        with pytest.raises(ApiError) as gone:
            await client.content("typed")
        assert gone.value.status == 404


async def test_tokens_from_the_sdk(server_with: Any) -> None:
    async with server_with(auth_secret=SECRET) as srv:
        async with CollabClient(srv.http) as anonymous:
            with pytest.raises(ApiError) as no_token:
                await anonymous.list_documents()
            assert (no_token.value.status, no_token.value.code) == (401, "unauthorized")

        reader = mint_token(doc="team/*", write=False, ttl_s=60, secret=SECRET)
        async with CollabClient(srv.http, token=reader) as client:
            with pytest.raises(ApiError) as read_only:
                await client.apply_update("team/a", text_update("x"))
            assert (read_only.value.status, read_only.value.code) == (403, "forbidden")
            with pytest.raises(ApiError) as elsewhere:
                await client.content("other/a")
            assert elsewhere.value.status == 403

        backend = mint_token(doc="*", write=True, ttl_s=60, user="api", secret=SECRET)
        async with CollabClient(srv.http, token=backend) as client:
            await client.apply_update("team/a", text_update("written"))
            assert await client.text("team/a", "codemirror") == "written"
            # The same token opens a live document (sent as ?token= on the WebSocket).
            async with client.open("team/a") as live:
                await live.synced()
                assert codemirror(live) == "written"


async def test_the_api_and_a_live_document_see_each_other(db_settings: Any) -> None:
    async with serving(db_settings) as srv, CollabClient(srv.http) as client:
        name = "team/live"
        await client.apply_update(name, text_update("one"))
        async with client.open(name) as live:
            await live.synced()
            assert codemirror(live) == "one"
            # The API's edits arrive live...
            await client.patch(name, text={"codemirror": "one two"})
            await until(live, lambda: codemirror(live) == "one two")
            # ...and the live document's edits are what the API reads.
            text = live.doc.get("codemirror", type=Text)
            text.insert(len(text), " three")
            await live.sent()
            with anyio.fail_after(5):  # the API has nothing to wait on: poll it
                while await client.text(name, "codemirror") != "one two three":
                    await anyio.sleep(0.02)
            version = await client.create_version(name, "three")
            text.insert(0, "zero ")
            await live.sent()
            # A restore is a normal edit every client receives.
            await client.restore(name, version.id)
            await until(live, lambda: codemirror(live) == "one two three")

        # Deleting the document closes its live connections for good: 4404, no reconnect.
        with pytest.raises(DocumentClosed) as closed:
            async with client.open(name) as live:
                await live.synced()
                await client.delete(name)
                await anyio.sleep_forever()
        assert closed.value.code == 4404
        assert live.connections == 1
