"""The Python SDK's live documents (collab.client.LiveDocument) against a real server and real
y-websocket clients in Node: edits both ways, awareness both ways, reconnect after a network cut
and after a server restart, and the close codes that end a document for good."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pycrdt import Map, Text

from collab.client import CollabClient, DocumentClosed, LiveDocument
from collab.extensions.token_auth import mint_token
from collab.settings import Settings
from tests.conftest import RunningServer, serving
from tests.tcpproxy import tcp_proxy

from .conftest import SpawnNode
from .yjsnode import NodeYClient

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


def text_of(live: LiveDocument) -> str:
    return str(live.doc.get("text", type=Text))


async def until(live: LiveDocument, predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        await live.wait_until(predicate)


async def test_an_sdk_edit_reaches_a_yjs_client_and_back(
    server: RunningServer, node: SpawnNode
) -> None:
    yjs = await node("sdk/both-ways")
    await yjs.synced()
    async with CollabClient(server.http).open("sdk/both-ways") as live:
        with anyio.fail_after(5):
            await live.synced()
        live.doc.get("text", type=Text).insert(0, "from python")
        live.doc.get("map", type=Map)["by"] = "bot"
        await yjs.wait("r => r.text === 'from python' && r.map.by === 'bot'")

        await yjs.edit({"type": "text_insert", "index": 0, "value": "and node, "})
        await until(live, lambda: text_of(live) == "and node, from python")

    # What the SDK wrote is on the server for a newcomer.
    late = await node("sdk/both-ways")
    await late.wait("r => r.synced && r.text === 'and node, from python'")


async def test_a_late_sdk_client_gets_the_whole_document_at_sync(
    server: RunningServer, node: SpawnNode
) -> None:
    yjs = await node("sdk/late")
    await yjs.synced()
    await yjs.edit({"type": "text_insert", "index": 0, "value": "x" * 10_000})
    async with CollabClient(server.http).open("sdk/late") as live:
        with anyio.fail_after(5):
            await live.synced()
        assert text_of(live) == "x" * 10_000


async def test_awareness_both_ways(server: RunningServer, node: SpawnNode) -> None:
    yjs = await node("sdk/awareness")
    await yjs.synced()
    await yjs.set_awareness({"user": {"name": "Ada"}})
    async with CollabClient(server.http).open("sdk/awareness") as live:
        await live.synced()
        me = live.awareness.client_id
        # The Yjs client's state arrives with the join...
        await until(
            live, lambda: any(s.get("user") == {"name": "Ada"} for s in live.peers().values())
        )
        # ...and ours, cursor included, reaches it.
        live.set_presence(user={"name": "summarizer"}, cursor={"anchor": 3, "head": 5})
        await yjs.wait(f"r => r.awareness['{me}']?.user?.name === 'summarizer'")
        await yjs.wait(f"r => r.awareness['{me}']?.cursor?.head === 5")
        # Changes to it, too.
        live.set_presence(cursor={"anchor": 7, "head": 7})
        await yjs.wait(f"r => r.awareness['{me}']?.cursor?.head === 7")
        await yjs.set_awareness({"user": {"name": "Ada", "typing": True}})
        await until(
            live, lambda: any(s.get("user", {}).get("typing") for s in live.peers().values())
        )
    # Leaving removes our state for the others at once (not 30 s later).
    await yjs.wait(f"r => !('{me}' in r.awareness)")


async def test_reconnects_after_a_network_cut_and_loses_nothing(
    server: RunningServer, node: SpawnNode
) -> None:
    yjs = await node("sdk/cut")
    await yjs.synced()
    async with tcp_proxy(server.settings.port) as proxy:
        base = f"http://127.0.0.1:{proxy.port}"
        async with CollabClient(base).open("sdk/cut", min_backoff_s=0.05) as live:
            await live.synced()
            live.set_presence(user={"name": "bot"})
            me = live.awareness.client_id
            await yjs.wait(f"r => r.awareness['{me}']?.user?.name === 'bot'")
            text = live.doc.get("text", type=Text)
            text.insert(0, "before;")
            await yjs.wait("r => r.text === 'before;'")

            proxy.hold()  # a dead link: nothing passes, nobody notices yet
            text.insert(len(text), "offline;")  # made while the link is dead: lost on the wire
            await live.sent()
            await yjs.edit({"type": "text_insert", "index": 0, "value": "node;"})
            proxy.release()
            proxy.cut()
            await until(live, lambda: live.connections >= 2 and live.is_synced, timeout=10)

            # Both sides have everything: the resync carried what the cut swallowed.
            await until(live, lambda: text_of(live) == "node;before;offline;")
            await yjs.wait("r => r.text === 'node;before;offline;'")
            # Our awareness state is back for the others, and changes flow again.
            live.set_presence(cursor={"anchor": 1, "head": 2})
            await yjs.wait(f"r => r.awareness['{me}']?.cursor?.head === 2")


async def test_reconnects_after_the_server_restarts(
    node_available: None, settings: Settings
) -> None:
    """A deploy: the server goes away (1001) and comes back on the same port with the same
    database; the SDK reconnects by itself and edits flow both ways again."""
    base = f"http://127.0.0.1:{settings.port}"
    # Opened before any server listens: it retries until one does.
    async with CollabClient(base).open(
        "sdk/restart", min_backoff_s=0.05, max_backoff_s=0.5
    ) as live:
        async with serving(settings) as first:
            await until(live, lambda: live.is_synced, timeout=10)
            live.doc.get("text", type=Text).insert(0, "kept")
            await live.sent()
            yjs = await NodeYClient.start(first.url, "sdk/restart")
            try:
                await yjs.wait("r => r.synced && r.text === 'kept'")
            finally:
                await yjs.kill()
        # The server is gone: the SDK notices and keeps working offline.
        await until(live, lambda: not live.connected)
        live.doc.get("text", type=Text).insert(4, " offline")
        async with serving(settings) as second:
            await until(live, lambda: live.is_synced, timeout=15)
            yjs = await NodeYClient.start(second.url, "sdk/restart")
            try:
                await yjs.wait("r => r.synced && r.text === 'kept offline'")
                await yjs.edit({"type": "text_insert", "index": 0, "value": "! "})
                await until(live, lambda: text_of(live) == "! kept offline")
            finally:
                await yjs.kill()
        assert live.connections >= 2


async def test_an_invalid_name_ends_the_document_with_4404(server: RunningServer) -> None:
    with pytest.raises(DocumentClosed) as caught:
        async with CollabClient(server.http).open("x" * 600) as live:
            await live.synced()
            pytest.fail("a 600-byte name cannot sync")
    assert caught.value.code == 4404


async def test_tokens_missing_or_for_another_document_end_it_without_retrying(
    server_with: Any,
) -> None:
    secret = "s" * 32
    async with server_with(auth_secret=secret) as srv:
        with pytest.raises(DocumentClosed) as no_token:
            async with CollabClient(srv.http).open("sdk/secret") as live:
                await live.synced()
        assert no_token.value.code == 4401
        assert live.connections == 1  # no reconnect loop

        other = mint_token(doc="elsewhere/*", write=True, ttl_s=60, secret=secret)
        with pytest.raises(DocumentClosed) as wrong_doc:
            async with CollabClient(srv.http, token=other).open("sdk/secret") as live:
                await live.synced()
        assert wrong_doc.value.code == 4403

        good = mint_token(doc="sdk/*", write=True, ttl_s=60, user="bot", secret=secret)
        async with CollabClient(srv.http, token=good).open("sdk/secret") as live:
            await live.synced()
            live.doc.get("text", type=Text).insert(0, "allowed")
        async with CollabClient(srv.http, token=good).open("sdk/secret") as again:
            await again.synced()
            assert text_of(again) == "allowed"


async def test_a_cursor_yjs_editors_can_place_and_that_follows_the_text(
    server: RunningServer, node: SpawnNode
) -> None:
    yjs = await node("sdk/cursor")
    await yjs.synced()
    await yjs.edit({"type": "text_insert", "index": 0, "value": "h😀llo wörld"})
    async with CollabClient(server.http).open("sdk/cursor") as live:
        await until(live, lambda: text_of(live) == "h😀llo wörld")
        me = live.awareness.client_id
        live.set_cursor("text", 6, 11)  # "wörld" selected, to the end (Python indexes)
        await yjs.wait(f"r => r.awareness['{me}']?.cursor?.head != null")
        # JS counts UTF-16 units: the emoji is two.
        assert await yjs.cursor_of(me) == {"anchor": 7, "head": 12}
        # Someone types before it: the selection stays on the same characters.
        await yjs.edit({"type": "text_insert", "index": 0, "value": "¡"})
        assert await yjs.cursor_of(me) == {"anchor": 8, "head": 13}
        await until(live, lambda: text_of(live).startswith("¡"))
        live.set_cursor("text", 3)  # a caret just after the emoji: "¡h😀|llo"
        await yjs.wait(f"r => r.awareness['{me}']?.cursor?.head?.item?.clock === 3")
        assert await yjs.cursor_of(me) == {"anchor": 4, "head": 4}


@pytest.mark.parametrize("keepalive_s", [0.2, 60.0])
async def test_a_silent_client_is_kept_alive(server_with: Any, keepalive_s: float) -> None:
    """A bot that only listens (no edits, no awareness state) sends the server's heartbeat
    message often enough not to be closed as idle (4408). The server's own heartbeats (every
    0.2 s here) are the test's clock: 12 of them outlast its 1 s idle timeout. Without the
    keepalive (60 s) the server closes it and it reconnects."""
    async with server_with(idle_timeout_s=1.0, heartbeat_s=0.2, ws_ping_interval_s=0.4) as srv:
        client = CollabClient(srv.http)
        async with client.open("sdk/silent", keepalive_s=keepalive_s) as live:
            await live.synced()
            live.awareness.set_local_state(None)  # invisible: no awareness renewals either
            seen = live.received
            await until(live, lambda: live.received >= seen + 12, timeout=10)
            if keepalive_s < 1:
                assert live.connections == 1
            else:
                assert live.connections >= 2


async def test_errors_and_timeouts_in_the_body_come_out_as_they_are(server: RunningServer) -> None:
    client = CollabClient(server.http)
    with pytest.raises(ValueError, match="the bot's own"):
        async with client.open("sdk/errors") as live:
            await live.synced()
            raise ValueError("the bot's own")
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.3):
            async with client.open("sdk/errors") as live:
                await live.changed()  # nobody else is there (its sync brings nothing): times out
    # Nothing was left running: the document opens again at once.
    async with client.open("sdk/errors") as live:
        await live.synced()
