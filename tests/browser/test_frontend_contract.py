"""The frontend's copies of what the server defines, checked against the server.

The TypeScript cannot import Python, so frontend/src keeps its own close-code table and its own
type for the API's answers. These tests read them from the sources and fail when they drift.
"""

from __future__ import annotations

import re
from pathlib import Path

from collab.errors import CloseCode

SRC = Path(__file__).resolve().parents[2] / "frontend" / "src"


def ts_block(path: Path, opening: str) -> list[str]:
    """The non-empty, non-comment lines between `opening {` and its closing brace."""
    text = path.read_text("utf-8")
    match = re.search(re.escape(opening) + r" \{\n(.*?)\n\}", text, re.S)
    assert match, f"{opening!r} not found in {path.name}"
    lines = (line.split("//")[0].strip() for line in match.group(1).splitlines())
    return [line for line in lines if line]


def test_frontend_close_codes_are_the_servers():
    entries = {}
    for line in ts_block(SRC / "closecodes.ts", "export const CloseCode ="):
        entry = re.fullmatch(r"([A-Z_]+): (\d+),?", line)
        assert entry, f"closecodes.ts: cannot read {line!r}"
        entries[entry.group(1)] = int(entry.group(2))
    assert entries == {code.name: code.value for code in CloseCode}
