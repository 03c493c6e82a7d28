"""The y-webrtc signalling protocol at /signal: peers of a y-webrtc room find each other here,
then talk directly (WebRTC data channels); no document passes through the server.

What y-webrtc's `SignalingConn` (lib0's WebsocketClient underneath) sends, as JSON objects in
text frames, and what its reference server (y-webrtc's bin/server.js) does with them:

    {"type": "subscribe", "topics": [room, ...]}    listen to these topics (a topic is a room name)
    {"type": "unsubscribe", "topics": [room, ...]}
    {"type": "publish", "topic": room, "data": ...} to every subscriber of the topic, the sender
                                                    too if subscribed, with "clients" (how many
                                                    subscribers got it here) added
    {"type": "ping"}                                answered {"type": "pong"} (the client sends it
                                                    after 15 s without a message, and reconnects
                                                    after 30 s of silence)

Anything else with a "type" is ignored, as there. What this server adds:
- **scope**: when authentication is on (an extension with on_request or on_authenticate), the
  socket's `?token=` goes through the on_request hooks once, as an API request would, and the
  `Access` they grant decides which topics it may subscribe and publish to: a token for `team/*`
  reaches `team/...` only, and only a write token (peers apply each other's updates directly:
  nothing here could make a reader read-only). Refusals close: 4401 no/bad token, 4403 a topic
  the token does not cover.
- **limits**: topics per socket (`signal_max_topics`, 1008), message size
  (`signal_max_message_bytes`, 1009), the message and byte rates of every socket (1008),
  per-IP connection limits, the slow-consumer bound (1013), invalid JSON (1002).
- **cluster**: a publish also goes to the bus (`ClusterSync.publish_signal`, one SIGNAL envelope
  on the shared channel); each other process hands it to its own subscribers of the topic.

Everything runs synchronously on the loop but the token check (a task the socket's peer owns;
what arrives meanwhile is held within the pre-auth caps).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import anyio

from .. import logs
from ..access import EVERYTHING, Access
from ..errors import CloseCode, CollabError
from ..hooks import HookRunner, OnRequestPayload, reject_from
from ..limits import TokenBucket
from ..protocol import read_var_bytes, var_bytes
from ..settings import Settings

log = logging.getLogger(__name__)

ROUTE = "/signal"
MAX_TOPIC_BYTES = 512  # as a document name (a y-webrtc room name is one, when scoped)
PONG = b'{"type":"pong"}'


class SignalSocket(Protocol):
    """What the protocol needs of a socket (collab/protocols/signal_socket.py has both kinds)."""

    id: int

    def send_text(self, data: bytes) -> None:
        """Send one text message without waiting (1013 when the client cannot keep up)."""

    def close(self, code: int, reason: str = "") -> None: ...

    def keepalive(self, now: float) -> None: ...


class Relay(Protocol):
    """What the cluster gives signalling (collab.cluster.sync.ClusterSync)."""

    def publish_signal(self, payload: bytes) -> None: ...


class Doors(Protocol):
    """What signalling needs of the server's admission (collab.admission.Admission)."""

    settings: Settings

    def admit_address(self, ip: str) -> None: ...

    def release_address(self, ip: str) -> None: ...

    def origin_allowed(self, origin: str | None) -> bool: ...

    def new_id(self) -> int: ...


class SignalPeer:
    """One socket in the protocol: its topics, its access, its limits."""

    __slots__ = (
        "_task",
        "access",
        "byte_bucket",
        "client",
        "closed",
        "id",
        "ip",
        "message_bucket",
        "pending",
        "pending_bytes",
        "socket",
        "started",
        "topics",
    )

    def __init__(self, socket: SignalSocket, settings: Settings, ip: str, port: int) -> None:
        self.socket = socket
        self.id = socket.id
        self.ip = ip
        self.client = f"{ip}:{port}"
        self.topics: set[str] = set()
        self.access: Access | None = None  # None until the token is checked
        self.pending: list[bytes] = []  # what arrived before that
        self.pending_bytes = 0
        s = settings
        self.message_bucket = TokenBucket(s.rate_messages_per_s, s.rate_messages_burst)
        self.byte_bucket = TokenBucket(s.rate_bytes_per_s, s.rate_bytes_burst)
        self.closed = False
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SignalPeer #{self.id} {self.client} {len(self.topics)} topics>"

    def log_context(self, **fields: Any) -> dict[str, Any]:
        return logs.context(self.id, client=self.client, **fields)

    def fail(self, code: int, reason: str) -> None:
        log.info("%r: %s (closing %d)", self, reason, code, extra=self.log_context(code=code))
        self.socket.close(code, reason)


class Signaling:
    """The topics of this process and who listens to each; one per app (`app.state.signaling`)."""

    def __init__(self, doors: Doors, hooks: HookRunner, relay: Relay | None = None) -> None:
        self.settings = doors.settings
        self._doors = doors
        self._hooks = hooks
        self._relay = relay
        self.topics: dict[str, set[SignalPeer]] = {}
        self.peers: set[SignalPeer] = set()
        self.accepting = True
        # What /metrics counts (collab_signal_messages_total): publishes from our clients,
        # messages sent to subscribers (one per recipient), publishes from and to the bus.
        self.published = self.delivered = self.relayed_in = self.relayed_out = 0

    @property
    def auth_on(self) -> bool:
        return self._hooks.has("on_request") or self._hooks.has("on_authenticate")

    def origin_allowed(self, origin: str | None) -> bool:
        return self._doors.origin_allowed(origin)

    def new_id(self) -> int:
        return self._doors.new_id()

    # -- sockets -------------------------------------------------------------------------------

    def open(
        self, socket: SignalSocket, query: str, headers: Mapping[str, str], ip: str, port: int
    ) -> SignalPeer:
        """A socket is open: its peer, with its token check under way. Raises a CollabError
        (its close code) to refuse it."""
        if not self.accepting:
            raise CollabError("server shutting down", CloseCode.GOING_AWAY)
        self._doors.admit_address(ip)
        peer = SignalPeer(socket, self.settings, ip, port)
        self.peers.add(peer)
        pairs = parse_qsl(query, keep_blank_values=True)
        token = next((v for k, v in pairs if k == "token"), None)
        if not self.auth_on:
            peer.access = EVERYTHING
        else:
            params = {k: v for k, v in pairs if k != "token"}
            payload = OnRequestPayload("GET", ROUTE, token, headers, params, peer.client)
            peer._task = self._start(self._authenticate(peer, payload))
        log.info("%r opened", peer, extra=peer.log_context())
        return peer

    @staticmethod
    def _start(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(work)

    async def _authenticate(self, peer: SignalPeer, payload: OnRequestPayload) -> None:
        try:
            with anyio.fail_after(self.settings.auth_timeout_s):
                access = await self._hooks.request(payload)
        except TimeoutError:
            peer.fail(CloseCode.IDLE_TIMEOUT, "authentication timed out")
            return
        except Exception as exc:
            error = reject_from(exc, peer.log_context())
            peer.fail(error.code, error.reason)
            return
        finally:
            peer._task = None
        if peer.closed:
            return
        if access is None:
            peer.fail(CloseCode.UNAUTHORIZED, "authentication required")
            return
        peer.access = access
        pending, peer.pending, peer.pending_bytes = peer.pending, [], 0
        for data in pending:
            if peer.closed:
                return
            self._handle(peer, data)

    def closed(self, peer: SignalPeer, code: int | None, reason: str) -> None:
        """The socket is closing or gone: leave every topic (once)."""
        if peer.closed:
            return
        peer.closed = True
        if peer._task is not None:
            peer._task.cancel()
            peer._task = None
        for topic in peer.topics:
            self._leave(peer, topic)
        peer.topics.clear()
        peer.pending = []
        self.peers.discard(peer)
        self._doors.release_address(peer.ip)
        duration = time.monotonic() - peer.started
        log.info(
            "%r closed with %s %s after %.1f s",
            peer,
            code,
            reason,
            duration,
            extra=peer.log_context(code=code, reason=reason, duration_ms=round(duration * 1000)),
        )

    def close_all(self, code: int, reason: str) -> None:
        """Shutdown: no new sockets; close the open ones."""
        self.accepting = False
        for peer in list(self.peers):
            peer.socket.close(code, reason)

    async def run(self, tick_s: float) -> None:
        """Keepalive pings for the fast path's sockets (the ASGI server pings its own)."""
        while True:
            await anyio.sleep(tick_s)
            now = time.monotonic()
            for peer in list(self.peers):
                peer.socket.keepalive(now)

    # -- messages ------------------------------------------------------------------------------

    def receive(self, peer: SignalPeer, data: bytes) -> None:
        """One message from the socket (a text frame, or a binary one holding JSON text, which
        the reference server reads too)."""
        if peer.closed:
            return
        if not peer.message_bucket.take() or not peer.byte_bucket.take(len(data)):
            peer.fail(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        if len(data) > self.settings.signal_max_message_bytes:
            peer.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        if peer.access is None:
            peer.pending.append(data)
            peer.pending_bytes += len(data)
            s = self.settings
            too_many = len(peer.pending) > s.pre_auth_max_messages
            if too_many or peer.pending_bytes > s.pre_auth_max_bytes:
                peer.fail(CloseCode.POLICY_VIOLATION, "too much data before authentication")
            return
        self._handle(peer, data)

    def _handle(self, peer: SignalPeer, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            peer.fail(CloseCode.PROTOCOL_ERROR, "invalid JSON")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "publish":
            self._publish(peer, message)
        elif kind == "subscribe":
            self._subscribe(peer, message.get("topics"))
        elif kind == "unsubscribe":
            topics = message.get("topics")
            for topic in topics if isinstance(topics, list) else ():
                if isinstance(topic, str) and topic in peer.topics:
                    peer.topics.discard(topic)
                    self._leave(peer, topic)
        elif kind == "ping":
            peer.socket.send_text(PONG)

    def _allowed(self, peer: SignalPeer, topic: str) -> bool:
        """Whether the peer may use `topic`; if not, it is closed (the reason says why)."""
        if len(topic.encode("utf-8", "replace")) > MAX_TOPIC_BYTES:
            peer.fail(CloseCode.POLICY_VIOLATION, f"topic longer than {MAX_TOPIC_BYTES} bytes")
            return False
        access = peer.access
        assert access is not None
        if not access.covers(topic):
            peer.fail(CloseCode.FORBIDDEN, "token not valid for this topic")
            return False
        if not access.write:
            peer.fail(CloseCode.FORBIDDEN, "signalling needs a write token")
            return False
        return True

    def _subscribe(self, peer: SignalPeer, topics: object) -> None:
        if not isinstance(topics, list):
            return
        limit = self.settings.signal_max_topics
        for topic in topics:
            if not isinstance(topic, str) or topic in peer.topics:
                continue
            if not self._allowed(peer, topic):
                return
            if len(peer.topics) >= limit:
                peer.fail(CloseCode.POLICY_VIOLATION, f"more than {limit} topics")
                return
            peer.topics.add(topic)
            self.topics.setdefault(topic, set()).add(peer)

    def _leave(self, peer: SignalPeer, topic: str) -> None:
        subscribers = self.topics.get(topic)
        if subscribers is not None:
            subscribers.discard(peer)
            if not subscribers:
                del self.topics[topic]

    def _publish(self, peer: SignalPeer, message: dict[str, Any]) -> None:
        topic = message.get("topic")
        if not isinstance(topic, str) or not topic or not self._allowed(peer, topic):
            return
        subscribers = self.topics.get(topic, ())
        message["clients"] = len(subscribers)
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.published += 1
        self.delivered += len(subscribers)
        for subscriber in list(subscribers):
            subscriber.socket.send_text(text)
        if self._relay is not None:
            self.relayed_out += 1
            self._relay.publish_signal(var_bytes(topic.encode("utf-8")) + text)

    def remote(self, payload: bytes) -> None:
        """A publish another process relayed (its SIGNAL envelope's payload): to our
        subscribers of the topic, as it was sent there."""
        try:
            raw, pos = read_var_bytes(payload, 0)
            topic = raw.decode("utf-8")
        except (CollabError, UnicodeDecodeError):
            return
        self.relayed_in += 1
        text = payload[pos:]
        subscribers = self.topics.get(topic, ())
        self.delivered += len(subscribers)
        for subscriber in list(subscribers):
            subscriber.socket.send_text(text)
