"""Version history figures, on SQLite and PostgreSQL.

    .venv/bin/python bench/history.py [--keystrokes 5000] [--every 100] [--updates 100000]
                                      [--backends sqlite,postgres] [--json PATH]

- bytes per version on a realistic session: two people type --keystrokes keystrokes into one
  text, each at their own place, with backspaces, kept in sync as the server keeps them; a
  version (the full state, as collab/history.py stores it) every --every keystrokes. Compared
  with what keeping the update log instead would cost (versions as ids in a kept log);
- time to list 1,000 versions (one page of 1,000, and the first page of 100) and to count them;
- time to read a version of a --updates-update document: the row from a fresh store (no cache),
  and the row decoded into a Doc with its text;
- time to take a version of that document the way the server does (encode the live document,
  its state vector, store it if it changed).

PostgreSQL: a new database of this run's own on COLLAB_TEST_PG_URL's server (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards (tests/pg.py).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Doc, Text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import PendingUpdate, open_store

NAME = "bench/history"


# -- the editing ---------------------------------------------------------------------------------


def session(keystrokes: int, every: int, seed: int = 12) -> tuple[list[bytes], list[bytes]]:
    """Two people typing into one text, synced after each keystroke: (every update, as each
    editor sends it, and the document's state every `every` keystrokes)."""
    rng = random.Random(seed)
    docs: list[Doc[Any]] = [Doc(client_id=1), Doc(client_id=2)]
    texts = [d.get("codemirror", type=Text) for d in docs]
    sent: list[list[bytes]] = [[], []]
    for doc, out in zip(docs, sent, strict=True):
        doc.observe(lambda event, out=out: out.append(event.update))
    texts[0].insert(0, "Notes\n\n")
    docs[1].apply_update(sent[0][-1])
    updates: list[bytes] = [sent[0][-1]]
    cursors = [len(str(texts[0])), len(str(texts[0]))]
    states: list[bytes] = []
    for k in range(keystrokes):
        who = 0 if rng.random() < 0.6 else 1
        text = texts[who]
        length = len(str(text))
        cursor = min(cursors[who], length)
        sent[who].clear()
        if rng.random() < 0.08 and cursor > 0:
            del text[cursor - 1 : cursor]  # backspace
            cursor -= 1
        else:
            if rng.random() < 0.03:  # the cursor moves elsewhere
                cursor = rng.randrange(length + 1)
            text.insert(cursor, rng.choice("etaoin shrdlu cmfwyp\n"))
            cursor += 1
        cursors[who] = cursor
        [update] = sent[who]  # what this editor sends (the transaction's own delete set)
        updates.append(update)
        docs[1 - who].apply_update(update)
        if cursors[1 - who] >= cursor:  # the other's cursor moves with the text before it
            cursors[1 - who] += 1 if len(str(text)) > length else -1
        if (k + 1) % every == 0:
            states.append(docs[0].get_update())
    return updates, states


def typing_updates(n: int, seed: int = 7) -> list[bytes]:
    """n one-character edits, as a person types (bench/store_figures.py's)."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc(client_id=3)
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for length in range(n):
        pos = length if rng.random() < 0.9 else rng.randrange(length + 1)
        text.insert(pos, rng.choice("abcdefghij klmnop\n"))
    return updates


# -- measuring -----------------------------------------------------------------------------------


def ms(seconds: float) -> float:
    return seconds * 1000


async def timed(runs: int, job: Any, *args: Any) -> tuple[float, float]:
    """(median, best) ms of `runs` runs of `await job(*args)`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await job(*args)
        times.append(ms(time.perf_counter() - started))
    return statistics.median(times), min(times)


async def bytes_per_version(url: str, keystrokes: int, every: int) -> dict[str, Any]:
    updates, states = session(keystrokes, every)
    store = await open_store(url)
    try:
        await store.append([PendingUpdate(NAME, u, 0, "alice") for u in updates])
        for i, state in enumerate(states):
            doc: Doc[Any] = Doc()
            doc.apply_update(state)
            await store.add_version(NAME, state, doc.get_state(), "auto", None, ["alice"], i)
        listed = await store.list_versions(NAME, limit=len(states))
        compacted = await store.compact(NAME)
        assert compacted is not None
    finally:
        await store.close()
    sizes = [v.size_bytes for v in listed]
    figures = {
        "keystrokes": keystrokes,
        "versions": len(sizes),
        "mean_version_bytes": statistics.mean(sizes),
        "last_version_bytes": max(sizes),
        "all_versions_bytes": sum(sizes),
        "log_bytes": sum(map(len, updates)),
        "log_rows": len(updates),
        "snapshot_bytes": compacted.bytes_after,
        "text_chars": len(_text(states[-1])),
    }
    print(
        f"  session: {keystrokes} keystrokes by 2 people, {len(sizes)} versions (one every "
        f"{every}): {figures['mean_version_bytes']:,.0f} bytes per version on average, "
        f"{max(sizes):,} for the last ({figures['text_chars']:,} chars), "
        f"{sum(sizes):,} in all. Keeping the update log instead (versions as ids in it) would "
        f"keep {figures['log_bytes']:,} bytes in {len(updates):,} rows, growing for ever and "
        f"read by replay; compacted, the log is one {compacted.bytes_after:,}-byte snapshot"
    )
    return figures


async def list_1000(url: str, state: bytes) -> dict[str, Any]:
    name = "bench/list"
    store = await open_store(url)
    try:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        vector = doc.get_state()
        for i in range(1000):
            await store.add_version(name, state, vector, "auto", None, ["alice", "bob"], i)
        page_1000 = await timed(20, store.list_versions, name, 1000)
        page_100 = await timed(20, store.list_versions, name, 100)
        count = await timed(20, store.count_versions, name)
        assert len(await store.list_versions(name, 1000)) == 1000
    finally:
        await store.close()
    print(
        f"  list 1,000 versions: median {page_1000[0]:.1f} ms (best {page_1000[1]:.1f}); "
        f"first page of 100: {page_100[0]:.1f} ms; count: {count[0]:.2f} ms"
    )
    return {"list_1000_ms": page_1000[0], "list_100_ms": page_100[0], "count_ms": count[0]}


async def read_big_version(url: str, n: int) -> dict[str, Any]:
    name = "bench/big"
    updates = typing_updates(n)
    live: Doc[Any] = Doc()
    for update in updates:
        live.apply_update(update)
    store = await open_store(url)
    try:
        for i in range(0, n, 5000):
            await store.append([PendingUpdate(name, u, 0) for u in updates[i : i + 5000]])
        started = time.perf_counter()
        state, vector = live.get_update(), live.get_state()
        info = await store.add_version_if_changed(name, state, vector, "auto", None, [], 0)
        take_ms = ms(time.perf_counter() - started)
        assert info is not None
        started = time.perf_counter()
        again = await store.add_version_if_changed(name, state, vector, "auto", None, [], 1)
        unchanged_ms = ms(time.perf_counter() - started)
        assert again is None
    finally:
        await store.close()

    row_times, decoded_times = [], []
    chars = 0
    for _ in range(5):
        fresh = await open_store(url)  # a new engine: nothing cached (but a connection)
        try:
            await fresh.count_versions("bench/other")
            started = time.perf_counter()
            loaded = await fresh.load_version(name, info.id)
            row_times.append(ms(time.perf_counter() - started))
            assert loaded is not None
            doc: Doc[Any] = Doc()
            doc.apply_update(loaded[1])
            chars = len(str(doc.get("codemirror", type=Text)))
            decoded_times.append(ms(time.perf_counter() - started))
        finally:
            await fresh.close()
    assert chars == n
    print(
        f"  read a version of a {n:,}-update document ({info.size_bytes:,} bytes, "
        f"{chars:,} chars): the row {statistics.median(row_times):.1f} ms, decoded into a Doc "
        f"with its text {statistics.median(decoded_times):.1f} ms (medians of 5, a fresh store); "
        f"taking it: {take_ms:.1f} ms, finding it unchanged: {unchanged_ms:.1f} ms"
    )
    return {
        "updates": n,
        "version_bytes": info.size_bytes,
        "read_row_ms": statistics.median(row_times),
        "read_decoded_ms": statistics.median(decoded_times),
        "take_ms": take_ms,
        "unchanged_ms": unchanged_ms,
    }


def _text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return str(doc.get("codemirror", type=Text))


# -- backends ------------------------------------------------------------------------------------


@asynccontextmanager
async def database(backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{directory}/history.db"
        return
    from tests.pg import fresh_database

    async with fresh_database() as url:
        yield url


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for backend in args.backends.split(","):
        print(backend)
        async with database(backend) as url:
            found = await bytes_per_version(url, args.keystrokes, args.every)
            _, states = session(args.keystrokes, args.every)
            found.update(await list_1000(url, states[-1]))
            found["big"] = await read_big_version(url, args.updates)
        figures[backend] = found
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keystrokes", type=int, default=5000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    result = anyio.run(main, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result) + "\n")
