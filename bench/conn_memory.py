"""Where a connection's memory goes: a tracemalloc diff over N WebSocket connections, grouped by
file. Server and client run in this one process, so the websockets client's own allocations
(websockets/asyncio/*, client.py) show up too; everything else is the server's.

    .venv/bin/python bench/conn_memory.py [--connections 500]
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
import tracemalloc
from pathlib import Path

import anyio
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collab.settings import Settings
from tests.conftest import free_port, serving


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.CRITICAL)
    settings = Settings(
        port=free_port(),
        max_connections_per_ip=100_000,
        max_connect_attempts_per_ip=1_000_000,
        database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/m.db",
    )
    async with serving(settings) as srv:
        sockets = []

        async def connect(i: int) -> None:
            ws = await websockets.connect(f"{srv.url}/ws/r{i % 10}", ping_interval=None)
            await ws.recv()
            sockets.append(ws)

        for i in range(50):  # warm up: rooms loaded, caches filled
            await connect(i)
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        for i in range(args.connections):
            await connect(i)
        await anyio.sleep(0.5)
        gc.collect()
        stats = tracemalloc.take_snapshot().compare_to(before, "filename")
        n = args.connections
        print(
            f"{sum(s.size_diff for s in stats) / n / 1024:.1f} KiB of Python allocations "
            f"per connection (server and client), by file:"
        )
        for stat in stats[:25]:
            name = stat.traceback[0].filename.split("site-packages/")[-1]
            print(f"{stat.size_diff / n / 1024:7.2f} KiB  {name}")
        for ws in sockets:
            await ws.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=500)
    anyio.run(main, parser.parse_args())
