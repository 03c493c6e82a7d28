"""An echo server on collab/wire.py's WebSocketProtocol, for the Autobahn cases.

`python -m tests.wire_echo PORT [--deflate]` serves on 127.0.0.1:PORT under uvloop, as
`collab serve` does, and prints "ready". Every message comes back as it came (text as text, binary
as binary, compressed when permessage-deflate was agreed): the framing, fragmentation, control
frames, UTF-8 checks, compression and closing handshake are the server's own, only what a message
means is left out.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from collab.settings import Settings
from collab.wire import OP_TEXT, WebSocketProtocol, WireOptions


class Echo(WebSocketProtocol):
    def message_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self.encode(data))

    def text_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self.encode(data, OP_TEXT))


async def serve(port: int, deflate: bool) -> None:
    # The Autobahn cases send messages of up to 16 MiB (9.x); the server's default limit is less.
    settings = Settings(max_message_bytes=64 * 1024 * 1024, ws_per_message_deflate=deflate)
    options = WireOptions(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Echo(options), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), "--deflate" in sys.argv[2:]))
