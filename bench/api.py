"""The documents API's figures, through HTTP against a real `collab serve` (SQLite, or the
PostgreSQL database given).

    .venv/bin/python bench/api.py [--updates 100000] [--versions 1000] [--runs 50]
                                  [--database-url postgresql+asyncpg://...]

A document of --updates typing updates is written to the store first (as the editor sends them:
one character each), then the server is started on it and, over HTTP on one keep-alive
connection:
- GET the document as JSON, its text as text/plain and it as one Yjs update while no room holds
  it (each read folds the stored log);
- POST a one-character update (validated, applied, committed before the 200: it opens the
  document), then GET the JSON again (from the room), PATCH its text
  (a minimal diff of one insertion), POST a named version: medians of --runs;
- GET 1,000 versions (one page of --versions) and GET one version's content;
- POST restore of the first version (a version before, the edit, a version after).
Times are wall-clock milliseconds on this machine, client and server on the same 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import PendingUpdate, open_store  # noqa: E402

NAME = "bench/api"
DOC = "/api/documents/bench%2Fapi"


def typing_updates(n: int) -> list[bytes]:
    doc: Doc[Any] = Doc(client_id=7)
    text = doc.get("codemirror", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(n):
        text.insert(len(text), "\n" if i % 60 == 59 else "abcdefghij"[i % 10])
    return updates


async def seed(url: str, n: int) -> None:
    store = await open_store(url)
    try:
        updates = typing_updates(n)
        for i in range(0, n, 5000):
            await store.append([PendingUpdate(NAME, u, 0, "typist") for u in updates[i : i + 5000]])
    finally:
        await store.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def one_char(i: int) -> bytes:
    doc: Doc[Any] = Doc(client_id=1000 + i)
    doc.get("other", type=Text).insert(0, "x")
    update: bytes = doc.get_update()
    return update


def measure(http: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    def timed(method: str, url: str, **kw: Any) -> float:
        started = time.perf_counter()
        response = http.request(method, url, **kw)
        took = time.perf_counter() - started
        assert response.status_code < 300, (url, response.status_code, response.text[:200])
        return ms(took)

    def median(job: Any, runs: int = args.runs) -> float:
        return round(statistics.median(job(i) for i in range(runs)), 2)

    out: dict[str, Any] = {"updates": args.updates}
    out["get_json_first_ms"] = timed("GET", DOC)
    # (a read does not open the document: each folds the stored log, unless a room holds it)
    reads = min(args.runs, 5)
    out["get_json_again_ms"] = median(lambda i: timed("GET", DOC), reads)
    out["get_text_ms"] = median(lambda i: timed("GET", DOC + "/text/codemirror"), reads)
    out["get_update_ms"] = median(lambda i: timed("GET", DOC + "/update"), reads)
    out["post_update_ms"] = median(lambda i: timed("POST", DOC + "/update", content=one_char(i)))
    # the update opened the document: reads now come from the room
    out["get_json_open_ms"] = median(lambda i: timed("GET", DOC))
    text = http.get(DOC + "/text/codemirror").text
    out["patch_text_ms"] = median(
        lambda i: timed("PATCH", DOC, json={"text": {"codemirror": f"{i}" + text}})
    )
    first = http.post(DOC + "/versions", json={"label": "first"}).json()["id"]
    out["post_version_ms"] = median(lambda i: timed("POST", DOC + "/versions", json={}))
    for i in range(args.versions - args.runs - 1):
        http.post(DOC + "/versions", json={"label": f"v{i}"})
    out["list_versions_ms"] = timed("GET", DOC + f"/versions?limit={args.versions}")
    out["versions_listed"] = len(
        http.get(DOC + f"/versions?limit={args.versions}").json()["versions"]
    )
    out["get_version_ms"] = median(lambda i: timed("GET", f"{DOC}/versions/{first}"))
    out["diff_version_ms"] = timed("GET", f"{DOC}/versions/{first}/diff")
    out["restore_ms"] = timed("POST", f"{DOC}/versions/{first}/restore")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        anyio.run(seed, url, args.updates)
        port = free_port()
        command = [sys.executable, "-m", "collab", "serve", "--port", str(port)]
        command += ["--database-url", url, "--log-level", "warning"]
        # versions only when asked: no automatic ones while this runs
        env = {"COLLAB_VERSION_PAUSE_S": "3600", "COLLAB_VERSION_EVERY_S": "3600"}
        proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, trust_env=False, timeout=120) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if http.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                figures = measure(http, args)
        finally:
            proc.terminate()
            proc.wait(30)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"documents API over HTTP ({backend}):")
    for key, value in figures.items():
        print(f"  {key:<20} {value}")


if __name__ == "__main__":
    main()
