"""SDK figures: the round trip of an edit from one SDK live document to another and back, the
first sync of a large document into a fresh SDK client, and REST reads of that document.

    .venv/bin/python bench/sdk.py [--round-trips 500] [--keystrokes 100000] [--syncs 5]
                                  [--json PATH]

A real server (`python -m collab serve`, a fresh SQLite file) runs as a process of its own;
both SDK clients run in this process, on one event loop, as a bot and its user would not (they
share this process's CPU), so the round trip is an upper bound for two programs on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from pycrdt import Doc, Text

from collab.client import CollabClient, LiveDocument

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(tmp: str) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "collab", "serve", "--port", str(port),
        "--database-url", f"sqlite+aiosqlite:///{tmp}/bench.db", "--log-level", "warning",
        "--max-message-bytes", str(256 * 1024 * 1024),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def typed_document(keystrokes: int, seed: int = 7) -> bytes:
    """One update holding `keystrokes` one-character edits by two people taking turns in runs,
    mostly at the end and one in ten elsewhere (so the text is many items, not one run)."""
    rng = random.Random(seed)
    a: Doc[Any] = Doc()
    b: Doc[Any] = Doc()
    writer, other = a, b
    for i in range(keystrokes):
        if i % 50 == 0:  # the other one types the next run: bring it up to date first
            writer, other = other, writer
            writer.apply_update(other.get_update(writer.get_state()))
        text = writer.get("codemirror", type=Text)
        pos = i if rng.random() < 0.9 else rng.randrange(i + 1)  # i characters so far
        # a str index on ASCII text is a byte offset too (pycrdt counts UTF-8 bytes)
        text.insert(pos, rng.choice("abcdefghij klmnop\n"))
    a.apply_update(b.get_update(a.get_state()))
    update: bytes = a.get_update()
    return update


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples_s)
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(len(ms) * 0.95) - 1 if len(ms) >= 20 else -1], 3),
        "n": len(ms),
    }


async def round_trips(base: str, n: int) -> dict[str, float]:
    """A inserts a character, waits to see B's answer; B answers each one it sees."""
    client = CollabClient(base)
    samples: list[float] = []
    async with client.open("bench/ping") as a, client.open("bench/ping") as b:
        await a.synced()
        await b.synced()
        ta, tb = a.doc.get("codemirror", type=Text), b.doc.get("codemirror", type=Text)

        async def answer(live: LiveDocument, text: Text) -> None:
            for i in range(n):
                await live.wait_until(lambda i=i: len(text) >= 2 * i + 1)
                text.insert(len(text), "b")

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, b, tb)
            for i in range(n):
                started = time.perf_counter()
                ta.insert(len(ta), "a")
                await a.wait_until(lambda i=i: len(ta) >= 2 * i + 2)
                samples.append(time.perf_counter() - started)
    return summary(samples)


async def first_syncs(base: str, update: bytes, syncs: int) -> dict[str, Any]:
    name = "bench/large"
    async with CollabClient(base) as client:
        async with client.open(name) as writer:
            await writer.synced()
            writer.doc.apply_update(update)  # local to it: sent as one update
            await writer.sent()
        mirror: Doc[Any] = Doc()
        mirror.apply_update(update)
        want = str(mirror.get("codemirror", type=Text))
        # The server has it all once what it sends back holds the whole text.
        with anyio.fail_after(60):
            while True:
                copy: Doc[Any] = Doc()
                copy.apply_update(await client.get_update(name))
                if str(copy.get("codemirror", type=Text)) == want:
                    break
                await anyio.sleep(0.1)
        samples = []
        for _ in range(syncs):
            started = time.perf_counter()
            async with client.open(name) as live:
                await live.synced()
                samples.append(time.perf_counter() - started)
                assert str(live.doc.get("codemirror", type=Text)) == want
        reads: dict[str, list[float]] = {"content": [], "text": [], "update": []}
        for _ in range(syncs):
            for what, call in (
                ("content", lambda: client.content(name)),
                ("text", lambda: client.text(name, "codemirror")),
                ("update", lambda: client.get_update(name)),
            ):
                started = time.perf_counter()
                await call()
                reads[what].append(time.perf_counter() - started)
    return {
        "update_bytes": len(update),
        "text_chars": len(want),
        "first_sync": summary(samples),
        **{f"rest_{k}": summary(v) for k, v in reads.items()},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    update = typed_document(args.keystrokes)
    with tempfile.TemporaryDirectory() as tmp, server(tmp) as base:
        result: dict[str, Any] = {"round_trip": await round_trips(base, args.round_trips)}
        result["large_document"] = {
            "keystrokes": args.keystrokes,
            **await first_syncs(base, update, args.syncs),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--keystrokes", type=int, default=100_000)
    parser.add_argument("--syncs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    result = anyio.run(run, args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
