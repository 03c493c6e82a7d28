"""A bare Hocuspocus-protocol client over `websockets`, for tests that need to send exactly
some bytes to /hocuspocus (tests/interop drives the real provider instead)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import websockets
from websockets.asyncio.client import ClientConnection

from collab.protocols import hocuspocus_codec as hp


def auth(name: str, token: str = "") -> bytes:
    """The provider's first message for a document: Auth, Token, the token, its version."""
    return (
        hp.var_string(name)
        + bytes((hp.AUTH, hp.AUTH_TOKEN))
        + hp.var_string(token)
        + (hp.var_string("4.8.0"))
    )


def message(name: str, kind: int, body: bytes = b"") -> bytes:
    return hp.var_string(name) + bytes((kind,)) + body


def stateless(name: str, payload: str) -> bytes:
    return message(name, hp.STATELESS, hp.var_string(payload))


class HocuspocusWire:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def receive(self, timeout: float = 5.0) -> bytes:
        with anyio.fail_after(timeout):
            data = await self.ws.recv()
        assert isinstance(data, bytes)
        return data

    async def expect(self, name: str, kind: int, timeout: float = 5.0) -> bytes:
        """The rest of the next message for `name` of type `kind` (others are skipped)."""
        with anyio.fail_after(timeout):
            while True:
                data = await self.receive()
                if len(data) == 1:
                    continue
                key, got, pos = hp.parse_envelope(data)
                if key == name and got == kind:
                    return data[pos:]


@asynccontextmanager
async def hocuspocus_wire(url: str) -> AsyncIterator[HocuspocusWire]:
    """A socket on `url` + /hocuspocus (url: ws://host:port)."""
    async with websockets.connect(f"{url}/hocuspocus", max_size=None, ping_interval=None) as ws:
        yield HocuspocusWire(ws)
