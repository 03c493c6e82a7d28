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
    assert sorted(p.name for p in img.glob("*.png")), "no charts drawn"


def _pid() -> int:
    import os

    return os.getpid()  # the in-process test server
