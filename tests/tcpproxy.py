"""A TCP proxy a test puts between clients and the server, to cut connections as a network would.

`cut()` aborts every connection through it (both sides see a reset, no WebSocket close frame);
`hold()` stops forwarding without closing anything (a half-open link: neither side notices until
a timeout), and `release()` lets new connections through again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Pipe(asyncio.Protocol):
    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.buffer: list[bytes] = []
        self.severed = False  # cut without telling the other side
        self.client_side = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proxy.pipes.add(self)

    def data_received(self, data: bytes) -> None:
        if self.proxy.holding or self.severed:
            return  # dropped on the floor: a black hole, not a reset
        peer = self.peer
        if peer is None or peer.transport is None:
            self.buffer.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.pipes.discard(self)
        peer = self.peer
        if self.severed or peer is None or peer.transport is None:
            return
        if not peer.transport.is_closing():
            peer.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class TcpProxy:
    """Listens on 127.0.0.1:`port` (a free one) and forwards to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.pipes: set[_Pipe] = set()
        self.holding = False
        self.accepted = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self) -> _Pipe:
        client_side = _Pipe(self)
        client_side.client_side = True
        self.accepted += 1
        asyncio.get_running_loop().create_task(self._connect(client_side))
        return client_side

    async def _connect(self, client_side: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, server_side = await loop.create_connection(
                lambda: _Pipe(self), "127.0.0.1", self.target_port
            )
        except OSError:
            client_side.abort()
            return
        server_side.peer, client_side.peer = client_side, server_side
        assert server_side.transport is not None
        for chunk in client_side.buffer:
            server_side.transport.write(chunk)
        client_side.buffer.clear()
        if client_side.transport is None or client_side.transport.is_closing():
            server_side.abort()

    def cut(self) -> None:
        """Reset every connection through the proxy, on both sides at once."""
        for pipe in list(self.pipes):
            pipe.abort()

    def cut_client_side(self) -> None:
        """Reset the clients' connections only: the server's sockets stay open and hear nothing
        more (the client noticed the drop first; the server finds out by its own timeouts)."""
        for pipe in list(self.pipes):
            if pipe.client_side:
                if pipe.peer is not None:
                    pipe.peer.severed = True
                pipe.severed = True
                pipe.abort()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
