"""Authorship with real Yjs clients: the client id Yjs writes with is stored against the user
`on_authenticate` named (its `user_id` context), for updates of every kind of content Yjs
encodes, and the update log records that user for each row."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sqlalchemy import select

from collab import Extension, Settings
from collab.hooks import OnAuthenticatePayload
from storage import SqlStore
from storage.models import Update
from tests.conftest import serving

from .yjsnode import NodeYClient

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


class NamedByQuery(Extension):
    """Every connection is the user its document name ends with (`...-<user>`)."""

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> dict[str, Any]:
        return {"user_id": payload.document.rpartition("-")[2]}


async def test_yjs_client_ids_are_stored_against_their_user(
    node_available: None, settings: Settings
) -> None:
    name = "team/notes-ann"
    async with serving(settings, extensions=[NamedByQuery()]) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        ann = await NodeYClient.start(srv.url, name)
        try:
            await ann.synced()
            await ann.edit(
                {"type": "text_insert", "value": "héllo 🎉"},
                {"type": "map_set", "key": "k", "value": {"nested": [1, 2.5, None, "s"]}},
                {"type": "array_push", "values": [1, "two", True]},
                {"type": "xml_element", "name": "p", "attrs": {"class": "c"}, "text": "hi"},
            )
            await ann.edit({"type": "text_delete", "index": 0, "length": 1})
            with anyio.fail_after(10):
                while await store.clients(name) != {ann.client_id: "ann"}:
                    await anyio.sleep(0.02)
            await srv.hub.persisted(name)
            async with store.engine.connect() as conn:
                authors = (await conn.execute(select(Update.author))).scalars().all()
            assert authors and set(authors) == {"ann"}
        finally:
            await ann.kill()
