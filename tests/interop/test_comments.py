"""collab/comments.py against Yjs itself: documents with comments built by real Yjs in Node
(tests/interop/ycomments.mjs: non-ASCII text, concurrent edits around and inside an anchor,
the commented text deleted), whose anchors must resolve to what Yjs resolves them to."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from collab.comments import digest, read

from .yjsnode import HERE

pytestmark = [pytest.mark.interop]


@pytest.fixture
def cases(node_available: None) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["node", str(HERE / "ycomments.mjs")],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=HERE,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def code_points(text: str, units: int) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")[: 2 * units].decode("utf-16-le"))


def test_anchors_resolve_as_yjs_resolves_them(cases: list[dict[str, Any]]) -> None:
    assert [c["name"] for c in cases] == ["plain", "non-ascii", "concurrent", "deleted"]
    for case in cases:
        text = case["text"]
        found = {c.id: c for c in read(base64.b64decode(case["update"]))}
        assert set(found) == set(case["comments"]), case["name"]
        for cid, want in case["comments"].items():
            got = found[cid]
            assert got.start == code_points(text, want["start"]), (case["name"], cid)
            assert got.end == code_points(text, want["end"]), (case["name"], cid)
            assert got.quote == want["quote"], (case["name"], cid)


def test_what_a_comment_holds(cases: list[dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in cases}
    concurrent = read(base64.b64decode(by_name["concurrent"]["update"]))
    assert [(c.quote, c.original_quote) for c in concurrent] == [("beta-x- gamma", "beta gamma")]
    deleted = {c.id: c for c in read(base64.b64decode(by_name["deleted"]["update"]))}
    assert deleted["gone"].detached and deleted["gone"].quote == ""
    kept = deleted["kept"]
    assert (kept.resolved, kept.resolved_by, kept.resolved_ms) == (True, "bob", 1765000000999)
    assert [(r.id, r.body, r.author) for r in kept.replies] == [("r1", "agreed", "bob")]
    assert digest(list(deleted.values())) == {
        "kept": {"resolved": True, "replies": ["r1"]},
        "gone": {"resolved": False, "replies": []},
    }
