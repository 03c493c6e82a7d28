"""on_authenticate: gets the ?token=, may return a context, make the connection read-only or
refuse it, all within auth_timeout_s; what the client sends meanwhile is kept and handled after."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from collab.errors import Reject
from collab.hooks import OnAuthenticatePayload, OnConnectPayload
from tests.conftest import serving
from tests.integration.hooks.support import (
    Recorder,
    RefusedClient,
    closed,
    connection_of,
    stored_text,
    text,
    until,
    update_inserting,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.every_server]


class Tokens(Recorder):
    """Grants by token: "reader" is read-only; anything else returns `{"user": token}`."""

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        await super().on_authenticate(payload)
        if payload.token == "reader":
            payload.connection.read_only = True
        return {"user": payload.token}


@pytest.mark.parametrize(
    ("query", "token"),
    [("token=abc.def-123&x=1", "abc.def-123"), ("x=1", None), ("", None)],
)
async def test_receives_the_token_from_the_query_string(settings, query, token):
    rec = Recorder()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query=query) as c:
            await c.wait_for(lambda: c.synced)
        [payload] = rec.payloads("on_authenticate")
        assert payload.token == token
        assert payload.document == "doc"
        assert payload.connection is rec.payloads("on_connect")[0].connection
        assert "token" not in payload.connection.query


async def test_returned_context_reaches_later_hooks(settings):
    first, second = Tokens("first", priority=200), Recorder("second", priority=100)
    async with serving(settings, extensions=[first, second]) as srv:
        async with YClient(srv.url, "doc", query="token=ada") as a:
            await a.wait_for(lambda: a.synced)
            # A lower-priority extension's on_authenticate already sees it.
            [seen] = second.payloads("on_authenticate")
            assert seen.connection.context == {"user": "ada"}
            a.doc.get("t", type=Text).insert(0, "hi")
            await second.wait_for(lambda: second.count("on_change") == 1)
        await second.wait_for(lambda: second.count("on_disconnect") == 1)
    [change] = second.payloads("on_change")
    assert change.connection.context == {"user": "ada"}
    [gone] = second.payloads("on_disconnect")
    assert gone.connection.context == {"user": "ada"}


async def test_read_only_edits_reach_nobody_but_its_awareness_does(settings):
    rec = Tokens()
    async with serving(settings, extensions=[rec]) as srv:
        offline: Doc = Doc()
        offline.get("t", type=Text).insert(0, "offline edit")
        async with (
            YClient(srv.url, "doc", query="token=writer") as writer,
            YClient(srv.url, "doc", query="token=reader", doc=offline) as reader,
        ):
            await writer.wait_for(lambda: writer.synced)
            # Once synced, the reader has sent its sync step 2 (with "offline edit").
            await reader.wait_for(lambda: reader.synced)
            await reader.send(p.update_message(update_inserting("typed edit")))
            await reader.set_awareness({"user": "reader", "cursor": 3})
            # Frames of one connection are handled in order: once the writer sees the reader's
            # presence, the server has handled (and dropped) both of the reader's edits.
            await writer.wait_for(
                lambda: {"user": "reader", "cursor": 3} in writer.present().values()
            )
            assert text(writer) == ""
            assert srv.hub.rooms["doc"].read_only_dropped == 2
            # The reader still reads.
            writer.doc.get("t", type=Text).insert(0, "from writer")
            await reader.wait_for(lambda: "from writer" in text(reader))
            log = srv.hub.saver.log("doc")
            await until(lambda: log.appended == 1 and log.committed == 1)
            assert await stored_text(srv.hub.store, "doc") == "from writer"
        assert [c.connection.context for c in rec.payloads("on_change")] == [{"user": "writer"}]


@pytest.mark.parametrize(("code", "reason"), [(4401, "token expired"), (4403, "not your document")])
async def test_reject_closes_with_its_code(settings, code, reason):
    class Refuse(Recorder):
        async def on_authenticate(self, payload: OnAuthenticatePayload) -> None:
            await super().on_authenticate(payload)
            raise Reject(code, reason)

    rec = Refuse()
    async with serving(settings, extensions=[rec]) as srv:
        async with RefusedClient(srv.url, "doc", query="token=bad") as c:
            assert await closed(c) == (code, reason)
            assert not c.synced
        assert "doc" not in srv.hub.rooms and srv.hub.loads == 0
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        assert rec.count("on_load_document") == 0


class Stall(Recorder):
    """`hook` ("on_connect" or "on_authenticate") waits for `release` (or forever), except
    on_authenticate with the token "fast"."""

    def __init__(self, hook: str) -> None:
        super().__init__()
        self.hook = hook
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = False

    async def _stall(self, hook: str) -> None:
        if hook != self.hook:
            return
        self.entered.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise

    async def on_connect(self, payload: OnConnectPayload) -> None:
        await super().on_connect(payload)
        await self._stall("on_connect")

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> None:
        await super().on_authenticate(payload)
        if payload.token != "fast":
            await self._stall("on_authenticate")


@pytest.mark.parametrize("hook", ["on_authenticate", "on_connect"])
async def test_a_hook_slower_than_auth_timeout_closes_4408(settings, hook):
    rec = Stall(hook)
    async with serving(settings.replace(auth_timeout_s=0.5), extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=slow") as c:
            assert await closed(c) == (4408, "authentication timed out")
        assert rec.cancelled  # the hook was cancelled, not left running
        assert "doc" not in srv.hub.rooms and not srv.hub.connections


async def test_frames_sent_during_a_slow_authentication_are_handled_afterwards_in_order(
    settings,
):
    rec = Stall("on_authenticate")
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=fast") as b:
            await b.wait_for(lambda: b.synced)
            async with YClient(srv.url, "doc", query="token=slow") as a:
                with anyio.fail_after(5):
                    await rec.entered.wait()
                # Sent right after open, while the hook still runs: "a" then "b" after it.
                draft: Doc = Doc()
                first, second = update_inserting("a", draft), update_inserting("b", draft)
                await a.send(p.update_message(first))
                await a.send(p.update_message(second))
                pending = connection_of(rec.payloads("on_authenticate")[1].connection).pending
                await until(lambda: len(pending) == 3)  # sync step 1 + the two updates
                assert text(b) == "" and not a.synced and rec.count("on_change") == 0
                rec.release.set()
                await b.wait_for(lambda: text(b) == "ab")
                await a.wait_for(lambda: a.synced)
                assert a.close_code is None
            await rec.wait_for(lambda: rec.count("on_change") == 2)
            assert [c.update for c in rec.payloads("on_change")] == [first, second]


# hypercorn reports a client's clean close to the app as 1006 (its websocket.disconnect).
@pytest.mark.every_server(kinds=("collab", "uvicorn"))
async def test_a_client_leaving_during_authentication_cancels_the_hook(settings):
    rec = Stall("on_authenticate")
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=slow") as c:
            with anyio.fail_after(5):
                await rec.entered.wait()
            await c.close()
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        assert rec.cancelled
        assert rec.payloads("on_disconnect")[0].code == 1000
        assert "doc" not in srv.hub.rooms and srv.hub.loads == 0


async def test_a_token_expiry_in_the_context_closes_4401_when_it_passes(settings):
    class Expiring(Recorder):
        async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any]:
            await super().on_authenticate(payload)
            return {"token_expires_at": time.time() + 0.3}

    rec = Expiring()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc") as c:
            await c.wait_for(lambda: c.synced)
            assert await closed(c) == (4401, "token expired")
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        assert rec.payloads("on_disconnect")[0].code == 4401
