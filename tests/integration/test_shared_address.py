"""An office behind one address: the defaults never lock its people out (issue 10, point 4).

A company office, a university or a mobile carrier puts hundreds or thousands of people behind one
IP address. After a deploy they all reconnect within seconds, each with a few tabs. Every one of
them must get in with the default settings: per-address limits are off unless an operator turns
them on (docs/limits.md), and abuse resistance lives in what costs the server.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import anyio
import pytest

from collab import protocol as p

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PEOPLE = 1000
TABS = 3  # each person's browser tabs: one connection each
DOCUMENTS = 100  # what the office works on (30 tabs per document on average)


class Tab:
    """One browser tab's connection, as raw as it gets: the upgrade, then the first frame."""

    def __init__(self, port: int, document: str) -> None:
        self.port = port
        self.document = document
        self.writer: asyncio.StreamWriter | None = None
        self.outcome = ""  # "in", or why not

    async def open(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer = writer
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws/{self.document} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            self.outcome = head.split(b"\r\n", 1)[0].decode()
            return
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:  # a close frame: refused
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.outcome = f"closed {code} {payload[2:].decode(errors='replace')}"
        elif payload[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1]):
            self.outcome = "in"  # admitted: the room sent its sync step 1
        else:
            self.outcome = f"unexpected first message {payload[:8].hex()}"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


async def storm(port: int) -> dict[str, int]:
    """Every tab of every person connects at once (as many in flight as the server takes);
    all stay open until the last one has its answer. Returns the outcomes, counted."""
    tabs = [
        Tab(port, f"office/doc-{(person * TABS + t) % DOCUMENTS}")
        for person in range(PEOPLE)
        for t in range(TABS)
    ]
    in_flight = anyio.Semaphore(500)

    async def connect(tab: Tab) -> None:
        async with in_flight:
            try:
                await tab.open()
            except (OSError, asyncio.IncompleteReadError) as exc:
                tab.outcome = f"{type(exc).__name__}"

    try:
        with anyio.fail_after(90):  # a backstop: this is not a speed test
            async with anyio.create_task_group() as tg:
                for tab in tabs:
                    tg.start_soon(connect, tab)
        outcomes: dict[str, int] = {}
        for tab in tabs:
            outcomes[tab.outcome] = outcomes.get(tab.outcome, 0) + 1
        return outcomes
    finally:
        for tab in tabs:
            tab.close()


async def test_an_office_behind_one_address_all_get_in_after_a_restart(launch):
    server = launch()  # the defaults, as `collab serve` starts
    await server.start()
    assert await storm(server.port) == {"in": PEOPLE * TABS}
    # A deploy: the server restarts, and everybody reconnects within seconds.
    await server.stop()
    await server.start()
    assert await storm(server.port) == {"in": PEOPLE * TABS}
    health = await server.health()
    assert health["status"] == "ok"
