"""Which request heads collab/front.py upgrades itself, and which it leaves to uvicorn."""

from __future__ import annotations

import pytest

from collab.front import upgrade_head

BASE = [
    b"GET /ws/doc?token=a%20b HTTP/1.1",
    b"Host: 127.0.0.1:8000",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
]


def head(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n"


def ours(data: bytes) -> bool:
    return upgrade_head(data, data.index(b"\r\n\r\n"))


def with_line(i: int, line: bytes | None) -> bytes:
    lines = list(BASE)
    if line is None:
        del lines[i]
    else:
        lines[i] = line
    return head(lines)


def test_a_browsers_upgrade_is_ours():
    assert ours(head(BASE))
    assert ours(head([*BASE, b"Cookie: a=1; b=\xe9", b"User-Agent: x\ty"]))  # obs-text, tab


@pytest.mark.parametrize(
    "line",
    [b"upgrade: WebSocket", b"UPGRADE:websocket  ", b"Upgrade: \twebsocket"],
)
def test_header_names_and_upgrade_value_are_case_insensitive(line):
    assert ours(with_line(2, line))


@pytest.mark.parametrize(
    "line", [b"Connection: keep-alive, Upgrade", b"connection: upgrade", b"Connection:Upgrade,x"]
)
def test_connection_may_list_other_tokens(line):
    assert ours(with_line(3, line))


@pytest.mark.parametrize(
    "data",
    [
        with_line(0, b"POST /ws/doc HTTP/1.1"),  # uvicorn upgrades it; the socket answers 405
        with_line(0, b"GET /ws/doc HTTP/1.0"),
        with_line(0, b"GET ws://host/ws/doc HTTP/1.1"),  # absolute form
        with_line(0, b"GET /ws/doc  HTTP/1.1"),
        with_line(2, None),  # no Upgrade: a plain GET
        with_line(3, None),  # no Connection: upgrade
        with_line(3, b"Connection: keep-alive"),
        with_line(2, b"Upgrade: h2c"),
        with_line(2, b"Upgrade: websocket2"),
        with_line(1, b"Host : 127.0.0.1"),  # space before the colon: llhttp refuses it
        with_line(1, b"Host 127.0.0.1"),  # no colon
        with_line(1, b" folded"),  # obs-fold
        with_line(1, b"Host: a\x01b"),  # a control character
        head([*BASE, b"Content-Length: 3"]) + b"abc",
        head([*BASE, b"Transfer-Encoding: chunked"]),
    ],
)
def test_anything_else_goes_to_uvicorn(data):
    assert not ours(data)
