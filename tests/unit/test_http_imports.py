"""An HTTP request of the server's (a webhook delivery, the SDK) searches for no module.

httpcore asks for sniffio several times per request (`current_async_library`: the pool, its
lock, each response's close). A failed import is not cached: with sniffio missing, each ask
searched every directory of sys.path again (26 µs a time here, about a tenth of a millisecond
per webhook POST). sniffio is one of our dependencies for that reason.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


class Spy:
    """A finder first in sys.meta_path: records each module the import system looks for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        self.names.append(name)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (await reader.readuntil(b"\r\n\r\n")) and not reader.at_eof():
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()


async def test_a_request_looks_up_no_module() -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spy = Spy()
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            for n in range(5):
                if n == 2:  # the first requests import what they use, once
                    sys.meta_path.insert(0, spy)
                response = await client.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
                assert response.status_code == 204
    finally:
        if spy in sys.meta_path:
            sys.meta_path.remove(spy)
        server.close()
    assert spy.names == []
