"""CPU per store call on a SQLite file: SqlStore.append (the saver's commit) and a live
compaction, the two statements paths the server runs most. CPU is the whole process's
(time.process_time: the event loop and the worker threads), divided by the number of calls.

    PYTHONPATH=<checkout> .venv/bin/python bench/store_cpu.py [--appends 2000] [--reps 5]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/DATABASE]

`PYTHONPATH` picks the checkout, to compare two. Medians over --reps runs, each on a fresh file.
With --postgres, the appends also run on that database (the SQLAlchemy path), which they leave
as they found it: documents named bench-cpu/* are deleted before and after each run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pycrdt import Doc, Text

from storage import LiveDocument, PendingUpdate, open_store


def typing(n: int) -> list[bytes]:
    """n one-character edits at the end of a text, as an editor sends them."""
    doc: Doc[Any] = Doc()
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(n):
        text += "abcdefgh"[i % 8]
    return updates


async def appends(url: str, updates: list[bytes], docs: int) -> float:
    """CPU µs per commit: one commit per update, spread over `docs` documents."""
    store = await open_store(url)
    names = [f"bench-cpu/{i}" for i in range(docs)]
    try:
        for name in names:
            await store.delete(name)
        await store.append([PendingUpdate(name, b"\x00\x00", 0) for name in names])
        started = time.process_time()
        for i, update in enumerate(updates):
            await store.append([PendingUpdate(names[i % docs], update, 0)])
        return (time.process_time() - started) / len(updates) * 1e6
    finally:
        for name in names:
            await store.delete(name)
        await store.close()


async def live_compactions(url: str, updates: list[bytes], rows: int) -> float:
    """CPU µs per live compaction of `rows` rows (appends not counted)."""
    store = await open_store(url)
    snapshot = typing(2000)[-1]  # what encode() hands over; its size hardly matters here
    await store.delete("doc")
    try:
        through, spent, count = 0, 0.0, 0
        for start in range(0, len(updates) - rows + 1, rows):
            await store.append([PendingUpdate("doc", u, 0) for u in updates[start : start + rows]])
            started = time.process_time()
            result = await store.compact("doc", LiveDocument(rows, through, lambda: snapshot))
            spent += time.process_time() - started
            assert result is not None and result.live, result
            through, count = result.through_id, count + 1
        return spent / count * 1e6
    finally:
        await store.close()


async def measure(
    name: str, reps: int, run: Callable[[str], Awaitable[float]], url: str | None = None
) -> None:
    figures = []
    for _ in range(reps):
        if url is not None:
            figures.append(await run(url))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            figures.append(await run(f"sqlite+aiosqlite:///{tmp}/bench.db"))
    print(
        f"{name:<40} median {statistics.median(figures):7.1f} µs"
        f"  (min {min(figures):.1f}, max {max(figures):.1f}, {reps} runs)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="also append on this database")
    args = parser.parse_args()
    updates = typing(args.appends)
    await measure("append, 1 document, CPU per commit", args.reps, lambda u: appends(u, updates, 1))
    await measure(
        "append, 3 documents, CPU per commit", args.reps, lambda u: appends(u, updates, 3)
    )
    await measure(
        "live compaction of 20 rows, CPU per call",
        args.reps,
        lambda u: live_compactions(u, updates, 20),
    )
    if args.postgres:
        await measure(
            "PostgreSQL append, 1 document, CPU/commit",
            args.reps,
            lambda u: appends(u, updates, 1),
            args.postgres,
        )


if __name__ == "__main__":
    anyio.run(main)
