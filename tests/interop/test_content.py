"""collab/content.py against Yjs itself: documents built by real Yjs in Node
(tests/interop/ycontent.mjs), read by content.py, must read as Yjs's own toJSON() / toDelta()
and with the root types Yjs built them with."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from collab import DocumentService
from collab.content import content
from tests.conftest import RunningServer

from .conftest import SpawnNode
from .yjsnode import HERE

pytestmark = [pytest.mark.interop]


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


@pytest.mark.anyio
async def test_yjs_clients_see_a_patch_and_a_restore_live(
    server: RunningServer, node: SpawnNode
) -> None:
    """Real y-websocket clients in Node: what they wrote reads as JSON through the service, a
    patch reaches them as an edit, a restore brings back the text, map and XML they had."""
    room = "interop/history"
    documents: DocumentService = server.app.state.documents
    js1, js2 = await node(room), await node(room)
    await js1.synced()
    await js2.synced()
    await js1.edit(
        {"type": "text_insert", "value": "héllo 😀 world"},
        {"type": "map_set", "key": "title", "value": "Notes"},
        {"type": "xml_element", "name": "p", "attrs": {"id": "1"}, "text": "para"},
    )
    await js2.wait("r => r.text === 'héllo 😀 world' && r.map.title === 'Notes'")
    read = await documents.content(room)
    assert read["content"]["text"] == "héllo 😀 world"
    assert read["content"]["map"] == {"title": "Notes"}
    assert read["content"]["xml"] == '<p id="1">para</p>'
    good = await documents.create_version(room, "good")

    await documents.patch(room, text={"text": "héllo 😀 brave world"})
    await js1.wait("r => r.text === 'héllo 😀 brave world'")
    await js2.edit(
        {"type": "text_delete_substring", "value": "😀 "},
        {"type": "map_set", "key": "title", "value": "defaced"},
        {"type": "xml_text", "text": "junk"},
    )
    await js1.wait("r => r.map.title === 'defaced'")

    await documents.restore(room, good.id)
    for js in (js1, js2):
        report = await js.wait("r => r.text === 'héllo 😀 world' && r.map.title === 'Notes'")
        assert report["map"] == {"title": "Notes"}
    assert (await documents.content(room)) == await documents.version_content(room, good.id)
