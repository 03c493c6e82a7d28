"""Wire fuzzing against a live server process while a canary room keeps syncing.

10,000 generated frames per run: random bytes, truncated varints, bad length prefixes, unknown
message types, mutated real updates and awareness updates, text frames, and the 16-byte update
that makes pycrdt allocate ~500 MB. The server must not crash, the canary must lose nothing,
the server's RSS may grow by less than 128 MiB, and every offending socket must be closed within
a second. Each frame is followed by a probe, an awareness update of the worker's own client at a
clock it has not used: frames are handled in order, so the server's broadcast of that state
means the frame was accepted, a close means it was refused. (The probe's state names the frame:
an accepted frame may be answered by several awareness messages, an awareness update with its
echo and a reminder, and a probe that took any awareness message for its answer would read the
next frame's answer from those and take a refused frame for an accepted one.)
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import anyio
import pytest
import websockets
from pycrdt import Doc, Map, Text

from collab import protocol as p
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FRAMES = int(os.environ.get("COLLAB_FUZZ_FRAMES", "10000"))
WORKERS = 8
AMPLIFIERS = [
    bytes.fromhex("b8f2b476b8c7d77b5f90a1bb5bbe2627"),
    bytes.fromhex("9bba87ba61c8eb06ddaca3c34a2955cb"),
]


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the highest RSS the process has ever had (a transient spike counts)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def corpus(seed: int) -> list[bytes]:
    """Real updates and awareness updates to mutate."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc(client_id=rng.randrange(1 << 32))
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text = doc.get("t", type=Text)
    meta = doc.get("m", type=Map)
    for i in range(60):
        text.insert(min(i, len(str(text))), rng.choice(["a", "é", "🎉", "hello "]))
        if i % 7 == 0:
            meta[f"k{i}"] = {"n": i, "s": "x" * rng.randrange(40)}
    out = [p.update_message(u) for u in updates]
    out.append(p.sync_step2(doc.get_update()))
    out.append(p.sync_step1(doc.get_state()))
    aw = p.encode_awareness_update([p.AwarenessEntry(7, 3, b'{"user":{"name":"Zo\\u00eb"}}')])
    out.append(p.awareness_message(aw))
    return out


def mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(5)
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1 and data:
            del data[rng.randrange(len(data)) :]
        elif op == 2:
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = rng.randbytes(rng.randrange(1, 6))
        elif op == 3 and len(data) > 2:
            data[rng.randrange(2, len(data))] = 0xFF  # inflate a varint / length prefix
        else:
            data[2:2] = b"\xff\xff\xff\xff\x0f"  # a huge length prefix after the header
    return bytes(data)


def generate(rng: random.Random, seeds: list[bytes]) -> bytes | str:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:  # truncated varints
        return bytes([rng.choice([0, 1]), rng.choice([0, 1, 2])]) + b"\xff" * rng.randrange(1, 12)
    if kind == 2:  # bad length prefixes
        return bytes([0, rng.choice([0, 1, 2])]) + p.write_var_uint(rng.randrange(1 << 40)) + b"x"
    if kind == 3:  # unknown message types
        return bytes([rng.randrange(4, 256)]) + rng.randbytes(rng.randrange(8))
    if kind == 4:
        return rng.choice(["hello", "{}", "\x00", ""])
    if kind == 5:  # the allocation bombs, as update and as step 2
        payload = rng.choice(AMPLIFIERS)
        return rng.choice([p.update_message, p.sync_step2])(payload)
    if kind == 6:  # awareness garbage
        n = rng.randrange(1 << 20)
        return p.awareness_message(p.write_var_uint(n) + rng.randbytes(rng.randrange(10)))
    return mutate(rng, rng.choice(seeds))


PROBE_CLIENT = 1 << 50  # (far from the client ids the frames carry)


def probe(worker: int, clock: int) -> tuple[bytes, bytes]:
    """The probe after a frame, and the bytes that only the server's answer to it carries."""
    state = b'{"probe":"%d-%d"}' % (worker, clock)
    entry = p.AwarenessEntry(PROBE_CLIENT + worker, clock, state)
    return p.awareness_message(p.encode_awareness_update([entry])), state


async def fuzz_worker(
    url: str, worker: int, frames: list[bytes | str], stats: dict[str, Any]
) -> None:
    ws = None
    for clock, frame in enumerate(frames, 1):
        if ws is None:
            ws = await websockets.connect(url, max_size=None, ping_interval=None)
            with anyio.fail_after(5):
                await ws.recv()  # sync step 1
        message, marker = probe(worker, clock)
        sent = time.monotonic()
        try:
            await ws.send(frame)
            await ws.send(message)
            with anyio.fail_after(1.0):  # offending sockets are closed within a second
                while True:
                    reply = await ws.recv()
                    if isinstance(reply, bytes) and marker in reply:
                        break
            stats["accepted"] += 1
        except websockets.ConnectionClosed as closed:
            rcvd = closed.rcvd
            assert rcvd is not None, f"dropped without a close frame after {frame!r:.80}"
            stats["closed"][rcvd.code] = stats["closed"].get(rcvd.code, 0) + 1
            stats["slowest_close"] = max(stats["slowest_close"], time.monotonic() - sent)
            ws = None
    if ws is not None:
        await ws.close()


async def canary(url: str, stop: anyio.Event, counts: dict[str, int]) -> None:
    async with YClient(url, "canary") as writer, YClient(url, "canary") as reader:
        await reader.wait_for(lambda: reader.synced)
        items = writer.doc.get("seq", type=Map)
        n = 0
        while not stop.is_set():
            items[str(n)] = n
            n += 1
            await reader.wait_for(lambda n=n: len(reader.doc.get("seq", type=Map)) == n)
            await anyio.sleep(0.02)
        counts["sent"] = n
        counts["seen"] = len(reader.doc.get("seq", type=Map))
        assert writer.close_code is None and reader.close_code is None


async def test_ten_thousand_fuzzed_frames(launch):
    server = launch(
        "--max-connect-attempts-per-ip",
        "1000000",
        "--max-connections-per-ip",
        "1000",
        "--log-level",
        "warning",
    )
    await server.start()
    assert server.proc is not None
    pid = server.proc.pid
    seed = int(os.environ.get("COLLAB_FUZZ_SEED", random.randrange(1 << 30)))
    print(f"\nfuzz: COLLAB_FUZZ_SEED={seed} generates these frames again")
    rng = random.Random(seed)
    seeds = corpus(rng.randrange(1 << 30))
    frames = [generate(rng, seeds) for _ in range(FRAMES)]
    stats: dict[str, Any] = {"accepted": 0, "closed": {}, "slowest_close": 0.0}
    counts: dict[str, int] = {}
    rss_before = peak_rss_kib(pid)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(canary, server.url + "", stop, counts)
        async with anyio.create_task_group() as fuzzers:
            for w in range(WORKERS):
                fuzzers.start_soon(
                    fuzz_worker, f"{server.url}/ws/fuzz-{w}", w, frames[w::WORKERS], stats
                )
        stop.set()
    rss_after = peak_rss_kib(pid)
    assert server.proc.returncode is None, "the server crashed"
    assert (await server.health())["status"] == "ok"
    assert counts["seen"] == counts["sent"] > 0
    assert stats["accepted"] + sum(stats["closed"].values()) == FRAMES
    assert set(stats["closed"]) <= {1002, 1003}, stats["closed"]
    assert (rss_after - rss_before) < 128 * 1024, f"peak RSS grew {rss_after - rss_before} KiB"
    print(
        f"\nfuzz: {stats['accepted']} accepted, closed {stats['closed']}, slowest close "
        f"{stats['slowest_close'] * 1000:.0f} ms, canary {counts['sent']} updates, peak RSS "
        f"{rss_before // 1024} -> {rss_after // 1024} MiB"
    )
    await server.stop()
