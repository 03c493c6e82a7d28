"""Document sync between real clients through a real server."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from httpx_ws import aconnect_ws
from pycrdt import Array, Doc, Map, Provider, Text, XmlElement, XmlFragment, XmlText
from pycrdt.websocket.websocket import HttpxWebsocket

from collab import protocol as p
from tests.conftest import every_server
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]


@asynccontextmanager
async def provider(server: Any, name: str, doc: Doc[Any]):
    """pycrdt's Provider over pycrdt-websocket's httpx channel: the stock Python client."""
    url = f"{server.url}/ws/{name}"
    async with httpx.AsyncClient() as client, aconnect_ws(url, client) as ws:
        async with Provider(doc, HttpxWebsocket(ws, name)) as prov:
            with anyio.fail_after(5):
                await prov.synced.wait()
            yield prov


async def eventually(check: Any, timeout: float = 5.0) -> None:
    """Wait until `check()` is true, re-checking whenever the event loop has run a while."""
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


async def test_text_map_array_xml_sync_both_ways_with_pycrdt_provider(server):
    doc_a: Doc[Any] = Doc()
    doc_b: Doc[Any] = Doc()
    async with provider(server, "shared", doc_a), provider(server, "shared", doc_b):
        text_a = doc_a.get("text", type=Text)
        map_a = doc_a.get("map", type=Map)
        array_b = doc_b.get("array", type=Array)
        xml_b = doc_b.get("xml", type=XmlFragment)
        text_a.insert(0, "hello wörld 🎉")
        map_a["n"] = 7
        map_a["nested"] = {"k": [1, 2]}
        array_b.extend(["x", 2, {"y": True}])
        xml_b.children.append(XmlElement("p", {"class": "intro"}, [XmlText("hi")]))

        def converged() -> bool:
            return (
                str(doc_b.get("text", type=Text)) == "hello wörld 🎉"
                and doc_b.get("map", type=Map).to_py() == {"n": 7, "nested": {"k": [1, 2]}}
                and doc_a.get("array", type=Array).to_py() == ["x", 2, {"y": True}]
                and str(doc_a.get("xml", type=XmlFragment)) == '<p class="intro">hi</p>'
            )

        await eventually(converged)


async def test_late_joiner_gets_everything_and_rooms_are_isolated(server):
    async with YClient(server.url, "room-1") as a, YClient(server.url, "room-2") as other:
        await a.wait_for(lambda: a.synced)
        await other.wait_for(lambda: other.synced)
        for i in range(50):
            a.doc.get("t", type=Text).insert(i, "x")
        async with YClient(server.url, "room-1") as late:
            await late.wait_for(lambda: str(late.doc.get("t", type=Text)) == "x" * 50)
        # Nothing of room-1 reached room-2: only its own sync and nothing else.
        assert str(other.doc.get("t", type=Text)) == ""
        assert all(m[:2] != bytes([p.MSG_SYNC, p.SYNC_UPDATE]) for m in other.received)


async def test_updates_are_not_echoed_to_their_sender(server):
    async with YClient(server.url, "echo") as a, YClient(server.url, "echo") as b:
        await a.wait_for(lambda: a.synced)
        await b.wait_for(lambda: b.synced)
        a.doc.get("t", type=Text).insert(0, "one")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "one")
        b.doc.get("t", type=Text).insert(3, "two")
        await a.wait_for(lambda: str(a.doc.get("t", type=Text)) == "onetwo")
        updates_to_a = [m for m in a.received if m[:2] == bytes([p.MSG_SYNC, p.SYNC_UPDATE])]
        assert len(updates_to_a) == 1  # b's update; a's own never came back


async def test_document_names_with_slashes_unicode_and_escapes(server):
    for name in ("team/notes", "é/文档 🎉", "100% done", "a%2Fb"):
        async with YClient(server.url, name) as a, YClient(server.url, name) as b:
            await b.wait_for(lambda b=b: b.synced)
            a.doc.get("t", type=Text).insert(0, name)
            await b.wait_for(lambda b=b, name=name: str(b.doc.get("t", type=Text)) == name)
    assert {"team/notes", "é/文档 🎉", "100% done", "a%2Fb"} <= set(server.hub.rooms)


async def test_fifty_simultaneous_joiners_load_the_document_once(server):
    async with YClient(server.url, "crowd") as seed:
        await seed.wait_for(lambda: seed.synced)
        seed.doc.get("t", type=Text).insert(0, "seeded")
        log = server.hub.saver.log("crowd")
        await eventually(lambda: log.appended == 1 and log.clean)
    # Unload it, so the 50 joiners race on a cold load.
    server.hub.rooms["crowd"].empty_since = -1e9
    server.hub.tick(anyio.current_time() + 1e6)
    assert "crowd" not in server.hub.rooms
    loads_before = server.hub.loads
    clients = [YClient(server.url, "crowd") for _ in range(50)]
    async with anyio.create_task_group() as tg:
        for c in clients:
            tg.start_soon(c.open_socket)
    async with AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)
        for c in clients:
            await c.wait_for(lambda c=c: str(c.doc.get("t", type=Text)) == "seeded", timeout=15)
        assert server.hub.loads - loads_before == 1
        assert len(server.hub.rooms["crowd"].members) == 50


async def test_joiners_of_a_big_document_all_get_it_whole_and_then_its_changes(server):
    """Fresh joiners of a big document share one encoding of it (collab/ydoc.py
    SharedAnswers): each still gets the whole document, and a change made between two joins
    reaches the later joiner (a deletion too, which changes no state vector)."""
    big = "".join(f"line {i:06d} " + "x" * 90 + "\n" for i in range(2000))  # ~200 KB
    async with YClient(server.url, "big") as writer:
        await writer.wait_for(lambda: writer.synced)
        text = writer.doc.get("t", type=Text)
        text.insert(0, big)
        await writer.sent()
        async with AsyncExitStack() as stack:
            joiners = [YClient(server.url, "big") for _ in range(4)]
            for joiner in joiners:
                await stack.enter_async_context(joiner)
            for joiner in joiners:
                await joiner.wait_for(lambda j=joiner: str(j.doc.get("t", type=Text)) == big)
        del text[0:5]  # a deletion alone
        await writer.sent()
        async with YClient(server.url, "big") as late:
            await late.wait_for(lambda: str(late.doc.get("t", type=Text)) == big[5:])
        text.insert(0, "new ")
        await writer.sent()
        async with YClient(server.url, "big") as later:
            await later.wait_for(lambda: str(later.doc.get("t", type=Text)) == "new " + big[5:])
