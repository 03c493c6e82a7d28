"""The Hocuspocus protocol's fanout: server CPU per delivery, ours (/hocuspocus) against the real
@hocuspocus/server 4.x from npm (with @hocuspocus/extension-sqlite, so both persist), in one run.

    .venv/bin/python bench/hocuspocus.py [--reps 3] [--quick] [--json bench/results/hocuspocus.json]

Each run gets a fresh server process on a fresh port and a fresh SQLite file (bench/run.py's
`Server`); the servers take turns, the order rotated per repetition. The load is the suite's
fanout scenario (100 rooms x 10 clients, one writer per room, 100 updates/s in all: 900
deliveries/s, 15 s measured after 2 s of warm-up) from bench/ybench.mjs speaking the Hocuspocus
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
import run as suite  # noqa: E402  (bench/run.py: Server, run_generator)

ROOT = Path(__file__).resolve().parents[1]

FANOUT = ["--rooms", "100", "--clients", "10", "--rate", "100", "--duration-ms", "15000",
          "--warmup-ms", "2000"]  # fmt: skip
QUICK = ["--rooms", "20", "--clients", "10", "--rate", "50", "--duration-ms", "4000",
         "--warmup-ms", "1000"]  # fmt: skip

# label -> (server kind, the generator's extra flags)
SERVERS: dict[str, tuple[str, list[str]]] = {
    "collab /hocuspocus": ("collab", ["--protocol", "hocuspocus", "--path", "/hocuspocus"]),
    "@hocuspocus/server": ("hocuspocus", ["--protocol", "hocuspocus"]),
    "collab /ws (y-websocket)": ("collab", []),
}

FIELDS = ("server_cpu_us_per_delivery", "server_cpu_pct", "p50_ms", "p99_ms", "delivered_frac",
          "deliveries_per_s", "server_rss_mb", "generator_cpu_pct")  # fmt: skip


def run_one(label: str, rep: int, flags: list[str]) -> dict[str, Any]:
    kind, extra = SERVERS[label]
    tag = f"hp-{kind}-{rep}-{int(time.time())}"
    server = suite.Server(kind, tag)
    record: dict[str, Any] = {"server": label, "rep": rep, "server_command": server.display_command}
    try:
        server.start()
        result, shown = suite.run_generator("fanout", server, flags, f"hp{rep}", extra)
        record["generator_command"] = "cd bench && " + shown
        record["result"] = result
    except Exception as exc:  # a failed run is a result too
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
    record["server_log_problems"] = server.log_problems()
    return record


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for label in SERVERS:
        results = [r["result"] for r in runs if r["server"] == label and "result" in r]
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


def markdown(rec: dict[str, Any]) -> str:
    """The docs/benchmarks.md section (bench/report.py includes it from the JSON)."""
    s = rec["summary"]
    lines = [
        "## The Hocuspocus protocol: fanout against @hocuspocus/server\n",
        f"{rec['rooms_clients']}, one writer per room, {rec['rate']} updates/s in all, "
        f"{rec['reps']} run(s) per server, interleaved ({rec['started']}). Server CPU per "
        "delivery is the server process's CPU (utime + stime) over the measured window divided "
        "by the updates delivered to readers in it; medians over the runs. Both persist to "
        "SQLite (ours: every update appended within 50 ms; the reference's SQLite extension: "
        "the whole state, debounced). Commands beside each figure.\n",
        "| server | CPU µs / delivery | server CPU | p50 | p99 | delivered | runs (µs / delivery) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in s.items():
        lines.append(
            f"| {label} | **{row['server_cpu_us_per_delivery']}** | {row['server_cpu_pct']} % "
            f"| {row['p50_ms']} ms | {row['p99_ms']} ms | {row['delivered_frac']} "
            f"| {', '.join(str(x) for x in row['each_cpu_us_per_delivery'])} |"
        )
    ours, theirs = s.get("collab /hocuspocus"), s.get("@hocuspocus/server")
    if ours and theirs and ours["server_cpu_us_per_delivery"]:
        ratio = theirs["server_cpu_us_per_delivery"] / ours["server_cpu_us_per_delivery"]
        lines.append(
            f"\nOver the Hocuspocus protocol our server spends {ratio:.2f}× less CPU per "
            "delivery than @hocuspocus/server "
            f"({ours['server_cpu_us_per_delivery']} against {theirs['server_cpu_us_per_delivery']} µs)."
        )
    lines.append("\nCommands (one run of each; PORT and PID are the server's):\n")
    lines.append("```sh")
    seen = set()
    for run in rec["runs"]:
        if run["server"] in seen or "generator_command" not in run:
            continue
        seen.add(run["server"])
        lines.append(f"# {run['server']}")
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
    flags = QUICK if args.quick else FANOUT
    labels = list(SERVERS)
    runs = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for rep in range(args.reps):
        order = labels[rep % len(labels) :] + labels[: rep % len(labels)]
        for label in order:
            suite.log(f"hocuspocus bench: rep {rep + 1}/{args.reps}: {label}")
            record = run_one(label, rep, flags)
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
        "rooms_clients": f"{flags[1]} rooms × {flags[3]} clients",
        "rate": int(flags[5]),
        "machine": suite.machine(),
        "versions": {
            "@hocuspocus/server": suite.npm_version("@hocuspocus/server"),
            "@hocuspocus/extension-sqlite": suite.npm_version("@hocuspocus/extension-sqlite"),
        },
        "runs": runs,
        "summary": summarize(runs),
    }
    if args.json:
        args.json.write_text(json.dumps(rec, indent=1) + "\n")
    print(markdown(rec))


if __name__ == "__main__":
    main()
