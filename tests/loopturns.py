"""Whether the event loop keeps turning while the process reads a big document's structs
(collab/steps.py), with no clock: a ticker task counts the loop's turns, and each struct read
while `reading` is set notes the turn it was read in. A long GIL switch interval makes a worker
thread's hold on the GIL last its whole read (as it does in effect when the loop has to win the
GIL back at each wake-up), and steps.SLICE_S 0 gives the loop a turn after every step."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pycrdt import Array, Assoc, Doc, Map, StickyIndex, Text

from collab import steps, ystructs

BIG_ITEMS = 20_000


def big_document() -> bytes:
    """A text of 20,000 items (prepends never merge), an array root, whose kind is only known
    after every struct (~100 ms of reading), and a comment on the text's first word."""
    doc: Doc[Any] = Doc()
    doc["text"] = text = Text()
    doc["ids"] = ids = Array()
    with doc.transaction():
        for _ in range(BIG_ITEMS):
            text.insert(0, "xy")
    ids.append("an id")
    start = StickyIndex.new(text, 0, Assoc.AFTER).to_json()
    end = StickyIndex.new(text, 2, Assoc.BEFORE).to_json()
    comment = {"field": "text", "body": "a comment", "quote": "xy", "start": start, "end": end}
    doc["comments"] = Map({"c1": Map(comment)})
    return doc.get_update()


class Turns:
    def __init__(self) -> None:
        self.turns = 0
        self.seen: list[int] = []  # the loop's turn at each struct read while reading
        self.reading = False

    @contextmanager
    def read(self) -> Iterator[None]:
        self.reading = True
        try:
            yield
        finally:
            self.reading = False

    def check(self) -> None:
        """The structs of the big document were read, with a turn of the loop at least every
        other step (~80 turns)."""
        seen = self.seen
        assert len(seen) > BIG_ITEMS, f"only {len(seen)} structs read"
        assert len(set(seen)) > len(seen) // ystructs.STEP // 2, (
            f"the event loop turned {len(set(seen)) - 1} times while {len(seen)} structs were read"
        )


@asynccontextmanager
async def loop_turns(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Turns]:
    record = Turns()
    structs = ystructs._Reader.structs

    def spy(reader: Any) -> Any:
        for struct in structs(reader):
            if record.reading:
                record.seen.append(record.turns)
            yield struct

    async def tick() -> None:
        while True:
            record.turns += 1
            await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(ystructs._Reader, "structs", spy)
    monkeypatch.setattr(steps, "SLICE_S", 0.0)
    switch = sys.getswitchinterval()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        sys.setswitchinterval(1.0)
        try:
            yield record
        finally:
            sys.setswitchinterval(switch)
            tg.cancel_scope.cancel()
