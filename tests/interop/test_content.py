"""collab/content.py against Yjs itself: documents built by real Yjs in Node
(tests/interop/ycontent.mjs), read by content.py, must read as Yjs's own toJSON() / toDelta()
and with the root types Yjs built them with."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from collab.content import content

from .yjsnode import HERE


def yjs_cases() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["node", str(HERE / "ycontent.mjs")],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=HERE,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def cases(node_available: None) -> list[dict[str, Any]]:
    return yjs_cases()


def test_content_reads_as_yjs_does(cases: list[dict[str, Any]]) -> None:
    assert len(cases) >= 7
    for case in cases:
        update = base64.b64decode(case["update"])
        got = content(update)
        assert got["types"] == case["types"], case["name"]
        assert got["content"] == case["json"], case["name"]
        deltas = content(update, "delta")["content"]
        for root, delta in case["delta"].items():
            assert deltas[root] == delta, (case["name"], root)
