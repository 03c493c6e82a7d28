"""Awareness across a dropped connection, with stock y-websocket clients (issue 10, point 1).

A network cut is not a clean close: no awareness-null frame, no close frame. The client comes back
on a new socket with the awareness clock it had; its state must reappear for the others at once,
and every change it makes after that must reach them (the first one too).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from collab.settings import Settings
from tests.conftest import RunningServer, serving
from tests.tcpproxy import tcp_proxy

from .conftest import SpawnNode
from .yjsnode import NodeYClient

pytestmark = [pytest.mark.anyio, pytest.mark.interop, pytest.mark.every_server]

ADA = {"user": {"name": "Ada", "color": "#30bced"}, "cursor": {"anchor": 1, "head": 1}}


async def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


def _sees(client_id: int, field: str, value: Any) -> str:
    return f"r => r.awareness['{client_id}']?.{field} === {value!r}"


async def _reconnect_then_change(
    server: RunningServer, node: SpawnNode, room: str, *, server_side_lingers: bool
) -> None:
    async with tcp_proxy(server.settings.port) as proxy:
        roamer = await node(room, url=proxy.url)
        watcher = await node(room)
        await roamer.synced()
        await watcher.synced()
        await roamer.set_awareness(ADA)
        await watcher.wait(f"r => '{roamer.client_id}' in r.awareness")

        if server_side_lingers:
            proxy.cut_client_side()  # the server's socket stays open, silent (half-open)
        else:
            proxy.cut()  # both sides see the connection reset
        await _wait_until(lambda: proxy.accepted >= 2)
        await roamer.synced(timeout=10)
        # Its unchanged state is there for the others, at once and for good.
        await watcher.wait(f"r => r.awareness['{roamer.client_id}']?.user?.name === 'Ada'")

        # The first change after the reconnect reaches the others within a second.
        await roamer.set_awareness_field("cursor", {"anchor": 5, "head": 9})
        await watcher.wait(
            f"r => r.awareness['{roamer.client_id}']?.cursor?.head === 9", timeout=1.0
        )
        # And so does the next one.
        await roamer.set_awareness_field("cursor", {"anchor": 7, "head": 7})
        await watcher.wait(
            f"r => r.awareness['{roamer.client_id}']?.cursor?.head === 7", timeout=1.0
        )


async def test_first_awareness_change_after_a_connection_reset_reaches_peers(
    server: RunningServer, node: SpawnNode
) -> None:
    await _reconnect_then_change(server, node, "reconnect/reset", server_side_lingers=False)


async def test_first_awareness_change_after_a_half_open_drop_reaches_peers(
    server: RunningServer, node: SpawnNode
) -> None:
    await _reconnect_then_change(server, node, "reconnect/half-open", server_side_lingers=True)


async def test_awareness_change_made_the_moment_a_client_resyncs_reaches_peers(
    server: RunningServer, node: SpawnNode
) -> None:
    """An app that sets its cursor on the 'sync' event, in the same tick: that change leaves
    before the server has answered the client's re-announced state."""
    room = "reconnect/same-tick"
    async with tcp_proxy(server.settings.port) as proxy:
        roamer = await node(room, url=proxy.url)
        watcher = await node(room)
        await roamer.synced()
        await watcher.synced()
        await roamer.set_awareness(ADA)
        await watcher.wait(f"r => '{roamer.client_id}' in r.awareness")

        await roamer.set_awareness_field_on_sync("cursor", {"anchor": 2, "head": 3})
        proxy.cut()
        await _wait_until(lambda: proxy.accepted >= 2)
        await watcher.wait(
            f"r => r.awareness['{roamer.client_id}']?.cursor?.head === 3", timeout=3.0
        )
        await roamer.set_awareness_field("cursor", {"anchor": 4, "head": 4})
        await watcher.wait(
            f"r => r.awareness['{roamer.client_id}']?.cursor?.head === 4", timeout=1.0
        )


async def test_cursors_come_back_at_once_after_a_server_restart(
    node_available: None, settings: Settings
) -> None:
    """A deploy: the server restarts and everybody reconnects with the clocks they had. The
    peers still hold those clocks, so a state re-sent at the same clock would be ignored by them
    until its renewal, 15 s later."""
    room = "reconnect/restart"
    clients: list[NodeYClient] = []
    try:
        async with serving(settings) as first:
            for _ in range(2):
                clients.append(await NodeYClient.start(first.url, room))
            a, b = clients
            await a.synced()
            await b.synced()
            await a.set_awareness(ADA)
            await b.set_awareness({"user": {"name": "Bob"}})
            await b.wait(f"r => '{a.client_id}' in r.awareness")
            await a.wait(f"r => '{b.client_id}' in r.awareness")
        # Stopped (1001): both lost the other's cursor; start again on the same port.
        await a.wait(f"r => !('{b.client_id}' in r.awareness)")
        async with serving(settings):
            await b.wait(f"r => r.awareness['{a.client_id}']?.user?.name === 'Ada'", timeout=5)
            await a.wait(f"r => r.awareness['{b.client_id}']?.user?.name === 'Bob'", timeout=5)
            # and changes after it flow at once
            await a.set_awareness_field("cursor", {"anchor": 8, "head": 8})
            await b.wait(f"r => r.awareness['{a.client_id}']?.cursor?.head === 8", timeout=1)
            for client in clients:
                await client.kill()  # before the server goes: no reconnects during its shutdown
    finally:
        for client in clients:
            await client.kill()
