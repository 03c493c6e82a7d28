"""Each limit, set small, against a real server: what trips it, what it looks like on the wire,
and that nobody else notices. Then a table holding one scenario per close code the server sends.

| limit (setting)                                 | default  | rejection on the wire               |
|-------------------------------------------------|----------|-------------------------------------|
| max_message_bytes                               | 16 MiB   | 1009 "frame with N bytes exceeds    |
|                                                 |          | limit of M bytes" (WebSocket layer) |
| rate_messages_per_s / rate_messages_burst       | 200/1000 | 1008 "rate limit exceeded"          |
| rate_bytes_per_s / rate_bytes_burst             | 4/64 MiB | 1008 "rate limit exceeded"          |
| max_connections_per_ip                          | 0 (off)  | 1008 "too many connections from     |
|                                                 |          | this address"                       |
| max_connect_attempts_per_ip (per minute)        | 0 (off)  | 1008 "too many connection attempts  |
|                                                 |          | from this address"                  |
| max_connections_per_document                    | 10000    | 1013 "document full: too many       |
|                                                 |          | connections"                        |
| max_documents                                   | 10000    | 1013 "server full: too many open    |
|                                                 |          | documents"                          |
| auth_timeout_s                                  | 10 s     | 4408 "authentication timed out"     |
| pre_auth_max_messages / pre_auth_max_bytes      | 32/1 MiB | 1008 "too much data before          |
|                                                 |          | authentication"                     |
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import websockets
from pycrdt import Doc, Text

from collab import protocol as p
from collab.errors import CloseCode
from collab.extensions.token_auth import mint_token
from collab.hooks import Extension, OnAuthenticatePayload, OnConnectPayload
from collab.settings import Settings
from tests.conftest import every_server, serving
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]

SECRET = "limits-secret-0123456789-abcdefghijklm"
HEARTBEAT = p.HEARTBEAT_MESSAGE  # a valid awareness frame with no entries: costs the server ~0


def update_frame(text: str, client_id: int | None = None) -> bytes:
    doc: Doc[Any] = Doc() if client_id is None else Doc(client_id=client_id)
    doc.get("t", type=Text).insert(0, text)
    return p.update_message(doc.get_update())


def frame_of_size(size: int) -> bytes:
    """A valid update message of exactly `size` bytes (client ids of 1 to 5 varint bytes fill
    the gaps where a length prefix grows by a byte)."""
    for client_id in (1, 1 << 7, 1 << 14, 1 << 21, 1 << 28):
        for n in range(size, 0, -1):
            frame = update_frame("y" * n, client_id)
            if len(frame) == size:
                return frame
            if len(frame) < size:
                break
    raise AssertionError(size)


def text(doc: Doc[Any]) -> str:
    return str(doc.get("t", type=Text))


@asynccontextmanager
async def synced(url: str, name: str = "doc", **kw: Any) -> AsyncIterator[YClient]:
    async with YClient(url, name, **kw) as client:
        await client.wait_for(lambda: client.synced or client.close_code is not None)
        assert client.close_code is None, (client.close_code, client.close_reason)
        yield client


async def barrier(client: YClient) -> None:
    """Returns once the server has handled everything `client` sent before the call."""

    def replies() -> int:
        return sum(1 for m in client.received if m[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP2]))

    await client.sent()
    before = replies()
    await client.send(p.sync_step1(client.doc.get_state()))
    await client.wait_for(lambda: replies() > before)


async def still_working(a: YClient, b: YClient, marker: str) -> None:
    """An edit from `a` reaches `b`."""
    t = a.doc.get("t", type=Text)
    t.insert(len(t), marker)
    await b.wait_for(lambda: marker in text(b.doc))
    assert a.close_code is None and b.close_code is None


async def flood(url: str, frames: list[bytes], timeout: float = 3) -> tuple[int, str, int]:
    """Send frames as fast as possible until the server closes: (code, reason, frames sent)."""
    sent = 0
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
                sent += 1
            with anyio.fail_after(timeout):
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason, sent) if rcvd is not None else (1006, "", sent)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    """Poll server state that has no event of its own, with a deadline."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def step2_reply(ws: Any) -> str:
    """Read until the next sync step 2 arrives; the text it carries."""
    doc: Doc[Any] = Doc()
    with anyio.fail_after(3):
        while True:
            message = await ws.recv()
            if message[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP2]):
                doc.apply_update(p.parse_sync(message).payload)
                return text(doc)


class Gate(Extension):
    """Holds every connection in on_authenticate until `open` is set."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.waiting = 0

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> None:
        self.waiting += 1
        await self.open.wait()


# -- message size ----------------------------------------------------------------------------


async def test_message_size(server_with):
    async with server_with(max_message_bytes=4096) as srv:
        url = f"{srv.url}/ws/doc"
        async with synced(srv.url) as a, synced(srv.url) as b:
            await a.send(frame_of_size(4096))  # at the limit: fine
            await b.wait_for(lambda: "y" * 4000 in text(b.doc))
            code, reason = await close_of(url, frame_of_size(4097))
            assert code == CloseCode.MESSAGE_TOO_BIG, reason
            await still_working(a, b, "small")


# -- rates -----------------------------------------------------------------------------------


async def test_typing_bursts_pass_floods_do_not(server_with):
    # The burst alone (2 sync messages + 50 updates) fits in 60; the 20 that follow only fit
    # because the bucket refills at 40/s while they are typed.
    async with server_with(rate_messages_per_s=40, rate_messages_burst=60) as srv:
        async with synced(srv.url) as typist, synced(srv.url) as reader:
            t = typist.doc.get("t", type=Text)
            for _ in range(50):  # a burst: autocomplete, a paste split in pieces, a reconnect
                t.insert(len(t), "x")
            await reader.wait_for(lambda: text(reader.doc) == "x" * 50)
            due = time.monotonic()
            for _ in range(20):  # then steady typing at 20 keys a second
                due += 0.05
                await anyio.sleep(max(0, due - time.monotonic()))
                t.insert(len(t), "y")
            await reader.wait_for(lambda: text(reader.doc) == "x" * 50 + "y" * 20)
            assert typist.close_code is None

            for frames in ([HEARTBEAT] * 400, [update_frame(f"{i}") for i in range(400)]):
                code, reason, sent = await flood(f"{srv.url}/ws/doc", frames)
                assert (code, reason) == (CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                assert sent >= 60  # the whole burst was allowed first
            await still_working(reader, typist, "after the floods")


async def test_default_rate_limit_stops_a_flood(server):
    async with synced(server.url) as a, synced(server.url) as b:
        code, reason, _ = await flood(f"{server.url}/ws/doc", [HEARTBEAT] * 3000)
        assert (code, reason) == (CloseCode.POLICY_VIOLATION, "rate limit exceeded")
        await still_working(a, b, "unharmed")


async def test_bytes_per_second(server_with):
    async with server_with(rate_bytes_per_s=10_000, rate_bytes_burst=20_000) as srv:
        async with synced(srv.url) as a, synced(srv.url) as b:
            t = a.doc.get("t", type=Text)
            t.insert(0, "a" * 8000)
            t.insert(0, "b" * 8000)  # 16 kB in a burst: allowed
            await b.wait_for(lambda: len(text(b.doc)) == 16000)
            code, reason, _ = await flood(f"{srv.url}/ws/doc", [frame_of_size(8000)] * 3)
            assert (code, reason) == (CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            await still_working(b, a, "fine")
            # A new connection gets a fresh bucket: the limit is per connection, not a ban.
            async with synced(srv.url) as c:
                await c.send(frame_of_size(8000))
                await barrier(c)
                assert c.close_code is None


# -- per IP ----------------------------------------------------------------------------------


async def test_connections_per_ip(server_with):
    async with server_with(max_connections_per_ip=3) as srv:
        async with synced(srv.url) as a, synced(srv.url) as b, synced(srv.url, "other") as c:
            code, reason = await close_of(f"{srv.url}/ws/doc")
            assert (code, reason) == (1008, "too many connections from this address")
            await still_working(a, b, "three still work")
            assert c.close_code is None
        await wait_until(lambda: srv.admission.ip_limits.open.get("127.0.0.1", 0) == 0)
        async with synced(srv.url), synced(srv.url), synced(srv.url):
            pass  # slots come back when connections close


async def test_connection_attempts_per_minute(server_with):
    async with server_with(max_connect_attempts_per_ip=5) as srv:
        async with synced(srv.url) as kept:
            for _ in range(4):
                async with synced(srv.url):
                    pass
            code, reason = await close_of(f"{srv.url}/ws/doc")
            assert (code, reason) == (1008, "too many connection attempts from this address")
            kept.doc.get("t", type=Text).insert(0, "open connections are not affected")
            await barrier(kept)
            assert kept.close_code is None
            # Refused attempts count too: hammering does not reopen the door.
            assert (await close_of(f"{srv.url}/ws/other"))[0] == 1008


async def first_answer(url: str, forwarded_for: str, stack: AsyncExitStack) -> str:
    """Connect as a client behind a proxy that says it is `forwarded_for`; "in" once admitted
    (the room's sync step 1 arrives), else the close reason. The socket stays open in `stack`."""
    ws = await stack.enter_async_context(
        websockets.connect(
            f"{url}/ws/doc",
            additional_headers={"X-Forwarded-For": forwarded_for},
            ping_interval=None,
        )
    )
    try:
        with anyio.fail_after(3):
            message = await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.reason if exc.rcvd is not None else "1006"
    assert isinstance(message, bytes) and message[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1])
    return "in"


# The ASGI servers apply their own proxy-header settings (uvicorn's --forwarded-allow-ips);
# trusted_proxies is the fast path's.
@pytest.mark.every_server(kinds=("collab",))
async def test_per_ip_limits_behind_a_trusted_proxy_count_the_forwarded_address(server_with):
    """docs/limits.md: behind a proxy, the limits count each client's own address (from
    X-Forwarded-For) when the proxy is trusted, and the proxy's otherwise."""
    refused = "too many connections from this address"
    async with server_with(max_connections_per_ip=2, trusted_proxies="127.0.0.1/32") as srv:
        async with AsyncExitStack() as stack:
            assert await first_answer(srv.url, "203.0.113.5", stack) == "in"
            assert await first_answer(srv.url, "203.0.113.5", stack) == "in"
            assert await first_answer(srv.url, "203.0.113.5", stack) == refused
            assert await first_answer(srv.url, "203.0.113.6", stack) == "in"  # someone else
    async with server_with(max_connections_per_ip=2, trusted_proxies="10.9.9.9") as srv:
        async with AsyncExitStack() as stack:  # an untrusted header is ignored: one address
            assert await first_answer(srv.url, "203.0.113.5", stack) == "in"
            assert await first_answer(srv.url, "203.0.113.6", stack) == "in"
            assert await first_answer(srv.url, "203.0.113.7", stack) == refused


async def test_per_ip_limits_are_off_by_default(server):
    """Many people share one address (an office, a carrier): see test_shared_address.py."""
    assert not server.admission.ip_limits.enabled
    async with AsyncExitStack() as stack:
        for _ in range(300):  # more than the old default of 256
            assert await first_answer(server.url, "", stack) == "in"
    assert server.admission.ip_limits.open == {}


# -- per document and per process -------------------------------------------------------------


async def test_connections_per_document(server_with):
    async with server_with(max_connections_per_document=2) as srv:
        async with synced(srv.url) as a:
            async with synced(srv.url) as b:
                code, reason = await close_of(f"{srv.url}/ws/doc")
                assert (code, reason) == (1013, "document full: too many connections")
                async with synced(srv.url, "other"), synced(srv.url, "other"):
                    pass  # other documents are fine
                await still_working(a, b, "both fine")
            await wait_until(lambda: len(srv.hub.rooms["doc"].members) == 1)
            async with synced(srv.url) as c:  # b's place is free again
                await still_working(a, c, "c joined")


async def test_documents_per_process(server_with):
    async with server_with(max_documents=2, unload_grace_s=0.1) as srv:
        async with synced(srv.url, "one") as a:
            async with synced(srv.url, "two"):
                code, reason = await close_of(f"{srv.url}/ws/three")
                assert (code, reason) == (1013, "server full: too many open documents")
                assert "three" not in srv.hub.rooms
                async with synced(srv.url, "one") as a2:  # open documents take more people
                    await still_working(a, a2, "one is fine")
            # Once "two" is empty, clean and past its grace period it is unloaded (next tick).
            await wait_until(lambda: "two" not in srv.hub.rooms)
            async with synced(srv.url, "three"):
                pass


# -- before authentication ---------------------------------------------------------------------


async def test_auth_deadline(settings):
    gate = Gate()
    async with serving(settings.replace(auth_timeout_s=0.3), extensions=[gate]) as srv:
        started = time.monotonic()
        code, reason = await close_of(f"{srv.url}/ws/doc")
        assert (code, reason) == (4408, "authentication timed out")
        assert 0.3 <= time.monotonic() - started < 2
        assert not srv.hub.connections and "doc" not in srv.hub.rooms


async def test_pre_auth_message_and_byte_caps(settings):
    gate = Gate()
    limits = settings.replace(pre_auth_max_messages=4, pre_auth_max_bytes=1000, auth_timeout_s=10)
    async with serving(limits, extensions=[gate]) as srv:
        url = f"{srv.url}/ws/doc"
        async with (
            # (max_queue=None: frames nobody reads must not stall the client's closing handshake)
            websockets.connect(url, max_queue=None) as at_cap,
            websockets.connect(url, max_queue=None) as big_but_under,
        ):
            # Exactly at the caps: 4 frames; one 900-byte frame. Both wait for authentication.
            for word in ("one ", "two ", "three "):
                await at_cap.send(update_frame(word))
            await at_cap.send(p.sync_step1(b"\x00"))
            await big_but_under.send(frame_of_size(900))
            await big_but_under.send(p.sync_step1(b"\x00"))
            # One frame more, or 200 bytes more, before authentication: closed at once.
            code, reason = await close_of(url, *[HEARTBEAT] * 5, timeout=2)
            assert (code, reason) == (1008, "too much data before authentication")
            code, reason = await close_of(url, frame_of_size(600), frame_of_size(600), timeout=2)
            assert (code, reason) == (1008, "too much data before authentication")
            assert gate.waiting >= 4  # (the closed ones were waiting too)

            gate.open.set()
            # What waited is handled in order once joined: the step 1 is answered after the
            # three updates were applied, and the 900-byte update is in the room.
            words = (await step2_reply(at_cap)).split()
            assert sorted(w for w in words if "y" not in w) == ["one", "three", "two"]
            assert "y" * 850 in await step2_reply(big_but_under)
            # After authentication the pre-auth caps no longer apply.
            for i in range(20):
                await at_cap.send(update_frame(f"later{i} "))
            await at_cap.send(frame_of_size(3000))
            await at_cap.send(p.sync_step1(b"\x00"))
            assert "later19" in await step2_reply(at_cap)
            assert at_cap.close_code is None


async def test_authenticated_connections_are_not_subject_to_pre_auth_caps(server_with):
    tok = mint_token(doc="doc", write=True, ttl_s=60, secret=SECRET)
    limits = {"pre_auth_max_messages": 2, "pre_auth_max_bytes": 300, "auth_secret": SECRET}
    async with server_with(**limits) as srv:
        async with synced(srv.url, query=f"token={tok}") as a:
            t = a.doc.get("t", type=Text)
            for i in range(30):
                t.insert(len(t), f"{i},")
            t.insert(0, "z" * 5000)
            await barrier(a)
            assert a.close_code is None
            assert text(srv.hub.rooms["doc"].doc).endswith("28,29,")


# -- every close code, one scenario each ---------------------------------------------------------

Scenario = Callable[[Callable[..., Any], Settings], Awaitable[tuple[int, str]]]
SCENARIOS: dict[CloseCode, tuple[str, Scenario]] = {}


def scenario(code: CloseCode, what: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[code] = (what, fn)
        return fn

    return register


@scenario(CloseCode.NORMAL, "the echo of a client's own close (the server never starts one)")
async def _normal(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv, websockets.connect(f"{srv.url}/ws/doc") as ws:
        await ws.recv()
        await ws.close()
        assert ws.protocol.close_rcvd is not None
        return ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason


@scenario(CloseCode.GOING_AWAY, "server shutting down (SIGTERM)")
async def _going_away(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv, synced(srv.url) as client:
        await srv.server.stop()
        await client.wait_for(lambda: client.close_code is not None)
        return client.close_code or 0, client.close_reason


@scenario(CloseCode.PROTOCOL_ERROR, "a truncated sync message")
async def _protocol_error(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv:
        return await close_of(f"{srv.url}/ws/doc", bytes([p.MSG_SYNC]))


@scenario(CloseCode.UNSUPPORTED_DATA, "a text frame")
async def _unsupported(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv:
        return await close_of(f"{srv.url}/ws/doc", "hello")  # type: ignore[arg-type]


@scenario(CloseCode.POLICY_VIOLATION, "a flood of messages")
async def _policy(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with(rate_messages_per_s=10, rate_messages_burst=10) as srv:
        code, reason, _ = await flood(f"{srv.url}/ws/doc", [HEARTBEAT] * 50)
        return code, reason


@scenario(CloseCode.MESSAGE_TOO_BIG, "a frame over max_message_bytes")
async def _too_big(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with(max_message_bytes=1024) as srv:
        return await close_of(f"{srv.url}/ws/doc", frame_of_size(1025))


class Broken(Extension):
    async def on_connect(self, payload: OnConnectPayload) -> None:
        raise RuntimeError("a bug in an extension")


@scenario(CloseCode.INTERNAL_ERROR, "an extension's hook raising")
async def _internal(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with serving(settings, extensions=[Broken()]) as srv:
        return await close_of(f"{srv.url}/ws/doc")


@scenario(CloseCode.TRY_AGAIN_LATER, "max_documents reached")
async def _try_later(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with(max_documents=1) as srv, synced(srv.url, "one"):
        return await close_of(f"{srv.url}/ws/two")


@scenario(CloseCode.UNAUTHORIZED, "no token")
async def _unauthorized(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with(auth_secret=SECRET) as srv:
        return await close_of(f"{srv.url}/ws/doc")


@scenario(CloseCode.FORBIDDEN, "a token for another document")
async def _forbidden(server_with: Any, settings: Settings) -> tuple[int, str]:
    tok = mint_token(doc="other", write=True, ttl_s=60, secret=SECRET)
    async with server_with(auth_secret=SECRET) as srv:
        return await close_of(f"{srv.url}/ws/doc?token={tok}")


@scenario(CloseCode.NOT_FOUND, "an empty document name")
async def _not_found(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv:
        return await close_of(f"{srv.url}/ws/")


@scenario(CloseCode.IDLE_TIMEOUT, "authentication past auth_timeout_s")
async def _idle(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with serving(settings.replace(auth_timeout_s=0.2), extensions=[Gate()]) as srv:
        return await close_of(f"{srv.url}/ws/doc")


@scenario(CloseCode.CLOSED_BY_ADMIN, "an operator closing it through the admin API")
async def _closed_by_admin(server_with: Any, settings: Settings) -> tuple[int, str]:
    async with server_with() as srv, synced(srv.url) as client:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.delete("/api/admin/documents/doc/connections")
        assert response.json() == {"closed": 1}
        await client.wait_for(lambda: client.close_code is not None)
        assert client.close_code is not None
        return client.close_code, client.close_reason


def test_every_close_code_has_a_scenario():
    assert set(SCENARIOS) == set(CloseCode)


@pytest.mark.parametrize("code", list(SCENARIOS), ids=lambda c: f"{int(c)}-{c.name}")
async def test_close_code_scenario(server_with, settings, code):
    what, run = SCENARIOS[code]
    got, reason = await run(server_with, settings)
    assert got == code, f"{what}: got {got} {reason!r}"
    assert len(reason.encode()) <= 123
