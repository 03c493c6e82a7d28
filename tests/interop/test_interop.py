"""Interop: real Yjs clients (yjs + y-websocket's WebsocketProvider from npm, run by Node) and the
Python wire client (tests/ywire.py) share documents through the real server.

Every wait is event-driven with a deadline: Node re-checks a predicate on each document,
awareness, status and sync event (`NodeYClient.wait`), Python on each received frame
(`YClient.wait_for`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.settings import Settings
from tests.conftest import RunningServer, free_port, serving
from tests.ywire import YClient

from .conftest import SpawnNode
from .yjsnode import content, snapshot

# Every test takes the `node` fixture, which skips (fails in CI) without Node or node_modules.
pytestmark = [pytest.mark.anyio, pytest.mark.interop, pytest.mark.every_server]

# How fast a departed client's awareness must disappear for everybody else.
REMOVAL_DEADLINE_S = 2.0


def roots(doc: Doc[Any]) -> tuple[Text, Map, Array, XmlFragment]:
    return (
        doc.get("text", type=Text),
        doc.get("map", type=Map),
        doc.get("array", type=Array),
        doc.get("xml", type=XmlFragment),
    )


@dataclass
class Expect:
    """What a converged document contains: every text token exactly once, and the sizes."""

    tokens: list[str] = field(default_factory=list)
    map_keys: set[str] = field(default_factory=set)
    array_len: int = 0
    xml_len: int = 0

    def js(self) -> str:
        """The same condition as a JS predicate over a Node report."""
        return (
            f"r => {json.dumps(self.tokens)}.every(t => r.text.split(t).length === 2)"
            f" && {json.dumps(sorted(self.map_keys))}.every(k => k in r.map)"
            f" && Object.keys(r.map).length === {len(self.map_keys)}"
            f" && r.array.length === {self.array_len}"
            f" && r.xmlLength === {self.xml_len}"
        )

    def holds(self, doc: Doc[Any]) -> bool:
        text, map_, array, xml = roots(doc)
        s = str(text)
        return (
            all(s.count(t) == 1 for t in self.tokens)
            and set(map_.keys()) == self.map_keys
            and len(array) == self.array_len
            and len(xml.children) == self.xml_len
        )

    def check_text(self, text: str) -> None:
        # Nothing lost, nothing duplicated, no token split by another's insert.
        assert len(text) == sum(len(t) for t in self.tokens), text
        for t in self.tokens:
            assert text.count(t) == 1, (t, text)


def node_ops(
    tokens: Iterable[str], tag: str, *, lockstep: list[str] | None = None
) -> list[dict[str, Any]]:
    """One round of edits per token on every root type; odd rounds insert text at the front.

    With `lockstep` (the other side's tokens), round i starts once the text holds the other
    side's token i-1, so both sides make round i at about the same time: the rounds cross in
    flight instead of running as two sequential batches.
    """
    ops: list[dict[str, Any]] = []
    for i, tok in enumerate(tokens):
        if lockstep and i:
            ops.append(
                {"type": "noop", "after": f"r => r.text.includes({json.dumps(lockstep[i - 1])})"}
            )
        ops += [
            {"type": "text_insert", "value": tok, **({"index": 0} if i % 2 else {})},
            {"type": "map_set", "key": f"{tag}{i}", "value": {"i": i, "by": tag, "tok": tok}},
            {"type": "map_set", "key": "contested", "value": f"{tag}{i}"},
            {"type": "array_push", "values": [f"{tag}{i}", i]},
            {"type": "xml_element", "name": "p", "attrs": {"by": tag, "i": str(i)}, "text": tok},
        ]
    return ops


def python_edit(doc: Doc[Any], i: int, tok: str, tag: str) -> None:
    """The Python twin of one round of `node_ops`."""
    text, map_, array, xml = roots(doc)
    if i % 2:
        text.insert(0, tok)
    else:
        text += tok
    map_[f"{tag}{i}"] = {"i": i, "by": tag, "tok": tok}
    map_["contested"] = f"{tag}{i}"
    array.extend([f"{tag}{i}", i])
    xml.children.append(XmlElement("p", {"by": tag, "i": str(i)}, [XmlText(tok)]))


async def python_rounds(py: YClient, tokens: list[str], tag: str, lockstep: list[str]) -> None:
    """Python's side of a lockstep: round i once the other side's token i-1 has arrived."""
    text = roots(py.doc)[0]
    for i, tok in enumerate(tokens):
        if i:
            await py.wait_for(lambda i=i: lockstep[i - 1] in str(text))
        python_edit(py.doc, i, tok, tag)
        # A checkpoint, not a delay: lets the client send this round before the next wait.
        await anyio.lowlevel.checkpoint()


def expect_rounds(*sides: tuple[str, list[str]]) -> Expect:
    """The converged content after each (tag, tokens) side ran one round per token."""
    expect = Expect()
    for tag, tokens in sides:
        expect.tokens += tokens
        expect.map_keys |= {f"{tag}{i}" for i in range(len(tokens))} | {"contested"}
        expect.array_len += 2 * len(tokens)
        expect.xml_len += len(tokens)
    return expect


async def joiner_snapshot(server: RunningServer, room: str) -> dict[str, Any]:
    """What a fresh Python client gets when it joins now."""
    async with YClient(server.url, room) as fresh:
        await fresh.wait_for(lambda: fresh.synced)
        return snapshot(fresh.doc)


# -- documents ---------------------------------------------------------------------------------


async def test_node_and_python_edit_concurrently_and_converge(
    server: RunningServer, node: SpawnNode
) -> None:
    room = "interop/live"
    js = await node(room)
    n = 15
    js_tokens = [f"[J{i}]" for i in range(n)]
    py_tokens = [f"[P{i}]" for i in range(n)]
    expect = expect_rounds(("js", js_tokens), ("py", py_tokens))
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced)
        await js.synced()

        # Lockstep: round i on each side starts once it has seen the other side's round i-1,
        # so the rounds cross in flight (and odd rounds both insert at the front of the text).
        async with anyio.create_task_group() as tg:
            tg.start_soon(python_rounds, py, py_tokens, "py", js_tokens)
            await js.edit(*node_ops(js_tokens, "js", lockstep=py_tokens), interleave=True)

        await py.wait_for(lambda: expect.holds(py.doc))
        node_view = content(await js.wait(expect.js()))
        python_view = snapshot(py.doc)
        assert node_view == python_view
        expect.check_text(python_view["text"])
        # Concurrent sets of one key: both sides settle on one of the two last writes.
        assert python_view["map"]["contested"] in {f"js{n - 1}", f"py{n - 1}"}
        assert python_view["array"].count(f"js{n - 1}") == 1
        assert sorted(e["attrs"]["by"] for e in python_view["xml"]) == ["js"] * n + ["py"] * n

        assert await joiner_snapshot(server, room) == python_view


async def test_offline_python_edits_merge_with_node_edits_on_connect(
    server: RunningServer, node: SpawnNode
) -> None:
    """Edits made without seeing each other: Python's arrive in its sync step 2 on connect."""
    room = "interop/offline"
    js = await node(room)
    await js.synced()
    js_tokens = [f"<J{i}>" for i in range(5)]
    await js.edit(*node_ops(js_tokens, "js"))

    offline = Doc()
    py_tokens = [f"<P{i}>" for i in range(5)]
    for i, tok in enumerate(py_tokens):
        python_edit(offline, i, tok, "py")
    expect = expect_rounds(("js", js_tokens), ("py", py_tokens))

    async with YClient(server.url, room, doc=offline) as py:
        await py.wait_for(lambda: py.synced and expect.holds(py.doc))
        node_view = content(await js.wait(expect.js()))
        python_view = snapshot(py.doc)
        assert node_view == python_view
        expect.check_text(python_view["text"])
        assert await joiner_snapshot(server, room) == python_view


async def test_two_node_clients_and_python_converge_on_unicode(
    server: RunningServer, node: SpawnNode
) -> None:
    room = "interop/unicode"
    js1, js2 = await node(room), await node(room)
    await js1.synced()
    await js2.synced()
    # Accents, CJK, RTL, astral-plane emoji, ZWJ sequences, flags, combining marks.
    js1_tokens = ["héllo ", "🎉", "👩‍💻", "naïve ", "עברית"]
    js2_tokens = ["日本語", "🇫🇷", "Ωμέγα", "💡 ", "e\u0301"]
    py_tokens = ["Ünïcödé ", "😀", "𝄞", "café ", "🧑🏽‍🚀"]
    expect = expect_rounds(("a", js1_tokens), ("b", js2_tokens), ("py", py_tokens))
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced)

        async with anyio.create_task_group() as tg:
            tg.start_soon(python_rounds, py, py_tokens, "py", js2_tokens)
            # One Node client edits in a single transaction, the other in lockstep with Python.
            tg.start_soon(js1.edit, *node_ops(js1_tokens, "a"))
            await js2.edit(*node_ops(js2_tokens, "b", lockstep=py_tokens), interleave=True)

        await py.wait_for(lambda: expect.holds(py.doc))
        view1 = content(await js1.wait(expect.js()))
        view2 = content(await js2.wait(expect.js()))
        python_view = snapshot(py.doc)
        assert view1 == view2 == python_view
        expect.check_text(python_view["text"])
        xml_texts = {e["children"][0]["text"] for e in python_view["xml"]}
        assert xml_texts == set(expect.tokens)

        # A Node deletion of surrogate pairs (UTF-16 indexes) lands whole in Python (UTF-8).
        gone = ("🎉", "👩‍💻")
        await js1.edit(*({"type": "text_delete_substring", "value": t} for t in gone))
        remaining = [t for t in expect.tokens if t not in gone]
        await py.wait_for(lambda: all(t not in str(roots(py.doc)[0]) for t in gone))
        Expect(tokens=remaining).check_text(str(roots(py.doc)[0]))
        expected_text = str(roots(py.doc)[0])
        await js2.wait(f"r => r.text === {json.dumps(expected_text)}")
        assert (await joiner_snapshot(server, room))["text"] == expected_text


# -- late joiners and names --------------------------------------------------------------------


async def test_node_late_joiner_receives_whole_document(
    server: RunningServer, node: SpawnNode
) -> None:
    room = "interop/late"
    early = await node(room)
    await early.synced()
    await early.edit(*node_ops([f"(E{i})" for i in range(10)], "early"))
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced and len(roots(py.doc)[3].children) == 10)
        for i in range(10):
            python_edit(py.doc, i, f"(P{i})", "py")
        await py.set_awareness({"user": {"name": "py"}})
        expect = expect_rounds(
            ("early", [f"(E{i})" for i in range(10)]), ("py", [f"(P{i})" for i in range(10)])
        )
        await early.wait(expect.js())

        late = await node(room)
        view = await late.wait(f"r => r.synced && ({expect.js()})(r)")
        assert content(view) == snapshot(py.doc)
        # ...and the presence of those already there, from the server's join message.
        late_view = await late.wait(f"r => '{py.client_id}' in r.awareness")
        assert late_view["awareness"][str(py.client_id)] == {"user": {"name": "py"}}


async def test_node_late_joiner_gets_document_reloaded_from_store(
    node: SpawnNode, settings: Settings, tmp_path: Path
) -> None:
    """Every client leaves, the room unloads, and a Node client gets it back from SQLite."""
    quick = replace(
        settings,
        port=free_port(),
        unload_grace_s=0.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/reload.db",
    )
    room = "interop/reload"
    tokens = [f"{{R{i}}}" for i in range(8)]
    expect = expect_rounds(("w", tokens))
    async with serving(quick) as srv:
        writer = await node(room, url=srv.url)
        await writer.synced()
        await writer.edit(*node_ops(tokens, "w"), interleave=True)
        async with YClient(srv.url, room) as py:
            await py.wait_for(lambda: py.synced and expect.holds(py.doc))
            written = snapshot(py.doc)
        await writer.destroy()
        # No event to wait on: poll the hub, which unloads at its next 1 s tick.
        with anyio.fail_after(10):
            while room in srv.hub.rooms:
                await anyio.sleep(0.05)
        loads = srv.hub.loads

        reader = await node(room, url=srv.url)
        view = await reader.wait(f"r => r.synced && ({expect.js()})(r)")
        assert content(view) == written
        assert srv.hub.loads == loads + 1  # really loaded again, not served from memory
        expect.check_text(view["text"])
        await reader.kill()  # before the server goes: no reconnect attempts during its shutdown


async def test_node_document_name_with_slashes_and_unicode(
    server: RunningServer, node: SpawnNode
) -> None:
    room = "team/ünïcödé 文档/📝 notes"
    js = await node(room)
    await js.synced()
    await js.edit({"type": "text_insert", "value": "from node ✓"})
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced and str(roots(py.doc)[0]) == "from node ✓")
        assert room in server.hub.rooms  # the server decoded the very same name
        roots(py.doc)[0].insert(0, "from python ✓, ")
        view = await js.wait("r => r.text.startsWith('from python')")
        assert view["text"] == "from python ✓, from node ✓"
    # A name differing only in its last character is a different document.
    other = await node(room[:-1] + "z")
    assert (await other.synced())["text"] == ""


# -- awareness ---------------------------------------------------------------------------------


async def test_awareness_flows_both_ways(server: RunningServer, node: SpawnNode) -> None:
    room = "interop/awareness"
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced)
        py_state: dict[str, Any] = {"user": {"name": "Grace", "color": "#ee6352"}, "sel": None}
        await py.set_awareness(py_state)

        js = await node(room)
        # A Node client joining afterwards sees Python's state from the server's join message.
        view = await js.wait(f"r => r.synced && '{py.client_id}' in r.awareness")
        assert view["awareness"][str(py.client_id)] == py_state

        js_state = {
            "user": {"name": "Ada Lovelace 🚀", "color": "#30bced"},
            "cursor": {"anchor": 3, "head": 7},
        }
        await js.set_awareness(js_state)
        await py.wait_for(lambda: py.present().get(js.client_id) == js_state)
        assert py.present() == {py.client_id: py_state, js.client_id: js_state}

        # Updates: a field change in Node, a new state from Python.
        await js.set_awareness_field("cursor", {"anchor": 10, "head": 10})
        await py.wait_for(
            lambda: py.present()[js.client_id]["cursor"] == {"anchor": 10, "head": 10}
        )
        assert py.present()[js.client_id]["user"] == js_state["user"]
        await py.set_awareness({"user": {"name": "Grace", "color": "#ee6352"}, "sel": [1, 4]})
        view = await js.wait(f"r => r.awareness['{py.client_id}']?.sel?.[1] === 4")
        assert view["awareness"][str(py.client_id)]["user"]["name"] == "Grace"
        assert view["awareness"][str(js.client_id)]["cursor"] == {"anchor": 10, "head": 10}


async def _present_everywhere(
    py: YClient, observer: Any, leaver: Any, state: dict[str, Any]
) -> None:
    await leaver.set_awareness(state)
    await py.wait_for(lambda: py.present().get(leaver.client_id) == state)
    await observer.wait(f"r => '{leaver.client_id}' in r.awareness")


async def test_node_destroy_removes_its_awareness_everywhere(
    server: RunningServer, node: SpawnNode
) -> None:
    room = "interop/destroy"
    leaver, observer = await node(room), await node(room)
    await leaver.synced()
    await observer.synced()
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced)
        await _present_everywhere(py, observer, leaver, {"user": {"name": "leaving"}})

        await leaver.destroy()  # sends the awareness-null frame, then closes
        await py.wait_for(lambda: leaver.client_id not in py.present(), timeout=REMOVAL_DEADLINE_S)
        assert py.awareness[leaver.client_id][1] is None  # a removal (null state) was received
        await observer.wait(
            f"r => !('{leaver.client_id}' in r.awareness)", timeout=REMOVAL_DEADLINE_S
        )
        assert py.present() == {}  # the observer never set a state; nobody else is left


async def test_killed_node_client_awareness_removed_by_server(
    server: RunningServer, node: SpawnNode
) -> None:
    """SIGKILL: no awareness-null frame, no close frame; the server sees the TCP close."""
    room = "interop/sigkill"
    victim, observer = await node(room), await node(room)
    await victim.synced()
    await observer.synced()
    async with YClient(server.url, room) as py:
        await py.wait_for(lambda: py.synced)
        await _present_everywhere(py, observer, victim, {"user": {"name": "doomed"}})
        await observer.set_awareness({"user": {"name": "stays"}})
        await py.wait_for(lambda: observer.client_id in py.present())

        await victim.kill()
        await py.wait_for(lambda: victim.client_id not in py.present(), timeout=REMOVAL_DEADLINE_S)
        # The server's removal (same clock, null state) is accepted by y-protocols too.
        view = await observer.wait(
            f"r => !('{victim.client_id}' in r.awareness)", timeout=REMOVAL_DEADLINE_S
        )
        assert view["awareness"] == {str(observer.client_id): {"user": {"name": "stays"}}}
        # Only the dead client's state went: the others' survive.
        assert py.present() == {observer.client_id: {"user": {"name": "stays"}}}
