"""collab/front.py on a real server: an upgrade goes to our socket without uvicorn's HTTP
protocol ever being made for it, and every other first request reaches uvicorn's protocol with
its bytes intact, which then serves, refuses or upgrades it as before.

The server runs with a subclass of uvicorn's HTTP protocol that counts its instances, so each
test sees which side took the connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collab import protocol as p
from collab.app import create_app
from collab.front import MAX_HEAD
from collab.server import CollabServer, uvicorn_config
from collab.settings import Settings
from tests.conftest import RunningServer
from tests.integration.test_websocket import (
    BINARY,
    PING,
    PONG,
    STEP_S,
    SYNC_STEP1_EMPTY,
    SYNC_STEP2_PREFIX,
    TEST_S,
    RawWebSocket,
    assert_refused,
    assert_upgraded,
    binary,
    mask,
    new_key,
    read_response,
    request,
    tcp,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Counted(HttpToolsProtocol):
    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
async def srv(settings: Settings) -> AsyncIterator[RunningServer]:
    Counted.made = 0
    app = create_app(settings)
    server = CollabServer(uvicorn_config(app, settings, http=Counted), app)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        running = RunningServer(settings, server, app)
        try:
            yield running
        finally:
            await running.hub.close_all(1001, "server shutting down", wait_s=2.0)
            await server.stop()


async def exchange(srv: RunningServer, data: bytes, *, dribble: bool = False) -> Any:
    async with tcp(srv) as (reader, writer):
        for chunk in [data[i : i + 1] for i in range(len(data))] if dribble else [data]:
            writer.write(chunk)
            await writer.drain()
        return await read_response(reader)


@pytest.mark.parametrize("dribble", [False, True], ids=["one write", "a byte per write"])
async def test_an_upgrade_never_makes_uvicorns_http_protocol(srv, dribble):
    key = new_key()
    with anyio.fail_after(TEST_S):
        async with tcp(srv) as (reader, writer):
            head = request("/ws/doc", srv.settings.port, {"Sec-WebSocket-Key": key}, [])
            ws = RawWebSocket(reader, writer)
            if dribble:
                await ws.dribble(head)
            else:
                writer.write(head)
                await writer.drain()
            assert_upgraded(await read_response(reader), key)
            await ws.join()
    assert Counted.made == 0


async def test_frames_in_the_same_write_as_the_upgrade_are_read(srv):
    key = new_key()
    lf = b"\n\n\n\n"  # a mask key of line feeds: the frames hold bytes a head must not
    ping = bytes([0x80 | PING, 0x80 | 4]) + lf + mask(b"ping", lf)
    with anyio.fail_after(TEST_S):
        async with tcp(srv) as (reader, writer):
            head = request("/ws/doc", srv.settings.port, {"Sec-WebSocket-Key": key}, [])
            writer.write(head + ping + binary(SYNC_STEP1_EMPTY))
            await writer.drain()
            assert_upgraded(await read_response(reader), key)
            ws = RawWebSocket(reader, writer)
            seen = []  # the server's step 1, our ping's pong and the answer to our step 1
            while len(seen) < 3:
                m = await ws.next_message()
                assert m is not None and m.opcode in (BINARY, PONG), m
                seen.append((m.opcode, m.payload[:2] if m.opcode == BINARY else m.payload))
    steps = [bytes([p.MSG_SYNC, p.SYNC_STEP1]), SYNC_STEP2_PREFIX]
    assert sorted(seen) == sorted([(BINARY, steps[0]), (PONG, b"ping"), (BINARY, steps[1])])
    assert Counted.made == 0


async def test_plain_http_reaches_uvicorn_and_keeps_its_connection(srv):
    with anyio.fail_after(TEST_S):
        async with tcp(srv) as (reader, writer):
            for _ in range(2):  # the second request on the same connection: keep-alive works
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                response = await read_response(reader)
                assert response.status == 200, response
    assert Counted.made == 1


async def test_a_post_with_a_body_split_over_writes_is_served(srv):
    body = b'{"not": "json'
    data = (
        b"POST /api/documents/x/content HTTP/1.1\r\nHost: x\r\ncontent-type: application/json"
        b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with anyio.fail_after(TEST_S):
        response = await exchange(srv, data, dribble=True)
    assert 400 <= response.status < 500, response  # uvicorn read the body; the API refused it
    assert Counted.made == 1


@pytest.mark.parametrize(
    ("first_line", "status"),
    [("POST /ws/doc HTTP/1.1", 405), ("GET /ws/doc HTTP/1.0", 101)],
    ids=["POST", "HTTP/1.0"],
)
async def test_other_upgrades_still_reach_our_socket_through_uvicorn(srv, first_line, status):
    key = new_key()
    data = request("/ws/doc", srv.settings.port, {"Sec-WebSocket-Key": key}, [])
    data = first_line.encode() + data[data.index(b"\r\n") :]
    with anyio.fail_after(TEST_S):
        response = await exchange(srv, data)
    if status == 101:
        assert_upgraded(response, key)
    else:
        assert_refused(response, status)
    assert Counted.made == 1


async def test_a_head_still_incomplete_after_max_head_goes_to_uvicorn(srv):
    key = new_key()
    cookie = "c=" + "x" * MAX_HEAD
    data = request("/ws/doc", srv.settings.port, {"Sec-WebSocket-Key": key, "Cookie": cookie}, [])
    with anyio.fail_after(TEST_S):
        async with tcp(srv) as (reader, writer):
            writer.write(data[:-4])
            await writer.drain()
            while Counted.made == 0:  # (uvicorn's protocol is made once front gives up)
                await anyio.sleep(0.01)
            writer.write(data[-4:])
            await writer.drain()
            assert_upgraded(await read_response(reader), key)
    assert Counted.made == 1


@pytest.mark.parametrize(
    "data",
    [
        b"GET /ws/doc HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nNo colon\r\n\r\n",
        b"GET /healthz HTTP/1.1\nHost: x\n\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS hello
    ],
    ids=["a header with no colon", "bare LF", "TLS"],
)
async def test_what_front_does_not_take_is_answered_by_uvicorn(srv, data):
    with anyio.fail_after(TEST_S):
        async with tcp(srv) as (reader, writer):
            writer.write(data)
            await writer.drain()
            with anyio.fail_after(STEP_S):
                answer = await reader.read(65536)
    assert answer.startswith(b"HTTP/1.1 ") or answer == b"", answer
    assert Counted.made == 1
