"""The peer benchmark: our server against the reference y-websocket server and Hocuspocus, interleaved.

    .venv/bin/python bench/run.py [--reps 3] [--quick] [--only fanout,bigjoin]
                                  [--servers collab,yws,hocuspocus] [--out bench/results/suite.jsonl]
                                  [--no-report] [--no-store-figures] [--no-events]

`make bench` runs it (after `npm ci` in bench/ and installing matplotlib into the venv), then
bench/report.py writes docs/benchmarks.md and docs/img/*.png. `make bench-quick` (or
BENCH_QUICK=1) runs every scenario once, scaled down, in a few minutes, and writes its report
under bench/results/quick/ instead.

Every run gets a fresh server process on a fresh port (ours and Hocuspocus with a fresh SQLite
file): a scenario is run against each server in turn, the order rotated per repetition
(A B C / B C A / C A B), so slow drift of the shared machine hits all alike. The servers: ours,
@y/websocket-server (the reference, no persistence) and @hocuspocus/server 4.x with its SQLite
extension (bench/hocuspocus-server.mjs; the generator speaks its protocol, --protocol
hocuspocus). The load generator is bench/ybench.mjs; each run's result is one JSON line in the
output file, with the exact commands. Every process the bench starts gets the highest
descriptor limit it may have (NOFILE_LIMIT, else soft = hard), set here, not in the servers.

What runs, and why (a full run is ~40 minutes on 2 cores, measured: one repetition of all
with the store figures and events.py 19 minutes, a repetition of the targets ~8; time is the
constraint):
- the targets of issue 16, 3 repetitions each: connect10k (the storm: all_synced_ms,
  handshake_p99_ms), idle50k (50,000 idle connections from several loopback source addresses;
  cut to the descriptor limit where it cannot be raised, the record says so), fanout (CPU per
  delivery, judged per repetition), bigjoin (100 joiners of a 20 MB document at once),
  keystroke1k/100k/1m (CPU per keystroke against the history's length) and workers (ours alone:
  --workers 1 against --workers 2 without a bus, a fixed fanout load, CPU summed over the process
  tree); connect1k beside them (small and cheap).
- one repetition (ONE_REP): tput10x10, awareness, bigdoc, persist (ours alone, with a restart):
  not targets of this round, kept as the regression check of earlier ones.
- not by default (OPTIONAL, `--only NAME`): connect5k (between 1k and 10k), tput1x100 and
  persist_flood (stress figures of earlier rounds, ~2 and ~1 minutes a repetition),
  workers_redis (--workers 2 with a Redis bus) and bus (two servers on a Redis bus), which
  need Redis (`--redis-url`, default redis://127.0.0.1:6379/0, must answer; its CPU is measured
  from the pid in `INFO server` when it runs here).
`--reps N` gives every selected scenario N repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
TMP = RESULTS / "tmp"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
NODE = "node"

# The limits our server must not apply to a load generator that is one IP address sending as
# fast as it can. Everything else is the default (commit window 50 ms, persistence on).
COLLAB_BENCH_FLAGS = [
    "--max-connections-per-ip", "20000",
    "--max-connect-attempts-per-ip", "1000000",
    "--max-connections-per-document", "10000",
    "--max-documents", "20000",
    "--rate-messages-per-s", "1000000",
    "--rate-messages-burst", "1000000",
    "--rate-bytes-per-s", "1000000000",
    "--rate-bytes-burst", "1000000000",
    # bench clients are raw sockets, not providers: they do not renew awareness every 15 s
    "--idle-timeout-s", "3600",
]  # fmt: skip

# Our server runs under an 8 GiB address-space limit (RLIMIT_AS; it idles at ~0.3 GiB): a
# compaction or restore of a long append-only log once took 23 GB and the kernel's OOM killer
# on this shared machine. With the limit, the allocation fails inside our server instead.
COLLAB_MEMORY_LIMIT = 8 << 30

SERVER_LABEL = {
    "collab": "Collab (ours)",
    "yws": "y-websocket (reference)",
    "hocuspocus": "Hocuspocus (@hocuspocus/server + SQLite)",
}
# ybench's flags per server: @hocuspocus/server speaks its own protocol (answers on any path)
SERVER_FLAGS: dict[str, list[str]] = {"hocuspocus": ["--protocol", "hocuspocus"]}

# The descriptor limit (soft and hard) of every process the bench starts, servers and the
# generator alike: 50,000 connections need more than a login shell's 1,024 or 20,000. Raised
# here (we run as root), not in our server's defaults.
NOFILE_LIMIT = 200_000

# idle50k: the generator's sockets come from several loopback source addresses (each has its own
# ~28,000 ephemeral ports: 32768-60999). Each run takes the next block of IDLE_ADDRESSES
# addresses from 127.0.0.2 on, so the previous run's ports in TIME_WAIT are never in its way.
IDLE_ADDRESSES = 5
_idle_block = 0


def idle_addresses() -> str:
    global _idle_block
    first = 2 + (_idle_block % (250 // IDLE_ADDRESSES)) * IDLE_ADDRESSES
    _idle_block += 1
    return ",".join(f"127.0.0.{first + i}" for i in range(IDLE_ADDRESSES))


def raise_nofile() -> None:
    """preexec_fn of every process the bench starts: NOFILE_LIMIT, or as high as we may (a
    container without CAP_SYS_RESOURCE cannot raise the hard limit: then soft = hard)."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_LIMIT, NOFILE_LIMIT))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nofile_limit() -> int:
    """The descriptor limit raise_nofile gives the processes the bench starts."""
    import resource

    raise_nofile()  # (the bench's own process too: harmless)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle_flags(flags: list[str]) -> tuple[list[str], dict[str, Any]]:
    """idle50k's flags within the descriptor limit: a server holding N connections needs N
    descriptors and a few hundred more (its files, its listening socket, SQLite), the generator
    the same. Where the hard limit is below 50,000 + 1,000 and we may not raise it (no
    CAP_SYS_RESOURCE), N is cut to the limit less 1,000, in thousands, and the record says so."""
    want = int(flags[flags.index("--n") + 1])
    limit = nofile_limit()
    n = min(want, (limit - 1000) // 1000 * 1000)
    if n == want:
        return flags, {}
    out = list(flags)
    out[out.index("--n") + 1] = str(n)
    out[out.index("--rooms") + 1] = str(max(1, n // 5))
    return out, {"n_wanted": want, "n_capped_by_nofile_limit": limit}

# The cluster bus for the `workers` and `bus` scenarios (--redis-url; BENCH_REDIS_URL).
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# name -> (ybench subcommand, flags); quick variants below. The order is the run order.
FULL: dict[str, tuple[str, list[str]]] = {
    "connect1k": ("connect", ["--n", "1000", "--rooms", "200", "--hold-ms", "3000"]),
    # the storm (issue 16): all_synced_ms and handshake_p99_ms
    "connect10k": ("connect", ["--n", "10000", "--rooms", "2000", "--hold-ms", "3000"]),
    # 50,000 idle connections to one process (+ --local-addresses, see IDLE_ADDRESSES)
    "idle50k": ("connect", ["--n", "50000", "--rooms", "10000", "--hold-ms", "3000",
                            "--timeout-ms", "120000"]),
    "fanout": ("fanout", ["--rooms", "100", "--clients", "10", "--rate", "100",
                          "--duration-ms", "15000", "--warmup-ms", "2000"]),
    # a 20 MB document (20,000 appends of 1,000 chars by two authors taking turns, paced), then
    # 100 joiners at once. Two authors: Yjs merges one author's appends into one string, copying
    # it each time, which took the references ~5 minutes (quadratic), and left one item
    "bigjoin": ("bigjoin", ["--updates", "20000", "--chars", "1000", "--authors", "2",
                            "--joiners", "100", "--probe-every", "100", "--window", "4",
                            "--timeout-ms", "300000"]),
    # one typist, 100 keystrokes/s for 10 s after 3 s, into the middle of a history built from
    # 1,000-character appends; one reader
    "keystroke1k": ("keystroke", ["--history-chars", "1000", "--rate", "100",
                                  "--duration-ms", "10000", "--warmup-ms", "3000"]),
    "keystroke100k": ("keystroke", ["--history-chars", "100000", "--rate", "100",
                                    "--duration-ms", "10000", "--warmup-ms", "3000"]),
    "keystroke1m": ("keystroke", ["--history-chars", "1000000", "--rate", "100",
                                  "--duration-ms", "10000", "--warmup-ms", "3000"]),
    # ours alone (VARIANTS): --workers 1 against --workers 2 (no bus), a fixed fanout load,
    # CPU summed over the process tree
    "workers": ("fanout", ["--rooms", "100", "--clients", "10", "--rate", "500",
                           "--duration-ms", "10000", "--warmup-ms", "2000"]),
    "tput10x10": ("throughput", ["--rooms", "10", "--clients", "10", "--start-rate", "200",
                                 "--factor", "1.5", "--step-ms", "3000", "--warmup-ms", "1000"]),
    "awareness": ("awareness", ["--rooms", "5", "--clients", "20", "--hz", "10",
                                "--duration-ms", "10000", "--warmup-ms", "2000"]),
    "bigdoc": ("bigdoc", ["--updates", "100000", "--chars", "10", "--joins", "3"]),
    # paced: at most 200 updates in flight, so the event loop drains between batches
    "persist": ("bigdoc", ["--updates", "100000", "--chars", "10", "--joins", "3",
                           "--probe-every", "100", "--window", "1"]),
    # --- OPTIONAL below: only with --only NAME
    "connect5k": ("connect", ["--n", "5000", "--rooms", "1000", "--hold-ms", "3000"]),
    "tput1x100": ("throughput", ["--rooms", "1", "--clients", "100", "--start-rate", "100",
                                 "--factor", "1.5", "--step-ms", "3000", "--warmup-ms", "1000"]),
    # the bigdoc flood (4,000 in flight), watching the store
    "persist_flood": ("bigdoc", ["--updates", "100000", "--chars", "10", "--joins", "3",
                                 "--probe-every", "100", "--window", "40"]),
    # --workers 2 with a Redis bus (issue 12's cluster), on the workers scenario's load
    "workers_redis": ("fanout", ["--rooms", "100", "--clients", "10", "--rate", "500",
                                 "--duration-ms", "10000", "--warmup-ms", "2000"]),
    "bus": ("fanout", ["--rooms", "10", "--clients", "10", "--rate", "500",
                       "--duration-ms", "5000", "--warmup-ms", "2000"]),
}  # fmt: skip

QUICK: dict[str, tuple[str, list[str]]] = {
    "connect1k": ("connect", ["--n", "1000", "--rooms", "200", "--hold-ms", "1000"]),
    "connect10k": ("connect", ["--n", "2000", "--rooms", "400", "--hold-ms", "1000"]),
    "idle50k": ("connect", ["--n", "5000", "--rooms", "1000", "--hold-ms", "1000"]),
    "fanout": ("fanout", ["--rooms", "20", "--clients", "10", "--rate", "50",
                          "--duration-ms", "4000", "--warmup-ms", "1000"]),
    "bigjoin": ("bigjoin", ["--updates", "1000", "--chars", "1000", "--authors", "2",
                            "--joiners", "20", "--probe-every", "100", "--window", "4",
                            "--settle-ms", "500"]),
    "keystroke1k": ("keystroke", ["--history-chars", "1000", "--rate", "100",
                                  "--duration-ms", "2000", "--warmup-ms", "1000"]),
    "keystroke100k": ("keystroke", ["--history-chars", "100000", "--rate", "100",
                                    "--duration-ms", "2000", "--warmup-ms", "1000"]),
    "keystroke1m": ("keystroke", ["--history-chars", "1000000", "--rate", "100",
                                  "--duration-ms", "2000", "--warmup-ms", "1000"]),
    "workers": ("fanout", ["--rooms", "20", "--clients", "10", "--rate", "200",
                           "--duration-ms", "3000", "--warmup-ms", "1000"]),
    "tput10x10": ("throughput", ["--rooms", "10", "--clients", "10", "--start-rate", "500",
                                 "--factor", "1.5", "--step-ms", "1000", "--warmup-ms", "500",
                                 "--max-steps", "6"]),
    "awareness": ("awareness", ["--rooms", "5", "--clients", "20", "--hz", "10",
                                "--duration-ms", "3000", "--warmup-ms", "1000"]),
    "bigdoc": ("bigdoc", ["--updates", "10000", "--chars", "10", "--joins", "3"]),
    "persist": ("bigdoc", ["--updates", "10000", "--chars", "10", "--joins", "3",
                           "--probe-every", "100", "--window", "1"]),
    "connect5k": ("connect", ["--n", "5000", "--rooms", "1000", "--hold-ms", "1000"]),
    "tput1x100": ("throughput", ["--rooms", "1", "--clients", "100", "--start-rate", "200",
                                 "--factor", "1.5", "--step-ms", "1000", "--warmup-ms", "500",
                                 "--max-steps", "6"]),
    "persist_flood": ("bigdoc", ["--updates", "10000", "--chars", "10", "--joins", "3",
                                 "--probe-every", "100", "--window", "40"]),
    "workers_redis": ("fanout", ["--rooms", "20", "--clients", "10", "--rate", "200",
                                 "--duration-ms", "3000", "--warmup-ms", "1000"]),
    "bus": ("fanout", ["--rooms", "10", "--clients", "10", "--rate", "500",
                       "--duration-ms", "3000", "--warmup-ms", "1000"]),
}  # fmt: skip

# Not in the default suite (time: `make bench` stays within ~45 minutes on 2 cores); run them
# with --only. connect5k lies between connect1k and connect10k; tput1x100 and persist_flood are
# stress figures of earlier rounds; workers_redis and bus need a Redis server.
OPTIONAL = {"connect5k", "tput1x100", "persist_flood", "workers_redis", "bus"}

# Not a target of issue 16: one repetition (the first) in a full run; the targets get all three.
ONE_REP = {"tput10x10", "awareness", "bigdoc", "persist", "tput1x100", "persist_flood", "bus"}

ONLY_COLLAB = {"persist", "persist_flood"}  # the references run without a restart

# Scenarios of our server alone in several configurations, run in place of the servers.
VARIANTS: dict[str, tuple[str, ...]] = {
    "workers": ("w1", "w2"),  # --workers 1; --workers 2 (no bus: document-affine workers)
    "workers_redis": ("w1", "w2redis"),  # --workers 1; --workers 2 --redis-url
    "bus": ("nobus", "same", "cross"),  # see run_cluster
}
VARIANT_LABEL = {
    "w1": "--workers 1",
    "w2": "--workers 2, no bus",
    "w2redis": "--workers 2, Redis bus",
    "nobus": "one server, no bus",
    "same": "two servers on the bus, all clients on A (same process)",
    "cross": "two servers on the bus, writers on A, readers on B (cross-process)",
}
NEEDS_REDIS = {"w2redis", "same", "cross"}  # variants


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class Server:
    def __init__(
        self, kind: str, tag: str, db: Path | None = None, log_level: str = "warning",
        extra: list[str] | None = None, workers: int = 1, name: str = "",
    ):  # fmt: skip
        self.kind = kind
        self.tag = tag
        self.port = free_port()
        self.db = db or TMP / f"{tag}.db"
        self.log_path = TMP / f"{tag}.log"
        self.log_level = log_level
        self.extra = extra or []  # more flags for our server (--workers, --redis-url)
        self.workers = workers  # start() waits until this many processes have started up
        self.name = name  # "A"/"B" for two servers of one run: PORT_A, PID_A in shown commands
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_ms: float | None = None
        self.ready_ms: float | None = None
        self.killed_by_kernel: str | None = None  # the kernel's OOM message, if it killed us

    @property
    def command(self) -> list[str]:
        if self.kind == "collab":
            return [
                PYTHON, "-m", "collab", "serve", "--port", str(self.port),
                "--database-url", f"sqlite+aiosqlite:///{self.db}",
                "--log-level", self.log_level, *COLLAB_BENCH_FLAGS, *self.extra,
            ]  # fmt: skip
        if self.kind == "hocuspocus":  # @hocuspocus/server + its SQLite extension (bench/hocuspocus.py)
            return [NODE, "hocuspocus-server.mjs"]
        return [NODE, "node_modules/@y/websocket-server/src/server.js"]

    @property
    def display_command(self) -> str:
        if self.kind == "collab":
            cmd = [".venv/bin/python", *self.command[1:]]
            cmd[cmd.index("--port") + 1] = self.port_name
            cmd[cmd.index("--database-url") + 1] = "sqlite+aiosqlite:///bench/results/tmp/RUN.db"
            return shlex.join(cmd)
        if self.kind == "hocuspocus":
            return "cd bench && PORT=PORT DATABASE=results/tmp/RUN.sqlite node hocuspocus-server.mjs"
        return "cd bench && HOST=127.0.0.1 PORT=PORT node node_modules/@y/websocket-server/src/server.js"

    @property
    def port_name(self) -> str:
        return "PORT" + (f"_{self.name}" if self.name else "")

    def start(self) -> None:
        env = dict(os.environ)
        cwd = ROOT
        if self.kind == "yws":
            env.update(HOST="127.0.0.1", PORT=str(self.port))
            cwd = BENCH
        elif self.kind == "hocuspocus":
            env.update(PORT=str(self.port), DATABASE=str(self.db.with_suffix(".sqlite")))
            cwd = BENCH
        else:
            env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as logf:
            logf.write(f"=== {shlex.join(self.command)}\n".encode())
            logf.flush()
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, preexec_fn=self._limits,
            )  # fmt: skip
        url = f"http://127.0.0.1:{self.port}/" + ("healthz" if self.kind == "collab" else "")
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} not ready: {self.log_tail()}")
            time.sleep(0.05)
        # /healthz answers as soon as one worker is up; wait for the others (uvicorn logs
        # "Application startup complete." per process at --log-level info)
        while self.workers > 1 and self.log_count("Application startup complete.") < self.workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.workers} workers not ready: {self.log_tail()}")
            time.sleep(0.05)
        self.ready_ms = (time.perf_counter() - started) * 1000

    def log_count(self, needle: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def processes(self) -> list[int]:
        """The server's process and its descendants (a --workers supervisor's workers)."""
        pids = [self.pid]
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (d / "stat").read_text()
                    children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(d.name))
        i = 0
        while i < len(pids):
            pids += sorted(c for c in children.get(pids[i], []) if c not in pids)
            i += 1
        return pids

    def _limits(self) -> None:
        raise_nofile()
        if self.kind == "collab":
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (COLLAB_MEMORY_LIMIT, COLLAB_MEMORY_LIMIT))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        started = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stop_ms = (time.perf_counter() - started) * 1000
        self.exit_code = self.proc.returncode
        if self.exit_code == -signal.SIGKILL and self.stop_ms < 1000:
            self.killed_by_kernel = kernel_kill(self.proc.pid)
        self.proc = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_problems(self) -> dict[str, Any]:
        """Errors and warnings the server logged: the report shows them."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return {}
        lines = text.splitlines()
        bad = [
            ln for ln in lines
            if re.search(r"\b(ERROR|WARNING|CRITICAL|Traceback|Exception|panicked|failed)\b|\w*Error: ", ln)
        ]  # fmt: skip
        # the examples: what went wrong (the exception's line), not "Traceback (most recent ...)"
        telling = [ln for ln in bad if "Traceback (most recent call last)" not in ln]
        return {"count": len(bad), "first": (telling or bad)[:5]} if bad else {}


def kernel_kill(pid: int) -> str:
    """The kernel log line about killing `pid` (the OOM killer), if it can be read."""
    try:
        text = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "SIGKILL before SIGTERM (dmesg unreadable)"
    for line in text.splitlines():
        if f"Killed process {pid} " in line:
            return line.split("] ", 1)[-1].strip()
    return "SIGKILL before SIGTERM (not in dmesg)"


def run_generator(
    sub: str, server: Server, flags: list[str], prefix: str, extra: list[str] | None = None,
    timeout: float = 900, others: tuple[Server, ...] = (), shown_as: dict[str, str] | None = None,
    while_running: Any = None,
) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Run ybench against `server`; `others` are more servers whose CPU is summed with its
    (--pid A,B), `shown_as` more replacements for the shown command, `while_running` a callable
    polled every 0.5 s while the generator runs."""
    every = (server, *others)
    cmd = [
        NODE, "ybench.mjs", sub, "--url", f"ws://127.0.0.1:{server.port}",
        "--pid", ",".join(str(s.pid) for s in every), "--prefix", prefix, *flags, *(extra or []),
    ]  # fmt: skip
    shown = shlex.join([c for c in cmd])
    pid_arg = ",".join(str(s.pid) for s in every)
    shown = shown.replace(f"--pid {pid_arg}", "--pid " + ",".join(s.port_name.replace("PORT", "PID") for s in every))
    for s in every:
        shown = shown.replace(f"127.0.0.1:{s.port}", f"127.0.0.1:{s.port_name}")
    for a, b in (shown_as or {}).items():
        shown = shown.replace(a, b)
    with open(TMP / "generator.err", "w+b") as errf:
        gen = subprocess.Popen(
            cmd, cwd=BENCH, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, preexec_fn=raise_nofile
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    stdout, _ = gen.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        gen.kill()
                        gen.communicate()
                        raise
                    if while_running is not None:
                        while_running()
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait()
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    proc = subprocess.CompletedProcess(cmd, gen.returncode, stdout, b"")
    if err.strip():
        log("    " + err.strip().replace("\n", "\n    "))
    if proc.returncode != 0:
        return {"error": f"generator exited {proc.returncode}: {err.strip()[-500:]}"}, shown
    return json.loads(proc.stdout.decode().strip().splitlines()[-1]), shown


LOADED = re.compile(
    r"loaded '(?P<name>.+)': snapshot (?P<snap>\d+) bytes \+ (?P<rows>\d+) updates "
    r"\((?P<log>\d+) bytes\) in (?P<ms>[\d.]+) ms"
)


def run_one(scenario: str, kind: str, spec: tuple[str, list[str]], rep: int, tag: str) -> dict[str, Any]:
    sub, flags = spec
    server = Server(kind, tag)
    record: dict[str, Any] = {
        "type": "run", "scenario": scenario, "server": kind, "rep": rep,
        "load_before": loadavg(), "server_command": server.display_command,
    }  # fmt: skip
    t0 = time.perf_counter()
    try:
        server.start()
        record["server_start_ms"] = round(server.ready_ms or 0, 1)
        extra = list(SERVER_FLAGS.get(kind, []))
        if scenario.startswith("persist"):
            extra += ["--healthz", f"http://127.0.0.1:{server.port}/healthz"]
        if scenario == "idle50k":
            extra += ["--local-addresses", idle_addresses()]
            flags, capped = idle_flags(flags)
            record.update(capped)
        result, shown = run_generator(sub, server, flags, scenario, extra)
        record["generator_command"] = "cd bench && " + shown
        record["result"] = result
        if scenario.startswith("persist") and "error" not in result and not result.get("build_error"):
            record["restore"] = restart_and_restore(server, result, scenario, tag)
    except Exception as exc:  # a failed run is a result too
        record["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    error: {record['error']}")
    finally:
        server.stop()
    record["server_exit_code"] = server.exit_code
    if server.killed_by_kernel:
        record["server_killed"] = server.killed_by_kernel
    record["server_stop_ms"] = round(server.stop_ms or 0, 1)
    record["server_log_problems"] = server.log_problems()
    record["load_after"] = loadavg()
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    return record


def socket_fds(pid: int) -> int:
    """How many of the process's file descriptors are sockets."""
    n = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                n += os.readlink(fd).startswith("socket:")
    return n


def redis_pid(url: str) -> int | None:
    """The pid of the Redis server at `url` when it runs on this machine (its CPU is measured)."""
    try:
        import redis

        info = redis.Redis.from_url(url, socket_connect_timeout=2).info("server")
    except Exception as exc:  # no client library, or no server: the cluster scenarios fail
        raise RuntimeError(f"Redis at {url} does not answer: {exc!r}") from exc
    pid = int(info.get("process_id", 0))
    host = (re.match(r"rediss?://(?:[^@/]*@)?([^:/]+)", url) or [None, ""])[1]
    if host in ("127.0.0.1", "localhost", "::1") and Path(f"/proc/{pid}/stat").exists():
        return pid
    return None


def cluster_servers(scenario: str, variant: str, tag: str) -> tuple[list[Server], list[str]]:
    """The servers of one cluster run and the generator's extra flags.

    Every server logs at info: the cluster's "peer is here / gone" lines, and uvicorn's
    "startup complete" per worker, which start() waits for (no per-update log line at info)."""
    bus = ["--redis-url", REDIS_URL]
    if scenario.startswith("workers"):
        n = {"w1": 1, "w2": 2, "w2redis": 2}[variant]
        extra = ["--workers", str(n)] + (bus if variant == "w2redis" else [])
        return [Server("collab", tag, log_level="info", extra=extra, workers=n)], ["--tree"]
    if variant == "nobus":
        return [Server("collab", tag + "-A", log_level="info", name="A")], []
    db = TMP / f"{tag}.db"  # both servers on one SQLite file, as --workers does
    a = Server("collab", tag + "-A", db=db, log_level="info", extra=bus, name="A")
    b = Server("collab", tag + "-B", db=db, log_level="info", extra=bus, name="B")
    return [a, b], (["--reader-url", f"ws://127.0.0.1:{b.port}"] if variant == "cross" else [])


def run_cluster(scenario: str, variant: str, spec: tuple[str, list[str]], rep: int, tag: str,
                redis: int | None) -> dict[str, Any]:  # fmt: skip
    sub, flags = spec
    servers, extra = cluster_servers(scenario, variant, tag)
    record: dict[str, Any] = {
        "type": "run", "scenario": scenario, "server": "collab", "variant": variant, "rep": rep,
        "load_before": loadavg(), "server_command": servers[0].display_command,
        "server_commands": [s.display_command for s in servers], "redis_url": REDIS_URL,
    }  # fmt: skip
    t0 = time.perf_counter()
    try:
        for s in servers:
            s.start()
        record["server_start_ms"] = [round(s.ready_ms or 0, 1) for s in servers]
        # the peers find each other by heartbeat: wait for it (at most 10 s), so the run starts
        # from a settled cluster
        peers = {s.tag: (len(servers) - 1 if s.workers == 1 else s.workers * (s.workers - 1)) for s in servers}
        started = time.monotonic()
        while (
            variant in NEEDS_REDIS
            and any(s.log_count("is here") < peers[s.tag] for s in servers)
            and time.monotonic() - started < 10
        ):
            time.sleep(0.05)
        if variant in NEEDS_REDIS:
            record["peers_found_ms"] = round((time.monotonic() - started) * 1000)
        if redis is not None and variant in NEEDS_REDIS:
            extra += ["--redis-pid", str(redis)]
        procs = [(s.name or "server", p) for s in servers for p in s.processes()]
        base = {p: socket_fds(p) for _, p in procs}
        conns: dict[int, int] = {}

        def count_connections() -> None:  # client sockets per process, at the fullest moment
            now = {p: socket_fds(p) - base[p] for _, p in procs}
            if sum(now.values()) > sum(conns.values()):
                conns.clear()
                conns.update(now)

        result, shown = run_generator(
            sub, servers[0], flags, tag, extra, others=tuple(servers[1:]),
            shown_as={f"--redis-pid {redis}": "--redis-pid REDIS_PID"}, while_running=count_connections,
        )  # fmt: skip
        record["generator_command"] = "cd bench && " + shown
        record["result"] = result
        record["processes"] = [
            {"server": name, "pid": p, "sockets": conns.get(p, 0)} for name, p in procs
        ]  # fmt: skip
        record["redis_pid"] = redis
        # "cluster peer ... is gone" while the load ran (the shutdown's BYEs log it too)
        record["peers_lost"] = sum(s.log_count("is gone") for s in servers)
    except Exception as exc:  # a failed run is a result too
        record["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    error: {record['error']}")
    finally:
        for s in servers:
            s.stop()
    codes = [s.exit_code for s in servers]
    record["server_exit_code"] = next((c for c in codes if c not in (0, None)), codes[0])
    record["server_exit_codes"] = codes
    killed = [s.killed_by_kernel for s in servers if s.killed_by_kernel]
    if killed:
        record["server_killed"] = killed[0]
    record["server_stop_ms"] = round(max(s.stop_ms or 0 for s in servers), 1)
    problems: dict[str, Any] = {}
    for s in servers:
        lp = s.log_problems()
        if lp:
            problems["count"] = problems.get("count", 0) + lp["count"]
            problems.setdefault("first", []).extend(f"{s.name}: {x}" if s.name else x for x in lp["first"])
    record["server_log_problems"] = problems
    record["load_after"] = loadavg()
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    return record


def restart_and_restore(server: Server, built: dict[str, Any], scenario: str, tag: str) -> dict[str, Any]:
    """SIGTERM the server (it flushes), start it again on the same file, join cold."""
    server.stop()
    out: dict[str, Any] = {"shutdown_ms": round(server.stop_ms or 0, 1), "shutdown_exit_code": server.exit_code}
    db = server.db
    out["db_bytes"] = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    again = Server("collab", tag + "-restart", db=db, log_level="info")
    try:
        again.start()
        out["restart_ready_ms"] = round(again.ready_ms or 0, 1)
        chars = built["updates"] * built["chars"]
        result, shown = run_generator(
            "join", again, ["--room", "big", "--joins", "3", "--expect-chars", str(chars)], scenario
        )
        out.update(result)
        out["join_command"] = "cd bench && " + shown
        m = LOADED.search(again.log_path.read_text(errors="replace"))
        if m:
            out["server_load"] = {
                "snapshot_bytes": int(m["snap"]), "log_rows": int(m["rows"]),
                "log_bytes": int(m["log"]), "ms": float(m["ms"]),
            }  # fmt: skip
    finally:
        again.stop()
        out["restart_exit_code"] = again.exit_code
        if again.killed_by_kernel:
            out["restart_killed"] = again.killed_by_kernel
        out["restart_log_problems"] = again.log_problems()
    return out


def pip_versions(names: list[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for n in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[n] = metadata.version(n)
    return out


def npm_version(path: str) -> str | None:
    try:
        return json.loads((BENCH / "node_modules" / path / "package.json").read_text())["version"]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text()
    total = int(re.search(r"MemTotal:\s+(\d+)", mem)[1])  # type: ignore[index]
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    node = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "collab", "storage"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    nofile = subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu_model": model[1].strip() if model else platform.processor(),
        "mem_gib": round(total / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": (re.search(r'PRETTY_NAME="(.+)"', Path("/etc/os-release").read_text()) or [None, "?"])[1],
        "ulimit_nofile": nofile,
        "python": platform.python_version(),
        "node": node,
        "git_commit": git + (" (collab/ or storage/ modified)" if dirty else ""),
        "python_packages": pip_versions([
            "pycrdt", "starlette", "uvicorn", "websockets", "uvloop", "httptools", "anyio",
            "sqlalchemy", "aiosqlite",
        ]),
        "npm_packages": {
            "@y/websocket-server": npm_version("@y/websocket-server"),
            "ws (bundled with @y/websocket-server)": npm_version("@y/websocket-server/node_modules/ws"),
            "yjs": npm_version("yjs"),
            "y-protocols": npm_version("y-protocols"),
            "lib0": npm_version("lib0"),
            "ws (generator)": npm_version("ws"),
            "@hocuspocus/server": npm_version("@hocuspocus/server"),
            "@hocuspocus/extension-sqlite": npm_version("@hocuspocus/extension-sqlite"),
            "better-sqlite3 (of @hocuspocus/extension-sqlite)": npm_version("better-sqlite3"),
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--servers", default="collab,yws,hocuspocus")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--no-store-figures", action="store_true")
    parser.add_argument("--no-events", action="store_true", help="skip bench/events.py (~4 min)")
    parser.add_argument("--redis-url", default=REDIS_URL, help="the bus of the workers and bus scenarios")
    args = parser.parse_args()
    globals()["REDIS_URL"] = args.redis_url

    specs = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 3)
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in specs]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}: {list(specs)}")
    names = [n for n in specs if n in only] if only else [n for n in specs if n not in OPTIONAL]
    servers = args.servers.split(",")
    out = Path(args.out) if args.out else RESULTS / ("quick.jsonl" if args.quick else "suite.jsonl")
    TMP.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    notes = out.with_suffix(".notes.md")  # analysis of the previous run: no longer true
    if notes.exists():
        notes.rename(notes.with_suffix(".md.prev"))
    for stale in TMP.glob("*"):
        stale.unlink()
    sel = subprocess.run(
        [NODE, "ybench.mjs", "selftest"], cwd=BENCH, capture_output=True, text=True
    )  # fmt: skip
    if '"ok":true' not in sel.stdout:
        sys.exit(f"ybench selftest failed: {sel.stdout} {sel.stderr}")

    if "collab" not in servers:
        names = [n for n in names if n not in VARIANTS]
    redis: int | None = None
    redis_error = None
    if any(v in NEEDS_REDIS for n in names for v in VARIANTS.get(n, ())):
        try:
            redis = redis_pid(REDIS_URL)
        except RuntimeError as exc:
            redis_error = str(exc)
            log(f"bench: {exc}: the cluster scenarios will fail")

    started = time.time()
    meta = {
        "type": "meta", "mode": "quick" if args.quick else "full", "reps": reps,
        "scenarios": {n: {"subcommand": specs[n][0], "flags": specs[n][1],
                          "reps": 1 if (n in ONE_REP and not args.reps) else reps,
                          **({"variants": list(VARIANTS[n])} if n in VARIANTS else {})} for n in names},
        "server_labels": {k: SERVER_LABEL[k] for k in servers}, "nofile_limit": nofile_limit(),
        "servers": servers, "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_at_start": loadavg(), "machine": machine(), "collab_bench_flags": COLLAB_BENCH_FLAGS,
        "redis": {"url": REDIS_URL, "pid": redis, "error": redis_error},
    }  # fmt: skip
    with open(out, "w") as f:
        f.write(json.dumps(meta) + "\n")
    log(f"bench: {len(names)} scenarios x {reps} reps, servers {servers} -> {out}")
    n = 0
    for rep in range(reps):
        order = servers[rep % len(servers):] + servers[: rep % len(servers)]
        for name in names:
            if rep > 0 and name in ONE_REP and not args.reps:
                continue
            if name in VARIANTS:
                variants = VARIANTS[name]
                for variant in variants[rep % len(variants):] + variants[: rep % len(variants)]:
                    n += 1
                    tag = f"{name}-{variant}-{rep}"
                    log(f"[{time.time() - started:6.0f} s] rep {rep + 1}/{reps} {name} {variant} ({VARIANT_LABEL[variant]})")
                    if redis_error and variant in NEEDS_REDIS:
                        record = {"type": "run", "scenario": name, "server": "collab", "variant": variant,
                                  "rep": rep, "error": redis_error}  # fmt: skip
                    else:
                        record = run_cluster(name, variant, specs[name], rep, tag, redis)
                    with open(out, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    log(f"    {summarize(record)}")
                    time.sleep(1)
                continue
            for kind in order:
                if name in ONLY_COLLAB and kind != "collab":
                    continue
                n += 1
                tag = f"{name}-{kind}-{rep}"
                log(f"[{time.time() - started:6.0f} s] rep {rep + 1}/{reps} {name} on {kind}")
                record = run_one(name, kind, specs[name], rep, tag)
                with open(out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                summary = summarize(record)
                log(f"    {summary}")
                # let TIME_WAIT sockets and the kernel settle between big runs
                time.sleep(3 if name.startswith("connect") or name == "idle50k" else 1)

    if not args.no_store_figures:
        log("store figures (bench/store_figures.py)")
        store_json = RESULTS / ("store-quick.json" if args.quick else "store.json")
        updates = "20000" if args.quick else "100000"
        cmd = [PYTHON, str(BENCH / "store_figures.py"), "--updates", updates, "--json", str(store_json)]
        subprocess.run(cmd, cwd=ROOT, check=False)
        with open(out, "a") as f:
            figures = json.loads(store_json.read_text()) if store_json.exists() else None
            f.write(json.dumps({
                "type": "store", "command": f".venv/bin/python bench/store_figures.py --updates {updates}",
                "figures": figures,
            }) + "\n")  # fmt: skip
    if not args.no_events:
        # bench/events.py: what the outbox costs per update, how soon a receiver hears
        log("change feeds (bench/events.py)")
        events_json = RESULTS / ("events-quick.json" if args.quick else "events.json")
        cmd = [PYTHON, str(BENCH / "events.py"), "--json", str(events_json)]
        if args.quick:
            cmd += ["--reps", "1", "--window-s", "9"]
        events_json.unlink(missing_ok=True)
        subprocess.run(cmd, cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
        with open(out, "a") as f:
            if events_json.exists():
                record = json.loads(events_json.read_text())
                for r in record.get("runs", []):
                    r.pop("latency_samples", None)  # (in events_json; the summary has them)
                f.write(json.dumps(record) + "\n")
            else:
                f.write(json.dumps({"type": "events", "error": "bench/events.py wrote nothing"}) + "\n")
    with open(out, "a") as f:
        f.write(json.dumps({"type": "end", "elapsed_s": round(time.time() - started), "load_at_end": loadavg()}) + "\n")
    log(f"bench: {n} runs in {time.time() - started:.0f} s -> {out}")
    if not args.no_report:
        report = [PYTHON, str(BENCH / "report.py"), str(out)]
        if args.quick:
            report += ["--md", str(RESULTS / "quick" / "benchmarks.md"), "--img", str(RESULTS / "quick" / "img")]
        subprocess.run(report, cwd=ROOT, check=True)


def summarize(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"ERROR {record['error']}"
    r = record.get("result", {})
    if "error" in r:
        return f"ERROR {r['error']}"
    s = record["scenario"]
    if s.startswith("workers"):
        socks = "/".join(str(p["sockets"]) for p in record.get("processes", []) if p["sockets"])
        return (f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms, delivered {r['delivered_frac']}, "
                f"{r['server_cpu_us_per_delivery']} us/delivery (all processes, CPU s "
                f"{r.get('server_cpu_s_each') or r['server_cpu_s']}), connections per process {socks}")
    if s == "bus":
        each = "+".join(f"{c[1]}" for c in r.get("server_cpu_s_each") or [])
        return (f"p50 {r['p50_ms']} p99 {r['p99_ms']} max {r['max_ms']} ms, delivered {r['delivered_frac']}, "
                f"{r['server_cpu_us_per_update']} us/update (server CPU s {each or r['server_cpu_s']}), Redis "
                f"{r.get('redis_cpu_us_per_update')} us/update, peers lost {record.get('peers_lost')}")
    if s.startswith("connect") or s == "idle50k":
        return (f"{r['synced']}/{r['n']} synced in {r['all_synced_ms']} ms, handshake p99 "
                f"{r['handshake_p99_ms']} ms, {r['rss_per_conn_kb']} KB/conn, failures {r['failures']}")
    if s in ("fanout", "awareness"):
        return (f"p50 {r['p50_ms']} p99 {r['p99_ms']} max {r['max_ms']} ms, delivered "
                f"{r['delivered_frac']}, {r['server_cpu_us_per_delivery']} us/delivery, "
                f"host bg {r['host_background_cpu_pct']}%")
    if s == "bigjoin":
        return (f"{r.get('doc_bytes')} bytes built in {r.get('build_ms')} ms {r.get('build_error') or ''}, "
                f"{r.get('synced')}/{r['joiners']} joined in {r.get('all_synced_ms')} ms (p50 "
                f"{r.get('join_p50_ms')} p99 {r.get('join_p99_ms')}), failures {r.get('failures')}, RSS "
                f"{r.get('rss_before_join_mb')} -> peak {r.get('peak_rss_mb')} MB, CPU {r.get('server_cpu_join_s')} s")
    if s.startswith("keystroke"):
        return (f"{r.get('history_chars')} chars of history ({r.get('build_ms')} ms "
                f"{r.get('build_error') or ''}), {r.get('server_cpu_us_per_keystroke')} us/keystroke, "
                f"p50 {r.get('p50_ms')} p99 {r.get('p99_ms')} ms, delivered {r.get('delivered_frac')}")
    if s.startswith("tput"):
        b = r.get("best") or {}
        return (f"max {r['max_sustained_deliveries_per_s']} deliveries/s ({r['stop_reason']}), "
                f"{b.get('server_cpu_us_per_delivery')} us/delivery at best")
    if s in ("bigdoc", "persist", "persist_flood"):
        extra = ""
        if s.startswith("persist"):
            rr = record.get("restore", {})
            extra = (f", commit lag p99 {r.get('commit_lag_p99_ms')} ms, cold join "
                     f"{rr.get('cold_join_ms')} ms (load {(rr.get('server_load') or {}).get('ms')} ms)")
        return (f"ingest {r['ingest_ms']} ms ({r['ingest_updates_per_s']}/s) {r.get('build_error') or ''}, "
                f"join median {r['join_ms_median']} ms, complete {r['doc_complete']}{extra}")
    return ""


if __name__ == "__main__":
    main()
