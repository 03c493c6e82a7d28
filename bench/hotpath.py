"""What one keystroke update costs the server's hot path, in CPU, without the network.

`Room.handle(sender, [0, 2, update])` for every update of a typing session (pycrdt writes
them: one character each, mostly at the end), in a room of three members (the sender and two
others, whose `send_frame` does nothing): parse, validate, apply, the pending-dependency check,
the broadcast to the two others, `Saver.record` (a real Saver; its task does not run, so
nothing is committed), and, with `--bus`, the publish to a real RedisBus's outbox (marked
connected; nothing is sent). A fresh room per round; prints the best and the median of
`--rounds`, in µs per update (process CPU time).

    PYTHONPATH=$PWD .venv/bin/python bench/hotpath.py [--updates 20000] [--rounds 9]
    PYTHONPATH=$PWD .venv/bin/python bench/hotpath.py --metrics  # the counts off and on
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from typing import Any

from pycrdt import Doc, Text

from collab import protocol as p
from collab.cluster.redis import RedisBus
from collab.cluster.sync import Replica
from collab.room import Room
from collab.saver import Saver
from storage import StoredDocument


def typing_updates(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    doc: Doc[Any] = Doc()
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for length in range(n):
        pos = length if rng.random() < 0.9 else rng.randrange(length + 1)
        text.insert(pos, rng.choice("abcdefghij klmnop\n"))
    return updates


class Member:
    """A connection whose socket takes everything at no cost. (It has what a room asks of a
    member both before and after issue 11's Member protocol: `deflate` or `framing`.)"""

    deflate = False
    framing = 0  # room.PLAIN_FRAME
    read_only = False
    author = "alice"  # (issue 12: who writes through it)
    info = None

    def __init__(self) -> None:
        self.pending_updates = 0
        self.on_close: list[Any] = []

    def add_pending(self, edits: int) -> int:
        self.pending_updates += edits
        return self.pending_updates

    def send_nowait(self, message: bytes) -> None:
        pass

    def send_frame(self, data: bytes) -> None:
        pass

    def encode(self, message: bytes) -> bytes:
        return message


def one_round(messages: list[bytes], bus: bool, counts: Any = None) -> float:
    name = "bench/hot"
    saver = Saver(None, commit_window_ms=50, compact_after_rows=10**9, compact_after_bytes=10**12)
    publisher = None
    if bus:
        redis = RedisBus("redis://127.0.0.1:1/0")
        redis.connected = True  # publish() queues into its outbox, as when connected
        publisher = Replica(name, redis)
    extra = {"counts": counts} if counts is not None else {}  # (issue 14's metrics)
    room = Room(name, Doc(), saver.record, awareness_timeout_s=30, publish=publisher, **extra)
    saver.open(name, room.encode_update, StoredDocument(None, [], 0))
    sender = Member()
    for member in (sender, Member(), Member()):
        room.add(member)
    gc.collect()
    started = time.process_time()
    for message in messages:
        room.handle(sender, message)
    return (time.process_time() - started) / len(messages) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="no bus, the room's counts (collab/counts.py) off and on, rounds interleaved",
    )
    args = parser.parse_args()
    messages = [p.update_message(update) for update in typing_updates(args.updates)]
    if args.metrics:
        from collab.counts import Counts

        runs: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            runs["off"].append(one_round(messages, False))
            runs["on"].append(one_round(messages, False, Counts()))
        for label, values in runs.items():
            print(
                f"counts {label:>3}: {min(values):.2f} µs per update best, "
                f"{statistics.median(values):.2f} median ({args.updates} keystrokes, "
                f"{args.rounds} rounds, interleaved)"
            )
        return
    for bus in (False, True):
        runs = [one_round(messages, bus) for _ in range(args.rounds)]
        label = "Redis bus" if bus else "no bus   "
        print(
            f"{label}: {min(runs):.2f} µs per update best, {statistics.median(runs):.2f} median "
            f"({args.updates} keystrokes, {args.rounds} rounds)"
        )


if __name__ == "__main__":
    main()
