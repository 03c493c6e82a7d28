"""RFC 6455 conformance of the server's WebSocket layer, spoken over raw TCP.

Every test talks to a real server through `asyncio.open_connection` with the tiny client-side
framer below (masked client frames out, unmasked server frames in), so nothing between the test
and the server's own bytes can hide a mistake: not a WebSocket library's validation, not its
automatic pongs, not its close handshake.

Whenever the server closes a connection, `expect_close` also checks that the close frame is the
last thing it sends and that it then closes TCP, without the client ever answering the close.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text

from collab import protocol as p
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
SYNC_STEP1_EMPTY = bytes([p.MSG_SYNC, p.SYNC_STEP1, 1, 0])  # sync step 1, empty state vector
SYNC_STEP2_PREFIX = bytes([p.MSG_SYNC, p.SYNC_STEP2])
CLOSE_1000 = struct.pack("!H", 1000)
# The server must close TCP within 10 s of its close frame. We start counting only when the
# frame has reached us, after the server started; one extra second absorbs the scheduling.
EOF_DEADLINE_S = 11.0
STEP_S = 5.0  # deadline for any single expected answer
TEST_S = 20.0  # outer bound of a test (the EOF deadline included)


# -- the client-side framer -------------------------------------------------------------------


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    keys = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(
        len(payload), "big"
    )


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame. `length` declares a payload length other than the actual one."""
    n = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not masked:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + mask(payload, key)


def binary(payload: bytes, **kw: Any) -> bytes:
    return frame(BINARY, payload, **kw)


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def close_code(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if payload else None


class RawWebSocket:
    """The client end of one upgraded TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._opcode: int | None = None  # of the server message being reassembled
        self._parts: list[bytes] = []

    async def send(self, *frames: bytes) -> None:
        """All the frames in one write."""
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def dribble(self, data: bytes) -> None:
        """One byte per write: every frame boundary, and every header field, split."""
        for i in range(len(data)):
            self.writer.write(data[i : i + 1])
            await self.writer.drain()

    async def read_frame(self) -> Frame | None:
        """The server's next frame, or None at EOF on a frame boundary."""
        try:
            head = await self.reader.readexactly(2)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"", f"EOF inside a frame header: {exc.partial!r}"
            return None
        fin, rsv, opcode = bool(head[0] & 0x80), head[0] & 0x70, head[0] & 0x0F
        assert not head[1] & 0x80, "a server must never mask its frames (RFC 6455 §5.1)"
        assert rsv == 0, f"RSV bits {rsv:#x} set with no extension negotiated"
        n = head[1] & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        if opcode >= 0x8:
            assert fin and n <= 125, f"invalid control frame from the server: {head.hex()} {n}"
        return Frame(fin, opcode, await self.reader.readexactly(n))

    async def next_message(self) -> Frame | None:
        """Control frames as they come; data frames reassembled into one message."""
        while True:
            f = await self.read_frame()
            if f is None:
                assert self._opcode is None, "EOF inside a fragmented message"
                return None
            if f.opcode >= 0x8:
                return f
            if f.opcode == CONT:
                assert self._opcode is not None, "continuation frame with no message started"
            else:
                assert self._opcode is None, "new message inside a fragmented one"
                assert f.opcode in (TEXT, BINARY), f"reserved opcode {f.opcode:#x}"
                self._opcode = f.opcode
            self._parts.append(f.payload)
            if f.fin:
                message = Frame(True, self._opcode, b"".join(self._parts))
                self._opcode, self._parts = None, []
                return message

    async def next_data(self, timeout: float = STEP_S) -> bytes:
        """The next binary message; answers pings, fails on a close, text or EOF."""
        with anyio.fail_after(timeout):
            while True:
                m = await self.next_message()
                assert m is not None, "the server closed TCP"
                if m.opcode == PING:
                    await self.send(frame(PONG, m.payload))
                    continue
                if m.opcode == PONG:
                    continue
                assert m.opcode != CLOSE, f"unexpected close {close_code(m.payload)}: {m.payload!r}"
                assert m.opcode == BINARY, "the y-websocket protocol is binary"
                return m.payload

    async def wait_data(self, prefix: bytes) -> bytes:
        """Skip data messages until one starts with `prefix`."""
        with anyio.fail_after(STEP_S):
            while True:
                data = await self.next_data()
                if data.startswith(prefix):
                    return data

    async def join(self) -> None:
        """The server's sync step 1, then our step 1 answered: the connection is in its room
        (frames sent before that are queued under the pre-authentication caps)."""
        first = await self.next_data()
        assert first[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1]), first
        await self.send(binary(SYNC_STEP1_EMPTY))
        await self.wait_data(SYNC_STEP2_PREFIX)

    async def expect_close(self, code: int | None) -> bytes:
        """Read (never answering pings or the close) up to the server's close frame; check its
        code, that nothing follows it, and that TCP closes. Returns the close payload."""
        with anyio.fail_after(STEP_S):
            while True:
                m = await self.next_message()
                assert m is not None, f"TCP closed without a close frame (expected {code})"
                if m.opcode == CLOSE:
                    break
        payload = m.payload
        assert len(payload) != 1, "a close payload of one byte is invalid"
        assert close_code(payload) == code, payload
        payload[2:].decode("utf-8")  # the reason must be UTF-8
        await self.expect_eof()
        return payload

    async def expect_eof(self) -> None:
        with anyio.fail_after(EOF_DEADLINE_S):
            rest = await self.reader.read(65536)
        assert rest == b"", f"the server sent {rest[:64]!r} after its close frame"

    def reset(self) -> None:
        """Drop TCP with a RST, no close frame."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


# -- the handshake ----------------------------------------------------------------------------


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_of(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


def request(path: str, port: int, headers: dict[str, str | None], extra: list[str]) -> bytes:
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": new_key(),
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers)
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in fields.items() if v is not None]
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> Response:
    with anyio.fail_after(STEP_S):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        version, status, *_ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines)]
        response = Response(int(status), headers, b"")
        if response.status != 101:
            length = response.header("Content-Length")
            if length is not None:
                response.body = await reader.readexactly(int(length))
            else:
                response.body = await reader.read()
    return response


@asynccontextmanager
async def tcp(srv: Any) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.settings.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield reader, writer
    finally:
        writer.close()


async def handshake(
    srv: Any, path: str = "/ws/doc", headers: dict[str, str | None] | None = None, *extra: str
) -> Response:
    """Send an upgrade request and read the response (the connection is then dropped)."""
    async with tcp(srv) as (reader, writer):
        writer.write(request(path, srv.settings.port, headers or {}, list(extra)))
        await writer.drain()
        return await read_response(reader)


@asynccontextmanager
async def connect(srv: Any, name: str = "doc", **headers: str) -> AsyncIterator[RawWebSocket]:
    """An upgraded connection (101 and a correct accept checked)."""
    key = new_key()
    async with tcp(srv) as (reader, writer):
        writer.write(request(f"/ws/{name}", srv.settings.port, {"Sec-WebSocket-Key": key}, []))
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == accept_of(key)
        yield RawWebSocket(reader, writer)


def assert_upgraded(response: Response, key: str) -> None:
    assert response.status == 101, response
    assert response.header("Sec-WebSocket-Accept") == accept_of(key.strip())
    assert (response.header("Upgrade") or "").lower() == "websocket"
    connection = response.header("Connection") or ""
    assert "upgrade" in [t.strip().lower() for t in connection.split(",")]


def assert_refused(response: Response, status: int) -> None:
    assert response.status == status, response
    assert response.header("Sec-WebSocket-Accept") is None


# -- y-websocket messages ---------------------------------------------------------------------


def awareness(client_id: int, clock: int, state: Any) -> bytes:
    entry = p.AwarenessEntry(client_id, clock, json.dumps(state).encode())
    return p.awareness_message(p.encode_awareness_update([entry]))


def awareness_entries(message: bytes) -> list[p.AwarenessEntry]:
    assert message[0] == p.MSG_AWARENESS, message[:8]
    return p.decode_awareness_update(p.parse_awareness(message))


def update_of_size(size: int) -> tuple[bytes, str]:
    """A y-websocket update message of exactly `size` bytes, and the text it inserts."""
    for key in ("t", "tt", "ttt"):
        for length in range(max(0, size - 40), size):
            doc: Doc = Doc(client_id=7)
            doc.get(key, type=Text).insert(0, "x" * length)
            message = p.update_message(doc.get_update())
            if len(message) == size:
                return message, key
    raise AssertionError(f"no update message of {size} bytes")


def awareness_of_size(size: int, client_id: int) -> bytes:
    for pad in range(max(0, size - 40), size):
        message = awareness(client_id, 1, {"p": "x" * pad})
        if len(message) == size:
            return message
    raise AssertionError(f"no awareness message of {size} bytes")


# -- handshake --------------------------------------------------------------------------------


async def test_upgrade_accepts_and_the_first_message_is_sync_step_1(server):
    key = new_key()
    with anyio.fail_after(TEST_S):
        async with tcp(server) as (reader, writer):
            writer.write(request("/ws/doc", server.settings.port, {"Sec-WebSocket-Key": key}, []))
            await writer.drain()
            response = await read_response(reader)
            assert_upgraded(response, key)
            ws = RawWebSocket(reader, writer)
            first = await ws.read_frame()
            assert first is not None and first.opcode == BINARY, first
            assert first.payload[:2] == bytes([0x00, 0x00]), first.payload


SIXTEEN = base64.b64encode(bytes(range(16))).decode()
KEY_CASES = {
    "missing": ({"Sec-WebSocket-Key": None}, [], 400),
    "empty": ({"Sec-WebSocket-Key": ""}, [], 400),
    "not base64": ({"Sec-WebSocket-Key": "this is not base64!!"}, [], 400),
    "15 bytes": ({"Sec-WebSocket-Key": base64.b64encode(b"k" * 15).decode()}, [], 400),
    "17 bytes": ({"Sec-WebSocket-Key": base64.b64encode(b"k" * 17).decode()}, [], 400),
    "32 bytes": ({"Sec-WebSocket-Key": base64.b64encode(b"k" * 32).decode()}, [], 400),
    "unpadded": ({"Sec-WebSocket-Key": SIXTEEN.rstrip("=")}, [], 400),
    "urlsafe alphabet": (
        {"Sec-WebSocket-Key": base64.urlsafe_b64encode(b"\xfb\xff" * 8).decode()},
        [],
        400,
    ),
    "sent twice": ({"Sec-WebSocket-Key": new_key()}, [f"Sec-WebSocket-Key: {new_key()}"], 400),
    "with + and /": ({"Sec-WebSocket-Key": base64.b64encode(b"\xfb\xff" * 8).decode()}, [], 101),
    "surrounding spaces": ({"Sec-WebSocket-Key": f"  {SIXTEEN}  "}, [], 101),
}


@pytest.mark.parametrize("case", list(KEY_CASES))
async def test_sec_websocket_key_must_be_base64_of_16_bytes(server, case):
    headers, extra, status = KEY_CASES[case]
    with anyio.fail_after(TEST_S):
        response = await handshake(server, "/ws/doc", headers, *extra)
    if status == 101:
        assert_upgraded(response, headers["Sec-WebSocket-Key"])
    else:
        assert_refused(response, 400)
        assert b"sec-websocket-key" in response.body.lower(), response.body


@pytest.mark.parametrize("version", ["8", "12", "14", "130"])
async def test_other_websocket_versions_get_426(server, version):
    with anyio.fail_after(TEST_S):
        response = await handshake(server, "/ws/doc", {"Sec-WebSocket-Version": version})
    assert_refused(response, 426)
    assert response.header("Sec-WebSocket-Version") == "13"


@pytest.mark.parametrize("path", ["/other", "/", "/wsdoc", "/api/documents", "/other/ws/doc"])
async def test_upgrade_outside_ws_gets_404(server, path):
    with anyio.fail_after(TEST_S):
        response = await handshake(server, path)
    assert_refused(response, 404)


async def test_forbidden_origin_gets_403(server_with):
    async with server_with(allowed_origins="https://app.example.com") as srv:
        with anyio.fail_after(TEST_S):
            refused = await handshake(srv, "/ws/doc", {"Origin": "https://evil.example"})
            key = new_key()
            allowed = await handshake(
                srv, "/ws/doc", {"Origin": "https://app.example.com", "Sec-WebSocket-Key": key}
            )
    assert_refused(refused, 403)
    assert_upgraded(allowed, key)


# -- frames the server must refuse ------------------------------------------------------------

PROTOCOL_ERRORS = {
    "unmasked frame": [binary(SYNC_STEP1_EMPTY, masked=False)],
    "RSV1": [binary(SYNC_STEP1_EMPTY, rsv=0x40)],
    "RSV2": [binary(SYNC_STEP1_EMPTY, rsv=0x20)],
    "RSV3": [binary(SYNC_STEP1_EMPTY, rsv=0x10)],
    # Payloads a server would answer if it took the frame for a binary message or a close.
    **{f"opcode {op:#x}": [frame(op, SYNC_STEP1_EMPTY)] for op in (3, 4, 5, 6, 7)},
    **{f"opcode {op:#x}": [frame(op, CLOSE_1000)] for op in (0xB, 0xC, 0xD, 0xE, 0xF)},
    "ping of 126 bytes": [frame(PING, b"p" * 126)],
    "pong of 126 bytes": [frame(PONG, b"p" * 126)],
    "close of 126 bytes": [frame(CLOSE, struct.pack("!H", 1000) + b"r" * 124)],
    "fragmented ping": [frame(PING, b"a", fin=False)],
    "continuation first": [frame(CONT, SYNC_STEP1_EMPTY)],
    "binary inside a fragmented message": [
        binary(SYNC_STEP1_EMPTY[:2], fin=False),
        binary(SYNC_STEP1_EMPTY),
    ],
    "text inside a fragmented message": [
        binary(SYNC_STEP1_EMPTY[:2], fin=False),
        frame(TEXT, b"hi"),
    ],
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
async def test_protocol_errors_close_1002(server, case):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(*PROTOCOL_ERRORS[case])
            await ws.expect_close(1002)


async def test_protocol_error_before_joining_closes_1002(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.send(frame(0x3, b"\x00"))
            await ws.expect_close(1002)


async def test_text_frame_closes_1003(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(frame(TEXT, b"hello"))
            await ws.expect_close(1003)


TOO_BIG = {
    # Only the header: the server decides on the declared length, not on what arrived.
    "declared 1025": [binary(b"", length=1025)],
    "declared 2**63 - 1": [binary(b"", length=(1 << 63) - 1)],
    "1025 bytes": [binary(b"\x00" * 1025)],
    "excess in a later fragment": [
        binary(b"\x00" * 600, fin=False),
        frame(CONT, b"\x00" * 600),
    ],
    "excess in the third fragment": [
        binary(b"\x00" * 500, fin=False),
        frame(CONT, b"\x00" * 500, fin=False),
        frame(CONT, b"", length=25),
    ],
}


@pytest.mark.parametrize("case", list(TOO_BIG))
async def test_message_over_max_message_bytes_closes_1009(server_with, case):
    async with server_with(max_message_bytes=1024) as srv:
        with anyio.fail_after(TEST_S):
            async with connect(srv) as ws:
                await ws.join()
                await ws.send(*TOO_BIG[case])
                await ws.expect_close(1009)


@pytest.mark.parametrize("fragments", [1, 3], ids=["one frame", "three fragments"])
async def test_message_of_exactly_max_message_bytes_is_accepted(server_with, fragments):
    """The companion of the 1009 test: the limit is not lower than the setting."""
    async with server_with(max_message_bytes=1024) as srv:
        with anyio.fail_after(TEST_S):
            async with connect(srv) as ws:
                await ws.join()
                message = awareness_of_size(1024, client_id=77)
                cut = [0, 400, 800, 1024] if fragments == 3 else [0, 1024]
                parts = [message[a:b] for a, b in itertools.pairwise(cut)]
                frames = [
                    frame(BINARY if i == 0 else CONT, part, fin=i == len(parts) - 1)
                    for i, part in enumerate(parts)
                ]
                await ws.send(*frames)
                echo = await ws.wait_data(bytes([p.MSG_AWARENESS]))
                assert [e.client_id for e in awareness_entries(echo)] == [77]


# -- fragmentation and control frames ---------------------------------------------------------


async def test_fragmented_message_is_reassembled_around_an_interleaved_ping(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(
                binary(SYNC_STEP1_EMPTY[:1], fin=False),
                frame(PING, b"mid-message"),
                frame(CONT, SYNC_STEP1_EMPTY[1:3], fin=False),
                frame(CONT, SYNC_STEP1_EMPTY[3:]),
            )
            pong = step2 = None
            with anyio.fail_after(STEP_S):
                while pong is None or step2 is None:
                    m = await ws.next_message()
                    assert m is not None and m.opcode != CLOSE, m
                    if m.opcode == PONG:
                        pong = m.payload
                    elif m.opcode == BINARY and m.payload.startswith(SYNC_STEP2_PREFIX):
                        step2 = m.payload
            assert pong == b"mid-message"


async def test_ping_of_125_bytes_gets_an_identical_pong(server):
    payload = os.urandom(125)
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(frame(PING, payload))
            while True:
                m = await ws.next_message()
                assert m is not None and m.opcode != CLOSE, m
                if m.opcode == PONG:
                    break
            assert m.payload == payload


async def test_unsolicited_pong_is_ignored(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(frame(PONG, b"unsolicited"), frame(PONG, b""))
            await ws.send(binary(SYNC_STEP1_EMPTY))
            await ws.wait_data(SYNC_STEP2_PREFIX)  # fails on a close frame or EOF


async def test_frames_split_at_every_byte_still_work(server):
    key = new_key()
    with anyio.fail_after(TEST_S):
        async with tcp(server) as (reader, writer):
            ws = RawWebSocket(reader, writer)
            await ws.dribble(
                request("/ws/doc", server.settings.port, {"Sec-WebSocket-Key": key}, [])
            )
            assert_upgraded(await read_response(reader), key)
            first = await ws.next_data()
            assert first[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1])
            await ws.dribble(frame(PING, b"dribbled") + binary(SYNC_STEP1_EMPTY))
            pong = await ws.next_message()
            assert pong is not None and pong.opcode == PONG and pong.payload == b"dribbled", pong
            await ws.wait_data(SYNC_STEP2_PREFIX)


async def test_many_frames_in_one_write_are_all_answered_in_order(server):
    client_id = 4242
    frames = []
    for clock in range(1, 101):
        frames.append(binary(awareness(client_id, clock, {"n": clock})))  # echoed to the sender
        frames.append(binary(p.QUERY_AWARENESS_MESSAGE))  # answered with every state
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(*frames)
            clocks = []
            reminders = []  # the client is new here: reminded of its first clock (awareness.py)
            while len(clocks) < 200:
                entries = awareness_entries(await ws.wait_data(bytes([p.MSG_AWARENESS])))
                if entries:  # not a heartbeat
                    assert [e.client_id for e in entries] == [client_id]
                    if entries[0].state == p.NULL_STATE:
                        reminders.append(entries[0].clock)
                    else:
                        clocks.append(entries[0].clock)
    assert clocks == [clock for clock in range(1, 101) for _ in (0, 1)]
    assert reminders == [1]


async def test_nothing_after_a_refused_update_in_the_same_write_is_handled(server):
    """Sync updates read in one go are held and applied together (Room.handle_updates); when
    one of them is refused, the connection is closed, and what came after it in the same read
    must not reach the room: here an awareness state, which would otherwise be broadcast and
    stay behind as a ghost cursor, owned by a connection that had already left."""
    client_id = 5150
    with anyio.fail_after(TEST_S):
        async with YClient(server.url, "doc") as watcher:
            await watcher.wait_for(lambda: watcher.synced)
            async with connect(server) as ws:
                await ws.join()
                bad_update = bytes([p.MSG_SYNC, p.SYNC_UPDATE, 5, 1, 2])  # length beyond end
                await ws.send(binary(bad_update), binary(awareness(client_id, 1, {"n": 1})))
                with anyio.fail_after(STEP_S):  # (not expect_close: no need to wait for EOF)
                    while (m := await ws.next_message()) is not None and m.opcode != CLOSE:
                        pass
                assert m is not None and close_code(m.payload) == 1002
            # Whatever the server did with that read, it did before reading the watcher's next
            # message: once that is answered, a ghost cursor would have reached the watcher.
            received = len(watcher.received)
            await watcher.send(p.QUERY_AWARENESS_MESSAGE)
            await watcher.wait_for(lambda: len(watcher.received) > received)
            assert client_id not in watcher.present()
            assert client_id not in server.hub.rooms["doc"].awareness.states()


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 70000])
async def test_extended_payload_lengths_are_accepted_and_forwarded(server, size):
    message, key = update_of_size(size)
    expected: Doc = Doc()
    expected.apply_update(p.parse_sync(message).payload)
    text = str(expected.get(key, type=Text))
    assert len(text) > size - 40
    with anyio.fail_after(TEST_S):
        async with YClient(server.url, "big") as peer:
            await peer.wait_for(lambda: peer.synced)
            async with connect(server, "big") as ws:
                await ws.join()
                await ws.send(binary(message))
                await peer.wait_for(lambda: str(peer.doc.get(key, type=Text)) == text)


# -- the closing handshake --------------------------------------------------------------------


async def test_client_close_is_answered_with_1000_then_tcp_closes(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(close_frame(1000, b"bye"))
            await ws.expect_close(1000)


async def test_empty_client_close_is_answered_then_tcp_closes(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(close_frame())
            with anyio.fail_after(STEP_S):
                while True:
                    m = await ws.next_message()
                    assert m is not None, "TCP closed without a close frame"
                    if m.opcode == CLOSE:
                        break
            assert m.payload in (b"", struct.pack("!H", 1000)), m.payload
            await ws.expect_eof()


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_valid_close_codes_are_echoed(server, code):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(close_frame(code, b"done"))
            await ws.expect_close(code)


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
async def test_invalid_close_codes_close_1002(server, code):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(close_frame(code))
            await ws.expect_close(1002)


async def test_close_payload_of_one_byte_closes_1002(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(frame(CLOSE, b"\x03"))
            await ws.expect_close(1002)


async def test_close_reason_not_utf8_closes_1007(server):
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(close_frame(1000, b"bad \xff\xfe utf-8"))
            await ws.expect_close(1007)


# -- keepalive --------------------------------------------------------------------------------


async def test_client_that_never_answers_pings_is_dropped(server_with):
    async with server_with(ws_ping_interval_s=0.3, ws_ping_timeout_s=0.3) as srv:
        with anyio.fail_after(TEST_S):
            async with connect(srv) as ws:
                pings = 0
                with anyio.fail_after(STEP_S):
                    while True:
                        m = await ws.next_message()  # never answered
                        if m is None or m.opcode == CLOSE:
                            break
                        pings += m.opcode == PING
                assert pings >= 1, "the server never pinged"
                if m is not None:  # a close frame: 1011, the last thing sent, then EOF
                    assert close_code(m.payload) == 1011, m.payload
                    await ws.expect_eof()


async def test_client_that_answers_pings_stays_connected(server_with):
    async with server_with(ws_ping_interval_s=0.3, ws_ping_timeout_s=0.3) as srv:
        with anyio.fail_after(TEST_S):
            async with connect(srv) as ws:
                pings: list[bytes] = []
                with anyio.fail_after(STEP_S):
                    while len(pings) < 5:  # 4 full intervals after the first ping
                        m = await ws.next_message()
                        assert m is not None, "TCP closed"
                        assert m.opcode != CLOSE, f"closed {close_code(m.payload)}: {m.payload!r}"
                        if m.opcode == PING:
                            pings.append(m.payload)
                            await ws.send(frame(PONG, m.payload))
                await ws.send(binary(SYNC_STEP1_EMPTY))
                await ws.wait_data(SYNC_STEP2_PREFIX)


# -- abrupt drop ------------------------------------------------------------------------------


async def test_tcp_reset_removes_awareness_at_once(server):
    client_id = 31337
    ada = {"user": {"name": "Ada"}}
    with anyio.fail_after(TEST_S):
        async with YClient(server.url, "doc") as watcher:
            await watcher.wait_for(lambda: watcher.synced)
            async with connect(server) as ws:
                await ws.join()
                await ws.send(binary(awareness(client_id, 1, ada)))
                await watcher.wait_for(lambda: watcher.present().get(client_id) == ada)
                ws.reset()
                await watcher.wait_for(lambda: client_id not in watcher.present(), timeout=2)
            assert watcher.close_code is None


@pytest.mark.parametrize("enabled", [True, False], ids=["deflate on", "deflate off"])
async def test_permessage_deflate_is_negotiated_only_when_enabled(server_with, enabled):
    """Offered by a client: accepted (no context takeover either way) only with the setting on,
    and then every message in both directions is compressed and still syncs."""
    async with server_with(ws_per_message_deflate=enabled) as srv:
        big = "compressible " * 5000
        async with (
            YClient(srv.url, "z", compression="deflate") as a,
            YClient(srv.url, "z", compression="deflate") as b,
            YClient(srv.url, "z") as plain,
        ):
            response = a.ws.response
            assert response is not None
            extensions = response.headers.get("Sec-WebSocket-Extensions")
            if enabled:
                assert extensions is not None and extensions.startswith("permessage-deflate")
                assert "server_no_context_takeover" in extensions
                assert "client_no_context_takeover" in extensions
            else:
                assert extensions is None
            await a.wait_for(lambda: a.synced)
            a.doc.get("t", type=Text).insert(0, big)
            for c in (b, plain):
                await c.wait_for(lambda c=c: str(c.doc.get("t", type=Text)) == big)
            b.doc.get("t", type=Text).insert(0, "b:")
            await a.wait_for(lambda: str(a.doc.get("t", type=Text)).startswith("b:"))
            await plain.wait_for(lambda: str(plain.doc.get("t", type=Text)).startswith("b:"))


async def test_a_client_that_never_answers_an_application_close_is_cut_off(server, monkeypatch):
    """A close the application decides (here 1003 for an unknown y-websocket message type)
    waits for the client's close frame; one that never comes must not hold the socket."""
    import collab.wire

    monkeypatch.setattr(collab.wire, "CLOSE_TIMEOUT_S", 0.5)
    with anyio.fail_after(TEST_S):
        async with connect(server) as ws:
            await ws.join()
            await ws.send(binary(b"\x07"))
            started = anyio.current_time()
            await ws.expect_close(1003)  # never answered; then EOF
            assert anyio.current_time() - started < 5


@pytest.mark.parametrize("ending", ["close frame", "connection dropped"])
async def test_updates_in_the_same_read_as_the_clients_goodbye_are_kept(server, ending):
    """A client types and leaves: its last updates and its close frame (or the end of the TCP
    stream) arrive in one read. The updates are applied and stored, not dropped with the
    connection (they used to be: updates are held to the end of a read to be merged)."""
    doc = Doc()
    doc["text"] = text = Text()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    async with connect(server, "goodbye") as ws:
        first = await ws.read_frame()  # joined: the room's sync step 1
        assert first is not None
        for char in "bye!":
            text += char
        frames = [binary(p.update_message(u)) for u in updates]
        if ending == "close frame":
            await ws.send(*frames, close_frame(1000))
        else:
            await ws.send(*frames)
            ws.writer.write_eof()
    async with YClient(server.url, "goodbye") as reader:
        await reader.wait_for(lambda: str(reader.doc.get("text", type=Text)) == "bye!")
    await server.hub.saver.flush()
