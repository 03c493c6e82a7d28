"""collab.protocols.signaling without sockets: topics, the relay's payload both ways, closing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collab.errors import CollabError
from collab.protocol import var_bytes
from collab.protocols.signaling import Signaling
from collab.settings import Settings


class FakeSocket:
    def __init__(self, n: int) -> None:
        self.id = n
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send_text(self, data: bytes) -> None:
        self.sent.append(json.loads(data))

    def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)

    def keepalive(self, now: float) -> None:
        pass


class Doors:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open: dict[str, int] = {}
        self.ids = 0

    def admit_address(self, ip: str) -> None:
        if self.open.get(ip, 0) >= 2:
            raise CollabError("too many connections from this address", 1008)
        self.open[ip] = self.open.get(ip, 0) + 1

    def release_address(self, ip: str) -> None:
        self.open[ip] -= 1

    def origin_allowed(self, origin: str | None) -> bool:
        return True

    def new_id(self) -> int:
        self.ids += 1
        return self.ids


class Relay:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    def publish_signal(self, payload: bytes) -> None:
        self.published.append(payload)


class NoAuth:
    """HookRunner as it is without auth extensions (the real one opens streams to close)."""

    def has(self, name: str) -> bool:
        return False


def setup() -> tuple[Signaling, Doors, Relay]:
    doors = Doors(Settings())
    relay = Relay()
    return Signaling(doors, NoAuth(), relay), doors, relay  # type: ignore[arg-type]


def message(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_publish_goes_to_subscribers_and_the_bus_and_back() -> None:
    signaling, _, relay = setup()
    a, b = FakeSocket(1), FakeSocket(2)
    pa = signaling.open(a, "", {}, "1.2.3.4", 1)
    pb = signaling.open(b, "", {}, "1.2.3.5", 1)
    signaling.receive(pb, message(type="subscribe", topics=["t", "t", 7]))
    signaling.receive(pa, message(type="publish", topic="t", data={"x": 1}))
    assert b.sent == [{"type": "publish", "topic": "t", "data": {"x": 1}, "clients": 1}]
    assert a.sent == []  # not subscribed: no echo
    [payload] = relay.published
    # Another process's Signaling hands the same text to its own subscribers of the topic.
    other, _, _ = setup()
    c = FakeSocket(3)
    pc = other.open(c, "", {}, "1.2.3.6", 1)
    other.receive(pc, message(type="subscribe", topics=["t"]))
    other.remote(payload)
    other.remote(var_bytes(b"u") + b"{}")  # another topic: nobody
    other.remote(b"\xff\xff")  # malformed: dropped
    assert c.sent == b.sent
    assert other.relayed_in == 2


def test_close_leaves_every_topic_once_and_frees_the_address() -> None:
    signaling, doors, _ = setup()
    a = FakeSocket(1)
    peer = signaling.open(a, "", {}, "9.9.9.9", 1)
    signaling.receive(peer, message(type="subscribe", topics=["x", "y"]))
    assert set(signaling.topics) == {"x", "y"}
    signaling.closed(peer, 1000, "")
    signaling.closed(peer, 1000, "")
    assert signaling.topics == {} and signaling.peers == set()
    assert doors.open["9.9.9.9"] == 0
    signaling.receive(peer, message(type="ping"))  # after the close: nothing
    assert a.sent == []


def test_per_address_limit_and_shutdown_refuse_new_sockets() -> None:
    signaling, _, _ = setup()
    signaling.open(FakeSocket(1), "", {}, "5.5.5.5", 1)
    signaling.open(FakeSocket(2), "", {}, "5.5.5.5", 2)
    with pytest.raises(CollabError) as refused:
        signaling.open(FakeSocket(3), "", {}, "5.5.5.5", 3)
    assert refused.value.code == 1008
    open_socket = FakeSocket(4)
    signaling.open(open_socket, "", {}, "6.6.6.6", 1)
    signaling.close_all(1001, "server shutting down")
    assert open_socket.closed == (1001, "server shutting down")
    with pytest.raises(CollabError) as late:
        signaling.open(FakeSocket(5), "", {}, "7.7.7.7", 1)
    assert late.value.code == 1001
