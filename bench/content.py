"""Content figures on a 100,000-update document: read its content, patch a line, diff two
versions, restore one; through the documents service over a store (as the CLI, and the API
for a document no room holds) and on the document's bytes alone.

    .venv/bin/python bench/content.py [--updates 100000] [--database-url URL] [--repeat 5]

Measured (issue 12, 2 shared cores, --repeat 3, SQLite; PostgreSQL within 10 %): read the
state 557 ms from 100,000 log rows, 19 ms compacted; content as JSON 44 ms (65 ms through the
service); a version's content 22 ms; set_text of one line of 4,944 60 ms (a 40-byte update);
PATCH through the service 136 ms; diff of two versions 50,000 keystrokes apart 241 ms (10,918
runs, each with its author); make_like back to half way 923 ms (a 20 kB update); restore
through the service 968 ms (two versions and the edit).

The document: two people typing one character per update (mostly at the end, sometimes
elsewhere, 5% deletions), about 5,000 lines, stored as 100,000 log rows: a read is timed on
that log (the worst case) and after a compaction (what the server's saver leaves). Versions
at half way and at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pycrdt import Doc, Text

from collab.changes import diff
from collab.content import content
from collab.documents import DocumentService
from collab.edits import make_like, set_text
from collab.ydoc import captured
from storage import PendingUpdate, open_store


def typing_session(n: int, seed: int = 7) -> tuple[list[bytes], list[str]]:
    """n one-character edits by two clients, as people type; and who made each."""
    rng = random.Random(seed)
    docs: list[Doc[Any]] = [Doc(client_id=1), Doc(client_id=2)]
    updates: list[bytes] = []
    authors: list[str] = []
    length = 0
    for i in range(n):
        who = (i // 500) % 2  # turns of 500 keystrokes
        doc = docs[who]
        other = docs[1 - who]
        text = doc.get("codemirror", type=Text)
        with captured(doc) as made:  # the transaction's own update, as a client sends it
            if length > 10 and rng.random() < 0.05:
                at = rng.randrange(length)
                del text[at : at + 1]
                length -= 1
            else:
                at = length if rng.random() < 0.9 else rng.randrange(length + 1)
                text.insert(at, rng.choice("abcdefghij klmnop\n"))
                length += 1
        [update] = made
        other.apply_update(update)
        updates.append(update)
        authors.append(("alice", "bob")[who])
    return updates, authors


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


async def main(args: argparse.Namespace) -> None:
    updates, authors = typing_session(args.updates)
    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/content.db"
    store = await open_store(url)
    name = "bench/content"
    await store.delete(name)
    documents = DocumentService(store)
    half = len(updates) // 2
    now = int(time.time() * 1000)
    for start in range(0, len(updates), 5000):
        batch = [
            PendingUpdate(name, u, now, authors[start + i])
            for i, u in enumerate(updates[start : start + 5000])
        ]
        await store.append(batch)
        if start + 5000 == half:
            await store.record_clients(name, {1: "alice", 2: "bob"})
            first = await documents.create_version(name, "half way")
    last = await documents.create_version(name, "end")
    state = await documents.read(name)
    old_state = await documents.version_update(name, first.id)
    text = content(state)["content"]["codemirror"]
    print(f"document: {len(updates)} updates, {len(text)} characters, {len(state)} bytes")
    print(f"store: {url.split(':')[0]}")
    rows: list[tuple[str, float]] = []
    r = args.repeat

    ms, _ = await timed(lambda: documents.read(name), r)
    rows.append((f"read the state, {len(updates)} log rows (not compacted)", ms))
    await documents.compact(name)
    ms, _ = await timed(lambda: documents.read(name), r)
    rows.append(("read the state, compacted (what the server leaves)", ms))
    ms, _ = await timed(lambda: documents.content(name), r)
    rows.append(("GET content (service: fold + content)", ms))
    ms, _ = await timed(lambda: _sync(lambda: content(state)), r)
    rows.append(("content() of the state alone", ms))
    ms, _ = await timed(lambda: _sync(lambda: content(state, "delta")), r)
    rows.append(("content(format=delta) of the state alone", ms))
    ms, _ = await timed(lambda: documents.version_content(name, first.id), r)
    rows.append(("a version's content (stored state)", ms))

    lines = text.split("\n")
    middle = len(lines) // 2
    edited = "\n".join(
        [*lines[:middle], lines[middle] + " (edited by a bot)", *lines[middle + 1 :]]
    )

    def patch_alone() -> int:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        with captured(doc) as made:
            set_text(doc, "codemirror", edited)
        return sum(len(u) for u in made)

    ms, size = await timed(lambda: _sync(patch_alone), r)
    rows.append((f"set_text one line of {len(lines)} (update {size} B)", ms))
    ms, _ = await timed(lambda: documents.patch(name, text={"codemirror": edited}), 1)
    rows.append(("PATCH through the service (fold, diff, append)", ms))

    clients = {1: "alice", 2: "bob"}
    ms, fields = await timed(lambda: _sync(lambda: diff(old_state, state, clients)), r)
    segments = len(fields["codemirror"])
    rows.append((f"diff half way -> end ({segments} segments)", ms))
    ms, _ = await timed(lambda: documents.diff(name, first.id, last.id), r)
    rows.append(("diff through the service (two versions)", ms))

    def make_like_alone() -> int:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        with captured(doc) as made:
            make_like(doc, old_state)
        return sum(len(u) for u in made)

    ms, size = await timed(lambda: _sync(make_like_alone), r)
    rows.append((f"make_like end -> half way (update {size} B)", ms))
    ms, _ = await timed(lambda: documents.restore(name, first.id), 1)
    rows.append(("restore through the service (2 versions + edit)", ms))

    width = max(len(label) for label, _ in rows)
    for label, ms in rows:
        print(f"{label:<{width}}  {ms:9.1f} ms")
    await store.close()


async def _sync(fn: Callable[[], Any]) -> Any:
    return fn()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    anyio.run(main, parser.parse_args())
