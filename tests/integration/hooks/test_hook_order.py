"""Extensions run highest priority first, equal priorities in registration order, one after
another; a Reject from one stops those after it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from pycrdt import Text

from collab.errors import Reject
from collab.hooks import HOOKS, OnAuthenticatePayload, OnConnectPayload
from collab.protocols.hocuspocus_codec import AUTH
from tests.conftest import serving
from tests.hocuspocus_wire import auth, hocuspocus_wire, stateless
from tests.integration.hooks.support import Recorder, RefusedClient, closed
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_every_hook_runs_highest_priority_first_equal_ones_in_registration_order(settings):
    log: list[tuple[str, str]] = []
    # Registered out of order on purpose; the two 100s must keep this relative order.
    extensions = [
        Recorder("low", priority=10, log=log),
        Recorder("mid-1", priority=100, log=log),
        Recorder("high", priority=500, log=log),
        Recorder("mid-2", priority=100, log=log),
        Recorder("negative", priority=-5, log=log),
    ]
    expected = ["high", "mid-1", "mid-2", "low", "negative"]
    last = extensions[-1]
    async with serving(settings.replace(unload_grace_s=0.2), extensions=extensions) as srv:
        async with YClient(srv.url, "doc") as a:
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, "x")
            await last.wait_for(lambda: last.count("on_store_document") == 1)
        await last.wait_for(lambda: last.count("on_unload_document") == 1)
        async with hocuspocus_wire(srv.url) as hp_client:  # a stateless message: on_stateless
            await hp_client.send(auth("doc"))
            await hp_client.expect("doc", AUTH)
            await hp_client.send(stateless("doc", "hi"))
            await last.wait_for(lambda: last.count("on_stateless") == 1)
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            # nobody grants access (each returns None) while auth hooks exist: 401
            assert (await http.get("/api/documents")).status_code == 401
    for hook in HOOKS:  # (connect, authenticate, disconnect: once for each of the two sockets)
        names = [name for name, h in log if h == hook]
        assert names and names == expected * (len(names) // len(expected)), hook


class RejectIn(Recorder):
    def __init__(self, hook: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = hook

    async def on_connect(self, payload: OnConnectPayload) -> None:
        await super().on_connect(payload)
        if self.hook == "on_connect":
            raise Reject(4403, f"{self.name} says no")

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        await super().on_authenticate(payload)
        if self.hook == "on_authenticate":
            raise Reject(4401, f"{self.name} says no")
        return None


@pytest.mark.parametrize(("hook", "code"), [("on_connect", 4403), ("on_authenticate", 4401)])
async def test_a_reject_stops_the_extensions_after_it(settings, hook, code):
    log: list[tuple[str, str]] = []
    high = Recorder("high", priority=300, log=log)
    gate = RejectIn(hook, name="gate", priority=200, log=log)
    low = Recorder("low", priority=100, log=log)
    async with serving(settings, extensions=[low, gate, high]) as srv:
        async with RefusedClient(srv.url, "doc") as c:
            assert await closed(c) == (code, "gate says no")
        await low.wait_for(lambda: low.count("on_disconnect") == 1)
        assert "doc" not in srv.hub.rooms
    admission = [entry for entry in log if entry[1] in ("on_connect", "on_authenticate")]
    if hook == "on_connect":
        assert admission == [("high", "on_connect"), ("gate", "on_connect")]
    else:
        assert admission == [
            ("high", "on_connect"),
            ("gate", "on_connect"),
            ("low", "on_connect"),
            ("high", "on_authenticate"),
            ("gate", "on_authenticate"),
        ]
    # Everyone still hears about the disconnect, in order, and nothing was loaded.
    assert [e for e in log if e[1] == "on_disconnect"] == [
        ("high", "on_disconnect"),
        ("gate", "on_disconnect"),
        ("low", "on_disconnect"),
    ]
    assert not [e for e in log if e[1] == "on_load_document"]


async def test_one_hook_finishes_before_the_next_extension_starts(settings):
    """Hooks are awaited one after another, never concurrently."""
    log: list[tuple[str, str]] = []

    class Yielding(Recorder):
        async def on_connect(self, payload: OnConnectPayload) -> None:
            self.log.append((self.name, "start"))
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            self.log.append((self.name, "end"))

    first, second = Yielding("first", priority=2, log=log), Yielding("second", priority=1, log=log)
    async with serving(settings, extensions=[second, first]) as srv:
        async with YClient(srv.url, "doc") as c:
            await c.wait_for(lambda: c.synced)
    steps = [entry for entry in log if entry[1] in ("start", "end")]  # (not on_startup etc.)
    assert steps[:4] == [
        ("first", "start"),
        ("first", "end"),
        ("second", "start"),
        ("second", "end"),
    ]
