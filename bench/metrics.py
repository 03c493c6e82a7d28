"""Metrics (issue 14): the server CPU that counting and /metrics add per delivered update.

    .venv/bin/python bench/metrics.py [--reps 5] [--rooms 50] [--clients 10] [--rate 500]
                                      [--duration-ms 10000] [--scrape-s 5] [--json PATH]
                                      [--md PATH]
    .venv/bin/python bench/metrics.py --report bench/results/metrics.json  # its markdown

One load, the same in every run: bench/ybench.mjs `fanout` (--rooms rooms of --clients
clients; each update a client sends is delivered to the room's other clients; --rate updates/s
in all) against `collab serve` with our bench flags (bench/run.py's COLLAB_BENCH_FLAGS), a fresh
SQLite file per run, in two variants, interleaved, the order alternating per repetition so that
drift of the shared machine hits both alike:

- `off`: COLLAB_METRICS=false (nothing counted; /metrics answers 404);
- `on`: COLLAB_METRICS=true (the default), and /metrics scraped every --scrape-s seconds during
  the run (Prometheus' default is 15 s: this scrapes three times as often).

Server CPU = user + system time of the server process over the measured window (ybench.mjs
reads /proc for --pid), per delivery received by the clients in it
(`server_cpu_us_per_delivery`) and per update sent (`server_cpu_us_per_update`). The result
(every run, and the medians and spreads per variant) goes to bench/results/metrics.json (or
--json), the command that made it beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path[:0] = [str(ROOT), str(BENCH)]

from run import COLLAB_BENCH_FLAGS, free_port, loadavg, machine  # noqa: E402

VARIANTS = ("off", "on", "scraped")
LABELS = {
    "off": "metrics off (`COLLAB_METRICS=false`)",
    "on": "metrics on, not scraped",
    "scraped": "metrics on, /metrics scraped",
}


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)


class Scraper(threading.Thread):
    """GET /metrics every `every_s` seconds until stopped; counts the answers by status."""

    def __init__(self, port: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every_s = every_s
        self.stopped = threading.Event()
        self.statuses: dict[int, int] = {}
        self.last = ""

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    status = response.status
                    self.last = response.read().decode()
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.statuses[status] = self.statuses.get(status, 0) + 1


def run_one(variant: str, rep: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    db = tmp / f"{variant}-{rep}.db"
    log_path = tmp / f"{variant}-{rep}.log"
    command = [
        sys.executable, "-m", "collab", "serve", "--port", str(port),
        "--database-url", f"sqlite+aiosqlite:///{db}", "--log-level", "warning",
        *COLLAB_BENCH_FLAGS,
    ]  # fmt: skip
    env = {**os.environ, "COLLAB_METRICS": "false" if variant == "off" else "true"}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's server
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_path.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, server, log_path)
            scraper = Scraper(port, args.scrape_s) if variant == "scraped" else None
            if scraper is not None:
                scraper.start()
            generator = [
                "node", "ybench.mjs", "fanout", "--url", f"ws://127.0.0.1:{port}",
                "--pid", str(server.pid), "--prefix", f"m{rep}{variant}",
                "--rooms", str(args.rooms), "--clients", str(args.clients),
                "--rate", str(args.rate), "--duration-ms", str(args.duration_ms),
                "--warmup-ms", str(args.warmup_ms),
            ]  # fmt: skip
            load = loadavg()
            done = subprocess.run(generator, cwd=BENCH, capture_output=True, check=False)
            if scraper is not None:
                scraper.stopped.set()
                scraper.join()
        finally:
            server.terminate()
            server.wait(30)
    if done.returncode != 0:
        raise RuntimeError(f"ybench failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    result.update(variant=variant, rep=rep, loadavg_before=load)
    if scraper is not None:
        result["scrapes"] = scraper.statuses
        result["scraped_deliveries"] = _sent_updates(scraper.last)
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_cost(tmp: Path, scrapes: int) -> dict[str, Any]:
    """The server CPU of one GET /metrics (the HTTP request included), on an idle server:
    what a scrape costs whatever the load (its one pass over the connections aside)."""
    port = free_port()
    log_path = tmp / "scrape.log"
    command = [
        sys.executable, "-m", "collab", "serve", "--port", str(port),
        "--database-url", f"sqlite+aiosqlite:///{tmp / 'scrape.db'}", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "COLLAB_METRICS": "true", "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_path.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, server, log_path)
            url = f"http://127.0.0.1:{port}/metrics"
            for _ in range(10):  # warm
                urllib.request.urlopen(url, timeout=5).read()
            before, started = cpu_seconds(server.pid), time.monotonic()
            size = 0
            for _ in range(scrapes):
                size = len(urllib.request.urlopen(url, timeout=5).read())
            cpu, elapsed = cpu_seconds(server.pid) - before, time.monotonic() - started
        finally:
            server.terminate()
            server.wait(30)
    # (the server's once-a-second sync and its ticker ran meanwhile: counted in, a bound)
    return {
        "scrapes": scrapes,
        "cpu_ms_per_scrape": round(cpu / scrapes * 1000, 3),
        "elapsed_s": round(elapsed, 2),
        "bytes": size,
    }


def hotpath(rounds: int, updates: int) -> dict[str, Any]:
    """The room's hot path alone (bench/hotpath.py: one keystroke through Room.handle, two
    other members, Saver.record), its counts off and on, rounds interleaved: µs of CPU per
    update, without the network's noise."""
    from hotpath import one_round, typing_updates

    from collab import protocol as p
    from collab.counts import Counts

    messages = [p.update_message(update) for update in typing_updates(updates)]
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        runs["off"].append(one_round(messages, False))
        runs["on"].append(one_round(messages, False, Counts()))
    result: dict[str, Any] = {"rounds": rounds, "updates": updates}
    for variant, values in runs.items():
        result[variant] = {
            "best": round(min(values), 3),
            "median": round(statistics.median(values), 3),
        }
    result["on_minus_off_median"] = round(result["on"]["median"] - result["off"]["median"], 3)
    return result


def _sent_updates(text: str) -> float | None:
    """collab_messages_sent_total{type="update"} in the last scrape (a sanity check that the
    counters saw the load)."""
    for line in text.splitlines():
        if line.startswith('collab_messages_sent_total{type="update"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("server_cpu_us_per_delivery", "server_cpu_us_per_update", "p99_ms"):
        per: dict[str, Any] = {}
        for variant in VARIANTS:
            values = [r[key] for r in runs if r["variant"] == variant and r.get(key) is not None]
            per[variant] = {
                "median": round(statistics.median(values), 3) if values else None,
                "min": min(values, default=None),
                "max": max(values, default=None),
                "values": values,
            }
        off = per["off"]["median"]
        for variant in VARIANTS[1:]:
            value = per[variant]["median"]
            if off and value is not None:
                per[f"{variant}_minus_off"] = round(value - off, 3)
                per[f"{variant}_over_off_pct"] = round((value - off) / off * 100, 1)
                # the same difference, repetition by repetition (runs of one rep are adjacent)
                per[f"{variant}_minus_off_per_rep"] = [
                    round(a[key] - b[key], 3)
                    for a in runs
                    for b in runs
                    if a["variant"] == variant and b["variant"] == "off" and a["rep"] == b["rep"]
                ]
        if off:
            spread = per["off"]["values"]
            per["off_spread_pct"] = round((max(spread) - min(spread)) / off * 100, 1)
        summary[key] = per
    return summary


def _cell(per: dict[str, Any]) -> str:
    return f"{per['median']:g} [{per['min']:g}–{per['max']:g}]"


def _hotpath_lines(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    return [
        "The room's hot path alone, without the network (bench/hotpath.py's keystroke through "
        "`Room.handle` to two other members and `Saver.record`, 20,000 keystrokes, "
        f"{figures['rounds']} rounds, counts off and on interleaved; "
        f"`{figures['command']}`): counts off {figures['off']['best']:g} µs per update best, "
        f"{figures['off']['median']:g} median; on {figures['on']['best']:g} best, "
        f"{figures['on']['median']:g} median: counting adds "
        f"{figures['on_minus_off_median']:g} µs per update there.\n",
    ]


def markdown(result: dict[str, Any], heading: str = "##") -> str:
    """The docs/benchmarks.md section (bench/report.py puts it there from metrics.json)."""
    st, summary = result["settings"], result["summary"]
    first = result["runs"][0]
    delivery, update = summary["server_cpu_us_per_delivery"], summary["server_cpu_us_per_update"]
    p99 = summary["p99_ms"]
    cost = result.get("scrape_cost")
    rows = []
    for variant in VARIANTS:
        added = "–"
        if delivery.get(f"{variant}_minus_off") is not None:
            added = (
                f"{delivery[f'{variant}_minus_off']:+g} "
                f"({delivery[f'{variant}_over_off_pct']:+g} %); per repetition "
                + ", ".join(f"{x:+g}" for x in delivery[f"{variant}_minus_off_per_rep"])
            )
        rows.append(
            f"| {LABELS[variant]} | {len(delivery[variant]['values'])} | "
            f"{_cell(delivery[variant])} | {_cell(update[variant])} | {added} | "
            f"{_cell(p99[variant])} |"
        )
    server = (
        ".venv/bin/python -m collab serve --port PORT --database-url sqlite+aiosqlite:///RUN.db "
        "--log-level warning " + " ".join(COLLAB_BENCH_FLAGS)
    )
    generator = (
        f"node ybench.mjs fanout --url ws://127.0.0.1:PORT --pid PID --rooms {st['rooms']} "
        f"--clients {st['clients']} --rate {st['rate']:g} --duration-ms {st['duration_ms']} "
        f"--warmup-ms {st['warmup_ms']}"
    )
    return "\n".join(
        [
            f"{heading} Metrics: what counting and /metrics cost per delivered update\n",
            f"Command: `{result['command']}` (Collab {result['commit']}; "
            f"{result['machine'].get('cpu_model', '?')}, "
            f"{result['machine'].get('cores', '?')} cores). "
            f"{st['rooms']} rooms of {st['clients']} clients (bench/ybench.mjs `fanout`), "
            f"{st['rate']:g} updates/s in all, each delivered to the room's "
            f"{st['clients'] - 1} other clients ({first['deliveries_per_s']:g} deliveries/s), "
            f"measured over {st['duration_ms'] / 1000:g} s after {st['warmup_ms'] / 1000:g} s of "
            f"warm-up; a fresh SQLite file per run, our bench flags. {st['reps']} repetitions of "
            "the three servers, interleaved (the order rotated per repetition). In the scraped "
            f"runs /metrics was fetched every {st['scrape_s']:g} s (Prometheus' default is "
            "15 s). "
            "Server CPU is the server process's user + system time over the window "
            "(/proc, 10 ms ticks), per delivery the clients received and per update sent; "
            "median [min–max].\n",
            "| server | runs | server CPU µs / delivery | µs / update | − off (µs / delivery) "
            "| p99 latency (ms) |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Counting (on − off) moved the median by {delivery.get('on_over_off_pct'):+g} % and "
            f"counting with scrapes by {delivery.get('scraped_over_off_pct'):+g} %, while the off "
            f"runs' own spread (max − min) is {delivery.get('off_spread_pct')} % of their median: "
            "within the bench's noise."
            + (
                f" One scrape (GET /metrics on an idle server, {cost['bytes']:,} bytes) costs "
                f"{cost['cpu_ms_per_scrape']:g} ms of server CPU (mean of {cost['scrapes']})."
                if cost
                else ""
            )
            + "\n",
            *_hotpath_lines(result.get("hotpath")),
            "```sh",
            "# the server (COLLAB_METRICS=false for off, true for on and scraped), the generator:",
            server,
            f"cd bench && {generator}",
            "```\n",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration-ms", type=int, default=10000)
    parser.add_argument("--warmup-ms", type=int, default=2000)
    parser.add_argument("--scrape-s", type=float, default=5.0)
    parser.add_argument("--scrapes", type=int, default=500, help="for the cost of one scrape")
    parser.add_argument("--json", type=Path, default=RESULTS / "metrics.json")
    parser.add_argument("--md", type=Path, default=None, help="also write the report section")
    parser.add_argument("--report", type=Path, help="print the section of a results file")
    parser.add_argument(
        "--add-hotpath",
        type=Path,
        help="only measure the room's hot path (counts off and on) into this results file",
    )
    parser.add_argument("--hotpath-rounds", type=int, default=11)
    args = parser.parse_args()
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text())))
        return
    if args.add_hotpath is not None:
        saved = json.loads(args.add_hotpath.read_text())
        figures = hotpath(args.hotpath_rounds, 20_000)
        figures["command"] = shlex.join([".venv/bin/python", "bench/metrics.py", *sys.argv[1:]])
        saved["hotpath"] = figures
        args.add_hotpath.write_text(json.dumps(saved, indent=2) + "\n")
        log(json.dumps(figures))
        return
    command = shlex.join([".venv/bin/python", "bench/metrics.py", *sys.argv[1:]])
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        for rep in range(args.reps):
            shift = rep % len(VARIANTS)
            order = VARIANTS[shift:] + VARIANTS[:shift]
            for variant in order:
                result = run_one(variant, rep, args, Path(tmp))
                log(
                    f"rep {rep} {variant:>3}: {result['server_cpu_us_per_delivery']} µs/delivery, "
                    f"{result['server_cpu_us_per_update']} µs/update, "
                    f"{result['deliveries_per_s']} deliveries/s, p99 {result['p99_ms']} ms"
                )
                runs.append(result)
        cost = scrape_cost(Path(tmp), args.scrapes)
        log(f"one scrape: {cost['cpu_ms_per_scrape']} ms of server CPU ({cost['bytes']} bytes)")
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    output = {
        "command": command,
        "commit": git,
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summarize(runs),
        "scrape_cost": cost,
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    if args.md is not None:
        args.md.write_text(markdown(output))
    per = output["summary"]["server_cpu_us_per_delivery"]
    for variant in VARIANTS:
        log(
            f"{variant}: {per[variant]['median']} µs per delivery (min {per[variant]['min']}, "
            f"max {per[variant]['max']}); - off: {per.get(f'{variant}_minus_off')} "
            f"({per.get(f'{variant}_over_off_pct')} %), per rep "
            f"{per.get(f'{variant}_minus_off_per_rep')}"
        )
    log(f"off's own spread: {per.get('off_spread_pct')} %")


if __name__ == "__main__":
    main()
