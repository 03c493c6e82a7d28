"""on_disconnect: every connection that reached the hooks ends here, with its close code, reason
and the context on_authenticate gave it; refusals before that (bad name, IP limits) do not.
Its errors are logged and go nowhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
import websockets
from pycrdt import Text

from collab import protocol as p
from collab.errors import Reject
from collab.hooks import Extension, OnAuthenticatePayload, OnConnectPayload, OnDisconnectPayload
from tests.conftest import serving, start_server
from tests.integration.hooks.support import (
    HeaderClient,
    Recorder,
    RefusedClient,
    closed,
    local_client,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.every_server]


class Auth(Recorder):
    """Context {"user": token}; the token "slow" waits forever, "reject" is refused 4403."""

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        await super().on_authenticate(payload)
        if payload.token == "slow":
            await anyio.sleep_forever()
        if payload.token == "reject":
            raise Reject(4403, "go away")
        return {"user": payload.token}


# hypercorn reports a client's clean close to the app as 1006 (its websocket.disconnect).
@pytest.mark.every_server(kinds=("collab", "uvicorn"))
async def test_a_clean_close_reports_1000_with_the_context(settings):
    rec = Auth()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=ada") as a:
            await a.wait_for(lambda: a.synced)
            address = local_client(a)
            await a.close()
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        [gone] = rec.payloads("on_disconnect")
        assert (gone.document, gone.code, gone.reason) == ("doc", 1000, "")
        assert gone.connection is rec.payloads("on_connect")[0].connection
        assert gone.connection.client == address
        assert gone.connection.context == {"user": "ada"}
        assert not srv.hub.connections and not srv.hub.rooms["doc"].members


# uvicorn's own WebSocket layer reports a lost connection to the app as 1005.
@pytest.mark.every_server(kinds=("collab", "hypercorn"))
async def test_a_dropped_connection_reports_an_abnormal_code(settings):
    rec = Auth()
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=bob") as a, YClient(srv.url, "doc") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            a.abort()  # no close frame: a crash, a pulled cable
            await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
            [gone] = rec.payloads("on_disconnect")
            # No closing handshake: 1006 (RFC 6455 7.1.5), never mistaken for a clean 1000.
            assert gone.code == 1006 and gone.reason == ""
            assert gone.connection.context == {"user": "bob"}
            assert b.close_code is None


async def send_too_much(c: YClient) -> None:
    for _ in range(3):
        await c.send(p.update_message(b"\x00\x00"))


# name: (settings changes, query of the client that is closed, what it sends, code, reason)
SERVER_CLOSES = {
    "refused by on_authenticate": ({}, "token=reject", None, 4403, "go away"),
    "authentication timed out": (
        {"auth_timeout_s": 0.3},
        "token=slow",
        None,
        4408,
        "authentication timed out",
    ),
    "too much data before authentication": (
        {"pre_auth_max_messages": 2},
        "token=slow",
        send_too_much,
        1008,
        "too much data before authentication",
    ),
    "protocol error": ({}, "token=eve", lambda c: c.send(bytes([0, 2, 0x85])), 1002, None),
}


@pytest.mark.parametrize("case", list(SERVER_CLOSES))
async def test_a_server_side_close_reports_its_code_and_reason(settings, case):
    changes, query, send, code, reason = SERVER_CLOSES[case]
    rec = Auth()
    async with serving(settings.replace(**changes), extensions=[rec]) as srv:
        async with RefusedClient(srv.url, "doc", query=query) as c:
            if send is not None:
                await send(c)
            got_code, got_reason = await closed(c)
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        [gone] = rec.payloads("on_disconnect")
        assert (gone.code, got_code) == (code, code)
        assert gone.reason == got_reason
        if reason is not None:
            assert gone.reason == reason
        assert not srv.hub.connections


async def test_document_full_reports_1013(settings):
    rec = Auth()
    async with serving(settings.replace(max_connections_per_document=1), extensions=[rec]) as srv:
        async with YClient(srv.url, "doc", query="token=first") as a:
            await a.wait_for(lambda: a.synced)
            async with RefusedClient(srv.url, "doc", query="token=second") as b:
                assert (await closed(b))[0] == 1013
            await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
            [gone] = rec.payloads("on_disconnect")
            assert gone.code == 1013 and gone.reason == "document full: too many connections"
            assert gone.connection.context == {"user": "second"}
            assert a.close_code is None


async def test_server_shutdown_reports_1001(settings):
    rec = Auth()
    async with anyio.create_task_group() as tg:  # `serving`, with the client inside
        srv = await start_server(tg, settings, extensions=[rec])
        async with YClient(srv.url, "doc", query="token=ada") as a:
            await a.wait_for(lambda: a.synced)
            await srv.server.stop()  # what SIGTERM does
            assert await closed(a) == (1001, "server shutting down")
            await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
    [gone] = rec.payloads("on_disconnect")
    assert (gone.code, gone.reason) == (1001, "server shutting down")
    assert gone.connection.context == {"user": "ada"}


async def refused(url: str) -> int:
    """Connect without sending anything; the close code the server answers with."""
    async with websockets.connect(url) as ws:
        with anyio.fail_after(5):
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
        assert ws.protocol.close_rcvd is not None
        return ws.protocol.close_rcvd.code


@pytest.mark.parametrize(
    ("name", "changes", "code"),
    [
        ("a\x01b", {}, 4404),  # invalid document name: refused before admission
        ("doc", {"max_connections_per_ip": 1}, 1008),  # too many connections from one IP
    ],
    ids=["invalid name", "ip limit"],
)
async def test_refusals_before_the_hooks_run_call_no_hook(settings, name, changes, code):
    rec = Auth()
    async with serving(settings.replace(**changes), extensions=[rec]) as srv:
        async with YClient(srv.url, "holder", query="token=holder") as holder:
            await holder.wait_for(lambda: holder.synced)
            url = YClient(srv.url, name, query="token=refused").url
            assert await refused(url) == code
            await holder.close()

        # The holder's on_disconnect comes after whatever the refused connection would have run.
        def contexts() -> list[dict[str, Any]]:
            return [p.connection.context for p in rec.payloads("on_disconnect")]

        await rec.wait_for(lambda: {"user": "holder"} in contexts())
        assert contexts() == [{"user": "holder"}]
        assert rec.count("on_connect") == 1


class Broken(Recorder):
    async def on_disconnect(self, payload: OnDisconnectPayload) -> None:
        await super().on_disconnect(payload)
        raise RuntimeError("audit sink down")


async def test_an_exception_is_logged_and_other_extensions_still_run(settings, caplog):
    broken, after = Broken("broken", priority=200), Recorder("after", priority=100)
    async with serving(settings, extensions=[broken, after]) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            async with YClient(srv.url, "doc") as b:
                await b.wait_for(lambda: b.synced)
            await after.wait_for(lambda: after.count("on_disconnect") == 1)
            assert broken.count("on_disconnect") == 1
            assert any("on_disconnect hook" in r.getMessage() for r in caplog.records)
            async with YClient(srv.url, "doc") as c:
                a.doc.get("t", type=Text).insert(0, "fine")
                await c.wait_for(lambda: str(c.doc.get("t", type=Text)) == "fine")
            assert a.close_code is None


async def test_an_on_connect_reject_reports_its_code(settings):
    class Refuse(Recorder):
        async def on_connect(self, payload: OnConnectPayload) -> None:
            await super().on_connect(payload)
            raise Reject(4403, "closed for the day")

    rec = Refuse()
    async with serving(settings, extensions=[rec]) as srv:
        async with RefusedClient(srv.url, "doc") as c:
            await closed(c)
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        [gone] = rec.payloads("on_disconnect")
        assert (gone.code, gone.reason) == (4403, "closed for the day")
        assert gone.connection.context == {}


class DisconnectOnly(Extension):
    """No hook at the door (the admission without a task), on_disconnect alone."""

    name = "gone"

    def __init__(self) -> None:
        self.gone: list[OnDisconnectPayload] = []
        self.event = anyio.Event()

    async def on_disconnect(self, payload: OnDisconnectPayload) -> None:
        self.gone.append(payload)
        self.event.set()


async def test_sees_the_headers_when_it_is_the_only_hook(settings):
    ext = DisconnectOnly()
    async with serving(settings, extensions=[ext]) as srv:
        async with HeaderClient(srv.url, "doc", headers={"X-Request-Id": "req-7"}) as a:
            await a.wait_for(lambda: a.synced)
        with anyio.fail_after(10):
            await ext.event.wait()
        [gone] = ext.gone
        assert gone.connection.headers["x-request-id"] == "req-7"
        assert gone.connection.headers["host"] == f"127.0.0.1:{settings.port}"
