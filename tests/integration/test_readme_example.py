"""The README's extension example runs as printed."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Text

from tests.conftest import serving
from tests.procs import ServerProcess
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def readme_extension() -> Any:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Extension" in b)
    namespace: dict[str, Any] = {}
    exec(
        compile(code.replace("app = create_app", "_app = create_app"), "README", "exec"),
        namespace,
    )
    return namespace["Notes"]


async def test_readme_extension_example(settings):
    async with serving(settings, extensions=[readme_extension()()]) as srv:
        client = YClient(srv.url, "new-note", query="token=let-me-in")
        async with client:
            await client.wait_for(
                lambda: str(client.doc.get("codemirror", type=Text)) == "# New note\n"
            )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with websockets.connect(f"{srv.url}/ws/x?token=nope") as ws:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.mark.parametrize("how", ["collab.serve(app)", "uvicorn --ws collab.endpoint:uvicorn_ws"])
async def test_readme_app_serves_websockets_both_ways(tmp_path: Path, how: str):
    """The README's module, run as printed (its __main__) and under the uvicorn CLI."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Extension" in b)
    (tmp_path / "notes_app.py").write_text(code)
    if how.startswith("collab"):
        command = [sys.executable, str(tmp_path / "notes_app.py")]
    else:
        command = [sys.executable, "-m", "uvicorn", "notes_app:app", "--app-dir", str(tmp_path)]
        command += ["--port", "PORT", "--ws", "collab.endpoint:uvicorn_ws"]
    with (tmp_path / "server.log").open("ab") as log:
        proc = ServerProcess(tmp_path, log, command=command)
        await proc.start()
        try:
            client = YClient(proc.url, "new-note", query="token=let-me-in")
            async with client:
                text = client.doc.get("codemirror", type=Text)
                await client.wait_for(lambda: str(text) == "# New note\n")
            assert (await close_of(f"{proc.url}/ws/x?token=nope"))[0] == 4401
        finally:
            proc.terminate()
            assert await proc.wait_exit(20) in (0, -15), proc.log_tail()


def readme_mount() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "app.mount" in b)


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
async def test_readme_mount_in_a_fastapi_app(tmp_path: Path, server: str, monkeypatch):
    """The README's FastAPI app, run as printed by uvicorn (its default WebSocket
    implementation) and hypercorn: clients sync through /collab/ws."""
    pytest.importorskip("fastapi", reason="fastapi (the test extra) is not installed")
    (tmp_path / "host_app.py").write_text(readme_mount())
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{path}" if path else str(tmp_path))
    with (tmp_path / "server.log").open("ab") as log:
        proc = ServerProcess(tmp_path, log)
        if server == "uvicorn":
            proc.command = [sys.executable, "-m", "uvicorn", "host_app:app", "--port", "PORT"]
        else:
            pytest.importorskip("hypercorn", reason="hypercorn (the test extra) is not installed")
            bind = f"127.0.0.1:{proc.port}"
            proc.command = [sys.executable, "-m", "hypercorn", "host_app:app", "--bind", bind]
        proc.health_path = "/collab/healthz"
        await proc.start()
        try:
            base = f"{proc.url}/collab"
            async with YClient(base, "team/notes") as a, YClient(base, "team/notes") as b:
                await b.wait_for(lambda: b.synced)
                a.doc.get("t", type=Text).insert(0, "mounted")
                await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "mounted")
            assert (await close_of(f"{base}/ws/"))[0] == 4404
        finally:
            proc.terminate()
            assert await proc.wait_exit(20) in (0, -15), proc.log_tail()
