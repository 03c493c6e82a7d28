"""The Hocuspocus protocol's fanout: server CPU per delivery, ours (/hocuspocus) against the real
@hocuspocus/server 4.x from npm (with @hocuspocus/extension-sqlite, so both persist), in one run.

    .venv/bin/python bench/hocuspocus.py [--reps 3] [--quick] [--json bench/results/hocuspocus.json]

Each run gets a fresh server process on a fresh port and a fresh SQLite file (bench/run.py's
`Server`); the servers take turns, the order rotated per repetition. Two loads (LOADS): the
suite's fanout scenario (100 rooms x 10 clients, one writer per room, 100 updates/s in all: 900
deliveries/s) and 10 rooms x 10 clients at 1,000 updates/s (9,000 deliveries/s), each measured
over 15 s after 2 s of warm-up, from bench/ybench.mjs speaking the Hocuspocus
protocol (`--protocol hocuspocus`: Auth, then Sync; every message prefixed by its document's
name; one socket per client and document). Our server also runs the same load over y-websocket
at /ws, for what the protocol itself costs us.

The reference persists by storing the whole document state, debounced (2 s, at most every 10 s);
ours appends every update to its log within its commit window (50 ms). No auth on either side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # bench/run.py: Server, run_generator

ROOT = Path(__file__).resolve().parents[1]

# name -> ybench fanout flags: the suite's fanout (900 deliveries/s), and ten times the rate in
# 10 rooms (9,000 deliveries/s), where per-delivery work outweighs what a process does anyway.
LOADS: dict[str, list[str]] = {
    "fanout": ["--rooms", "100", "--clients", "10", "--rate", "100", "--duration-ms", "15000",
               "--warmup-ms", "2000"],
    "fanout10x10": ["--rooms", "10", "--clients", "10", "--rate", "1000", "--duration-ms", "15000",
                    "--warmup-ms", "2000"],
}  # fmt: skip
QUICK: dict[str, list[str]] = {
    "fanout": ["--rooms", "20", "--clients", "10", "--rate", "50", "--duration-ms", "4000",
               "--warmup-ms", "1000"],
    "fanout10x10": ["--rooms", "10", "--clients", "10", "--rate", "500", "--duration-ms", "4000",
                    "--warmup-ms", "1000"],
}  # fmt: skip

# label -> (server kind, the generator's extra flags)
SERVERS: dict[str, tuple[str, list[str]]] = {
    "collab /hocuspocus": ("collab", ["--protocol", "hocuspocus", "--path", "/hocuspocus"]),
    "@hocuspocus/server": ("hocuspocus", ["--protocol", "hocuspocus"]),
    "collab /ws (y-websocket)": ("collab", []),
}

FIELDS = ("server_cpu_us_per_delivery", "server_cpu_pct", "p50_ms", "p99_ms", "delivered_frac",
          "deliveries_per_s", "server_rss_mb", "generator_cpu_pct")  # fmt: skip


def run_one(load: str, label: str, rep: int, flags: list[str]) -> dict[str, Any]:
    kind, extra = SERVERS[label]
    tag = f"hp-{kind}-{rep}-{int(time.time())}"
    server = suite.Server(kind, tag)
    record: dict[str, Any] = {
        "load": load, "flags": flags, "server": label, "rep": rep,
        "server_command": server.display_command,
        "load_before": suite.loadavg(),
    }  # fmt: skip
    try:
        server.start()
        result, shown = suite.run_generator("fanout", server, flags, f"{load}-{rep}", extra)
        record["generator_command"] = "cd bench && " + shown
        record["result"] = result
    except Exception as exc:  # a failed run is a result too
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
    record["server_log_problems"] = server.log_problems()
    record["load_after"] = suite.loadavg()
    return record


def summarize(runs: list[dict[str, Any]], load: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for label in SERVERS:
        results = [
            r["result"]
            for r in runs
            if r["server"] == label and r["load"] == load and "result" in r
        ]
        results = [r for r in results if "error" not in r]
        if not results:
            continue
        row: dict[str, Any] = {"runs": len(results)}
        for field in FIELDS:
            values = [r[field] for r in results if r.get(field) is not None]
            row[field] = round(statistics.median(values), 3) if values else None
        row["each_cpu_us_per_delivery"] = [r.get("server_cpu_us_per_delivery") for r in results]
        row["close_codes"] = [r.get("close_codes") for r in results]
        row["connect_failures"] = sum(r.get("connect_failures", 0) for r in results)
        out[label] = row
    return out


def describe(flags: list[str]) -> str:
    rooms, clients, rate = flags[1], flags[3], int(flags[5])
    deliveries = rate * (int(clients) - 1)
    return f"{rooms} rooms × {clients} clients, {rate} updates/s ({deliveries:,} deliveries/s)"


def markdown(rec: dict[str, Any]) -> str:
    """The docs/benchmarks.md section (bench/report.py includes it from the JSON)."""
    lines = [
        "## The Hocuspocus protocol: fanout against @hocuspocus/server\n",
        f"One writer per room, the others read; {rec['reps']} run(s) per server and load, "
        f"interleaved ({rec['started']}; {rec['machine'].get('cores', '?')} cores, load "
        f"average {rec['load_at_start']} at the start, shared with the load generator; "
        f"@hocuspocus/server {rec['versions'].get('@hocuspocus/server')}). Server CPU per "
        "delivery is the server process's CPU (utime + stime) over the measured window "
        "(15 s; 4 s with --quick) divided "
        "by the updates delivered to readers in it, median of the runs (each run's beside it: "
        "the kernel counts CPU in 10 ms ticks, and this machine is shared). Both persist to "
        "SQLite (ours: every update appended within 50 ms; the reference's SQLite extension: "
        "the whole state, debounced). Ours on /ws (y-websocket) is the third row, for what the "
        "protocol costs us.\n",
        "| load | server | CPU µs / delivery | server CPU | p50 | p99 | delivered | each run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for load, summary in rec["summary"].items():
        for label, row in summary.items():
            lines.append(
                f"| {describe(rec['loads'][load])} | {label} "
                f"| **{row['server_cpu_us_per_delivery']}** | {row['server_cpu_pct']} % "
                f"| {row['p50_ms']} ms | {row['p99_ms']} ms | {row['delivered_frac']} "
                f"| {', '.join(str(x) for x in row['each_cpu_us_per_delivery'])} |"
            )
    lines.append("")
    for load, summary in rec["summary"].items():
        ours, theirs = summary.get("collab /hocuspocus"), summary.get("@hocuspocus/server")
        if ours and theirs and ours["server_cpu_us_per_delivery"]:
            ratio = ours["server_cpu_us_per_delivery"] / theirs["server_cpu_us_per_delivery"]
            lines.append(
                f"- {describe(rec['loads'][load])}: ours on /hocuspocus takes {ratio:.2f}× the "
                f"reference's CPU per delivery ({ours['server_cpu_us_per_delivery']} against "
                f"{theirs['server_cpu_us_per_delivery']} µs)."
            )
    lines.append("\nThe commands (one run of each; PORT and PID are the server's):\n")
    lines.append("```sh")
    seen = set()
    for run in rec["runs"]:
        key = (run["load"], run["server"])
        if key in seen or "generator_command" not in run:
            continue
        seen.add(key)
        lines.append(f"# {run['load']}: {run['server']}")
        lines.append(run["server_command"] + " &")
        lines.append(run["generator_command"])
    lines.append(f"# all of it: {rec['command']}")
    lines.append("```\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    suite.TMP.mkdir(parents=True, exist_ok=True)
    loads = QUICK if args.quick else LOADS
    labels = list(SERVERS)
    runs = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_at_start = suite.loadavg()[0]
    for rep in range(args.reps):
        order = labels[rep % len(labels) :] + labels[: rep % len(labels)]
        for load, label in ((load, label) for load in loads for label in order):
            suite.log(f"hocuspocus bench: rep {rep + 1}/{args.reps}: {load}: {label}")
            record = run_one(load, label, rep, loads[load])
            runs.append(record)
            result = record.get("result", {})
            suite.log(
                f"    {result.get('server_cpu_us_per_delivery')} µs/delivery, "
                f"p99 {result.get('p99_ms')} ms, delivered {result.get('delivered_frac')}"
                + (f" ERROR {record['error']}" if "error" in record else "")
            )
    command = ".venv/bin/python bench/hocuspocus.py" + (" --quick" if args.quick else "")
    command += f" --reps {args.reps}" + (f" --json {args.json}" if args.json else "")
    rec = {
        "started": started,
        "command": command,
        "reps": args.reps,
        "loads": loads,
        "machine": suite.machine(),
        "load_at_start": load_at_start,
        "versions": {
            "@hocuspocus/server": suite.npm_version("@hocuspocus/server"),
            "@hocuspocus/extension-sqlite": suite.npm_version("@hocuspocus/extension-sqlite"),
        },
        "runs": runs,
        "summary": {load: summarize(runs, load) for load in loads},
    }
    if args.json:
        args.json.write_text(json.dumps(rec, indent=1) + "\n")
    print(markdown(rec))


if __name__ == "__main__":
    main()
