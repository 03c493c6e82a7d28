"""The Hocuspocus protocol at /hocuspocus against the real `@hocuspocus/provider` (npm, 4.x).

Each Node process is one HocuspocusProviderWebsocket (one socket) with a provider per document;
y-websocket clients (yclient.mjs) on /ws share the rooms. Everything waits on events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import jwt
import pytest

from collab import Extension, OnStartupPayload, OnStatelessPayload
from collab.documents import DocumentService
from tests.conftest import RunningServer, every_server, free_port, require, serving

from .conftest import SpawnNode
from .hocuspocus_node import NodeHocuspocus, provider_missing

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

SECRET = "hocuspocus-test-secret-of-at-least-32-bytes"

SpawnHocuspocus = Callable[..., Awaitable[NodeHocuspocus]]


@pytest.fixture
async def hocuspocus(node_available: None) -> AsyncIterator[SpawnHocuspocus]:
    """`await hocuspocus(server)`: a Node process with one provider socket on that server."""
    reason = provider_missing()
    require(reason is None, reason or "")
    clients: list[NodeHocuspocus] = []

    async def spawn(server: RunningServer) -> NodeHocuspocus:
        client = await NodeHocuspocus.start(server.url)
        clients.append(client)
        return client

    try:
        yield spawn
    finally:
        for client in clients:
            await client.kill()


def token(doc: str, mode: str = "write", sub: str = "ada") -> str:
    claims = {"doc": doc, "mode": mode, "sub": sub, "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def protocols(server: RunningServer, name: str) -> list[str]:
    return sorted(s.protocol for s in server.hub.sessions(name))


def hocuspocus_sessions(server: RunningServer, name: str) -> int:
    return sum(1 for p in protocols(server, name) if p.startswith("hocuspocus"))


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """For server-side state that has no event to wait on (hub bookkeeping after a close)."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@every_server
async def test_many_documents_over_one_socket_edit_the_rooms_of_ws(
    server: RunningServer, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    """Three documents over one HocuspocusProviderWebsocket; each is the same room as /ws's:
    edits cross both ways, each provider settles (synced, no unsynced changes)."""
    ws_a = await node("a")
    await ws_a.edit({"type": "text_insert", "value": "from ws. "})
    hp = await hocuspocus(server)
    for name in ("a", "b", "team/c"):
        await hp.open(name)
    doc_a = await hp.doc("a", "d => d.synced && d.unsynced === 0 && d.text === 'from ws. '")
    assert doc_a["authenticated"] and doc_a["scope"] == "read-write"
    for name in ("b", "team/c"):
        await hp.insert(name, f"in {name}")
        await hp.doc(name, "d => d.synced && d.unsynced === 0")
    await hp.insert("a", "from tiptap.")
    await hp.doc("a", "d => d.unsynced === 0")
    await ws_a.wait("r => r.text === 'from ws. from tiptap.'")
    ws_c = await node("team/c")
    assert (await ws_c.synced())["text"] == "in team/c"
    # One socket, a session per document, counted like any connection.
    await until(lambda: len(server.hub.sessions("b")) == 1)
    assert any(p.startswith("hocuspocus") for p in protocols(server, "a"))
    addresses = {
        s.address
        for name in ("a", "b", "team/c")
        for s in server.hub.sessions(name)
        if s.protocol.startswith("hocuspocus")
    }
    assert len(addresses) == 1


async def test_awareness_crosses_the_two_protocols(
    server: RunningServer, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    ws = await node("notes")
    await ws.synced()
    await ws.set_awareness_field("user", {"name": "Ws"})
    hp = await hocuspocus(server)
    await hp.open("notes", user={"name": "Tiptap"})
    doc = await hp.doc(
        "notes", "d => Object.values(d.awareness).some(s => s.user && s.user.name === 'Ws')"
    )
    await ws.wait("r => Object.values(r.awareness).some(s => s.user && s.user.name === 'Tiptap')")
    # The provider leaves: its cursor goes from the y-websocket client's view (no ghost).
    await hp.close_document("notes")
    gone = str(doc["clientID"])
    await ws.wait(f"r => !('{gone}' in r.awareness)")


async def test_auth_failure_answers_permission_denied_and_keeps_the_socket(
    settings: Any, hocuspocus: SpawnHocuspocus
) -> None:
    async with serving(settings.replace(port=free_port(), auth_secret=SECRET)) as server:
        hp = await hocuspocus(server)
        await hp.open("secret", token="not a token")
        await hp.open("other", token=token("team/*"))
        await hp.open("team/ok", token=token("team/*"))
        denied = await hp.doc("secret", "d => d.authFailed.length > 0")
        assert not denied["authenticated"]
        forbidden = await hp.doc("other", "d => d.authFailed.length > 0")
        assert forbidden["authFailed"] == ["token not valid for this document"]
        # The same socket carries on with the document its token covers.
        ok = await hp.doc("team/ok", "d => d.synced && d.authenticated")
        assert ok["scope"] == "read-write"
        report = await hp.report()
        assert report["socket"]["opened"] == 1
        assert server.hub.sessions("secret") == [] and len(server.hub.sessions("team/ok")) == 1


async def test_read_only_scope_and_sync_status(
    settings: Any, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    async with serving(settings.replace(port=free_port(), auth_secret=SECRET)) as server:
        writer = await hocuspocus(server)
        await writer.open("doc", token=token("doc"))
        await writer.insert("doc", "written")
        await writer.doc("doc", "d => d.synced && d.unsynced === 0")
        reader = await hocuspocus(server)
        await reader.open("doc", token=token("doc", mode="read", sub="bob"))
        seen = await reader.doc("doc", "d => d.synced && d.unsynced === 0 && d.text === 'written'")
        assert seen["scope"] == "readonly"
        # Its own edit is refused: SyncStatus 0 leaves the change unsynced, and nobody sees it.
        # (A document opened after it on the same socket is answered after it.)
        await reader.insert("doc", " by the reader")
        await reader.open("probe", token=token("probe", mode="read", sub="bob"))
        await reader.doc("probe", "d => d.synced && d.unsynced === 0")
        assert (await reader.report())["docs"]["doc"]["unsynced"] == 1
        await writer.insert("doc", "!")
        await reader.doc("doc", "d => d.text.includes('!')")
        assert (await writer.doc("doc", "d => d.unsynced === 0"))["text"] == "written!"
        room = server.hub.room("doc")
        assert room is not None and str(room.doc.get("text", type=_text())) == "written!"


def _text() -> Any:
    from pycrdt import Text

    return Text


class Stateless(Extension):
    """Answers each stateless message to its sender and tells the document's others."""

    def __init__(self) -> None:
        self.documents: DocumentService | None = None
        self.received: list[tuple[str, str]] = []

    async def on_startup(self, payload: OnStartupPayload) -> None:
        self.documents = payload.documents

    async def on_stateless(self, payload: OnStatelessPayload) -> None:
        assert self.documents is not None
        self.received.append((payload.document, payload.payload))
        conn = payload.connection.id
        self.documents.send_stateless(payload.document, f"ack:{payload.payload}", only=conn)
        self.documents.send_stateless(payload.document, f"from:{payload.payload}", exclude=conn)


async def test_stateless_both_ways(
    settings: Any, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    ext = Stateless()
    async with serving(settings.replace(port=free_port()), extensions=[ext]) as server:
        ws = await node("chat", url=server.url)
        await ws.synced()
        alice, bob = await hocuspocus(server), await hocuspocus(server)
        await alice.open("chat")
        await alice.open("elsewhere")
        await bob.open("chat")
        await bob.doc("chat", "d => d.synced")
        await alice.doc("chat", "d => d.synced")
        await alice.stateless("chat", "hello é")
        assert (await alice.doc("chat", "d => d.stateless.length > 0"))["stateless"] == [
            "ack:hello é"
        ]
        assert (await bob.doc("chat", "d => d.stateless.length > 0"))["stateless"] == [
            "from:hello é"
        ]
        assert ext.received == [("chat", "hello é")]
        # Not to another document of the same socket, and y-websocket clients never get one.
        assert (await alice.report())["docs"]["elsewhere"]["stateless"] == []
        await ws.edit({"type": "text_insert", "value": "still fine"})
        await bob.doc("chat", "d => d.text === 'still fine'")


async def test_reconnect_reopens_every_document(
    server: RunningServer, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    """Offline edits arrive after the socket comes back; an operator's close (4000) closes
    the socket, and the provider reconnects with all its documents."""
    hp = await hocuspocus(server)
    await hp.open("r1")
    await hp.open("r2")
    await hp.doc("r2", "d => d.synced")
    await hp.disconnect()
    await hp.wait("r => r.socket.status === 'disconnected'")
    await hp.insert("r1", "offline")
    await hp.connect()
    await hp.doc("r1", "d => d.synced && d.unsynced === 0")
    ws = await node("r1")
    assert (await ws.synced())["text"] == "offline"
    await until(lambda: len(server.hub.sessions("r2")) == 1)
    closed = server.hub.close_sessions("r2", 4000, "closed by an administrator")
    assert closed == 1
    await hp.wait("r => r.socket.opened >= 3")
    await hp.insert("r2", "back")
    await hp.doc("r2", "d => d.synced && d.unsynced === 0")
    await hp.doc("r1", "d => d.synced")
    await until(
        lambda: hocuspocus_sessions(server, "r1") == 1 and hocuspocus_sessions(server, "r2") == 1
    )


async def test_closing_one_document_keeps_the_others(
    server: RunningServer, hocuspocus: SpawnHocuspocus
) -> None:
    """The provider's Close ends that document's session alone; a deleted document (4404)
    is closed with a Close message carrying the reason, the socket stays."""
    hp = await hocuspocus(server)
    for name in ("x", "y", "z"):
        await hp.open(name)
        await hp.doc(name, "d => d.synced")
    await hp.close_document("x")
    await until(lambda: server.hub.sessions("x") == [])
    documents: DocumentService = server.app.state.documents
    await documents.delete("y")
    doc = await hp.doc("y", "d => d.closed.length > 0")
    assert doc["closed"] == ["document deleted"]
    await hp.insert("z", "z stays")
    await hp.doc("z", "d => d.unsynced === 0")
    report = await hp.report()
    assert report["socket"]["opened"] == 1 and report["socket"]["status"] == "connected"


async def test_force_sync_and_session_awareness(
    server: RunningServer, hocuspocus: SpawnHocuspocus, node: SpawnNode
) -> None:
    """forceSync settles (our step 1 answers theirs); two session-aware providers of one
    document share a socket, each addressed by its own key."""
    hp = await hocuspocus(server)
    await hp.open("s", session_awareness=True)
    await hp.doc("s", "d => d.synced && d.unsynced === 0")
    await hp.force_sync("s")  # unsynced is 1 again until our step 1's answer is acknowledged
    await hp.doc("s", "d => d.unsynced === 0")
    await hp.insert("s", "keyed")
    ws = await node("s")
    await ws.wait("r => r.text === 'keyed'")
    await ws.edit({"type": "text_insert", "value": "!"})
    await hp.doc("s", "d => d.text === 'keyed!' && d.unsynced === 0")
