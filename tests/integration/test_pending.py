"""Updates with missing dependencies: tolerated a little, refused in bulk (a memory amplifier)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from collab.room import MAX_PENDING_UPDATES
from tests.conftest import every_server
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]


def typed(n: int) -> list[bytes]:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text = doc.get("t", type=Text)
    for _ in range(n):
        text += "x"
    return updates


async def test_a_client_sending_only_orphans_is_closed_1002(server):
    updates = typed(MAX_PENDING_UPDATES + 10)
    async with YClient(server.url, "doc") as attacker, YClient(server.url, "doc") as other:
        await other.wait_for(lambda: other.synced)
        for update in updates[1:]:  # never the first: every other one waits for it
            await attacker.send(p.update_message(update))
            if attacker.close_code is not None:
                break
        await attacker.wait_for(lambda: attacker.close_code is not None)
        assert attacker.close_code == 1002
        assert "missing dependencies" in attacker.close_reason
        assert other.close_code is None


async def test_a_few_out_of_order_updates_are_kept_and_integrate(server):
    updates = typed(5)
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await b.wait_for(lambda: b.synced)
        for update in [*updates[1:], updates[0]]:  # the first arrives last
            await a.send(p.update_message(update))
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "xxxxx")
        assert a.close_code is None
