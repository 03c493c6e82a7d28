"""on_connect: runs after accept with what the request carried; a Reject or a crash closes only
that connection, before any room exists for it."""

from __future__ import annotations

import pytest
from pycrdt import Text

from collab.errors import Reject
from collab.hooks import OnConnectPayload
from tests.conftest import serving
from tests.integration.hooks.support import (
    HeaderClient,
    Recorder,
    RefusedClient,
    closed,
    local_client,
    text,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.every_server]


class Refuse(Recorder):
    """Refuses documents in `refused` with `error` (a Reject or any other exception)."""

    def __init__(self, error: Exception, refused: str = "secret") -> None:
        super().__init__()
        self.error = error
        self.refused = refused

    async def on_connect(self, payload: OnConnectPayload) -> None:
        await super().on_connect(payload)
        if payload.document == self.refused:
            raise self.error


async def test_sees_document_client_headers_and_query_without_the_token(settings):
    rec = Recorder()
    async with serving(settings, extensions=[rec]) as srv:
        async with HeaderClient(
            srv.url,
            "team/notes é",
            query="token=s3cret&view=draft&lang=fr",
            headers={"X-Request-Id": "req-42", "User-Agent": "hook-test"},
        ) as c:
            await c.wait_for(lambda: c.synced)
            [payload] = rec.payloads("on_connect")
            info = payload.connection
            assert payload.document == info.document == "team/notes é"
            assert info.client == local_client(c)
            assert info.headers["x-request-id"] == "req-42"
            assert info.headers["user-agent"] == "hook-test"
            assert info.headers["host"] == f"127.0.0.1:{settings.port}"
            assert dict(info.query) == {"view": "draft", "lang": "fr"}
            assert "s3cret" not in repr(info)
            assert info.context == {} and info.read_only is False
            assert rec.count("on_authenticate") == 1  # on_connect came first, then auth
            connection_hooks = [h for h, _ in rec.calls if h != "on_startup"]
            assert connection_hooks[:2] == ["on_connect", "on_authenticate"]


async def test_reject_closes_after_accept_with_its_code_and_reason_and_creates_no_room(settings):
    rec = Refuse(Reject(4403, "not on the guest list"))
    async with serving(settings, extensions=[rec]) as srv:
        async with RefusedClient(srv.url, "secret") as c:
            # The handshake succeeded (we are inside the context), then the server closed with
            # a close frame carrying the hook's code and reason: not an HTTP error, not a 1006.
            assert await closed(c) == (4403, "not on the guest list")
            assert c.received == [] and not c.synced
        await rec.wait_for(lambda: rec.count("on_disconnect") == 1)
        hub = srv.hub
        assert "secret" not in hub.rooms and "secret" not in hub._loading
        assert hub.loads == 0 and not hub.connections
        assert rec.count("on_authenticate") == 0 and rec.count("on_load_document") == 0
        assert await hub.store.list_documents() == []


async def test_reject_leaves_other_documents_and_their_clients_alone(settings):
    rec = Refuse(Reject(4403, "no"))
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "open") as a, YClient(srv.url, "open") as b:
            await a.wait_for(lambda: a.synced)
            await b.wait_for(lambda: b.synced)
            async with RefusedClient(srv.url, "secret") as refused:
                assert (await closed(refused))[0] == 4403
            a.doc.get("t", type=Text).insert(0, "still here")
            await b.wait_for(lambda: text(b) == "still here")
            assert a.close_code is None and b.close_code is None
            assert list(srv.hub.rooms) == ["open"]


async def test_an_exception_closes_1011_and_the_server_keeps_serving(settings, caplog):
    rec = Refuse(RuntimeError("hook bug"))
    async with serving(settings, extensions=[rec]) as srv:
        async with YClient(srv.url, "open") as a:
            await a.wait_for(lambda: a.synced)
            async with RefusedClient(srv.url, "secret") as c:
                assert await closed(c) == (1011, "internal error")
            assert "hook bug" not in c.close_reason
            assert any(r.exc_info and r.exc_info[1] is rec.error for r in caplog.records)
            assert "secret" not in srv.hub.rooms and "secret" not in srv.hub._loading
            async with YClient(srv.url, "open") as b:
                a.doc.get("t", type=Text).insert(0, "alive")
                await b.wait_for(lambda: text(b) == "alive")
            assert a.close_code is None


async def test_reject_with_an_application_defined_code(settings):
    class Custom(Recorder):
        async def on_connect(self, payload: OnConnectPayload) -> None:
            raise Reject(4001, "maintenance window")

    async with serving(settings, extensions=[Custom()]) as srv:
        async with RefusedClient(srv.url, "doc") as c:
            assert await closed(c) == (4001, "maintenance window")
