"""Store figures: group-commit rate on SQLite, and cold restore of a 100,000-update document
before and after compaction.

    .venv/bin/python bench/store_figures.py [--updates 100000] [--database-url URL] [--json PATH]

`make bench` runs it with --json and puts the figures in docs/benchmarks.md.

Everything goes through the server's own code paths: updates through the Saver (the one writer
path, group commit), restore through collab.hub.restore (what a room does on first join), with a
fresh store (a new engine: nothing cached) for each restore.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from typing import Any

import anyio
from pycrdt import Doc, Text

from collab.hub import restore
from collab.saver import Saver
from storage import StoredDocument, open_store

NEW_DOCUMENT = StoredDocument(None, [], 0)


def typing_updates(n: int, seed: int = 7) -> list[bytes]:
    """n one-character edits, as a person types: mostly at the end, sometimes elsewhere."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc()
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    length = 0
    for _ in range(n):
        pos = length if rng.random() < 0.9 else rng.randrange(length + 1)
        text.insert(pos, rng.choice("abcdefghij klmnop\n"))
        length += 1
    return updates


async def commit_rate(url: str, updates: list[bytes]) -> tuple[float, int]:
    store = await open_store(url)
    saver = Saver(store, commit_window_ms=50, compact_after_rows=10**9,
                  compact_after_bytes=10**12)
    name = "bench/commit"
    saver.open(name, Doc().get_update, NEW_DOCUMENT)
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        started = time.perf_counter()
        for i, update in enumerate(updates):
            saver.record(name, update)
            if i % 100 == 99:
                await anyio.sleep(0)  # let the writer run, as the event loop would
        await saver.flush()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    await store.close()
    return len(updates) / elapsed, saver.commits


async def commit_lag(url: str, updates: list[bytes], rate: int) -> tuple[float, float, float]:
    """Offer `rate` updates/s for the whole list; return p50/p99/max ms from record to commit."""
    store = await open_store(url)
    saver = Saver(store, commit_window_ms=50, compact_after_rows=10**9,
                  compact_after_bytes=10**12)
    name = "bench/lag"
    saver.open(name, Doc().get_update, NEW_DOCUMENT)
    recorded: list[float] = []
    lags: list[float] = []

    def committed(_name: str, n: int) -> None:
        now = time.perf_counter()
        lags.extend(now - t for t in recorded[len(lags) : len(lags) + n])

    saver.on_committed.append(committed)
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        started = time.perf_counter()
        for i, update in enumerate(updates):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            recorded.append(time.perf_counter())
            saver.record(name, update)
        await saver.flush()
        tg.cancel_scope.cancel()
    await store.close()
    q = statistics.quantiles(lags, n=100)
    return q[49] * 1000, q[98] * 1000, max(lags) * 1000


async def cold_restore_ms(url: str, name: str, runs: int = 5) -> tuple[float, float, int]:
    times = []
    length = 0
    for _ in range(runs):
        store = await open_store(url)
        started = time.perf_counter()
        doc = await restore(await store.load(name))
        times.append((time.perf_counter() - started) * 1000)
        length = len(str(doc.get("codemirror", type=Text)))
        await store.close()
    return statistics.median(times), min(times), length


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    updates = typing_updates(args.updates)
    figures: dict[str, Any] = {
        "updates": len(updates),
        "update_bytes": sum(map(len, updates)),
        "store": url.split("://")[0],
    }
    print(f"{len(updates)} updates, {sum(map(len, updates))} bytes, store {url.split('://')[0]}")

    rate, commits = await commit_rate(url, updates)
    figures["commit_rate_per_s"] = rate
    figures["commit_transactions"] = commits
    print(f"group commit, offered at once: {rate:,.0f} updates/s committed "
          f"({commits} transactions)")
    for offered in (1_000, 10_000):
        p50, p99, worst = await commit_lag(url, updates[: offered * 5], offered)
        figures[f"commit_lag_{offered}"] = {"p50_ms": p50, "p99_ms": p99, "max_ms": worst}
        print(f"group commit, {offered} updates/s offered for 5 s: commit lag p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms, max {worst:.1f} ms")

    store = await open_store(url)
    await store.append([])
    name = "bench/restore"
    from storage import PendingUpdate

    for i in range(0, len(updates), 5000):
        await store.append([PendingUpdate(name, u, 0) for u in updates[i : i + 5000]])
    await store.close()

    med, best, length = await cold_restore_ms(url, name)
    figures["restore_log"] = {"median_ms": med, "best_ms": best, "chars": length}
    print(f"cold restore, {len(updates)} rows: median {med:.0f} ms (best {best:.0f}), "
          f"{length} chars")
    store = await open_store(url)
    result = await store.compact(name)
    await store.close()
    assert result is not None
    figures["compaction"] = {
        "rows": result.rows,
        "bytes_before": result.bytes_before,
        "bytes_after": result.bytes_after,
        "ms": result.seconds * 1000,
    }
    print(f"compaction: {result.rows} rows, {result.bytes_before} -> {result.bytes_after} bytes "
          f"in {result.seconds * 1000:.0f} ms")
    med, best, length2 = await cold_restore_ms(url, name)
    assert length2 == length
    figures["restore_compacted"] = {"median_ms": med, "best_ms": best, "chars": length2}
    print(f"cold restore, compacted: median {med:.1f} ms (best {best:.1f}), {length2} chars")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    figures = anyio.run(main, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f)
            f.write("\n")
