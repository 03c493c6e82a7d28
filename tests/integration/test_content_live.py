"""The documents service's edits over a running server, on SQLite and PostgreSQL: a patch that
connected users receive as a normal edit with their cursor and their concurrent edit intact, a
restore that every connected client sees live (between two versions, kept across a restart),
an update that is stored before apply_update returns, and a diff naming the two users."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Assoc, StickyIndex, Text

from collab import DocumentService
from collab.settings import Settings
from tests.conftest import serving
from tests.integration.hooks.support import stored_text, text, until
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "sqlite":
        return settings
    database: str = request.getfixturevalue("pg_database")
    assert database.startswith("postgresql")
    return settings.replace(database_url=database)


def service(srv: Any) -> DocumentService:
    documents: DocumentService = srv.app.state.documents
    return documents


async def test_patch_keeps_a_connected_users_cursor_and_concurrent_edit(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as srv:
        documents = service(srv)
        await documents.patch("team/p", text={"t": "first line\nsecond 😀 line\n"})
        async with YClient(srv.url, "team/p") as user:
            await user.wait_for(lambda: text(user) == "first line\nsecond 😀 line\n")
            user_text = user.doc.get("t", type=Text)
            cursor = StickyIndex.new(user_text, len("first line\nsecond 😀 ".encode()), Assoc.AFTER)
            user.pause_reading()  # the user has not seen the patch when typing
            read = await documents.patch("team/p", text={"t": "FIRST line\nsecond 😀 line\n"})
            assert read["content"]["t"] == "FIRST line\nsecond 😀 line\n"
            user_text.insert(len(str(user_text).encode()), "third\n")  # concurrent
            await user.sent()
            user.resume_reading()
            expected = "FIRST line\nsecond 😀 line\nthird\n"
            await user.wait_for(lambda: text(user) == expected)
            assert str(user_text).encode()[cursor.get_index() :].startswith(b"line")
            room = srv.hub.room("team/p")
            await until(lambda: text(room.doc) == expected)  # the user's edit arrived
            assert (await documents.content("team/p"))["content"]["t"] == expected
            await srv.hub.persisted("team/p")
            assert await stored_text(srv.hub.store, "team/p") == expected


async def test_apply_update_returns_once_stored(store_settings: Settings) -> None:
    # a commit window far longer than the test: only "persisted before returning" stores it
    async with serving(store_settings.replace(commit_window_ms=60_000)) as srv:
        async with YClient(srv.url, "doc") as user:
            await user.wait_for(lambda: user.synced)
            await service(srv).patch("doc", text={"t": "stored"})
            assert await stored_text(srv.hub.store, "doc") == "stored"
            await user.wait_for(lambda: text(user) == "stored")


async def test_restore_reaches_every_client_live_and_survives_a_restart(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as srv:
        documents = service(srv)
        async with YClient(srv.url, "r") as alice, YClient(srv.url, "r") as bob:
            alice.doc.get("t", type=Text).insert(0, "good text")
            await bob.wait_for(lambda: text(bob) == "good text")
            good = await documents.create_version("r", "good")
            assert good.kind == "named"
            bob.doc.get("t", type=Text).insert(0, "SPAM ")
            await alice.wait_for(lambda: text(alice) == "SPAM good text")
            done = await documents.restore("r", good.id, author="carol")
            await alice.wait_for(lambda: text(alice) == "good text")
            await bob.wait_for(lambda: text(bob) == "good text")
            before, after = done["before"], done["after"]
            assert before.label == f"Before restoring version {good.id}"
            assert after.label == f"Restored version {good.id}"
            assert "carol" in after.authors
            assert (await documents.version_content("r", before.id))["content"] == {
                "t": "SPAM good text"
            }
            changes = await documents.diff("r", good.id, before.id)
            assert changes["t"][0]["type"] == "insert" and changes["t"][0]["text"] == "SPAM "
    async with serving(store_settings) as srv:
        documents = service(srv)
        assert (await documents.content("r"))["content"] == {"t": "good text"}
        page, _ = await documents.versions("r")
        assert [v.id for v in page][:3] == [after.id, before.id, good.id]
        async with YClient(srv.url, "r") as late:
            await late.wait_for(lambda: text(late) == "good text")
