"""The frontend's copies of what the server defines, checked against the server.

The TypeScript cannot import Python, so frontend/src keeps its own close-code table and its own
type for the API's answers. These tests read them from the sources and fail when they drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx
import pytest
from pycrdt import Text

from collab.errors import CloseCode
from tests.ywire import YClient

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


def ts_type(value: object) -> str:
    """The TypeScript type of a JSON value (Python's bool is an int: test it first)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def interface_fields(path: Path, name: str) -> dict[str, str]:
    fields = {}
    for line in ts_block(path, f"export interface {name}"):
        field = re.fullmatch(r"(\w+): (string|number|boolean)", line)
        assert field, f"{path.name}: cannot read {line!r} (only plain required fields are checked)"
        fields[field.group(1)] = field.group(2)
    return fields


def test_interface_reader_refuses_what_it_cannot_check(tmp_path):
    ts = tmp_path / "api.ts"
    ts.write_text("export interface X {\n  a: number // why\n  b?: string\n}\n")
    with pytest.raises(AssertionError, match="b\\?: string"):
        interface_fields(ts, "X")


@pytest.mark.anyio
@pytest.mark.integration
async def test_document_info_is_what_the_server_lists(server):
    fields = interface_fields(SRC / "api.ts", "DocumentInfo")
    name = "team/contract"
    async with YClient(server.url, name) as client:  # open while listed: online is counted
        await client.wait_for(lambda: client.synced)
        client.doc.get("codemirror", type=Text).insert(0, "hello")
        async with httpx.AsyncClient(base_url=server.http) as http:
            with anyio.fail_after(5):
                # the saver writes the document shortly after the edit
                while not (page := (await http.get("/api/documents")).json())["documents"]:
                    await anyio.sleep(0.02)
    assert set(page) == {"documents", "next_cursor"} and page["next_cursor"] is None
    [doc] = page["documents"]
    assert doc["name"] == name and doc["online"] == 1
    served = {key: ts_type(value) for key, value in doc.items()}
    assert served == fields, "DocumentInfo in frontend/src/api.ts differs from GET /api/documents"
