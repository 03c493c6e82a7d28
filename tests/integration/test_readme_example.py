"""The README's extension example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Text

from tests.conftest import serving
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def readme_extension() -> Any:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Extension" in b)
    namespace: dict[str, Any] = {}
    exec(
        compile(code.replace("app = create_app", "_app = create_app"), "README", "exec"), namespace
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
