"""Change feeds (issue 13): the server CPU per update that the outbox adds, and the delivery
latency of document.changed events from commit to a receiver.

    .venv/bin/python bench/events.py [--reps 3] [--window-s 13.5] [--clients 20]
                                     [--sink auto|webhook|inprocess] [--json PATH] [--md PATH]

One scripted editing load, the same in every run: --clients clients, each in a document of its
own, type one character per update in bursts (--burst-s at --burst-rate updates/s, then a pause
of --pause-s: longer than the default 2 s debounce, so each burst ends in a document.changed),
their phases spread over the cycle so the total rate is steady (~140 updates/s by default).
Persistence on (a fresh SQLite file per run), every other setting the default, our bench flags
(bench/run.py's COLLAB_BENCH_FLAGS). Four variants of the server, interleaved, the order rotated
per repetition so drift of the shared machine hits all alike:

- `off`: `--no-events` (no outbox);
- `on`: events on (the default), no sink: the change marks in the commit's transaction and the
  finalizer making document.created/changed events;
- `sink`: events on and a sink: every event delivered over HTTP to a receiver in this process;
- `sink_d1`: the same with `--events-debounce-ms 1`: an event per commit (the worst case).

The sink is the server's webhooks (`--webhook-urls`, `--webhook-secret`) when this checkout has
them (collab/extensions/webhooks.py), else ("inprocess") an extension of this file added to the
app by a launcher (`bench/events.py serve-with-sink`), which POSTs each event's body with httpx
as a webhook would, unsigned. The receiver is a real HTTP server (uvicorn) in this process.

Server CPU = user + system time of the server process (psutil) over the measured window, per
update sent in it. Latency, per document.changed event received: its state vector says which of
the document's updates it covers; the newest of them was sent at S (the commit follows within
the commit window, 50 ms: S stands for the commit), the event was made at M (its `time_ms`,
the server's clock) and received at R (this process, when the POST's body was read):
`commit → receiver` = R − S, split into M − S (commit window, debounce, finalizer) and R − M
(outbox → receiver: the delivery loop and the POST). Also, per update: S → R of the first event
that covers it (how long until a receiver knows of a keystroke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
# the server's code: this checkout's, or --checkout's (the launcher gets it as BENCH_CHECKOUT)
sys.path[:0] = [os.environ.get("BENCH_CHECKOUT", str(ROOT)), str(BENCH)]

from run import COLLAB_BENCH_FLAGS, loadavg, machine  # noqa: E402

VARIANTS = ("off", "on", "sink", "sink_d1")
LABEL = {
    "off": "events off (`--no-events`)",
    "on": "events on, no sink",
    "sink": "events on + sink",
    "sink_d1": "events on + sink, debounce 1 ms",
}
SECRET = "bench-secret"


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_webhooks(checkout: Path) -> bool:
    return (checkout / "collab" / "extensions" / "webhooks.py").exists() and "webhook" in (
        checkout / "collab" / "app.py"
    ).read_text()


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


# -- the receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    at: float  # perf_counter when the body was read
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook receiver: answers 200 to every POST, records each event's body and when."""

    got: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        at = time.perf_counter()
        with contextlib.suppress(ValueError):
            self.got.append(Received(at, json.loads(b"".join(chunks))))
            self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# -- the editing load ----------------------------------------------------------------------------


def var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def state_vector(data: bytes) -> dict[int, int]:
    """client id -> clock of a Yjs state vector."""
    pos = 0

    def read() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    return {read(): read() for _ in range(read())}


@dataclass
class Typist:
    """One client typing into its own document; sent[k] = when its (k+1)-th character went."""

    index: int
    document: str
    client_id: int
    sent: list[float] = field(default_factory=list)


async def type_into(
    url: str, typist: Typist, plan: Any, stop_at: float, ready: Any, leave: asyncio.Event
) -> None:
    from pycrdt import Doc, Text
    from websockets.asyncio.client import connect

    doc: Doc[Any] = Doc(client_id=typist.client_id)
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    async with connect(f"{url}/ws/{typist.document}", max_size=None, compression=None) as ws:
        await ws.send(b"\x00\x00" + var_uint(1) + b"\x00")  # sync step 1, empty state vector

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        ready()
        try:
            for due in plan:
                if due >= stop_at:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                text += "etaoin shrdlu"[len(typist.sent) % 13]
                update = updates.pop()
                await ws.send(b"\x00\x02" + var_uint(len(update)) + update)
                typist.sent.append(time.perf_counter())
            # stay connected until the run is over: an update in the same read as the client's
            # close frame is dropped by the server (see the report), which is not what this
            # bench measures
            await leave.wait()
        finally:
            reader.cancel()


def schedule(start: float, phase: float, burst_s: float, rate: float, pause_s: float) -> Any:
    """The send times of one typist: bursts of `rate` updates/s for `burst_s`, then a pause."""
    cycle = burst_s + pause_s
    n = max(1, round(burst_s * rate))
    k = 0
    while True:
        base = start + phase + k * cycle
        for i in range(n):
            yield base + i / rate
        k += 1


# -- one run -------------------------------------------------------------------------------------


def server_command(
    variant: str, port: int, db: Path, sink: str, hook_url: str, checkout: Path
) -> tuple[list[str], dict[str, str]]:
    flags = [
        "--port", str(port), "--database-url", f"sqlite+aiosqlite:///{db}",
        "--log-level", "warning", *COLLAB_BENCH_FLAGS,
    ]  # fmt: skip
    if variant == "off":
        flags.append("--no-events")
    if variant == "sink_d1":
        flags += ["--events-debounce-ms", "1"]
    env = {"PYTHONUNBUFFERED": "1", "BENCH_CHECKOUT": str(checkout)}
    if variant.startswith("sink"):
        if sink == "webhook":
            flags += ["--webhook-urls", hook_url, "--webhook-secret", SECRET]
        else:
            env["BENCH_SINK_URL"] = hook_url
            return [sys.executable, str(Path(__file__).resolve()), "serve-with-sink", *flags], env
    return [sys.executable, "-m", "collab", "serve", *flags], env


def shown(cmd: list[str], port: int, hook_port: int, db: Path) -> str:
    out = shlex.join([".venv/bin/python", *cmd[1:]])
    out = out.replace(str(Path(__file__).resolve()), "bench/events.py")
    out = out.replace(f"sqlite+aiosqlite:///{db}", "sqlite+aiosqlite:///RUN.db")
    out = out.replace(f"--port {port}", "--port PORT")
    return out.replace(f"127.0.0.1:{hook_port}", "127.0.0.1:RECEIVER_PORT")


async def wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            )
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready: {log_path.read_text()[-2000:]}")
        await asyncio.sleep(0.05)


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data
    except OSError:
        return None


async def run_one(
    args: argparse.Namespace, variant: str, rep: int, receiver: Receiver, hook_port: int,
    tmp: Path,
) -> dict[str, Any]:  # fmt: skip
    import psutil

    port = free_port()
    db = tmp / f"{variant}-{rep}.db"
    hook_url = f"http://127.0.0.1:{hook_port}/hook/{variant}-{rep}"
    checkout = Path(args.checkout).resolve()
    cmd, env = server_command(variant, port, db, args.sink, hook_url, checkout)
    log_path = tmp / f"{variant}-{rep}.log"
    record: dict[str, Any] = {
        "variant": variant, "rep": rep, "load_before": loadavg(),
        "server_command": shown(cmd, port, hook_port, db),
    }  # fmt: skip
    receiver.got.clear()
    tasks: list[asyncio.Task[None]] = []
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            cmd, cwd=checkout, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=logf,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await wait_ready(port, proc, log_path)
        server = psutil.Process(proc.pid)
        me = psutil.Process()
        prefix = f"events/{variant}-{rep}"
        typists = [Typist(i, f"{prefix}/doc-{i}", 1000 + i) for i in range(args.clients)]
        cycle = args.burst_s + args.pause_s
        connected = 0
        leave = asyncio.Event()

        def ready() -> None:
            nonlocal connected
            connected += 1

        t0 = time.perf_counter() + 0.5  # typing starts; the window after the warm-up
        w0 = t0 + args.warmup_s
        w1 = w0 + args.window_s
        tasks += [
            asyncio.create_task(type_into(
                f"ws://127.0.0.1:{port}", t,
                schedule(t0, cycle * t.index / args.clients, args.burst_s, args.burst_rate, args.pause_s),
                w1, ready, leave,
            ))
            for t in typists
        ]  # fmt: skip
        await asyncio.sleep(max(w0 - time.perf_counter(), 0))
        spy = None
        if args.profile:  # py-spy on the server over the window (such runs are not figures)
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [args.py_spy, "record", "--nonblocking", "-r", "100", "-f", "raw", "-p",
                 str(proc.pid), "-d", str(int(args.window_s)), "-o",
                 str(Path(args.profile) / f"{variant}-{rep}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu0, mine0 = server.cpu_times(), me.cpu_times()
        await asyncio.sleep(max(w1 - time.perf_counter(), 0))
        cpu1, mine1 = server.cpu_times(), me.cpu_times()
        window = time.perf_counter() - w0
        await asyncio.sleep(0.3)  # the last sends (a typist may be a little late)
        if spy is not None:
            await asyncio.to_thread(spy.wait)
        assert connected == args.clients, f"{connected} of {args.clients} clients connected"
        updates = sum(1 for t in typists for s in t.sent if w0 <= s < w1)
        server_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        mine_s = (mine1.user - mine0.user) + (mine1.system - mine0.system)
        record.update(
            updates=updates, window_s=round(window, 2), updates_per_s=round(updates / window, 1),
            server_cpu_s=round(server_s, 3), server_cpu_pct=round(server_s / window * 100, 1),
            server_cpu_us_per_update=round(server_s / updates * 1e6, 1),
            bench_cpu_pct=round(mine_s / window * 100, 1),
        )  # fmt: skip
        if variant.startswith("sink"):
            record.update(await settle(receiver, typists, w0, w1, args, variant))
        record["healthz"] = healthz(port)
        leave.set()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        record["server_exit_code"] = proc.returncode
        text = log_path.read_text(errors="replace")
        record["server_log_problems"] = [
            ln
            for ln in text.splitlines()
            if any(w in ln for w in ("ERROR", "WARNING", "Traceback"))
        ][:5]
        record["load_after"] = loadavg()
    return record


async def settle(
    receiver: Receiver, typists: list[Typist], w0: float, w1: float, args: argparse.Namespace,
    variant: str,
) -> dict[str, Any]:  # fmt: skip
    """Wait until every document's last update is covered by a received event, then the
    latency figures of the window's events and updates."""
    by_doc = {t.document: t for t in typists}
    debounce = 0.001 if variant == "sink_d1" else 2.0
    deadline = time.perf_counter() + debounce + 10 + 5

    def covered() -> dict[str, int]:
        out: dict[str, int] = {}
        for r in receiver.got:
            if r.body.get("type") != "document.changed" or r.body.get("document") not in by_doc:
                continue
            t = by_doc[r.body["document"]]
            clock = state_vector(_b64(r.body["state_vector"])).get(t.client_id, 0)
            out[t.document] = max(out.get(t.document, 0), clock)
        return out

    while time.perf_counter() < deadline:
        seen = covered()
        if all(seen.get(t.document, 0) >= len(t.sent) for t in typists):
            break
        receiver.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.arrived.wait(), 0.5)
    seen = covered()
    missing = sum(len(t.sent) - min(seen.get(t.document, 0), len(t.sent)) for t in typists)

    offset = time.time() - time.perf_counter()  # perf_counter -> the server's wall clock
    e2e, made, delivery, per_update = [], [], [], []
    first_cover: dict[str, list[float]] = {
        t.document: [float("inf")] * len(t.sent) for t in typists
    }
    events = 0
    kinds: dict[str, int] = {}
    for r in sorted(receiver.got, key=lambda r: r.at):
        kinds[r.body.get("type", "?")] = kinds.get(r.body.get("type", "?"), 0) + 1
        if r.body.get("type") != "document.changed" or r.body.get("document") not in by_doc:
            continue
        t = by_doc[r.body["document"]]
        clock = min(state_vector(_b64(r.body["state_vector"])).get(t.client_id, 0), len(t.sent))
        if clock == 0:
            continue
        cover = first_cover[t.document]
        for k in range(clock - 1, -1, -1):
            if cover[k] != float("inf"):
                break
            cover[k] = r.at
        newest = t.sent[clock - 1]
        if not w0 <= newest < w1:
            continue
        events += 1
        e2e.append((r.at - newest) * 1000)
        made.append(r.body["time_ms"] - (newest + offset) * 1000)
        delivery.append((r.at + offset) * 1000 - r.body["time_ms"])
    for t in typists:
        for k, s in enumerate(t.sent):
            if w0 <= s < w1 and first_cover[t.document][k] != float("inf"):
                per_update.append((first_cover[t.document][k] - s) * 1000)
    return {
        "events_received": kinds, "changed_events_in_window": events,
        "updates_not_covered": missing,
        "latency_samples": {k: [round(x, 2) for x in xs] for k, xs in (
            ("commit_to_receiver_ms", e2e), ("made_ms", made), ("delivery_ms", delivery),
            ("update_to_receiver_ms", per_update))},
    }  # fmt: skip


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


# -- the in-process sink (before the webhooks land) ----------------------------------------------


def serve_with_sink(argv: list[str]) -> int:
    """`collab serve` with an extension whose sink POSTs each event to $BENCH_SINK_URL."""
    import httpx

    from collab import logs
    from collab.app import create_app
    from collab.cli import _settings, build_parser
    from collab.events import Event
    from collab.hooks import Extension, OnShutdownPayload, OnStartupPayload
    from collab.server import serve

    class PostSink(Extension):
        """As a webhook endpoint: one httpx client, up to 8 documents in flight, 2xx or raise."""

        def __init__(self, url: str) -> None:
            self.url = url
            self.name = "bench:" + url
            self.max_in_flight = 8
            self.client: httpx.AsyncClient | None = None

        async def on_startup(self, payload: OnStartupPayload) -> None:
            self.client = httpx.AsyncClient(
                timeout=5.0, limits=httpx.Limits(max_connections=self.max_in_flight)
            )
            payload.events.add_sink(self)

        async def on_shutdown(self, payload: OnShutdownPayload) -> None:
            if self.client is not None:
                await self.client.aclose()

        async def deliver(self, event: Event) -> None:
            assert self.client is not None
            response = await self.client.post(
                self.url, content=event.body, headers={"Content-Type": "application/json",
                                                       "Collab-Event-Id": event.id},
            )  # fmt: skip
            if not response.is_success:
                raise RuntimeError(f"HTTP {response.status_code}")

    if os.environ.get("BENCH_COUNT_SQL"):  # a diagnosis: the statements the server ran
        import atexit
        import collections

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        counts: collections.Counter[str] = collections.Counter()

        @event.listens_for(Engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            counts[" ".join(statement.split())[:90]] += 1

        def dump() -> None:
            with open(os.environ["BENCH_COUNT_SQL"], "w") as f:
                for statement, n in counts.most_common():
                    f.write(f"{n}\t{statement}\n")

        atexit.register(dump)
    settings = _settings(build_parser().parse_args(["serve", *argv]))
    logs.configure(settings.log_level)
    app = create_app(settings, extensions=[PostSink(os.environ["BENCH_SINK_URL"])])
    return serve(app, settings)


# -- the report's section -----------------------------------------------------------------------


def per_event(r: dict[str, Any], off: float | None) -> float:
    """The CPU the run added over the `off` median, per document.changed it delivered (ms)."""
    events = r.get("changed_events_in_window") or 0
    if not events or off is None:
        return float("nan")
    return (r["server_cpu_us_per_update"] - off) * r["updates"] / events / 1000


def _num(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _cell(xs: list[float], digits: int = 0) -> str:
    if not xs:
        return "–"
    m = statistics.median(xs)
    if len(xs) == 1 or min(xs) == max(xs):
        return _num(m, digits)
    return f"{_num(m, digits)} [{_num(min(xs), digits)}–{_num(max(xs), digits)}]"


def markdown(result: dict[str, Any], heading: str = "##") -> str:
    """The docs/benchmarks.md section of one run of this file (report.py calls it)."""
    s, p = result["summary"], result["params"]
    runs = [r for r in result["runs"] if "error" not in r]
    sink = {
        "webhook": "the server's webhooks (`--webhook-urls` to an HTTP receiver in the bench "
        "process, `--webhook-secret`: signed POSTs)",
        "inprocess": "an in-process stand-in for the webhooks (this checkout has none yet): an "
        "extension added by `bench/events.py serve-with-sink` that POSTs each event's body with "
        "httpx to an HTTP receiver (uvicorn) in the bench process, unsigned, up to 8 documents "
        "in flight",
    }[result["sink"]]
    rate = p["burst_rate"] * p["burst_s"] / (p["burst_s"] + p["pause_s"]) * p["clients"]
    out = [
        f"{heading} Change feeds: what the outbox costs per update, and how soon a receiver hears\n",
        f"Command: `{result['command']}` (started {result['started']}, {result['elapsed_s']} s; "
        f"{served(result)}). {p['clients']} clients, each typing into a "
        f"document of its own over y-websocket, one character per update, in bursts of "
        f"{p['burst_s']:g} s at {p['burst_rate']:g} updates/s with {p['pause_s']:g} s pauses, "
        f"phases spread so the total is a steady ~{rate:.0f} updates/s; persistence on (a fresh "
        f"SQLite file per run), our bench flags, every other setting the default. "
        f"{p['reps']} repetition{'s' if p['reps'] != 1 else ''} of four servers, interleaved (order rotated per repetition), "
        f"each measured over {p['window_s']:g} s after {p['warmup_s']:g} s of warm-up. The sink "
        f"is {sink}.\n",
        "**Server CPU per update** = user + system time of the server process (psutil) over the "
        "window ÷ the updates sent in it; it includes everything the server does meanwhile "
        "(the saver's commits, the finalizer, the delivery loops, the POSTs). Added = our median "
        "− the `off` median; per repetition = each repetition's figure − the same repetition's "
        "`off`.\n",
    ]
    rows = []
    cpu = s["cpu_us_per_update"]
    for v in VARIANTS:
        rs = [r for r in runs if r["variant"] == v]
        c = cpu[v]
        rows.append([
            LABEL[v], str(len(rs)),
            _cell([r["server_cpu_us_per_update"] for r in rs], 0),
            _cell([r["server_cpu_pct"] for r in rs], 1),
            "–" if v == "off" else f"{c.get('added', 0):+,.0f}",
            "1.00×" if v == "off" else (f"{c['ratio']:.2f}×" if c.get("ratio") else "–"),
            "–" if v == "off" else ", ".join(f"{x:+,.0f}" for x in c.get("paired_added", [])),
            _cell([r.get("changed_events_in_window", 0) / r["window_s"] for r in rs], 1)
            if v.startswith("sink") else "–",
            _cell([per_event(r, cpu["off"]["median"]) for r in rs], 1) if v.startswith("sink") else "–",
        ])  # fmt: skip
    head = ["server", "runs", "server CPU µs / update", "server CPU %", "added µs / update",
            "÷ off", "added per repetition", "document.changed / s received",
            "added CPU ÷ events received (ms)"]  # fmt: skip
    out.append(_table(head, rows))
    out.append(
        f"\nUpdates per second in the window: {_num(s['updates_per_s'], 1)} (median). "
        "Server commands (PORT a free port, RUN a fresh SQLite file, RECEIVER_PORT the bench's "
        "receiver):\n"
    )
    shown = {}
    for r in result["runs"]:
        if "server_command" in r:
            cmd = r["server_command"]
            shown.setdefault(r["variant"], cmd.replace(f"/hook/{r['variant']}-{r['rep']}", "/hook"))
    out.append(
        "```\n" + "\n".join(f"# {LABEL[v]}\n{shown[v]}" for v in VARIANTS if v in shown) + "\n```\n"
    )

    lrows = []
    for v, debounce in (("sink", "2,000 ms (default)"), ("sink_d1", "1 ms")):
        lat = s.get(f"latency_{v}") or {}
        e2e, made = lat.get("commit_to_receiver_ms", {}), lat.get("made_ms", {})
        dl, upd = lat.get("delivery_ms", {}), lat.get("update_to_receiver_ms", {})
        lrows.append([
            debounce, _num(e2e.get("n")),
            f"{_num(e2e.get('p50'))} / {_num(e2e.get('p99'))} / {_num(e2e.get('max'))}",
            f"{_num(made.get('p50'))} / {_num(made.get('p99'))}",
            f"{_num(dl.get('p50'), 1)} / {_num(dl.get('p99'), 1)}",
            f"{_num(upd.get('p50'))} / {_num(upd.get('p99'))}",
            _num(lat.get("updates_not_covered")),
        ])  # fmt: skip
    out += [
        "**Delivery latency**, from the `sink` runs (default debounce) and the `sink_d1` runs "
        "(`--events-debounce-ms 1`: the pipeline's own latency), all repetitions pooled. For each "
        "`document.changed` received whose newest update was sent in the window: its state "
        "vector says which updates of the document it covers; the newest of them was sent at S "
        "(the commit follows within the 50 ms commit window: S stands for the commit time), the "
        "event was made at M (its `time_ms`, the server's clock, the same machine) and its POST's "
        "body was read by the receiver at R. Per update: from its send to the receipt of the "
        "first event that covers it (how long until a receiver knows of a keystroke).\n",
        _table(
            [
                "debounce",
                "events",
                "commit → receiver R − S, p50 / p99 / max (ms)",
                "commit → event made M − S, p50 / p99 (ms)",
                "event made → receiver R − M, p50 / p99 (ms)",
                "per update: send → receiver knows, p50 / p99 (ms)",
                "updates never covered",
            ],
            lrows,
        ),  # fmt: skip
    ]
    notes = []
    off = cpu["off"]["median"]
    each = {v: [per_event(r, off) for r in runs if r["variant"] == v] for v in ("sink", "sink_d1")}
    if each["sink"] and each["sink_d1"]:
        d1, d2000 = statistics.median(each["sink_d1"]), statistics.median(each["sink"])
        notes.append(
            f"Each delivered document.changed cost the server {d1:.1f} ms of CPU when every "
            f"commit made one (debounce 1 ms), {d2000:.1f} ms at the default debounce (where the "
            "loops' fixed polling is shared by fewer events): at that price one core makes and "
            f"delivers about {1000 / d1:,.0f} events a second."
        )
    d2000 = (s.get("latency_sink") or {}).get("made_ms") or {}
    if d2000.get("p50") is not None:
        notes.append(
            f"With the default debounce, events were made {d2000['p50'] - 2000:,.0f} ms (p50) / "
            f"{d2000['p99'] - 2000:,.0f} ms (p99) later than 2,000 ms after their newest update "
            "was sent."
        )
    if s.get("errors"):
        notes.append("Failed runs: " + "; ".join(s["errors"]) + ".")
    if s.get("server_log_problems"):
        notes.append(
            "Server log lines: "
            + "; ".join(f"`{x[:160]}`" for x in s["server_log_problems"][:5])
            + "."
        )
    if s.get("bench_cpu_pct_max") is not None:
        notes.append(
            f"The bench process (clients and receiver, one event loop) used at most "
            f"{s['bench_cpu_pct_max']:.0f} % of a core in a window."
        )
    if notes:
        out.append("\n" + " ".join(notes) + "\n")
    return "\n".join(out) + "\n"


def served(result: dict[str, Any]) -> str:
    c = result.get("server_checkout") or {}
    if not c or c.get("this_checkout"):
        return f"Collab {result['machine']['git_commit']}"
    return f"the server of another checkout, {c['path']} at {c['commit']}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- the whole run -------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    cpu = {v: [r["server_cpu_us_per_update"] for r in ok if r["variant"] == v] for v in VARIANTS}
    med = {v: statistics.median(x) if x else None for v, x in cpu.items()}
    out: dict[str, Any] = {
        "cpu_us_per_update": {v: {"median": med[v], "runs": cpu[v]} for v in VARIANTS}
    }
    base = med["off"]
    for v in VARIANTS[1:]:
        if base and med[v]:
            # paired by repetition: each rep ran every variant back to back
            pairs = [
                a["server_cpu_us_per_update"] - b["server_cpu_us_per_update"]
                for a in ok for b in ok
                if a["variant"] == v and b["variant"] == "off" and a["rep"] == b["rep"]
            ]  # fmt: skip
            out["cpu_us_per_update"][v].update(
                added=round(med[v] - base, 1), ratio=round(med[v] / base, 3),
                paired_added=[round(p, 1) for p in pairs],
            )  # fmt: skip
    for v in ("sink", "sink_d1"):
        samples: dict[str, list[float]] = {}
        for r in ok:
            if r["variant"] == v:
                for k, xs in r.get("latency_samples", {}).items():
                    samples.setdefault(k, []).extend(xs)
        out[f"latency_{v}"] = {
            k: {"n": len(xs), "p50": _r(pct(xs, 0.5)), "p99": _r(pct(xs, 0.99)), "max": _r(max(xs) if xs else None)}
            for k, xs in samples.items()
        }  # fmt: skip
        out[f"latency_{v}"]["updates_not_covered"] = sum(
            r.get("updates_not_covered", 0) for r in ok if r["variant"] == v
        )
    out["updates_per_s"] = statistics.median(r["updates_per_s"] for r in ok) if ok else None
    out["errors"] = [f"{r['variant']} rep {r['rep']}: {r['error']}" for r in runs if "error" in r]
    out["server_log_problems"] = [p for r in runs for p in r.get("server_log_problems", [])][:10]
    out["bench_cpu_pct_max"] = max((r.get("bench_cpu_pct", 0) for r in ok), default=None)
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn

    if args.sink == "auto":
        args.sink = "webhook" if has_webhooks(Path(args.checkout)) else "inprocess"
    receiver = Receiver()
    hook_port = free_port()
    config = uvicorn.Config(receiver, host="127.0.0.1", port=hook_port, log_level="warning",
                            lifespan="off", access_log=False)  # fmt: skip
    http = uvicorn.Server(config)
    serving = asyncio.create_task(http.serve())
    while not http.started:
        await asyncio.sleep(0.01)
    started = time.time()
    runs: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-events-"))
    log(
        f"events bench: sink {args.sink}, {args.reps} reps × {len(VARIANTS)} variants, logs in {tmp}"
    )
    try:
        for rep in range(args.reps):
            order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
            for variant in order:
                log(
                    f"[{time.time() - started:5.0f} s] rep {rep + 1}/{args.reps} {variant} ({LABEL[variant]})"
                )
                try:
                    record = await run_one(args, variant, rep, receiver, hook_port, tmp)
                except Exception as exc:  # a failed run is a result too
                    record = {
                        "variant": variant,
                        "rep": rep,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                runs.append(record)
                log("    " + brief(record))
                await asyncio.sleep(0.5)
    finally:
        http.should_exit = True
        await serving
    summary = summarize(runs)
    return {
        "type": "events",
        "command": command_line(args),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "elapsed_s": round(time.time() - started),
        "sink": args.sink,
        "params": {k: getattr(args, k) for k in ("reps", "clients", "burst_s", "burst_rate", "pause_s",
                                                   "warmup_s", "window_s")},
        "machine": machine(),
        "server_checkout": checkout_info(Path(args.checkout)),
        "runs": runs,
        "summary": summary,
    }  # fmt: skip


def checkout_info(checkout: Path) -> dict[str, Any]:
    """Which code the servers ran: --checkout's commit, and whether collab/ or storage/ differ."""
    git = ["git", "-C", str(checkout)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "collab", "storage"], capture_output=True, text=True
    )
    return {
        "path": str(checkout.resolve()),
        "this_checkout": checkout.resolve() == ROOT,
        "commit": commit.stdout.strip()
        + (" (collab/ or storage/ modified)" if dirty.stdout.strip() else ""),
    }


def brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    text = (f"{r['updates']} updates in {r['window_s']} s ({r['updates_per_s']}/s): server "
            f"{r['server_cpu_us_per_update']} µs/update ({r['server_cpu_pct']} %), bench {r['bench_cpu_pct']} %")  # fmt: skip
    if "latency_samples" in r:
        s = r["latency_samples"]["commit_to_receiver_ms"]
        text += (f"; {r['changed_events_in_window']} changed events, commit→receiver p50 "
                 f"{_r(pct(s, 0.5))} p99 {_r(pct(s, 0.99))} ms, not covered {r['updates_not_covered']}")  # fmt: skip
    return text


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (the sink was chosen by --sink auto)."""
    parts = [".venv/bin/python", "bench/events.py"]
    defaults = vars(parser().parse_args([]))
    for k, v in vars(args).items():
        if k in ("md", "command", "profile", "py_spy", "sink") or v == defaults.get(k):
            continue
        if k in ("json", "checkout"):
            with contextlib.suppress(ValueError):
                v = (
                    os.path.relpath(Path(v).resolve(), ROOT)
                    if Path(v).resolve().is_relative_to(ROOT)
                    else v
                )
        parts += [f"--{k.replace('_', '-')}", str(v)]
    return shlex.join(parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--clients", type=int, default=20, help="typists, one document each")
    p.add_argument("--burst-s", type=float, default=2.0)
    p.add_argument("--burst-rate", type=float, default=16.0, help="updates/s per typist in a burst")
    p.add_argument("--pause-s", type=float, default=2.5)
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--window-s", type=float, default=13.5, help="measured (3 cycles by default)")
    p.add_argument("--sink", choices=("auto", "webhook", "inprocess"), default="auto")
    p.add_argument("--profile", default=None, help="py-spy each run's server into this dir")
    p.add_argument("--py-spy", default="py-spy", help="the py-spy binary (with --profile)")
    p.add_argument("--checkout", default=str(ROOT), help="run the server of this checkout")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--md", default=None, help="write the docs/benchmarks.md section here")
    return p


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-with-sink"]:
        sys.exit(serve_with_sink(sys.argv[2:]))
    cli = parser().parse_args()
    result = asyncio.run(main(cli))
    text = json.dumps(result)
    if cli.json:
        Path(cli.json).write_text(text + "\n")
    if cli.md:
        Path(cli.md).write_text(markdown(result))
    print(markdown(result))
