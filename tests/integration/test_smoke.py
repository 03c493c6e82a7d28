from __future__ import annotations

import pytest
from pycrdt import Text

from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_two_clients_sync_text(server):
    async with YClient(server.url, "team/notes") as a, YClient(server.url, "team/notes") as b:
        await a.wait_for(lambda: a.synced)
        await b.wait_for(lambda: b.synced)
        a.doc.get("t", type=Text).insert(0, "hello")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "hello")
