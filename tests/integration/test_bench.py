"""The benchmark tooling works on a fresh clone: the load generator's hand-made Yjs encodings
match Yjs, it measures our real server end to end, and the report renders from results.

The figures themselves come from `make bench` (docs/benchmarks.md), never from a timed test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import require

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench"


def node_ready() -> None:
    require(shutil.which("node") is not None, "node is not installed")
    require((BENCH / "node_modules" / "ws").is_dir(), "bench/node_modules missing: make test")


def test_generator_encodings_match_yjs():
    node_ready()
    done = subprocess.run(
        ["node", "ybench.mjs", "selftest"], cwd=BENCH, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_generator_measures_our_server_end_to_end(server):
    """A small fanout: every update reaches every reader, and the server's CPU is read."""
    node_ready()
    command = ["node", "ybench.mjs", "fanout", "--url", server.url, "--pid", str(_pid())]
    command += ["--prefix", "smoke", "--rooms", "2", "--clients", "4", "--rate", "40"]
    command += ["--duration-ms", "1500", "--warmup-ms", "300"]
    done = await anyio.run_process(command, cwd=BENCH, check=False)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["delivered_frac"] == 1 and result["undelivered"] == 0
    assert result["delivered"] > 0 and result["server_cpu_us_per_delivery"] is not None


def test_report_renders_from_the_committed_results(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (bench/requirements.txt) missing")
    results = BENCH / "results" / "suite.jsonl"
    md, img = tmp_path / "benchmarks.md", tmp_path / "img"
    command = [sys.executable, str(BENCH / "report.py"), str(results), "--md", str(md)]
    done = subprocess.run([*command, "--img", str(img)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = md.read_text()
    for row in ("server CPU µs / delivery, fanout", "RSS per idle connection", "bigdoc ingest"):
        assert row in text
    assert "## Issue 16 targets" in text and "| `fanout` |" in text
    assert sorted(p.name for p in img.glob("*.png")), "no charts drawn"


def _report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(scenario, server, rep, **result):
    return {"type": "run", "scenario": scenario, "server": server, "rep": rep, "result": result}


def test_targets_are_judged_from_the_records():
    """Fanout passes only if every repetition does; a target without runs is not measured; a
    --workers 2 run with the Redis bus does not meet the no-bus target however cheap it is."""
    report = _report()
    runs = []
    for rep, (ours, ref) in enumerate([(30, 50), (36, 45), (20, 40)]):  # 0.60, 0.80, 0.50
        runs.append(_run("fanout", "collab", rep, server_cpu_us_per_delivery=ours))
        runs.append(_run("fanout", "yws", rep, server_cpu_us_per_delivery=ref))
    for rep in range(2):
        for variant, cpu in (("w1", 10.0), ("w2", 10.5)):
            run = _run("workers", "collab", rep, server_cpu_us_per_delivery=cpu)
            run.update(variant=variant, server_command="collab serve --workers " + variant[1])
            if variant == "w2" and rep == 1:
                run["server_command"] += " --redis-url redis://127.0.0.1:6379/0"
            runs.append(run)
    for size, chars, ours in (("1k", 1000, 100.0), ("1m", 1000000, 199.0)):
        runs.append(_run(f"keystroke{size}", "collab", 0, history_chars=chars,
                         server_cpu_us_per_keystroke=ours))  # fmt: skip
    runs.append(
        _run("keystroke1m", "yws", 0, history_chars=10**6, server_cpu_us_per_keystroke=150.0)
    )
    runs.append(_run("fanout", "hocuspocus", 0, server_cpu_us_per_delivery=60))
    rows = report.targets(report.Data(runs))
    met = {}
    for row in rows:
        met.setdefault(row.tid, []).append(row.met)
    assert met["fanout"] == [False]  # rep 2 is 0.80x
    assert "rep 2: 0.80×" in rows[0].ratio
    assert met["workers"] == [False]  # 1.05x, but one run used the bus
    assert met["connect10k"] == [None, None] and met["bigjoin"] == [None, None]
    assert met["idle50k"] == [None]
    assert met["keystroke"] == [True, False]  # grows 1.99x; 199 > 150 at 1M
    assert met["hocuspocus"] == [False]  # fanout only, and the suite also ran keystroke
    assert report.unmet(rows) == ["fanout", "workers", "connect10k", "idle50k", "bigjoin",
                                  "keystroke", "hocuspocus"]  # fmt: skip
    fanout = [r for r in runs if r["scenario"] == "fanout" and r["server"] != "hocuspocus"]
    no_ours = [r for r in fanout if not (r["server"] == "collab" and r["rep"] == 1)]
    assert report.targets(report.Data(no_ours))[0].met is False  # a rep without its pair fails
    assert report.targets(report.Data([r for r in fanout if r["rep"] != 1]))[0].met is True


def test_profiles_sections_are_read_verbatim(tmp_path):
    report = _report()
    path = tmp_path / "profiles.md"
    path.write_text(
        "# Limits\n\nhead\n\n## fanout\n\n`commit`: 40 %\n\n### more\n\nx\n\n## workers\n\n"
    )
    assert report.profiles(path) == {"fanout": "`commit`: 40 %\n\n### more\n\nx"}


def _pid() -> int:
    import os

    return os.getpid()  # the in-process test server
