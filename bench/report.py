"""Turn bench/run.py's JSON lines into docs/benchmarks.md and the PNG charts in docs/img/.

    .venv/bin/python bench/report.py bench/results/suite.jsonl [--md docs/benchmarks.md]
                                     [--img docs/img]
    .venv/bin/python bench/report.py bench/results/suite.jsonl --targets   # the targets table alone

Cells are median [min–max] over the repetitions; "÷ ref" divides our median by the reference's
median from the same run of the suite, "÷ Hocuspocus" by @hocuspocus/server's (the third column,
where the suite ran it). The "Issue 16 targets" table at the top is computed from the records; for
each target it finds not met it includes the matching `## <target id>` section of the hand-written
bench/profiles.md (what the profile shows the limit is).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OURS, REF, HOCUS = "collab", "yws", "hocuspocus"
SERVERS = (OURS, REF, HOCUS)  # the column order everywhere; a server shows only where it ran
NAMES = {OURS: "Collab (ours)", REF: "y-websocket (reference)", HOCUS: "@hocuspocus/server (with SQLite)"}
SHORT = {OURS: "ours", REF: "y-websocket", HOCUS: "Hocuspocus"}
COLORS = {OURS: "#1f77b4", REF: "#ff7f0e", HOCUS: "#9467bd", "persist": "#2ca02c", "w1": "#9ecae1",
          "w2": "#08519c"}  # fmt: skip
PROFILES = ROOT / "bench" / "profiles.md"  # hand-written: what limits each target not met
# cluster mode (bench/run.py VARIANTS): our server in several configurations
VARIANT_NAMES = {
    "w1": "Collab `--workers 1`",
    "w2": "Collab `--workers 2`, Redis bus",
    "w2redis": "Collab `--workers 2`, Redis bus",
    "nobus": "one server, no bus",
    "same": "two servers on the bus, all clients on A (same process)",
    "cross": "two servers on the bus, writer on A, readers on B (cross-process)",
}

Run = dict[str, Any]


# ------------------------------------------------------------------------------------------
# loading and small helpers


def load(path: Path) -> tuple[dict[str, Any], list[Run], dict[str, Any] | None, dict[str, Any]]:
    meta: dict[str, Any] = {}
    runs: list[Run] = []
    store = None
    end: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        t = rec.get("type")
        if t == "meta":
            meta = rec
        elif t == "run":
            runs.append(rec)
        elif t == "store":
            store = rec
        elif t == "events":
            meta["_events"] = rec
        elif t == "end":
            end = rec
    return meta, runs, store, end


def ok(run: Run) -> bool:
    r = run.get("result") or {}
    return "error" not in run and "error" not in r and not r.get("build_error")


def num(x: float | None, digits: int | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    ax = abs(x)
    if digits is None:
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    s = f"{x:,.{digits}f}"
    return s


def cell(values: list[float | None], digits: int | None = None) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    med = statistics.median(v)
    if len(v) == 1:
        return num(med, digits)
    lo, hi = min(v), max(v)
    if num(lo, digits) == num(hi, digits):
        return num(med, digits)
    return f"{num(med, digits)} [{num(lo, digits)}–{num(hi, digits)}]"


def median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


class Data:
    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.by: dict[tuple[str, str], list[Run]] = defaultdict(list)
        self.variant: dict[tuple[str, str], list[Run]] = defaultdict(list)  # cluster scenarios
        for r in runs:
            self.by[(r["scenario"], r["server"])].append(r)
            if r.get("variant"):
                self.variant[(r["scenario"], r["variant"])].append(r)

    def vgood(self, scenario: str, variant: str) -> list[Run]:
        return [r for r in self.variant.get((scenario, variant), []) if ok(r)]

    def vvalues(self, scenario: str, variant: str, get: Callable[[Run], Any]) -> list[Any]:
        out = []
        for r in self.vgood(scenario, variant):
            try:
                out.append(get(r))
            except (KeyError, TypeError, IndexError, ZeroDivisionError):
                out.append(None)
        return out

    def vmed(self, scenario: str, variant: str, get: Callable[[Run], Any]) -> float | None:
        return median(self.vvalues(scenario, variant, get))

    def servers(self, scenario: str) -> list[str]:
        return [s for s in SERVERS if self.by.get((scenario, s))]

    def good(self, scenario: str, server: str) -> list[Run]:
        return [r for r in self.by.get((scenario, server), []) if ok(r)]

    def values(self, scenario: str, server: str, get: Callable[[Run], Any]) -> list[Any]:
        out = []
        for r in self.good(scenario, server):
            try:
                out.append(get(r))
            except (KeyError, TypeError, IndexError):
                out.append(None)
        return out

    def med(self, scenario: str, server: str, get: Callable[[Run], Any]) -> float | None:
        return median(self.values(scenario, server, get))


def res(key: str) -> Callable[[Run], Any]:
    return lambda r: r["result"][key]


# ------------------------------------------------------------------------------------------
# throughput ladders: the common step


def step_cpu_at(run: Run, rate: float) -> float | None:
    for s in run["result"]["steps"]:
        if s.get("ok") and abs(s["rate"] - rate) < 1e-6:
            return s["server_cpu_us_per_delivery"]
    return None


def common_rates(d: Data, scenario: str) -> dict[int, float]:
    """Per repetition: the highest ladder step that every server of the repetition sustained (ours
    and the reference; Hocuspocus too where it ran), so CPU per delivery compares like for like."""
    out = {}
    per = {s: {r["rep"]: r for r in d.good(scenario, s)} for s in d.servers(scenario)}
    for rep in set(per.get(OURS, {})) & set(per.get(REF, {})):
        # a server that sustained no step at all (or whose run failed) does not drag the others down
        bests = [p[rep]["result"].get("best") for p in per.values() if rep in p]
        rates = [b["rate"] for b in bests if b]
        if per[OURS][rep]["result"].get("best") and per[REF][rep]["result"].get("best"):
            out[rep] = min(rates)
    return out


def cpu_common(d: Data, scenario: str, server: str) -> list[float | None]:
    rates = common_rates(d, scenario)
    return [step_cpu_at(r, rates[r["rep"]]) for r in d.good(scenario, server) if r["rep"] in rates]


# ------------------------------------------------------------------------------------------
# sections


def scenario_table(
    d: Data, scenario: str, cols: list[tuple[str, Callable[[Run], Any], int | None]],
    ratio_cols: list[str], extra: Callable[[str], list[str]] | None = None,
    extra_header: list[str] | None = None,
) -> str:  # fmt: skip
    servers = d.servers(scenario)
    header = ["server", "runs"] + [c[0] for c in cols] + (extra_header or [])
    header += [f"{c} ÷ ref" for c in ratio_cols]
    if HOCUS in servers:
        header += [f"{c} ÷ Hocuspocus" for c in ratio_cols]
    rows = []
    for s in servers:
        all_runs = d.by.get((scenario, s), [])
        good = d.good(scenario, s)
        runs = f"{len(good)}" + (f" (+{len(all_runs) - len(good)} err)" if len(all_runs) > len(good) else "")
        row = [NAMES[s], runs]
        for _, get, digits in cols:
            row.append(cell(d.values(scenario, s, get), digits))
        if extra:
            row += extra(s)
        for rc in ratio_cols:
            get = next(c[1] for c in cols if c[0] == rc)
            row.append(ratio(d.med(scenario, s, get), d.med(scenario, REF, get)) if REF in servers else "–")
        if HOCUS in servers:
            for rc in ratio_cols:
                get = next(c[1] for c in cols if c[0] == rc)
                row.append(ratio(d.med(scenario, s, get), d.med(scenario, HOCUS, get)))
        rows.append(row)
    return table(header, rows)


def flags_of(meta: dict[str, Any], scenario: str) -> str:
    sc = meta["scenarios"].get(scenario)
    return " ".join(sc["flags"]) if sc else ""


def commands(d: Data, scenario: str) -> str:
    """The generator command (PORT and PID filled in per run): one line when it is the same against
    every server, else one per server (Hocuspocus speaks its own protocol: `--protocol hocuspocus`)."""
    per: dict[str, str] = {}
    lines: list[str] = []
    for s in d.servers(scenario):
        runs = d.by[(scenario, s)]
        r = next((x for x in runs if x.get("generator_command")), None)
        if r is None:
            continue
        per[s] = r["generator_command"]
        if scenario == "persist" and r.get("restore", {}).get("join_command"):
            lines.append("# then SIGTERM, the same server command again (--log-level info), and")
            lines.append(r["restore"]["join_command"])
    if not per:
        return ""
    if len(set(per.values())) == 1:
        lines.insert(0, next(iter(per.values())))
    else:
        lines = [x for s, c in per.items() for x in (f"# {NAMES[s]}", c)] + lines
    return "Generator: `" + lines[0] + "`" if len(lines) == 1 else "```\n" + "\n".join(lines) + "\n```"


def first_result(d: Data, scenario: str) -> dict[str, Any]:
    for s in SERVERS:
        g = d.good(scenario, s)
        if g:
            return g[0]["result"]
    return {}


def title(d: Data, scenario: str) -> str:
    r = first_result(d, scenario)
    if not r:
        return scenario
    if scenario == "fanout":
        return (f"fanout — {r['rooms']} rooms × {r['clients']} clients (1 writer + {r['clients'] - 1} readers), "
                f"{r['rate']:,} updates/s in total ({r['rate'] * (r['clients'] - 1):,} deliveries/s)")
    if scenario.startswith("tput"):
        first = r["steps"][0]["rate"] if r.get("steps") else 0
        who = (f"1 writer + {r['clients'] - 1} readers" if r["rooms"] == 1 else "1 writer per room")
        return (f"throughput ladder — {r['rooms']} room{'s' if r['rooms'] > 1 else ''} × {r['clients']} clients "
                f"({who}), ×1.5 per step from {first:,.0f} updates/s")
    if scenario == "awareness":
        n = r["rooms"] * r["clients"]
        return (f"awareness — {r['rooms']} rooms × {r['clients']} clients, each sets its cursor at {r['hz']} Hz "
                f"({n * r['hz']:,} updates/s, {n * r['hz'] * (r['clients'] - 1):,} deliveries/s)")
    return scenario


def section_connect(d: Data, meta: dict[str, Any]) -> str:
    out = []
    for scenario in ("connect1k", "connect5k", "connect10k", "idle50k"):
        if not d.servers(scenario):
            continue
        n = d.good(scenario, d.servers(scenario)[0])
        if not n:
            continue
        first = n[0]["result"]
        name = "idle50k" if scenario == "idle50k" else "connect"
        out.append(f"### {name} — {first['n']:,} idle connections over {first['rooms']:,} rooms\n")
        if scenario == "idle50k":
            out.append("One server process holds them all; the generator opens them from several "
                       "loopback source addresses (127.0.0.2, 127.0.0.3 …: one address has too few "
                       "ports), with its descriptor limit raised in the bench, not in the server.\n")
            capped = [r for s in SERVERS for r in d.by.get((scenario, s), []) if r.get("n_capped_by_nofile_limit")]
            if capped:
                c = capped[0]
                out.append(f"**Capped**: {c.get('n_wanted', 50000):,} connections wanted, but the descriptor "
                           f"limit here is {c['n_capped_by_nofile_limit']:,} and could not be raised, so "
                           f"{len(capped)} runs opened fewer.\n")
        out.append(scenario_table(d, scenario, [
            ("all synced (ms)", res("all_synced_ms"), None),
            ("handshake p99 (ms)", res("handshake_p99_ms"), None),
            ("RSS before (MB)", res("rss_before_mb"), 1),
            ("RSS after (MB)", res("rss_after_mb"), 1),
            ("RSS / conn (KB)", res("rss_per_conn_kb"), 1),
            ("server CPU to connect (s)", res("server_cpu_connect_s"), 2),
            ("failures", res("failures"), 0),
            ("host background CPU %", res("host_background_cpu_pct"), 0),
        ], ["all synced (ms)", "RSS / conn (KB)", "server CPU to connect (s)"]))
        out.append("\n" + commands(d, scenario) + "\n")
    return "\n".join(out)


def section_rooms(d: Data, scenario: str, title: str) -> str:
    if not d.servers(scenario):
        return ""
    return "\n".join([
        f"### {title}\n",
        scenario_table(d, scenario, [
            ("p50 (ms)", res("p50_ms"), None),
            ("p95 (ms)", res("p95_ms"), None),
            ("p99 (ms)", res("p99_ms"), None),
            ("max (ms)", res("max_ms"), None),
            ("delivered", res("delivered_frac"), 4),
            ("undelivered", res("undelivered"), 0),
            ("server CPU %", res("server_cpu_pct"), 1),
            ("server CPU µs / delivery", res("server_cpu_us_per_delivery"), 1),
            ("generator CPU %", res("generator_cpu_pct"), 0),
            ("host background CPU %", res("host_background_cpu_pct"), 0),
        ], ["p99 (ms)", "server CPU µs / delivery"]),
        "",
        per_rep_line(d, scenario),
        commands(d, scenario),
        "",
    ])  # fmt: skip


def per_rep_line(d: Data, scenario: str) -> str:
    """Server CPU per delivery, ours ÷ each peer, per repetition (runs paired by repetition)."""
    cpu = res("server_cpu_us_per_delivery")
    ours = per_rep(d, scenario, OURS, cpu)
    out = []
    for peer in (REF, HOCUS):
        theirs = per_rep(d, scenario, peer, cpu)
        pairs = [f"rep {k + 1}: {ratio(ours[k], theirs[k])}" for k in sorted(ours.keys() & theirs.keys())]
        if len(pairs) > 1:
            out.append(f"ours ÷ {SHORT[peer]} {', '.join(pairs)}")
    return ("Server CPU µs / delivery per repetition (paired by repetition): " + "; ".join(out) + ".\n") if out else ""


def section_ladder(d: Data, scenario: str, title: str) -> str:
    if not d.servers(scenario):
        return ""
    best = lambda k: lambda r: r["result"]["best"][k]  # noqa: E731
    rates = common_rates(d, scenario)

    def extra(s: str) -> list[str]:
        reasons = [r["result"]["stop_reason"] for r in d.good(scenario, s)]
        return [cell(cpu_common(d, scenario, s), 2), ", ".join(reasons) or "–"]

    tab = scenario_table(d, scenario, [
        ("max sustained deliveries/s", res("max_sustained_deliveries_per_s"), 0),
        ("= updates/s", res("max_sustained_updates_per_s"), 0),
        ("p99 at best (ms)", best("p99_ms"), None),
        ("server CPU % at best", best("server_cpu_pct"), 0),
        ("generator CPU % at best", best("generator_cpu_pct"), 0),
        ("server CPU µs / delivery at best", best("server_cpu_us_per_delivery"), 2),
        ("host background CPU % at best", best("host_background_cpu_pct"), 0),
    ], ["max sustained deliveries/s", "server CPU µs / delivery at best"],
        extra=extra, extra_header=["server CPU µs / delivery at the common step", "stop reasons"])  # fmt: skip
    ours_c = median(cpu_common(d, scenario, OURS))
    ref_c = median(cpu_common(d, scenario, REF))
    note = ""
    if rates:
        rs = ", ".join(f"{v:,.0f}" for v in rates.values())
        note = (f"\nThe common step is the highest rate both servers sustained in the same repetition "
                f"({rs} updates/s): CPU per delivery falls as the rate rises (fixed costs are "
                f"spread thinner), so that is the like-for-like figure. There ours ÷ reference = "
                f"**{ratio(ours_c, ref_c)}**.\n")
    return "\n".join([f"### {title}\n", tab, note, commands(d, scenario), ""])


def section_bigdoc(d: Data) -> str:
    if not d.servers("bigdoc"):
        return ""
    first_join = lambda r: r["result"]["joins"][0]["ms"]  # noqa: E731
    tab = scenario_table(d, "bigdoc", [
        ("ingest (s)", lambda r: r["result"]["ingest_ms"] / 1000, 1),
        ("ingest updates/s", res("ingest_updates_per_s"), 0),
        ("server CPU during ingest (s)", res("server_cpu_s"), 1),
        ("RSS after build (MB)", res("rss_after_build_mb"), 1),
        ("join full sync, median of 3 (ms)", res("join_ms_median"), 1),
        ("first join (ms)", first_join, 1),
        ("step-2 bytes", res("step2_bytes"), 0),
        ("document complete", lambda r: 1 if r["result"]["doc_complete"] else 0, 0),
        ("host background CPU %", res("host_background_cpu_pct"), 0),
    ], ["ingest updates/s", "join full sync, median of 3 (ms)", "RSS after build (MB)"])  # fmt: skip
    errs = []
    for s in d.servers("bigdoc"):
        for r in d.by[("bigdoc", s)]:
            e = r.get("error") or (r.get("result") or {}).get("error") or (r.get("result") or {}).get("build_error")
            if e:
                errs.append(f"- {NAMES[s]} rep {r['rep'] + 1}: {e}")
    b = first_result(d, "bigdoc")
    n = b.get("updates", 0)
    return "\n".join([
        f"### bigdoc — one client sends {n:,} separate {b.get('chars', 10)}-character appends, then 3 fresh clients join\n",
        "Ours persists every update to SQLite while it ingests (it always does); the reference runs "
        "without persistence" + ("; @hocuspocus/server stores through its SQLite extension (debounced)"
                                 if HOCUS in d.servers("bigdoc") else "") + ". The builder keeps a bounded window in flight (a sync step 1 probe "
        "every 1,000 updates, at most 4 unanswered), so the server is never idle and never "
        "drowned; ingest ends with the last probe's answer. Joins are sequential; the first "
        "joiner's document is checked "
        f"({n * b.get('chars', 10):,} characters).\n",
        tab, "", "\n".join(errs), "", commands(d, "bigdoc"), "",
    ])  # fmt: skip


def exit_text(code: Any, killed: str | None) -> str:
    if killed:
        m = re.search(r"anon-rss:(\d+)kB", killed)
        return f"OOM-killed at {int(m[1]) / 1e6:.1f} GB" if m else "SIGKILL (kernel)"
    if code is None:
        return "–"
    return {0: "0", -9: "SIGKILL (harness, after 30 s)", -6: "abort (SIGABRT)"}.get(code, str(code))


def section_persist(d: Data, scenario: str) -> str:
    runs = d.good(scenario, OURS)
    if not runs:
        return ""
    rs = lambda k: lambda r: r["restore"][k]  # noqa: E731
    load_ms = lambda r: r["restore"]["server_load"]["ms"]  # noqa: E731

    every = sorted(d.by.get((scenario, OURS), []), key=lambda r: r["rep"])

    def extra(s: str) -> list[str]:
        first = [exit_text(r.get("server_exit_code"), r.get("server_killed")) for r in every]
        again = [exit_text((r.get("restore") or {}).get("restart_exit_code"),
                           (r.get("restore") or {}).get("restart_killed")) for r in every]
        joins = []
        for r in every:
            before = sum(1 for j in (r.get("result") or {}).get("joins", []) if j.get("ms") is not None)
            after = sum(1 for j in (r.get("restore") or {}).get("joins", []) if j.get("ms") is not None)
            joins.append(f"{before}+{after}")
        return ["; ".join(first), "; ".join(again), ", ".join(joins)]

    tab = scenario_table(d, scenario, [
        ("ingest updates/s", res("ingest_updates_per_s"), 0),
        ("committed updates/s", res("committed_updates_per_s"), 0),
        ("max uncommitted", res("max_uncommitted"), 0),
        ("commit lag p50 (ms)", res("commit_lag_p50_ms"), 0),
        ("commit lag p99 (ms)", res("commit_lag_p99_ms"), 0),
        ("/healthz answers during ingest", res("healthz_samples"), 0),
        ("RSS after build (MB)", res("rss_after_build_mb"), 0),
        ("SQLite files (MB)", lambda r: r["restore"]["db_bytes"] / 1e6, 1),
        ("cold load in server (ms)", load_ms, 1),
        ("cold join full sync (ms)", rs("cold_join_ms"), 1),
        ("warm join (ms)", rs("warm_join_ms"), 1),
    ], [], extra=extra, extra_header=["server exit, per run", "restarted server exit, per run", "joins ok before + after restart, per run"])  # fmt: skip
    r0 = runs[0]["result"]
    loaded = (runs[0].get("restore") or {}).get("server_load") or {}
    if scenario == "persist":
        head = (f"### persistence — {r0.get('updates', 0):,} appends at a paced rate, watching the store, "
                "then a restart\n")
        how = (f"The bigdoc appends again, but paced: the builder waits for the answer to its probe "
               f"every {r0.get('probe_every')} updates with at most {r0.get('probe_every', 100) * 2} "
               "updates in flight, so the server's event loop drains between batches (a person "
               "typing, or an editor replaying a queue, never sends faster than that)")
    else:
        head = f"### persistence under the flood — the bigdoc ingest ({r0.get('updates', 0):,} appends, 4,000 in flight), watching the store\n"
        how = ("The bigdoc builder's window (4,000 updates in flight) with the same store "
               "observation and restart")
    return "\n".join([
        head,
        how + ". The generator polls `GET /healthz` every 10 ms for `uncommitted_updates`; commit "
        "progress is reconstructed as committed(t) = applied(t) − uncommitted(t), applied(t) from "
        "the builder's probe answers; commit lag is the time from an update being applied to it "
        "showing as committed. Caveats: `uncommitted_updates` does not count the batch inside a "
        "running transaction (so the lag is a lower bound), and /healthz answers only as often as "
        "the event loop lets it (the answers column: 10 ms polling would give hundreds). Then "
        "SIGTERM (the server flushes and exits), the same command again on the same file, and three "
        "clients join; the first loads the document from SQLite (\"cold\"), and the server's own "
        "`loaded ... in N ms` log line is the restore time"
        + (f" (run 1: a {loaded.get('snapshot_bytes', 0):,}-byte snapshot + {loaded.get('log_rows', 0)} "
           "log rows)." if loaded else ".") + "\n",
        tab,
        "",
        commands(d, scenario), "",
    ])  # fmt: skip


def section_store(store: dict[str, Any] | None) -> str:
    if not store or not store.get("figures"):
        return ""
    f = store["figures"]
    l1, l10 = f["commit_lag_1000"], f["commit_lag_10000"]
    c = f["compaction"]
    rows = [
        ["updates committed per second, all offered at once",
         f"{f['commit_rate_per_s']:,.0f} /s ({f['commit_transactions']} transactions)"],
        ["commit lag at 1,000 updates/s offered for 5 s",
         f"p50 {l1['p50_ms']:.1f} ms, p99 {l1['p99_ms']:.1f} ms, max {l1['max_ms']:.1f} ms"],
        ["commit lag at 10,000 updates/s offered for 5 s",
         f"p50 {l10['p50_ms']:.1f} ms, p99 {l10['p99_ms']:.1f} ms, max {l10['max_ms']:.1f} ms"],
        [f"cold restore, {f['updates']:,} rows in the log",
         f"median {f['restore_log']['median_ms']:.0f} ms (best {f['restore_log']['best_ms']:.0f} ms)"],
        [f"compaction of those {c['rows']:,} rows",
         f"{c['ms']:.0f} ms, {c['bytes_before']:,} → {c['bytes_after']:,} bytes"],
        ["cold restore after compaction",
         f"median {f['restore_compacted']['median_ms']:.1f} ms (best {f['restore_compacted']['best_ms']:.1f} ms)"],
    ]  # fmt: skip
    return "\n".join([
        "## Store: group commit and cold restore\n",
        f"Command: `{store['command']}` (SQLite file in a temp dir). Updates are "
        f"{f['updates']:,} one-character typing edits ({f['update_bytes'] / 1e6:.2f} MB of Yjs "
        f"updates, {f['update_bytes'] / f['updates']:.1f} B each), fed through the server's own "
        "Saver (one writer path, group commit) and restored through `collab.hub.restore` (what "
        "a room does on first join) with a fresh engine each time. No network, no event-loop "
        "competition: this is the store's own speed, to set against the persistence scenario.\n",
        table(["figure", "result"], rows),
        "",
        "The commit window is 50 ms: the saver gathers a batch for 80 % of it, which leaves "
        "the rest for the transaction (~0.1 ms on SQLite), so p99 stays under the window even "
        "at 10,000 updates/s.\n",
    ])  # fmt: skip


# ------------------------------------------------------------------------------------------
# cluster mode: --workers, and the bus


def runs_cell(d: Data, scenario: str, variant: str) -> str:
    every = d.variant.get((scenario, variant), [])
    good = d.vgood(scenario, variant)
    return f"{len(good)}" + (f" (+{len(every) - len(good)} err)" if len(every) > len(good) else "")


def workers_common(d: Data) -> dict[int, float]:
    """Per repetition: the highest ladder step both --workers 1 and --workers 2 sustained."""
    w1 = {r["rep"]: r for r in d.vgood("workers", "w1")}
    w2 = {r["rep"]: r for r in d.vgood("workers", "w2")}
    out = {}
    for rep in w1.keys() & w2.keys():
        a, b = w1[rep]["result"].get("best"), w2[rep]["result"].get("best")
        if a and b:
            out[rep] = min(a["rate"], b["rate"])
    return out


def split_cell(r: Run) -> str:
    """Client connections per server process (sockets counted mid-run), e.g. 52/48."""
    socks = [p["sockets"] for p in r.get("processes", []) if p["sockets"]]
    return "/".join(str(x) for x in socks) or "–"


def is_ladder(d: Data) -> bool:
    """The workers scenario as a ladder (round one) rather than a fixed load (issue 16)."""
    return any("steps" in (r.get("result") or {}) for v in ("w1", "w2") for r in d.variant.get(("workers", v), []))


def section_workers_fixed(d: Data, scenario: str = "workers", variants: tuple[str, ...] = ("w1", "w2")) -> str:
    """Issue 16's workers scenario: the fanout load, fixed, against `--workers 1` and `--workers 2`."""
    if not any(d.variant.get((scenario, v)) for v in variants):
        return ""
    cpu = res("server_cpu_us_per_delivery")
    base = d.vmed(scenario, "w1", cpu)
    rows = []
    for v in variants:
        if not d.variant.get((scenario, v)):
            continue
        good = d.vgood(scenario, v)
        rows.append([
            variant_name(d, v), runs_cell(d, scenario, v),
            cell(d.vvalues(scenario, v, cpu), 2),
            ratio(d.vmed(scenario, v, cpu), base),
            cell(d.vvalues(scenario, v, res("server_cpu_pct")), 1),
            cell(d.vvalues(scenario, v, res("p50_ms"))),
            cell(d.vvalues(scenario, v, res("p99_ms"))),
            cell(d.vvalues(scenario, v, res("delivered_frac")), 4),
            cell(d.vvalues(scenario, v, res("generator_cpu_pct")), 0),
            cell(d.vvalues(scenario, v, res("host_background_cpu_pct")), 0),
            ", ".join(split_cell(r) for r in good) or "–",
        ])  # fmt: skip
    tab = table([
        "server", "runs", "server CPU µs / delivery (all processes)", "÷ `--workers 1`",
        "server CPU % (all processes; 100 = one core)", "p50 (ms)", "p99 (ms)", "delivered",
        "generator CPU %", "host background CPU %", "client connections per worker, per run",
    ], rows)  # fmt: skip
    r0 = next((r["result"] for v in variants for r in d.vgood(scenario, v)), {})
    cmds = []
    for v in variants:
        rr = d.variant.get((scenario, v))
        if rr:
            cmds.append(f"# {variant_name(d, v).replace('`', '')}\n{rr[0]['server_command']}")
    gen = next((r.get("generator_command") for v in variants for r in d.variant.get((scenario, v), [])
                if r.get("generator_command")), None)  # fmt: skip
    if gen:
        cmds.append("# the generator (PID: the server's; --tree adds its children)\n" + gen)
    load = (f"{r0.get('rooms', 0)} rooms × {r0.get('clients', 0)} clients, {r0.get('rate', 0):,} updates/s"
            if r0 else "a fixed load")
    return "\n".join([
        f"### {scenario} — {load} against `--workers 1` and `--workers 2`"
        + (" with the Redis bus" if scenario == "workers_redis" else "") + "\n",
        "The same fixed load against our server in one process and in two workers. **Server CPU** "
        "is the whole process tree (the supervisor and the workers, /proc/PID/stat of each, "
        "`ybench --tree`), divided by the deliveries: ≤ 1.10× of one process means a second worker "
        "costs next to nothing per message. Connections per worker are each worker's socket "
        "descriptors mid-run minus before (the supervisor holds none once it has handed them on).\n",
        tab,
        "",
        "```\n" + "\n".join(cmds) + "\n```\n",
    ])  # fmt: skip


def section_bigjoin(d: Data) -> str:
    if not d.servers("bigjoin"):
        return ""
    b = first_result(d, "bigjoin")
    tab = scenario_table(d, "bigjoin", [
        ("document (MB)", lambda r: r["result"]["doc_bytes"] / 1e6, 1),
        ("build (ms)", res("build_ms"), None),
        ("joiners", res("joiners"), 0),
        ("all synced (ms)", res("all_synced_ms"), None),
        ("join p50 (ms)", res("join_p50_ms"), None),
        ("join p99 (ms)", res("join_p99_ms"), None),
        ("failures", res("failures"), 0),
        ("RSS before the join (MB)", res("rss_before_join_mb"), 0),
        ("peak RSS (MB)", res("peak_rss_mb"), 0),
        ("server CPU during the join (s)", res("server_cpu_join_s"), 2),
    ], ["all synced (ms)", "peak RSS (MB)"])  # fmt: skip
    joiners = b.get("joiners", 100)
    size = f"{b['doc_bytes'] / 1e6:.0f} MB" if b.get("doc_bytes") else "big"
    return "\n".join([
        f"### bigjoin — {joiners} clients join a {size} document at once\n",
        f"One client builds the document, then {joiners} fresh clients connect to it together; "
        "\"all synced\" is the time until the last of them has its sync step 2. Peak RSS is the "
        "server's VmHWM over the join (reset with `echo 5 > /proc/PID/clear_refs` at its start).\n",
        tab, "", commands(d, "bigjoin"), "",
    ])  # fmt: skip


def section_keystroke(d: Data) -> str:
    present = [(sc, label) for sc, label in KEYSTROKE if d.servers(sc)]
    if not present:
        return ""
    ks = res("server_cpu_us_per_keystroke")
    servers = [s for s in SERVERS if any(d.by.get((sc, s)) for sc, _ in present)]
    rows = []
    for s in servers:
        row = [NAMES[s]]
        for sc, _ in present:
            row.append(cell(d.values(sc, s, ks), None))
        for sc, _ in present:
            row.append(cell(d.values(sc, s, res("p99_ms"))))
        row.append(cell([x for sc, _ in present for x in d.values(sc, s, res("delivered_frac"))], 4))
        a, b = d.med("keystroke1k", s, ks), d.med("keystroke1m", s, ks)
        row.append(ratio(b, a))
        row.append(ratio(b, d.med("keystroke1m", REF, ks)))
        rows.append(row)
    header = (["server"] + [f"CPU µs / keystroke, {label} history" for _, label in present]
              + [f"p99 (ms), {label}" for _, label in present] + ["delivered", "1M ÷ 1k", "at 1M ÷ ref"])  # fmt: skip
    k0 = next((r["result"] for sc, _ in present for s in SERVERS for r in d.good(sc, s)), {})
    cmds = []
    for sc, _ in present:
        c = commands(d, sc)
        if c:
            cmds.append(f"{sc}: " + c if c.startswith("Generator") else f"{sc}:\n\n{c}")
    return "\n".join([
        "### keystroke — one user typing into a document with "
        + ", ".join(label for _, label in present) + " characters of history\n",
        f"A typist sends {k0.get('keystrokes', 0):,} one-character edits at {k0.get('rate', 0):,}/s into a "
        "document that already holds the history; one reader receives them (latency is typist → "
        "reader). Server CPU per keystroke should not grow with the history.\n",
        table(header, rows), "", "\n\n".join(cmds), "",
    ])  # fmt: skip


def section_workers(d: Data) -> str:
    if not is_ladder(d):
        return section_workers_fixed(d)
    if not d.variant.get(("workers", "w1")) and not d.variant.get(("workers", "w2")):
        return ""
    best = lambda k: lambda r: r["result"]["best"][k]  # noqa: E731
    maxd = res("max_sustained_deliveries_per_s")
    ref_max = d.med("tput10x10", REF, maxd)
    common = workers_common(d)
    rows = []
    for v in ("w1", "w2"):
        if not d.variant.get(("workers", v)):
            continue
        good = d.vgood("workers", v)
        at_common = [step_cpu_at(r, common[r["rep"]]) for r in good if r["rep"] in common]
        rows.append([
            VARIANT_NAMES[v], runs_cell(d, "workers", v),
            cell(d.vvalues("workers", v, maxd), 0),
            cell(d.vvalues("workers", v, res("max_sustained_updates_per_s")), 0),
            cell(d.vvalues("workers", v, best("p99_ms"))),
            cell(d.vvalues("workers", v, best("server_cpu_pct")), 0),
            cell(d.vvalues("workers", v, best("server_cpu_us_per_delivery")), 2),
            cell(at_common, 2),
            cell(d.vvalues("workers", v, best("redis_cpu_us_per_delivery")), 2),
            cell(d.vvalues("workers", v, best("generator_cpu_pct")), 0),
            cell(d.vvalues("workers", v, best("host_background_cpu_pct")), 0),
            ", ".join(split_cell(r) for r in good) or "–",
            ", ".join(r["result"]["stop_reason"] for r in good) or "–",
            ratio(d.vmed("workers", v, maxd), ref_max),
        ])  # fmt: skip
    if d.servers("tput10x10") and REF in d.servers("tput10x10"):
        ref_common = cpu_common(d, "tput10x10", REF)
        rows.append([
            NAMES[REF] + ", one process (the tput10x10 ladder above)",
            f"{len(d.good('tput10x10', REF))}",
            cell(d.values("tput10x10", REF, maxd), 0),
            cell(d.values("tput10x10", REF, res("max_sustained_updates_per_s")), 0),
            cell(d.values("tput10x10", REF, best("p99_ms"))),
            cell(d.values("tput10x10", REF, best("server_cpu_pct")), 0),
            cell(d.values("tput10x10", REF, best("server_cpu_us_per_delivery")), 2),
            cell(ref_common, 2) + " (its common step with ours, tput10x10)",
            "–",
            cell(d.values("tput10x10", REF, best("generator_cpu_pct")), 0),
            cell(d.values("tput10x10", REF, best("host_background_cpu_pct")), 0),
            "–",
            ", ".join(r["result"]["stop_reason"] for r in d.good("tput10x10", REF)) or "–",
            "1.00×",
        ])  # fmt: skip
    tab = table([
        "server", "runs", "max sustained deliveries/s", "= updates/s", "p99 at best (ms)",
        "server CPU % at best (all processes; 100 = one core)",
        "server CPU µs / delivery at best (all processes)",
        "server CPU µs / delivery at the common step (w1, w2)",
        "Redis CPU µs / delivery at best", "generator CPU % at best",
        "host background CPU % at best", "client connections per worker, per run", "stop reasons",
        "max sustained ÷ ref",
    ], rows)  # fmt: skip
    w = d.variant.get(("workers", "w2")) or d.variant.get(("workers", "w1")) or []
    cmds = []
    for v in ("w1", "w2"):
        rr = d.variant.get(("workers", v))
        if rr:
            cmds.append(f"# {VARIANT_NAMES[v].replace('`', '')}\n{rr[0]['server_command']}")
    gen = next((r.get("generator_command") for r in w if r.get("generator_command")), None)
    if gen:
        cmds.append("# the generator (PID: the server's; --tree adds its children)\n" + gen)
    rs = ", ".join(f"{v:,.0f}" for v in common.values())
    r0 = next((r["result"] for r in w if ok(r)), {})
    first = r0["steps"][0]["rate"] if r0.get("steps") else 0
    return "\n".join([
        "### workers — the 10 rooms × 10 clients ladder against `--workers 1` and `--workers 2` (Redis bus)\n",
        "Machine capacity: the same ladder as tput10x10 (the same rates, 200 × 1.5^k updates/s, "
        f"here from {first:,.0f}), against our server in one process and in two worker processes "
        "sharing the listening socket, with a fresh SQLite file and persistence on. The kernel "
        "hands each connection to whichever worker accepts it, so a room's clients are spread over "
        "both workers and most deliveries cross the Redis bus. **Server CPU** here is the whole "
        "process tree (the supervisor, its multiprocessing resource tracker and the workers, "
        "/proc/PID/stat of each); Redis's own CPU (its /proc/PID/stat; the Redis server is shared "
        "with other jobs) is beside it. The generator runs on the same 2 cores: with two workers "
        "busy it competes with them, which is the machine-level limit being measured. The "
        "reference is one process (it has no cluster mode); its row is the tput10x10 ladder of "
        "this suite. Connections per worker are the worker's socket descriptors mid-run minus "
        "before.\n",
        tab,
        "",
        (f"The common step is the highest rate both our variants sustained in the same repetition "
         f"({rs} updates/s).\n" if common else ""),
        "```\n" + "\n".join(cmds) + "\n```\n",
    ])  # fmt: skip


def bus_share(r: Run, index: int) -> float | None:
    """Server CPU µs per update of the index-th server (0 = A, 1 = B) of a bus run."""
    res_ = r["result"]
    each = res_.get("server_cpu_s_each")
    if not each:
        return res_["server_cpu_us_per_update"] if index == 0 else None
    total = sum(e[1] for e in each)
    if index >= len(each):
        return None
    return res_["server_cpu_us_per_update"] * each[index][1] / total if total else 0.0


def section_bus(d: Data) -> str:
    if not any(d.variant.get(("bus", v)) for v in ("nobus", "same", "cross")):
        return ""
    per = res("server_cpu_us_per_update")
    base = d.vmed("bus", "nobus", per)
    rows = []
    for v in ("nobus", "same", "cross"):
        if not d.variant.get(("bus", v)):
            continue
        m = d.vmed("bus", v, per)
        rows.append([
            VARIANT_NAMES[v], runs_cell(d, "bus", v),
            cell(d.vvalues("bus", v, res("p50_ms"))),
            cell(d.vvalues("bus", v, res("p95_ms"))),
            cell(d.vvalues("bus", v, res("p99_ms"))),
            cell(d.vvalues("bus", v, res("max_ms"))),
            cell(d.vvalues("bus", v, res("delivered_frac")), 4),
            cell(d.vvalues("bus", v, per), 0),
            ("–" if v == "nobus" or m is None or base is None else f"{m - base:+,.0f}"),
            cell(d.vvalues("bus", v, lambda r: bus_share(r, 0)), 0),
            cell(d.vvalues("bus", v, lambda r: bus_share(r, 1)), 0) if v != "nobus" else "–",
            cell(d.vvalues("bus", v, res("redis_cpu_us_per_update")), 0),
            cell(d.vvalues("bus", v, res("generator_cpu_pct")), 0),
            cell(d.vvalues("bus", v, res("host_background_cpu_pct")), 0),
        ])  # fmt: skip
    tab = table([
        "configuration", "runs", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)", "delivered",
        "server CPU µs / update (all servers)", "… minus no bus (median)", "of which A", "of which B",
        "Redis CPU µs / update", "generator CPU %", "host background CPU %",
    ], rows)  # fmt: skip
    r0 = next((r["result"] for v in ("cross", "same", "nobus") for r in d.vgood("bus", v)), {})
    cmds = []
    for v in ("nobus", "cross"):
        rr = d.variant.get(("bus", v))
        if rr:
            cmds.append(f"# {VARIANT_NAMES[v]}\n" + "\n".join(rr[0].get("server_commands", [rr[0]["server_command"]])))
            if rr[0].get("generator_command"):
                cmds.append(rr[0]["generator_command"])
    cross, same = d.vmed("bus", "cross", res("p99_ms")), d.vmed("bus", "same", res("p99_ms"))
    summary = []
    if cross is not None:
        summary.append(
            f"An edit typed on a client of process A reaches a client of process B in "
            f"**p50 {num(d.vmed('bus', 'cross', res('p50_ms')))} ms, p99 {num(cross)} ms** "
            f"(same process, on the bus: p50 {num(d.vmed('bus', 'same', res('p50_ms')))} ms, p99 {num(same)} ms; "
            f"no bus: p50 {num(d.vmed('bus', 'nobus', res('p50_ms')))} ms, "
            f"p99 {num(d.vmed('bus', 'nobus', res('p99_ms')))} ms).")  # fmt: skip
    for v, what in (("same", "publishing every update (all clients on one process)"),
                    ("cross", "carrying every update to the other process")):
        m = d.vmed("bus", v, per)
        if m is not None and base is not None:
            summary.append(f"The bus costs **{m - base:+,.0f} µs of server CPU per update** for {what} "
                           f"({num(m, 0)} against {num(base, 0)} µs without it), plus "
                           f"{num(d.vmed('bus', v, res('redis_cpu_us_per_update')), 0)} µs in Redis.")
    return "\n".join([
        f"### bus — what the Redis bus costs: {r0.get('rooms', 0)} rooms × {r0.get('clients', 0)} clients "
        f"(1 writer + {r0.get('clients', 1) - 1} readers), {r0.get('rate', 0):,} updates/s in total\n",
        "With `--workers` the kernel picks the worker, so this uses two separate servers of ours "
        "on two ports, sharing the SQLite file and Redis (what `--workers` does inside one "
        "supervisor): **cross** puts every writer on A and its readers on B, so each update goes "
        "client → A → Redis → B → clients; **same** runs the same two servers with every client "
        "on A (A still publishes each update, B holds nothing); **no bus** is one server without "
        "`--redis-url`. Latency is the writer's send → a reader's receive, both in the one "
        "generator process (no clock skew). CPU per update is the servers' CPU (A + B, "
        "/proc/PID/stat) over the measured window divided by the updates delivered in it; the "
        "update count is the same in all three, and so are the deliveries (9 per update), so the "
        "difference to no bus is what the bus adds. Redis's CPU is measured beside it (shared with "
        "other jobs).\n",
        tab,
        "",
        " ".join(summary) + ("\n" if summary else ""),
        "```\n" + "\n".join(cmds) + "\n```\n",
    ])  # fmt: skip


# ------------------------------------------------------------------------------------------
# issue 16: the targets table, computed from the records, and what limits each one not met

# The scenarios @hocuspocus/server can run (all but our cluster modes and the ours-only
# persistence runs); its target is met when every one of them that this suite ran has its runs.
HOCUS_SCENARIOS = (
    "connect1k", "connect5k", "connect10k", "idle50k", "fanout", "tput10x10", "tput1x100", "awareness",
    "bigdoc", "bigjoin", "keystroke1k", "keystroke100k", "keystroke1m",
)  # fmt: skip
KEYSTROKE = (("keystroke1k", "1k"), ("keystroke100k", "100k"), ("keystroke1m", "1M"))
TARGET_LABELS = {
    "fanout": "fanout: server CPU per delivery, in every repetition",
    "workers": "`--workers 2` vs `--workers 1`: CPU per delivery, all processes",
    "connect10k": "10,000 connection storm",
    "idle50k": "50,000 idle connections in one process",
    "bigjoin": "100 clients joining a 20 MB document",
    "keystroke": "CPU per keystroke vs history size",
    "hocuspocus": "@hocuspocus/server as a third column",
}


class TargetRow:
    def __init__(self, tid: str, what: str, target: str, met: bool | None, ours: str = "–", ref: str = "–",
                 hp: str = "–", ratio: str = "–", ratio_hp: str = "–"):  # fmt: skip
        self.tid, self.what, self.target, self.met = tid, what, target, met
        self.ours, self.ref, self.hp, self.ratio, self.ratio_hp = ours, ref, hp, ratio, ratio_hp


def safe(get: Callable[[Run], Any], run: Run) -> Any:
    try:
        return get(run)
    except (KeyError, TypeError, IndexError, ZeroDivisionError):
        return None


def per_rep(d: Data, scenario: str, server: str, get: Callable[[Run], Any]) -> dict[int, float | None]:
    return {r["rep"]: safe(get, r) for r in d.good(scenario, server)}


def workers_cpu(d: Data, variant: str) -> dict[int, float | None]:
    """CPU per delivery of each --workers run, summed over its process tree: the fixed-load
    (fanout-style) result of issue 16, or, for a ladder, the step both variants sustained."""
    common = workers_common(d)
    out: dict[int, float | None] = {}
    for r in d.vgood("workers", variant):
        res_ = r["result"]
        if "steps" in res_:
            out[r["rep"]] = step_cpu_at(r, common[r["rep"]]) if r["rep"] in common else None
        else:
            out[r["rep"]] = res_.get("server_cpu_us_per_delivery")
    return out


def uses_bus(d: Data, variant: str) -> bool:
    return any("--redis-url" in (r.get("server_command") or "") for r in d.variant.get(("workers", variant), []))


def variant_name(d: Data, v: str) -> str:
    if v == "w2" and d.variant.get(("workers", v)) and not uses_bus(d, v):
        return "Collab `--workers 2`, no bus (each document in one worker)"
    return VARIANT_NAMES.get(v, v)


def targets(d: Data) -> list[TargetRow]:
    rows: list[TargetRow] = []
    hp_ran = any(d.by.get((s, HOCUS)) for s in HOCUS_SCENARIOS)

    def meds(scenario: str, get: Callable[[Run], Any], digits: int | None = None) -> dict[str, str]:
        m = {s: d.med(scenario, s, get) for s in SERVERS}
        return {"ours": num(m[OURS], digits), "ref": num(m[REF], digits), "hp": num(m[HOCUS], digits),
                "ratio": ratio(m[OURS], m[REF]), "ratio_hp": ratio(m[OURS], m[HOCUS])}  # fmt: skip

    def le_ratio(scenario: str, get: Callable[[Run], Any], k: float) -> bool | None:
        o, r = d.med(scenario, OURS, get), d.med(scenario, REF, get)
        return None if o is None or r is None or r == 0 else o / r <= k

    # 1. fanout, judged per repetition: ours and the reference paired by rep
    cpu = res("server_cpu_us_per_delivery")
    o, r = per_rep(d, "fanout", OURS, cpu), per_rep(d, "fanout", REF, cpu)
    reps = sorted({x["rep"] for s in (OURS, REF) for x in d.by.get(("fanout", s), [])})
    ratios = {k: (o[k] / r[k] if o.get(k) is not None and r.get(k) else None) for k in reps}
    measured = [x for x in ratios.values() if x is not None]
    met = None if not measured else all(x is not None and x <= 0.75 for x in ratios.values())
    rows.append(TargetRow(
        "fanout", "server CPU µs / delivery, fanout (median; ratio per repetition)", "≤ 0.75× in every repetition",
        met, **{**meds("fanout", cpu), "ratio": ", ".join(
            f"rep {k + 1}: {'–' if x is None else f'{x:.2f}×'}" for k, x in ratios.items()) or "–"},
    ))  # fmt: skip

    # 2. --workers 2 vs --workers 1, CPU per delivery over the whole process tree
    w1, w2 = workers_cpu(d, "w1"), workers_cpu(d, "w2")
    m1, m2 = median(w1.values()), median(w2.values())
    split = ", ".join(split_cell(x) for x in d.vgood("workers", "w2"))
    per = [f"{w2[k] / w1[k]:.2f}×" for k in sorted(w1.keys() & w2.keys()) if w1[k] and w2[k] is not None]
    bus = uses_bus(d, "w2")
    met = None if m1 is None or m2 is None else (m2 / m1 <= 1.1 and not bus)
    ladder = any("steps" in x["result"] for x in d.vgood("workers", "w2"))
    failed = [f"{v} {n}" for v in ("w1", "w2")
              if (n := len(d.variant.get(("workers", v), [])) - len(d.vgood("workers", v)))]  # fmt: skip
    rows.append(TargetRow(
        "workers", "server CPU µs / delivery, `--workers 2` ÷ `--workers 1`"
        + (" (the ladder's common step)" if ladder else "") + (", **with the Redis bus**" if bus else "")
        + (f"; client connections per worker, per run: {split}" if split else "")
        + (f"; failed runs: {', '.join(failed)}" if failed else ""),
        "≤ 1.10×, no bus", met, ours=f"w1 {num(m1)}, w2 {num(m2)}", ref="n/a (one process)",
        hp="n/a" if hp_ran else "–",
        ratio=ratio(m2, m1) + (f" (per rep: {', '.join(per)})" if len(per) > 1 else ""),
    ))  # fmt: skip

    # 3. the 10,000 connection storm
    for key, label in (("all_synced_ms", "time until all synced (ms)"), ("handshake_p99_ms", "handshake p99 (ms)")):
        rows.append(TargetRow("connect10k", f"10,000 connections: {label}", "≤ 1.0×",
                              le_ratio("connect10k", res(key), 1.0), **meds("connect10k", res(key))))

    # 4. 50,000 idle connections in one process
    kb = res("rss_per_conn_kb")
    every = d.by.get(("idle50k", OURS), [])
    good = d.good("idle50k", OURS)
    held = bool(good) and len(good) == len(every) and all(
        x["result"].get("n", 0) >= 50000 and not x["result"].get("failures")
        and x["result"].get("synced", x["result"].get("n")) == x["result"].get("n") for x in good
    )  # fmt: skip
    ours_kb = d.med("idle50k", OURS, kb)
    n = first_result(d, "idle50k").get("n")
    cap = next((x["n_capped_by_nofile_limit"] for x in every if x.get("n_capped_by_nofile_limit")), None)
    fails = sum(x["result"].get("failures") or 0 for x in good)
    rows.append(TargetRow(
        "idle50k", f"RSS per idle connection (KB), {n or 50000:,} held"
        + (f" (capped: descriptor limit {cap:,})" if cap else "") + "; our failures, all runs: "
        + (f"{fails:,}" if good else "–"), "≤ 6 KB each at 50,000, 0 failures",
        None if ours_kb is None else (ours_kb <= 6 and held), **meds("idle50k", kb, 1),
    ))  # fmt: skip

    # 5. 100 clients joining a 20 MB document at once
    bj = first_result(d, "bigjoin")
    size = f"{bj['doc_bytes'] / 1e6:.0f} MB" if bj.get("doc_bytes") else "20 MB"
    joiners = bj.get("joiners", 100)
    for key, label in (("all_synced_ms", f"time until all {joiners} synced (ms)"), ("peak_rss_mb", "peak RSS (MB)")):
        rows.append(TargetRow("bigjoin", f"{size} join: {label}", "≤ 0.5×",
                              le_ratio("bigjoin", res(key), 0.5), **meds("bigjoin", res(key))))

    # 6. CPU per keystroke against the history's size
    ks = res("server_cpu_us_per_keystroke")
    sizes = {s: {label: d.med(sc, s, ks) for sc, label in KEYSTROKE} for s in SERVERS}

    def sizes_cell(s: str) -> str:
        v = sizes[s]
        return "–" if all(x is None for x in v.values()) else ", ".join(f"{k}: {num(x)}" for k, x in v.items())

    a, b = sizes[OURS]["1k"], sizes[OURS]["1M"]
    rows.append(TargetRow(
        "keystroke", "server CPU µs / keystroke at 1k, 100k, 1M characters of history; ratio: ours 1M ÷ 1k",
        "< 2× from 1k to 1M", None if a is None or b is None or a == 0 else b / a < 2,
        ours=sizes_cell(OURS), ref=sizes_cell(REF), hp=sizes_cell(HOCUS), ratio=ratio(b, a),
    ))  # fmt: skip
    rows.append(TargetRow("keystroke", "server CPU µs / keystroke at 1M characters of history", "≤ 1.0×",
                          le_ratio("keystroke1m", ks, 1.0), **meds("keystroke1m", ks)))

    # 7. Hocuspocus, a third column in every scenario it supports (that this suite ran)
    ran = [s for s in HOCUS_SCENARIOS if any(d.by.get((s, x)) for x in SERVERS)]
    have = [s for s in ran if d.good(s, HOCUS)]
    missing = [s for s in ran if s not in have]
    rows.append(TargetRow(
        "hocuspocus", f"scenarios with @hocuspocus/server runs: {len(have)} of the {len(ran)} it supports "
        "that this suite ran", "all", None if not hp_ran else not missing, hp=f"{len(have)} of {len(ran)}",
        ratio="missing: " + ", ".join(missing) if missing and hp_ran else "–",
    ))  # fmt: skip
    return rows


def met_cell(m: bool | None) -> str:
    return "not measured" if m is None else ("yes" if m else "**no**")


def targets_table(d: Data, rows: list[TargetRow]) -> str:
    hp = any(d.by.get((s, HOCUS)) for s in HOCUS_SCENARIOS)
    header = ["target", "what (median of runs)", "Collab (ours)", "y-websocket"] + (["Hocuspocus"] if hp else [])
    header += ["ours ÷ y-websocket"] + (["ours ÷ Hocuspocus"] if hp else []) + ["target", "met"]
    out = []
    for r in rows:
        row = [f"`{r.tid}`", r.what, r.ours, r.ref] + ([r.hp] if hp else []) + [r.ratio]
        out.append(row + ([r.ratio_hp] if hp else []) + [r.target, met_cell(r.met)])
    return table(header, out)


def met_summary(rows: list[TargetRow]) -> str:
    ids = list(dict.fromkeys(r.tid for r in rows))
    missed = unmet(rows)
    text = f"**{len(ids) - len(missed)} of {len(ids)} targets met**"
    return text + (f"; not met or not measured: {', '.join(f'`{t}`' for t in missed)}.\n" if missed else ".\n")


def unmet(rows: list[TargetRow]) -> list[str]:
    """The ids of the targets with a row not met (not measured counts as not met), in order."""
    out: list[str] = []
    for r in rows:
        if r.met is not True and r.tid not in out:
            out.append(r.tid)
    return out


def profiles(path: Path = PROFILES) -> dict[str, str]:
    """bench/profiles.md's `## <target id>` sections, verbatim (the text under each heading)."""
    if not path.is_file():
        return {}
    out: dict[str, list[str]] = {}
    key = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            key = line[3:].strip().split()[0].strip("`") if line[3:].strip() else None
            if key is not None:
                out[key] = []
        elif key is not None:
            out[key].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items() if "\n".join(v).strip()}


def section_limits(ids: list[str]) -> str:
    if not ids:
        return ""
    known = profiles()
    parts = ["## What limits it\n",
             "For each target not met: what the profile (py-spy or perf) shows the limit is, from the "
             "hand-written `bench/profiles.md` (its section `## <target id>`).\n"]  # fmt: skip
    for tid in ids:
        parts.append(f"### `{tid}`: {TARGET_LABELS.get(tid, tid)}\n")
        parts.append(known.get(tid) or f"No profile written yet (`bench/profiles.md` has no `## {tid}` section).")
        parts.append("")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------
# headline


def headline(d: Data) -> tuple[str, list[str]]:
    rows = []
    losses = []

    def add(metric: str, o: float | None, r: float | None, target: str,
            met: Callable[[float | None, float | None], bool | None], digits: int | None = None,
            lower_better: bool = True) -> None:  # fmt: skip
        if o is None and r is None:  # a scenario this run did not include (bench/run.py OPTIONAL)
            return
        m = met(o, r)
        rows.append([metric, num(o, digits), num(r, digits), ratio(o, r), target,
                     "–" if m is None else ("yes" if m else "**no**")])
        if m is False:
            losses.append(f"{metric}: ours {num(o, digits)} vs reference {num(r, digits)} ({ratio(o, r)}; target {target})")

    le = lambda k: lambda o, r: None if o is None or r is None else o <= k * r  # noqa: E731
    ge = lambda k: lambda o, r: None if o is None or r is None else o >= k * r  # noqa: E731
    cpu = res("server_cpu_us_per_delivery")
    add("server CPU µs / delivery, fanout", d.med("fanout", OURS, cpu), d.med("fanout", REF, cpu), "≤ 1.0×", le(1))
    for sc, label in (("tput10x10", "10 rooms × 10"), ("tput1x100", "1 room × 100")):
        add(f"server CPU µs / delivery, ladder {label} (common step)",
            median(cpu_common(d, sc, OURS)), median(cpu_common(d, sc, REF)), "≤ 1.0×", le(1))  # fmt: skip
    add("server CPU µs / delivery, awareness", d.med("awareness", OURS, cpu), d.med("awareness", REF, cpu), "≤ 1.0×", le(1))
    for sc, label in (("tput10x10", "10 rooms × 10"), ("tput1x100", "1 room × 100")):
        get = res("max_sustained_deliveries_per_s")
        add(f"max sustained deliveries/s, {label} (p99 ≤ 50 ms)", d.med(sc, OURS, get), d.med(sc, REF, get),
            "≥ 1.5×", ge(1.5), 0)  # fmt: skip
    get = res("max_sustained_deliveries_per_s")
    ref10 = d.med("tput10x10", REF, get)
    # (capacity per machine: the workers ladder of round one; issue 16's workers run a fixed load)
    per_variant = {v: d.vmed("workers", v, get) for v in ("w1", "w2") if d.vgood("workers", v) and is_ladder(d)}
    if per_variant:
        # Workers allowed: the machine's capacity is the better of one process and two.
        best = max(per_variant, key=lambda v: per_variant[v] or 0)
        how = {"w1": "`--workers 1`", "w2": "`--workers 2` + Redis bus"}[best]
        add(f"max sustained deliveries/s per machine, 10 rooms × 10, best of `--workers 1`/`2` ({how})",
            per_variant[best], ref10, "≥ 1.5×", ge(1.5), 0)  # fmt: skip
    if "w2" in per_variant:
        w2 = per_variant["w2"]
        rows.append(["max sustained deliveries/s, 10 rooms × 10, `--workers 2` + Redis bus",
                     num(w2, 0), num(ref10, 0), ratio(w2, ref10), "–", "–"])  # fmt: skip
    if d.vgood("bus", "cross"):
        bp99 = d.vmed("bus", "cross", res("p99_ms"))
        rows.append(["cross-process latency via the Redis bus, A → B: p99 (ms)", num(bp99),
                     "n/a (one process)", "–", "–", "–"])
        per = res("server_cpu_us_per_update")
        c, b = d.vmed("bus", "cross", per), d.vmed("bus", "nobus", per)
        if c is not None and b is not None:
            rows.append(["server CPU µs per update the bus adds (cross-process, A + B − one server)",
                         f"{c - b:+,.0f}", "n/a (one process)", "–", "–", "–"])
    p99 = res("p99_ms")
    f0 = first_result(d, "fanout")
    fan = f"fanout {f0.get('connections', 0):,} conns / {f0.get('rate', 0):,} updates/s" if f0 else "fanout"
    add(f"{fan}: p99 (ms)", d.med("fanout", OURS, p99), d.med("fanout", REF, p99),
        "≤ 5 ms", lambda o, r: None if o is None else o <= 5)  # fmt: skip
    und = [x for x in d.values("fanout", OURS, res("undelivered")) if x is not None]
    und_r = [x for x in d.values("fanout", REF, res("undelivered")) if x is not None]
    if und or und_r:
        rows.append([f"{fan}: undelivered (all runs)", num(sum(und), 0) if und else "–",
                     num(sum(und_r), 0) if und_r else "–", "–", "0", "–" if not und else ("yes" if sum(und) == 0 else "**no**")])
    for sc in ("connect5k", "connect10k"):
        get = res("rss_per_conn_kb")
        add(f"RSS per idle connection at {sc[7:]} (KB)", d.med(sc, OURS, get), d.med(sc, REF, get), "≤ 1.0×", le(1), 1)
    fails = d.values("connect10k", OURS, res("failures"))
    if fails:
        f = sum(x for x in fails if x is not None)
        rows.append(["10,000 idle connections: failures (all runs)", num(f, 0),
                     num(sum(x or 0 for x in d.values("connect10k", REF, res("failures"))), 0), "–", "0",
                     "yes" if f == 0 else "**no**"])  # fmt: skip
    ing = res("ingest_updates_per_s")
    add("bigdoc ingest, updates/s (ours with persistence)", d.med("bigdoc", OURS, ing), d.med("bigdoc", REF, ing),
        "≥ 3×", ge(3), 0)  # fmt: skip
    add("bigdoc: 3 joiners full sync, median (ms)", d.med("bigdoc", OURS, res("join_ms_median")),
        d.med("bigdoc", REF, res("join_ms_median")), "≤ 1.5×", le(1.5), 1)  # fmt: skip
    cold = d.med("persist", OURS, lambda r: r["restore"]["server_load"]["ms"])
    if cold is not None:
        rows.append(["cold restore of the 100k-update document, in the server (ms)", num(cold, 1), "n/a (no store)",
                     "–", "≤ 100 ms", "yes" if cold <= 100 else "**no**"])  # fmt: skip
    if cold is not None and cold > 100:
        losses.append(f"cold restore: {num(cold, 1)} ms (target ≤ 100 ms)")
    died = []
    for sc in ("bigdoc", "persist", "persist_flood"):
        runs = d.by.get((sc, OURS), [])
        if not runs:
            continue
        dead = sum(1 for r in runs if r.get("server_killed") or r.get("server_exit_code") in (-6, -9))
        died.append((sc, dead, len(runs)))
    if died:
        text = ", ".join(f"{sc} {dead}/{n}" for sc, dead, n in died)
        bad = any(dead for _, dead, _ in died)
        rows.append(["runs where our server died (OOM, memory-limit abort) or ignored SIGTERM for 30 s",
                     text, "0 (all runs)", "–", "0", "**no**" if bad else "yes"])
        if bad:
            losses.append(f"our server died or hung after the 100,000-append ingest: {text} runs (details below)")
    for sc, label in (("persist", "paced ingest"), ("persist_flood", "bigdoc flood")):
        lag = d.med(sc, OURS, res("commit_lag_p99_ms"))
        if lag is None:
            continue
        rows.append([f"commit lag p99, {label} (ms)", num(lag, 0), "n/a", "–",
                     "≤ 50 ms (commit window)", "yes" if lag <= 50 else "**no**"])
        if lag > 50:
            losses.append(f"commit lag p99, {label}: {num(lag, 0)} ms (commit window 50 ms)")
    return table(["metric (median of runs)", "Collab (ours)", "y-websocket", "ours ÷ ref", "target", "met"], rows), losses


# ------------------------------------------------------------------------------------------
# charts


def charts(d: Data, img: Path, rel: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    img.mkdir(parents=True, exist_ok=True)
    made = []

    def log_ms_axis(ax: Any) -> None:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=()))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110})

    # 1. latency distribution: fanout and awareness, every run
    scen = [s for s in ("fanout", "awareness") if first_result(d, s)]  # (a scenario whose runs all failed: none)
    if scen:
        fig, axes = plt.subplots(1, len(scen), figsize=(6.2 * len(scen), 4.4), squeeze=False)
        for ax, s in zip(axes[0], scen, strict=True):
            for server in d.servers(s):
                for i, r in enumerate(d.good(s, server)):
                    curve = r["result"].get("latency_curve") or []
                    if not curve:
                        continue
                    ps = [min(p, 0.99999) for p, _ in curve]
                    ax.plot(ps, [v for _, v in curve], color=COLORS[server], alpha=0.85, lw=1.6,
                            marker="o", ms=2.5, label=NAMES[server] if i == 0 else None)  # fmt: skip
            ax.set_xscale("logit")
            log_ms_axis(ax)
            ax.set_xlim(0.01, 0.99999)
            ax.set_xticks([0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999])
            ax.set_xticklabels(["p1", "p10", "p50", "p90", "p99", "p99.9", "p99.99"])
            ax.minorticks_off()
            ax.set_xlabel("percentile (last point: max)")
            ax.set_ylabel("latency, send → receive (ms, log)")
            r0 = first_result(d, s)
            if s == "fanout":
                head = f"fanout: {r0['connections']:,} conns, {r0['rate']:,} updates/s"
            else:
                head = f"awareness: {r0['connections']:,} clients at {r0['hz']} Hz"
            ax.set_title(head + " (one line per run)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench-latency.png")
        plt.close(fig)
        made.append(f"![latency distribution]({rel}/bench-latency.png)")

    # 2. ladders: p99 and server CPU per delivery against deliveries/s
    scen = [s for s in ("tput10x10", "tput1x100") if first_result(d, s)]
    if scen:
        fig, axes = plt.subplots(2, len(scen), figsize=(6.2 * len(scen), 7.2), squeeze=False)
        for col, s in enumerate(scen):
            for server in d.servers(s):
                for i, r in enumerate(d.good(s, server)):
                    steps = [st for st in r["result"]["steps"] if not st.get("rerun")]
                    x = [st["deliveries_per_s"] / 1000 for st in steps]
                    axes[0][col].plot(x, [st["p99_ms"] for st in steps], color=COLORS[server], marker="o",
                                      ms=3, lw=1.4, alpha=0.85, label=NAMES[server] if i == 0 else None)
                    axes[1][col].plot(x, [st["server_cpu_us_per_delivery"] for st in steps], color=COLORS[server],
                                      marker="o", ms=3, lw=1.4, alpha=0.85, label=NAMES[server] if i == 0 else None)  # fmt: skip
            label = {"tput10x10": "10 rooms × 10 clients", "tput1x100": "1 room × 100 clients"}[s]
            axes[0][col].axhline(50, color="red", ls="--", lw=1)
            log_ms_axis(axes[0][col])
            axes[0][col].set_title(f"ladder {label}: p99 latency per step")
            axes[0][col].set_ylabel("p99 (ms, log); red: 50 ms limit")
            axes[1][col].set_title(f"ladder {label}: server CPU per delivery")
            axes[1][col].set_ylabel("server CPU µs / delivery")
            axes[1][col].set_ylim(bottom=0)
            for row in (0, 1):
                axes[row][col].set_xlabel("deliveries/s (thousands)")
                axes[row][col].legend()
        fig.tight_layout()
        fig.savefig(img / "bench-ladders.png")
        plt.close(fig)
        made.append(f"![throughput ladders]({rel}/bench-ladders.png)")

    # 2b. cluster mode: the workers ladder against the reference's tput10x10 ladder
    if is_ladder(d):
        fig, axes = plt.subplots(1, 2, figsize=(12.4, 4.4))
        series = [(VARIANT_NAMES[v].replace("`", ""), COLORS[v], d.vgood("workers", v)) for v in ("w1", "w2")]
        series.append((NAMES[REF] + " (one process)", COLORS[REF], d.good("tput10x10", REF)))
        for name, color, rs in series:
            for i, r in enumerate(rs):
                steps = [st for st in r["result"]["steps"] if not st.get("rerun")]
                x = [st["deliveries_per_s"] / 1000 for st in steps]
                axes[0].plot(x, [st["p99_ms"] for st in steps], color=color, marker="o", ms=3, lw=1.4,
                             alpha=0.85, label=name if i == 0 else None)
                axes[1].plot(x, [st["server_cpu_us_per_delivery"] for st in steps], color=color, marker="o",
                             ms=3, lw=1.4, alpha=0.85, label=name if i == 0 else None)  # fmt: skip
        axes[0].axhline(50, color="red", ls="--", lw=1)
        log_ms_axis(axes[0])
        axes[0].set_title("10 rooms × 10 clients: p99 latency per step")
        axes[0].set_ylabel("p99 (ms, log); red: 50 ms limit")
        axes[1].set_title("server CPU per delivery (all server processes)")
        axes[1].set_ylabel("server CPU µs / delivery")
        axes[1].set_ylim(bottom=0)
        for ax in axes:
            ax.set_xlabel("deliveries/s (thousands)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench-workers.png")
        plt.close(fig)
        made.append(f"![workers ladder]({rel}/bench-workers.png)")
    elif d.vgood("workers", "w1") or d.vgood("workers", "w2"):
        made.append(chart_workers(d, plt, img, rel))

    # 3. CPU per delivery, per scenario
    groups = []
    for s, label, get in (
        ("fanout", "fanout", lambda srv: d.values("fanout", srv, res("server_cpu_us_per_delivery"))),
        ("tput10x10", "ladder 10×10\ncommon step", lambda srv: cpu_common(d, "tput10x10", srv)),
        ("tput1x100", "ladder 1×100\ncommon step", lambda srv: cpu_common(d, "tput1x100", srv)),
        ("awareness", "awareness\n100 × 10 Hz", lambda srv: d.values("awareness", srv, res("server_cpu_us_per_delivery"))),
    ):  # fmt: skip
        if first_result(d, s):
            groups.append((label, {srv: [v for v in get(srv) if v is not None] for srv in SERVERS}))
    if groups:
        fig, ax = plt.subplots(figsize=(8.5, 4.6))
        shown = [srv for srv in SERVERS if any(vals[srv] for _, vals in groups)]
        w = 0.8 / max(len(shown), 1)
        for k, srv in enumerate(shown):
            xs, meds, lo, hi, tops = [], [], [], [], []
            for i, (_, vals) in enumerate(groups):
                v = vals[srv]
                if not v:
                    continue
                m = statistics.median(v)
                xs.append(i + (k - (len(shown) - 1) / 2) * w)
                meds.append(m)
                lo.append(m - min(v))
                hi.append(max(v) - m)
                tops.append(max(v))
            bars = ax.bar(xs, meds, w, yerr=[lo, hi], capsize=3, color=COLORS[srv], label=NAMES[srv])
            for b, m, top in zip(bars, meds, tops, strict=True):
                ax.annotate(f"{m:.1f}", (b.get_x() + b.get_width() / 2, top), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
        for i, (_, vals) in enumerate(groups):
            if vals[OURS] and vals[REF]:
                rr = statistics.median(vals[OURS]) / statistics.median(vals[REF])
                text = f"{rr:.2f}×"
                if vals[HOCUS]:
                    text += f" / {statistics.median(vals[OURS]) / statistics.median(vals[HOCUS]):.2f}×"
                top = max(max(v) for v in vals.values() if v)
                ax.annotate(text, (i, top), xytext=(0, 16), textcoords="offset points",
                            ha="center", fontsize=9, fontweight="bold")  # fmt: skip
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[0] for g in groups])
        ax.set_ylabel("server CPU µs per delivered message")
        ax.set_title("Server CPU per delivery (median, bars: min–max; bold: ours ÷ reference"
                     + (" / ours ÷ Hocuspocus)" if HOCUS in shown else ")"))
        ax.margins(y=0.2)
        ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench-cpu.png")
        plt.close(fig)
        made.append(f"![CPU per delivery]({rel}/bench-cpu.png)")

    # 4. memory per idle connection
    sizes = [(s, first_result(d, s).get("n") or int(re.sub(r"\D", "", s)) * 1000)
             for s in ("connect1k", "connect5k", "connect10k", "idle50k") if first_result(d, s)]  # fmt: skip
    if sizes:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for srv in SERVERS:
            xs, per, tot, lo, hi = [], [], [], [], []
            for s, n in sizes:
                v = [x for x in d.values(s, srv, res("rss_per_conn_kb")) if x is not None]
                t = [x for x in d.values(s, srv, res("rss_after_mb")) if x is not None]
                if not v:
                    continue
                xs.append(n)
                per.append(statistics.median(v))
                lo.append(statistics.median(v) - min(v))
                hi.append(max(v) - statistics.median(v))
                tot.append(statistics.median(t))
            if xs:
                axes[0].errorbar(xs, per, yerr=[lo, hi], color=COLORS[srv], marker="o", capsize=3, label=NAMES[srv])
                axes[1].plot(xs, tot, color=COLORS[srv], marker="o", label=NAMES[srv])
                for x, y in zip(xs, per, strict=True):
                    axes[0].annotate(f"{y:.1f}", (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
        r0 = first_result(d, sizes[0][0])
        per_room = f"{r0['n'] / r0['rooms']:g} per room" if r0.get("n") and r0.get("rooms") else "idle"
        axes[0].set_title(f"RSS growth per idle connection ({per_room})")
        axes[0].set_ylabel("KB per connection")
        axes[0].set_ylim(0, axes[0].get_ylim()[1] * 1.15)
        wide = sizes[-1][1] / sizes[0][1] > 20  # 1k … 50k: a log axis keeps the small ones apart
        axes[1].set_title("server RSS with the connections open")
        axes[1].set_ylabel("MB")
        axes[1].set_ylim(0, axes[1].get_ylim()[1] * 1.1)
        for ax in axes:
            if wide:
                ax.set_xscale("log")
                ax.minorticks_off()
            else:
                ax.set_xlim(0, sizes[-1][1] * 1.1)
            ax.set_xlabel("idle connections" + (" (log)" if wide else ""))
            ax.set_xticks([n for _, n in sizes])
            ax.set_xticklabels([f"{n / 1000:g}k" for _, n in sizes])
            ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench-memory.png")
        plt.close(fig)
        made.append(f"![memory per connection]({rel}/bench-memory.png)")

    # 5. bigdoc ingest progress
    if first_result(d, "bigdoc") or first_result(d, "persist"):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        series = [("bigdoc", OURS, NAMES[OURS]), ("bigdoc", REF, NAMES[REF]),
                  ("persist", OURS, NAMES[OURS] + ", paced, polling /healthz (persistence)")]
        for s, srv, name in series:
            for i, r in enumerate(d.good(s, srv)):
                curve = r["result"].get("ingest_curve") or []
                if not curve:
                    continue
                xs = [0] + [c[1] / 1000 for c in curve]
                ys = [0] + [c[0] / 1000 for c in curve]
                ax.plot(xs, ys, color=COLORS["persist" if s == "persist" else srv], marker="o", ms=3,
                        ls="--" if s == "persist" else "-", label=name if i == 0 else None)  # fmt: skip
        ax.set_xlabel("seconds since the first update")
        ax.set_ylabel("updates applied (thousands)")
        ax.set_title(f"bigdoc: {first_result(d, 'bigdoc').get('updates', 0):,} appends from one client (one line per run)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench-bigdoc.png")
        plt.close(fig)
        made.append(f"![bigdoc ingest]({rel}/bench-bigdoc.png)")

    if first_result(d, "bigjoin"):
        made.append(chart_bigjoin(d, plt, img, rel))
    if any(first_result(d, sc) for sc, _ in KEYSTROKE):
        made.append(chart_keystroke(d, plt, img, rel))
    return made


def bars(ax: Any, labels: list[str], values: list[list[float]], colors: list[str], fmt: str = "{:,.0f}") -> None:
    """One bar per label: the median, whiskers min–max, the median written above."""
    for i, (v, color) in enumerate(zip(values, colors, strict=True)):
        if not v:
            continue
        m = statistics.median(v)
        ax.bar(i, m, 0.6, yerr=[[m - min(v)], [max(v) - m]], capsize=4, color=color)
        ax.annotate(fmt.format(m), (i, max(v)), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)


def chart_bigjoin(d: Data, plt: Any, img: Path, rel: str) -> str:
    servers = [s for s in d.servers("bigjoin") if d.good("bigjoin", s)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [NAMES[s].replace(" (", "\n(") for s in servers]
    colors = [COLORS[s] for s in servers]
    for ax, key, what in ((axes[0], "all_synced_ms", "time until all joiners synced (ms)"),
                          (axes[1], "peak_rss_mb", "server peak RSS during the join (MB)")):  # fmt: skip
        vals = [[x for x in d.values("bigjoin", s, res(key)) if x is not None] for s in servers]
        bars(ax, labels, vals, colors)
        ax.set_ylabel(what)
    b = first_result(d, "bigjoin")
    size = f"{b['doc_bytes'] / 1e6:.0f} MB" if b.get("doc_bytes") else "a big"
    fig.suptitle(f"bigjoin: {b.get('joiners', 100)} clients join {size} document at once "
                 "(median, bars: min–max)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(img / "bench-bigjoin.png")
    plt.close(fig)
    return f"![bigjoin]({rel}/bench-bigjoin.png)"


def chart_keystroke(d: Data, plt: Any, img: Path, rel: str) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    ks = res("server_cpu_us_per_keystroke")
    for srv in SERVERS:
        xs, meds, lo, hi = [], [], [], []
        for sc, _ in KEYSTROKE:
            v = [x for x in d.values(sc, srv, ks) if x is not None]
            chars = [x for x in d.values(sc, srv, res("history_chars")) if x is not None]
            if not v or not chars:
                continue
            m = statistics.median(v)
            xs.append(chars[0])
            meds.append(m)
            lo.append(m - min(v))
            hi.append(max(v) - m)
        if xs:
            ax.errorbar(xs, meds, yerr=[lo, hi], color=COLORS[srv], marker="o", capsize=3, label=NAMES[srv])
            for x, y in zip(xs, meds, strict=True):
                ax.annotate(f"{y:,.0f}", (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ticks = sorted({c for sc, _ in KEYSTROKE for s in SERVERS for c in d.values(sc, s, res("history_chars")) if c})
    if ticks:
        ax.minorticks_off()
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{c / 1e6:g}M" if c >= 1e6 else f"{c / 1000:g}k" for c in ticks])
    ax.set_xlabel("characters of history in the document (log)")
    ax.set_ylabel("server CPU µs per keystroke")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.set_title("CPU per keystroke against the history's size (median, bars: min–max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(img / "bench-keystroke.png")
    plt.close(fig)
    return f"![CPU per keystroke]({rel}/bench-keystroke.png)"


def chart_workers(d: Data, plt: Any, img: Path, rel: str) -> str:
    variants = [v for v in ("w1", "w2") if d.vgood("workers", v)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    vals = [[x for x in d.vvalues("workers", v, res("server_cpu_us_per_delivery")) if x is not None] for v in variants]
    bars(axes[0], [f"--workers {v[1]}" for v in variants], vals, [COLORS[v] for v in variants], "{:.1f}")
    axes[0].set_ylabel("server CPU µs / delivery (all processes)")
    axes[0].set_title("CPU per delivery (median, bars: min–max)")
    # client connections per worker, one stacked bar per run
    labels, x = [], 0
    for v in variants:
        for r in d.vgood("workers", v):
            socks = [p["sockets"] for p in r.get("processes", []) if p["sockets"]]
            bottom = 0
            for k, n in enumerate(socks):
                axes[1].bar(x, n, 0.6, bottom=bottom, color=COLORS[v], alpha=1 - 0.35 * (k % 2),
                            edgecolor="white")  # fmt: skip
                axes[1].annotate(f"{n:,}", (x, bottom + n / 2), ha="center", va="center", fontsize=8)
                bottom += n
            labels.append(f"w{v[1]} rep {r['rep'] + 1}")
            x += 1
    axes[1].set_xticks(range(len(labels)))
    axes[1].set_xticklabels(labels, fontsize=8)
    axes[1].set_ylabel("client connections")
    axes[1].set_title("client connections per worker process, per run")
    fig.suptitle(f"workers: {variant_name(d, 'w2').replace('`', '')} against one process")
    fig.tight_layout()
    fig.savefig(img / "bench-workers.png")
    plt.close(fig)
    return f"![workers]({rel}/bench-workers.png)"


# ------------------------------------------------------------------------------------------


def problems(d: Data) -> list[str]:
    out = []
    for r in d.runs:
        where = f"{r['scenario']} on {NAMES[r['server']]}, rep {r['rep'] + 1}"
        if r.get("variant"):
            where = f"{r['scenario']} on {variant_name(d, r['variant'])}, rep {r['rep'] + 1}"
        if r.get("peers_lost"):
            out.append(f"- {where}: a cluster peer was declared gone {r['peers_lost']} times during the run "
                       "(`cluster peer ... is gone`: its heartbeats stopped for longer than `--peer-timeout-s`)")
        best = (r.get("result") or {}).get("best") or {}
        if best.get("server_processes_changed") or (r.get("result") or {}).get("server_processes_changed"):
            out.append(f"- {where}: a server process exited or started during the measurement")
        if "error" in r:
            out.append(f"- {where}: run failed: `{r['error']}`")
        res_ = r.get("result") or {}
        if "error" in res_:
            out.append(f"- {where}: generator failed: `{res_['error'][:300]}`")
        if res_.get("close_codes"):
            out.append(f"- {where}: connections closed by the server (code: count): `{json.dumps(res_['close_codes'])}`")
        if res_.get("build_error"):
            out.append(f"- {where}: build failed: {res_['build_error']}")
        if res_.get("failures"):
            out.append(f"- {where}: {res_['failures']} connections failed to sync")
        if res_.get("connect_failures"):
            out.append(f"- {where}: {res_['connect_failures']} connections failed to sync")
        lp = r.get("server_log_problems") or {}
        if lp:
            first = "; ".join(x[:200] for x in lp.get("first", [])[:3])
            out.append(f"- {where}: server logged {lp['count']} warning/error lines, e.g. `{first}`")
        if r["server"] == OURS and (r.get("server_killed") or r.get("server_exit_code") not in (0, None)):
            out.append(f"- {where}: server exit: {exit_text(r.get('server_exit_code'), r.get('server_killed'))}"
                       + (f" (`{r['server_killed']}`)" if r.get("server_killed") else ""))
        rr = r.get("restore") or {}
        if rr.get("restart_killed") or rr.get("restart_exit_code") not in (0, None):
            out.append(f"- {where}: restarted server exit: {exit_text(rr.get('restart_exit_code'), rr.get('restart_killed'))}")
        failed_joins = [j["error"] for j in res_.get("joins", []) + rr.get("joins", []) if j.get("error")]
        if failed_joins:
            out.append(f"- {where}: {len(failed_joins)} joins failed: `{'`, `'.join(sorted(set(failed_joins)))}`")
    return out


def reps_text(meta: dict[str, Any]) -> str:
    """"3 repetitions of every scenario", or which scenarios ran fewer (bench/run.py ONE_REP)."""
    n = meta.get("reps")
    fewer = {k: v["reps"] for k, v in meta.get("scenarios", {}).items() if v.get("reps") not in (None, n)}
    if not fewer:
        return f"{n} repetitions of every scenario"
    names = "; ".join(f"{'once' if v == 1 else f'{v} times'}: {', '.join(k for k in fewer if fewer[k] == v)}"
                      for v in sorted(set(fewer.values())))  # fmt: skip
    return f"{n} repetitions of every scenario of issue 16's targets (the others {names})"


def ladder_timing(meta: dict[str, Any]) -> str:
    flags = (meta.get("scenarios", {}).get("tput10x10") or {}).get("flags", [])
    get = lambda k, dflt: flags[flags.index(k) + 1] if k in flags else dflt  # noqa: E731
    return f"{int(get('--warmup-ms', 1000)) / 1000:g} s warm-up + {int(get('--step-ms', 3000)) / 1000:g} s measured"


def render(meta: dict[str, Any], runs: list[Run], store: dict[str, Any] | None, end: dict[str, Any],
           md: Path, img: Path) -> str:  # fmt: skip
    d = Data(runs)
    rel = os.path.relpath(img, md.parent)
    m = meta.get("machine", {})
    made = charts(d, img, rel)
    head, losses = headline(d)
    goals = targets(d)
    hp_ran = any(r["server"] == HOCUS for r in runs)
    quick = meta.get("mode") == "quick"
    bg = [r["result"].get("host_background_cpu_pct") for r in runs if ok(r) and "host_background_cpu_pct" in r["result"]]
    bg = [x for x in bg if x is not None]
    load_start = meta.get("load_at_start", [0, 0, 0])
    elapsed = end.get("elapsed_s")
    vers_py = ", ".join(f"{k} {v}" for k, v in m.get("python_packages", {}).items())
    vers_npm = ", ".join(f"{k} {v}" for k, v in m.get("npm_packages", {}).items())
    parts = [
        "# Benchmarks\n",
        "<!-- generated by bench/report.py from " + os.path.relpath(meta.get("_path", ""), ROOT)
        + "; do not edit by hand: run `make bench` -->\n",
        ("**Quick mode**: every scenario once and scaled down, for development; not for comparison.\n" if quick else ""),
        "Our server (Collab) against the reference y-websocket server (`@y/websocket-server`)"
        + (" and `@hocuspocus/server` with its SQLite extension (it persists, like ours; the reference "
           "does not)" if hp_ran else "")
        + f", {reps_text(meta)}, interleaved: each run gets a fresh server "
        "process, and the order of the servers rotates per repetition, so drift of the shared "
        "machine hits all alike. Cells are median [min–max] over the repetitions; \"÷ ref\" "
        "divides a median by the reference's" + (", \"÷ Hocuspocus\" by Hocuspocus's" if hp_ran else "")
        + ". **Server CPU µs per delivered message** (from "
        "/proc/PID/stat) is the figure to compare: it hardly moves with the load of other jobs, "
        "while latencies and maximum rates do.\n",
        f"Started {meta.get('started')}, {round(elapsed / 60) if elapsed else '?'} minutes of machine time.\n",
        "## Issue 16 targets\n",
        "Computed by bench/report.py from this run's records: medians over the repetitions, except "
        "fanout, which is judged per repetition (ours and the reference paired by repetition). A "
        "target without records shows *not measured* and counts as not met. Each figure's commands "
        "(server and generator) are beside its scenario's table under *Results per scenario*.\n",
        targets_table(d, goals),
        "",
        met_summary(goals),
        section_limits(unmet(goals)),
        "## Machine and versions\n",
        table(["", ""], [
            ["machine", f"{m.get('cores')} cores ({m.get('cpu_model')}), {m.get('mem_gib')} GiB, {m.get('os')}, Linux {m.get('kernel')}, `ulimit -n` {m.get('ulimit_nofile')}"],
            ["load", f"load average {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} at the start; "
                     f"other jobs shared the 2 cores: host background CPU (host busy − server − generator) was "
                     f"{min(bg):.0f}–{max(bg):.0f} % of one core across runs, median {statistics.median(bg):.0f} %" if bg else "?"],
            ["ours", f"Collab {m.get('git_commit')}, Python {m.get('python')}: {vers_py}"],
            ["reference", f"Node {m.get('node')}: {vers_npm}; no persistence (`YPERSISTENCE` unset)"],
            *([["Hocuspocus", "`bench/hocuspocus-server.mjs`: `@hocuspocus/server` with `@hocuspocus/extension-sqlite` "
                "(a fresh SQLite file per run); the generator speaks its protocol (`--protocol hocuspocus`)"]]
              if hp_ran else []),
            ["generator", "bench/ybench.mjs, one Node thread, raw y-websocket over `ws` (no permessage-deflate)"],
        ]),
        "",
    ]
    if head.count("\n") > 1:  # (the header and its rule alone: no round one scenario ran)
        parts += ["## Round one targets\n",
                  "The first round's targets (issue 16's are at the top), against the reference.\n", head, ""]
    if losses:
        parts += ["Where ours misses a round one target:\n", "\n".join(f"- {x}" for x in losses), ""]
    notes = Path(meta.get("_path", "")).with_suffix(".notes.md")
    if notes.is_file():  # hand-written analysis of this run, kept beside its raw results
        parts += [notes.read_text().strip(), ""]
    parts += ["## Charts\n", "\n\n".join(made), ""]
    parts += [
        "## How it is measured\n",
        "- **Load generator** (`bench/ybench.mjs`): raw y-websocket clients; a client sends sync step 1 on "
        "open and counts as synced on the server's sync step 2, like a provider. Document updates "
        "are Y.Text appends encoded by hand (checked byte for byte against Yjs by `node ybench.mjs "
        "selftest`); a receiver recognises an update by the (client, clock) at its head, so no "
        "Y.Doc is needed on the load side. One writer per room appends 8 characters per update; "
        "the others read.",
        "- **Latency** = a client's send → another client's receive, through the server, over "
        "loopback, both stamped with `performance.now()` (CLOCK_MONOTONIC) in the one generator "
        "process: no clock skew. Only sends after the warm-up count; anything not received within "
        "2 s after the last send counts as undelivered.",
        "- **Server CPU** = utime + stime of the server process from /proc/PID/stat over the "
        "measured window (10 ms ticks), divided by the deliveries received in that window "
        "(deliveries to other clients; the reference also echoes each update to its sender, ours "
        "does not, and echoes are not counted). Includes everything the process does meanwhile "
        "(heartbeats, pings, the saver, SQLite).",
        "- **Generator CPU** from `process.cpuUsage()`; a run where it reached 90 % of a core is "
        "flagged `generator-saturated` (then the limit may be the generator, not the server). "
        "**Host background CPU** = busy time of the whole host (/proc/stat) − server − generator.",
        "- **Memory** = VmRSS of the server process after the connections are open and held 3 s, "
        "minus VmRSS before; per connection includes the connection's share of its room (5 per room).",
        f"- **Ladders**: the rate goes up ×1.5 per step ({ladder_timing(meta)}); a step fails "
        "on p99 > 50 ms or < 99 % delivered, and a failed step is re-run once to confirm. \"Max "
        "sustained\" is the last step that passed.",
        ("- **Cluster mode** (ours only): `workers` runs the 10 × 10 ladder against `--workers 1` "
         "and `--workers 2 --redis-url`" if is_ladder(d) else
         "- **Cluster mode** (ours only): `workers` runs a fixed fanout load against `--workers 1` and "
         "`--workers 2` (no bus; `workers_redis`: with `--redis-url`)")
        + " with CPU summed over the whole process tree; `bus` runs "
        "two separate servers on two ports on the same SQLite file and Redis, writers on one and "
        "readers on the other. Both log at `--log-level info` (the cluster's peer lines; there is "
        "no per-update log line at info). Redis's CPU is its process's /proc/PID/stat.",
        ("- **10,000 connections**: the generator (10,000 sockets) and the server (10,000 sockets) "
         "each fit in the 20,000 `ulimit -n` of their own process, so the generator is one process "
         "and nothing is capped." if not meta.get("nofile_limit") else
         f"- **Descriptors**: the bench raises `ulimit -n` of every process it starts (servers and "
         f"generator) to {meta['nofile_limit']:,}, not our server's defaults; the generator is one "
         "process and spreads idle50k's sockets over several loopback source addresses."),
        f"- **Our server's flags**: limits for real clients would refuse one IP address opening "
        f"10,000 connections and sending as fast as it can, so the bench raises them: "
        f"`{' '.join(meta.get('collab_bench_flags', []))}`. Everything else is the default "
        "(persistence on, commit window 50 ms, pings every 20 s).",
        "",
        *(["Server commands (PORT is a free port, RUN a fresh SQLite file per run):\n",
           "```\n" + "\n".join(
               f"# {NAMES[srv]}\n{next(r['server_command'] for r in runs if r['server'] == srv and not r.get('variant'))}"
               for srv in SERVERS if any(r["server"] == srv and not r.get("variant") for r in runs)
           ) + "\n```\n"] if any(not r.get("variant") for r in runs) else []),
        "## Results per scenario\n",
        section_connect(d, meta),
        section_rooms(d, "fanout", title(d, "fanout")),
        section_ladder(d, "tput10x10", title(d, "tput10x10")),
        section_ladder(d, "tput1x100", title(d, "tput1x100")),
        section_rooms(d, "awareness", title(d, "awareness")),
        section_bigdoc(d),
        section_bigjoin(d),
        section_keystroke(d),
        section_persist(d, "persist"),
        section_persist(d, "persist_flood"),
    ]  # fmt: skip
    redis_workers = section_workers_fixed(d, "workers_redis", ("w1", "w2redis"))
    if section_workers(d) or section_bus(d) or redis_workers:
        parts += ["## Cluster mode: both cores, and what the bus costs\n", section_workers(d), redis_workers,
                  section_bus(d)]  # fmt: skip
    probs = problems(d)
    parts += ["## What the servers did wrong during the runs\n",
              "\n".join(probs) if probs else "Nothing: no errors, no closed connections, no failed runs.", ""]
    parts += [section_store(store)]
    parts += [section_events(meta)]
    parts += [section_metrics(meta)]
    parts += [section_hocuspocus()]
    parts += [
        "## Reproduce\n",
        "```sh\nmake bench          # ~40 min: npm ci in bench/, matplotlib into .venv, every scenario × 3, this file\n"
        "make bench-quick    # a few minutes, scaled down, report in bench/results/quick/\n"
        ".venv/bin/python bench/run.py --only fanout,awareness --reps 1   # a subset\n"
        ".venv/bin/python bench/run.py --only workers,workers_redis,bus  # cluster mode (ours only)\n"
        "  # (--redis-url redis://HOST:PORT/DB, default redis://127.0.0.1:6379/0)\n"
        ".venv/bin/python bench/report.py bench/results/suite.jsonl       # redraw from raw results\n"
        ".venv/bin/python bench/report.py bench/results/suite.jsonl --targets  # the issue 16 table alone\n"
        ".venv/bin/python bench/idle_connections.py --connections 1000    # ours alone, Python client\n"
        ".venv/bin/python bench/hocuspocus.py --json bench/results/hocuspocus.json  # the Hocuspocus row (~7 min)\n"
        ".venv/bin/python bench/events.py --json bench/results/events.json  # change feeds alone (~4 min)\n"
        ".venv/bin/python bench/metrics.py --json bench/results/metrics.json  # metrics on vs off (~8 min)\n```\n",
        "Raw results: `bench/results/suite.jsonl` (one JSON line per run, with the exact commands); "
        "server logs of the last run in `bench/results/tmp/` (git-ignored).\n",
    ]  # fmt: skip
    return "\n".join(p for p in parts if p is not None)


def section_events(meta: dict[str, Any]) -> str | None:
    """bench/events.py's figures: from this suite's run of it, else from its last run alone
    (bench/results/events.json, written by `bench/events.py --json`)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from events import markdown

    rec = meta.get("_events")
    alone = ROOT / "bench" / "results" / "events.json"
    if rec is None and meta.get("mode") != "quick" and alone.exists():
        rec = json.loads(alone.read_text())
        rec["_alone"] = True
    if rec is None or "summary" not in rec:
        return None
    text = markdown(rec)
    if rec.get("_alone"):
        text += (
            "\n(These figures are from a run of `bench/events.py` on its own, written to "
            "`bench/results/events.json`, not from this suite's run: `make bench` runs it too.)\n"
        )
    return text


def section_hocuspocus() -> str | None:
    """bench/hocuspocus.py's row (the Hocuspocus protocol against @hocuspocus/server), from its
    last run (bench/results/hocuspocus.json, written by `bench/hocuspocus.py --json`)."""
    import sys

    path = ROOT / "bench" / "results" / "hocuspocus.json"
    if not path.exists():
        return None
    sys.path.insert(0, str(ROOT / "bench"))
    from hocuspocus import markdown

    return markdown(json.loads(path.read_text()))


def section_metrics(meta: dict[str, Any]) -> str | None:
    """bench/metrics.py's figures, from its last run (bench/results/metrics.json)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from metrics import markdown

    path = ROOT / "bench" / "results" / "metrics.json"
    if meta.get("mode") == "quick" or not path.exists():
        return None
    return markdown(json.loads(path.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--md", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--targets", action="store_true",
                        help="print only the issue 16 targets table (markdown) and write nothing")  # fmt: skip
    args = parser.parse_args()
    meta, runs, store, end = load(args.results)
    if args.targets:
        d = Data(runs)
        goals = targets(d)
        print(targets_table(d, goals) + "\n\n" + met_summary(goals), end="")
        return
    meta["_path"] = str(args.results.resolve())
    args.md.parent.mkdir(parents=True, exist_ok=True)
    text = render(meta, runs, store, end, args.md.resolve(), args.img.resolve())
    text = re.sub(r"\n{3,}", "\n\n", text)  # (sections of scenarios that did not run leave blank lines)
    args.md.write_text(text)
    print(f"wrote {args.md} and charts in {args.img}")


if __name__ == "__main__":
    main()
