"""Work done a step at a time, so that the event loop's other tasks run in between.

Reading a whole document is CPU work that grows with it: yrs (loading it, one call) and the
pure-Python reading of its structs (collab/ystructs.py, ~6 µs a struct: telling a 20,000-item
document's roots apart is over 100 ms). A worker thread gains nothing for either: pycrdt holds
the GIL in yrs, and a thread running Python makes the event loop wait for the GIL each time it
wakes (every room's fan-out, and the commits, fell 100 ms behind while a big document's
document.changed was made that way).

So such work is a `Steps` generator, which yields between steps and returns its result:
`finish` runs it at once (off the event loop, the CLI, tests), `run` on the event loop, letting
the other tasks run every SLICE_S.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TypeVar, cast

import anyio.lowlevel

T = TypeVar("T")
Steps = Generator[None, None, T]
SLICE_S = 0.002  # the longest `run` keeps the event loop before the others' turn


def finish(steps: Steps[T]) -> T:
    """Run `steps` to the end at once; what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(T, done.value)


async def run(steps: Steps[T]) -> T:
    """Run `steps` to the end on the event loop, letting its other tasks run every SLICE_S."""
    deadline = time.perf_counter() + SLICE_S
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(T, done.value)
        if time.perf_counter() >= deadline:
            await anyio.lowlevel.checkpoint()
            deadline = time.perf_counter() + SLICE_S
