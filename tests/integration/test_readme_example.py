"""The README's extension example runs as printed."""

from __future__ import annotations

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
