"""Server RSS with N idle y-websocket connections.

    .venv/bin/python bench/idle_connections.py [--connections 1000] [--rooms 100]

Starts `collab serve` as a subprocess on a free port with a fresh SQLite file, opens the
connections (each completes the handshake and receives sync step 1, as a provider would), and
reads the server's VmRSS from /proc before and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import anyio
import websockets


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    data = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [sys.executable, "-m", "collab", "serve", "--port", str(port), "--log-level", "warning",
         "--database-url", f"sqlite+aiosqlite:///{data}/bench.db"],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.05)
        before = rss_kib(proc.pid)
        sockets = []
        started = time.perf_counter()
        limiter = anyio.CapacityLimiter(100)

        async def connect(i: int) -> None:
            async with limiter:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/bench/room-{i % args.rooms}",
                    ping_interval=None, compression=None)
                await ws.recv()  # sync step 1 from the server
                sockets.append(ws)

        async with anyio.create_task_group() as tg:
            for i in range(args.connections):
                tg.start_soon(connect, i)
        elapsed = time.perf_counter() - started
        await anyio.sleep(1)
        after = rss_kib(proc.pid)
        per = (after - before) / args.connections
        print(f"{args.connections} idle connections in {args.rooms} rooms: connected in "
              f"{elapsed:.2f} s; server RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB "
              f"({per:.1f} KiB per connection)")
        for ws in sockets:
            await ws.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=100)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    anyio.run(main, parser.parse_args())
