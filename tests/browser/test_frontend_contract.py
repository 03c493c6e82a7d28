"""The frontend's copies of what the server defines, checked against the server.

The TypeScript cannot import Python, so frontend/src keeps its own close-code table and its own
type for the API's answers. These tests read them from the sources and fail when they drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

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


# ---- the version history types (issue 12): TypeScript type expressions checked against JSON ----


def ts_aliases(path: Path) -> dict[str, str]:
    """`export type Name = expression` declarations (one line each) of a TypeScript file."""
    found = re.findall(r"^export type (\w+) = (.+)$", path.read_text("utf-8"), re.M)
    return {name: expr.strip() for name, expr in found}


def interface_types(path: Path, name: str) -> dict[str, str]:
    """An interface's fields and their type expressions; optional fields are refused (a JSON
    answer either has a key or not, and the contract names every key)."""
    fields = {}
    for line in ts_block(path, f"export interface {name}"):
        field = re.fullmatch(r"(\w+): (.+)", line)
        assert field, f"{path.name}: cannot read {line!r} (optional fields are not checked)"
        fields[field.group(1)] = field.group(2).strip()
    return fields


Interfaces = dict[str, dict[str, str]]


def accepts(expr: str, value: object, aliases: dict[str, str], interfaces: Interfaces) -> bool:
    """Whether JSON `value` is of TypeScript type `expr`: string, number, boolean, null, unknown,
    'literal', T[], Record<string, T>, unions, the aliases and the interfaces given (exactly
    their keys). Anything else fails loudly: the checker must not guess."""
    expr = expr.strip()

    def sub(expr: str, value: object) -> bool:
        return accepts(expr, value, aliases, interfaces)

    if record := re.fullmatch(r"Record<string, (.+)>", expr):
        return isinstance(value, dict) and all(sub(record.group(1), v) for v in value.values())
    if expr == "unknown":
        return True
    if " | " in expr:
        return any(sub(part, value) for part in expr.split(" | "))
    if expr.endswith("[]"):
        return isinstance(value, list) and all(sub(expr[:-2], v) for v in value)
    if expr in aliases:
        return sub(aliases[expr], value)
    if expr in interfaces:
        fields = interfaces[expr]
        return (
            isinstance(value, dict)
            and sorted(value) == sorted(fields)
            and all(sub(fields[key], value[key]) for key in fields)
        )
    if literal := re.fullmatch(r"'([^']*)'", expr):
        return value == literal.group(1)
    simple = {"string": str, "boolean": bool, "null": type(None)}
    if expr == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expr in simple:
        return isinstance(value, simple[expr])
    raise AssertionError(f"the contract checker cannot read the type {expr!r}")


def assert_is(interface: str, value: object) -> None:
    """`value` (a JSON object the server sent) has exactly the interface's keys, each typed so."""
    path = SRC / "api.ts"
    names = re.findall(r"^export interface (\w+) \{", path.read_text("utf-8"), re.M)
    interfaces = {name: interface_types(path, name) for name in names}
    fields = interfaces[interface]
    aliases = ts_aliases(path)
    assert isinstance(value, dict), f"{interface}: not an object: {value!r}"
    served = sorted(value)
    assert served == sorted(fields), f"{interface} in api.ts: {sorted(fields)}, served {served}"
    for key, expr in fields.items():
        ok = accepts(expr, value[key], aliases, interfaces)
        assert ok, f"{interface}.{key}: {value[key]!r} not {expr}"


def test_type_checker_reads_the_contracts_shapes_and_refuses_the_rest():
    aliases = {"Kind": "'auto' | 'named'"}
    interfaces = {"V": {"kind": "Kind", "label": "string | null"}}

    def ok(expr: str, value: object) -> bool:
        return accepts(expr, value, aliases, interfaces)

    assert ok("Kind", "named") and not ok("Kind", "other")
    assert ok("string | null", None) and not ok("string", None)
    assert ok("string[]", ["a"]) and not ok("string[]", ["a", 1])
    assert not ok("number", True)
    assert ok("Record<string, Kind[]>", {"a": ["auto"]})
    assert not ok("Record<string, Kind[]>", {"a": "auto"})
    assert ok("V[]", [{"kind": "auto", "label": None}])
    assert not ok("V", {"kind": "auto", "label": None, "extra": 1})
    assert not ok("V", {"kind": "auto"})
    with pytest.raises(AssertionError, match="Map<string"):
        ok("Map<string, number>", {})


@pytest.mark.anyio
@pytest.mark.integration
async def test_version_types_are_what_the_server_answers(server):
    """Version, VersionPage, VersionContent, VersionDiff, DiffSegment and Restored, as served."""
    name = "team/contract history"
    path = "/api/documents/" + quote(name, safe="")
    async with YClient(server.url, name) as client:
        await client.wait_for(lambda: client.synced)
        text = client.doc.get("codemirror", type=Text)
        text.insert(0, "first draft")
        async with httpx.AsyncClient(base_url=server.http) as http:
            with anyio.fail_after(10):
                while (await http.get(f"{path}/text/codemirror")).text != "first draft":
                    await anyio.sleep(0.02)
            created = await http.post(f"{path}/versions", json={"label": "Draft"})
            assert created.status_code == 201, created.text
            assert_is("Version", created.json())
            text.insert(len(text), ", edited")
            with anyio.fail_after(10):
                while (await http.get(f"{path}/text/codemirror")).text != "first draft, edited":
                    await anyio.sleep(0.02)
            listed = (await http.get(f"{path}/versions")).json()
            assert_is("VersionPage", listed)
            for version in listed["versions"]:
                assert_is("Version", version)
            version_id = created.json()["id"]
            content = (await http.get(f"{path}/versions/{version_id}")).json()
            assert_is("VersionContent", content)
            assert_is("Version", content["version"])
            diff = (await http.get(f"{path}/versions/{version_id}/diff")).json()
            assert_is("VersionDiff", diff)
            segments = diff["fields"]["codemirror"]
            assert any(s["type"] == "insert" for s in segments), segments
            for segment in segments:
                assert_is("DiffSegment", segment)
            restored = (await http.post(f"{path}/versions/{version_id}/restore")).json()
            assert_is("Restored", restored)
            assert_is("Version", restored["before"])
            missing = await http.get(f"{path}/versions/999999")
            assert missing.status_code == 404
            error = missing.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
