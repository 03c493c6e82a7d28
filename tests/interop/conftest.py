"""Fixtures for the interop suite: real Yjs clients in Node, killed on teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from tests.conftest import RunningServer, require

from .yjsnode import NodeYClient, unavailable_reason


class SpawnNode(Protocol):
    async def __call__(self, room: str, *, url: str | None = None) -> NodeYClient: ...


@pytest.fixture
def node_available() -> None:
    """Skip (fail in CI: see `require`) without `node` or tests/interop/node_modules."""
    reason = unavailable_reason()
    require(reason is None, reason or "")


@pytest.fixture
async def node(node_available: None, server: RunningServer) -> AsyncIterator[SpawnNode]:
    """`await node(room)` starts a Node y-websocket client on `server` (or on `url`).

    Every client started through it is SIGKILLed at teardown, whatever the test did.
    """
    clients: list[NodeYClient] = []

    async def spawn(room: str, *, url: str | None = None) -> NodeYClient:
        client = await NodeYClient.start(url or server.url, room)
        clients.append(client)
        return client

    try:
        yield spawn
    finally:
        for client in clients:
            await client.kill()
