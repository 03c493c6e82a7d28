"""ClusterSync: this process's rooms kept in step with the other processes holding the same
documents, over a bus (the envelope and the `Bus` protocol: collab/cluster/__init__.py).

What the hub tells it, and when:
- `subscribe(name)` before a document is read from the store: the bus listens to its channel
  first, and what arrives before the room exists is kept (`Replica.backlog`), so nothing another
  process applies between our read and our subscription is missed. It returns the room's
  publisher: the room sends its clients' updates and awareness to the bus through it.
- `loaded(room, stored, seeded)` once the room exists: publish what on_load_document hooks
  wrote, apply the backlog, and ask the processes holding the document for what is in their
  memory only (a SYNC with our state vector).
- `unloaded(name)`, `tick()` (a heartbeat), `keep_peers_edits()` and `close()` at shutdown.

Everything else comes from the bus (`_on_bus`): other processes' updates are applied and handed
on to our clients but not persisted (their origin persists them; we do when it dies before it
could: `_keep_peers_edits`); their awareness states are owned by ("peer", process id) in the
room's registry and go when the process does; a SYNC is answered with what the sender lacks;
COMMITTED (the PostgreSQL bus) has us read the new rows of the document's log.

Liveness is measured in the bus's time: our own heartbeats, back from the bus, are the ticks
(`_heard_self`); a peer silent for more ticks than `peer_timeout_s` lasts is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup
from pycrdt import Subscription

from storage import DocumentStore, StoredDocument

from .. import protocol as p
from ..room import Recorder, Room
from ..ydoc import apply_update, captured
from . import (
    AWARENESS,
    BYE,
    COMMITTED,
    HEARTBEAT,
    SIGNAL,
    STATELESS,
    SYNC,
    UPDATE,
    Bus,
    Envelope,
)

log = logging.getLogger(__name__)

# The owner, in a room's awareness registry, of the states another process relayed (our own
# connections own the states their clients sent).
PeerOwner = tuple[str, bytes]


def peer_owner(process_id: bytes) -> PeerOwner:
    return ("peer", process_id)


def _local(owner: object) -> bool:
    return not isinstance(owner, tuple)


# What a process says of itself in its heartbeats (a small JSON object: pid, host,
# connections, rooms, started_at_ms). A peer of an older version sends an empty payload.
Load = Mapping[str, int | str]
MAX_LOAD_BYTES = 512  # a heartbeat payload larger than this is not read


@dataclass(frozen=True, slots=True)
class PeerLoad:
    """A process of the cluster as this one hears it: `load` is what its last heartbeat said
    (None when it says nothing), `silent_ticks` how many of our bus ticks passed since it was
    last heard (0 for this process)."""

    process_id: str  # hex
    load: Load | None
    silent_ticks: int
    this_process: bool = False


def decode_load(payload: bytes) -> Load | None:
    """A heartbeat's payload: the load, or None when empty, too large or not such an object
    (a peer never breaks us by what it sends)."""
    if not payload or len(payload) > MAX_LOAD_BYTES:
        return None
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    return {
        k: v
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, int | str) and not isinstance(v, bool)
    }


class Replica:
    """One document as the cluster sees it in this process: its room (once loaded), what the
    bus brought while it loaded, whose updates it applied, how far its log was read. It is also
    the room's publisher (collab.room.Publisher)."""

    __slots__ = (
        "_bus",
        "_watching",
        "backlog",
        "fetch_again",
        "fetching",
        "last_row_id",
        "name",
        "remote_peers",
        "room",
    )

    def __init__(self, name: str, bus: Bus) -> None:
        self.name = name
        self._bus = bus
        self.room: Room | None = None
        self.backlog: list[Envelope] = []  # what the bus brought before the room existed
        self.remote_peers: set[bytes] = set()  # processes whose updates the room applied
        self.last_row_id = 0  # the newest update-log row read (PostgreSQL bus)
        self.fetching = False  # reading the log's new rows
        self.fetch_again = False  # more were announced meanwhile
        self._watching: Subscription | None = None

    # -- the room's publisher ----------------------------------------------------------------

    def update(self, update: bytes) -> None:
        self._bus.publish(self.name, UPDATE, update)

    def awareness(self, update: bytes) -> None:
        self._bus.publish(self.name, AWARENESS, update)

    def stateless(self, payload: str) -> None:
        self._bus.publish(self.name, STATELESS, payload.encode("utf-8"))

    # -- the room ----------------------------------------------------------------------------

    def attach(self, room: Room, stored: StoredDocument) -> None:
        self.room = room
        self.last_row_id = stored.last_id
        # Other processes' updates are not validated: yrs tells when they add a subdocument.
        # (The subscription keeps the Doc alive: `detach` drops it.)
        self._watching = room.subdocs.watch(room.doc)

    def detach(self) -> None:
        if self._watching is not None and self.room is not None:
            self.room.doc.unobserve(self._watching)
            self._watching = None


class ClusterSync:
    def __init__(
        self,
        bus: Bus,
        *,
        store: DocumentStore,
        record: Recorder,
        task_group: TaskGroup,
        tick_s: float,
        peer_timeout_s: float,
    ) -> None:
        self.bus = bus
        self._store = store
        self._record = record
        self._tg = task_group
        self._tick_s = tick_s
        self._peer_timeout_s = peer_timeout_s
        self._process_id = bus.process_id
        self._replicas: dict[str, Replica] = {}  # documents loaded, or loading
        self._peers: dict[bytes, int] = {}  # other processes -> _bus_ticks when last heard
        self._bus_ticks = 0  # our own heartbeats heard back from the bus (see _heard_self)
        self.received = 0  # messages the bus brought from other processes (for the metrics)
        self._bus_ticked_at = -1e9  # when the last one counted came back (time.monotonic())
        # The bus carries updates as committed rows of the log (PostgreSQL): announce commits.
        self.wants_commits: bool = getattr(bus, "wants_commits", False)
        # This process's load, sent in each heartbeat (the hub sets it: collab.hub.Hub.load)
        self.load: Callable[[], Mapping[str, int]] | None = None
        self._identity = {"pid": os.getpid(), "host": socket.gethostname()[:64]}
        self._loads: dict[bytes, Load] = {}  # other processes -> what their last heartbeat said
        # Who hears the other processes' y-webrtc signalling (collab.protocols.signaling)
        self.on_signal: Callable[[bytes], None] | None = None

    async def run(self) -> None:
        await self.bus.run(self._on_bus, self._exchange_all, self._on_subscribed)

    # -- what the hub tells us ---------------------------------------------------------------

    async def subscribe(self, name: str) -> Replica:
        """Listen to a document's channel before it is read from the store (see the module's
        docstring); returns the publisher its room is to be made with."""
        replica = self._replicas[name] = Replica(name, self.bus)
        await self.bus.join(name)
        return replica

    def loaded(self, room: Room, stored: StoredDocument, seeded: Sequence[bytes]) -> None:
        """`room` holds the document read as `stored`, and `seeded`, what on_load_document
        hooks wrote (the room persists those, we publish them)."""
        replica = self._replicas[room.name]
        replica.attach(room, stored)
        for update in seeded:
            replica.update(update)
        backlog, replica.backlog = replica.backlog, []
        for envelope in backlog:
            self._on_room_message(replica, envelope)
        # Ask the processes that hold this document for what is in their memory only.
        self._ask(room)

    def unloaded(self, name: str) -> None:
        """The document was unloaded, or its load failed: stop listening to it."""
        replica = self._replicas.pop(name, None)
        if replica is not None:
            replica.detach()
        self.bus.leave(name)

    def committed(self, name: str, count: int) -> None:
        """(A Saver.on_committed listener when `wants_commits`.)"""
        self.bus.publish(name, COMMITTED, b"")

    def tick(self) -> None:
        """Once a hub tick: our heartbeat. (Silent peers are judged when it comes back to us:
        _heard_self.)"""
        self.bus.publish(None, HEARTBEAT, self._load_payload())

    def _load_payload(self) -> bytes:
        if self.load is None:
            return b""
        return json.dumps({**self._identity, **self.load()}, separators=(",", ":")).encode()

    def processes(self) -> list[PeerLoad]:
        """This process, then the peers heard from (by id), with their last known load."""
        here = decode_load(self._load_payload())
        out = [PeerLoad(self._process_id.hex(), here, 0, this_process=True)]
        for pid, heard in sorted(self._peers.items()):
            out.append(PeerLoad(pid.hex(), self._loads.get(pid), self._bus_ticks - heard))
        return out

    def keep_peers_edits(self) -> None:
        """We are stopping, perhaps before a peer that died is judged gone: keep durable what
        any peer sent us."""
        for replica in self._replicas.values():
            self._keep_peers_edits(replica, None)

    async def close(self) -> None:
        """Tell the others we are going, give the bus a moment to send it, stop."""
        self.bus.publish(None, BYE, b"")
        with anyio.move_on_after(0.5):
            await self.bus.close()

    def publish_signal(self, payload: bytes) -> None:
        """A y-webrtc publish, for the other processes' subscribers (the shared channel)."""
        self.bus.publish(None, SIGNAL, payload)

    def message_counts(self) -> tuple[int, int, int]:
        """(published, received, dropped) since start, for the metrics (a bus without
        `message_counts` counts as publishing nothing)."""
        counts = getattr(self.bus, "message_counts", None)
        published, dropped = counts() if counts is not None else (0, 0)
        return published, self.received, dropped

    # -- what the bus brings -----------------------------------------------------------------

    def _on_bus(self, document: str | None, envelope: Envelope) -> None:
        sender = envelope.sender
        if document is None and sender == self._process_id:
            if envelope.kind == HEARTBEAT:
                self._heard_self()
            return
        self.received += 1
        known = sender in self._peers
        self._peers[sender] = self._bus_ticks
        if envelope.kind == HEARTBEAT:
            load = decode_load(envelope.payload)
            if load is not None:
                self._loads[sender] = load
        if not known and envelope.kind != BYE:
            # New, or back after we took it for gone (and dropped its cursors): exchange
            # state with it, whatever its first message is (an update as well as a heartbeat).
            log.info("cluster peer %s is here", sender.hex()[:8])
            self._exchange_all()
        if document is None:
            if envelope.kind == BYE:
                self._peer_gone(sender)
            elif envelope.kind == SIGNAL and self.on_signal is not None:
                self.on_signal(envelope.payload)
            return
        replica = self._replicas.get(document)
        if replica is None:
            return
        if replica.room is None:  # still loading
            replica.backlog.append(envelope)
            return
        self._on_room_message(replica, envelope)

    def _on_room_message(self, replica: Replica, envelope: Envelope) -> None:
        kind, payload = envelope.kind, envelope.payload
        if kind == UPDATE:
            self._apply_update(replica, payload, envelope.sender)
        elif kind == COMMITTED:
            if replica.fetching:
                replica.fetch_again = True
            else:
                replica.fetching = True
                self._tg.start_soon(self._fetch_rows, replica)
        elif kind == AWARENESS:
            self._apply_awareness(replica, payload, envelope.sender)
        elif kind == SYNC and payload:
            self._answer_sync(replica, payload)
        elif kind == STATELESS:
            room = replica.room
            assert room is not None
            room.send_stateless(payload.decode("utf-8", "replace"), relay=False)

    def _apply_update(self, replica: Replica, update: bytes, sender: bytes) -> None:
        """An update another process applied: apply it, hand on what is new to our clients.
        Not persisted here: its origin persists it (and we do if that process dies)."""
        room = replica.room
        assert room is not None
        with captured(room.doc) as changes:
            apply_update(room.doc, update)
        if changes and sender:
            replica.remote_peers.add(sender)
        subdocs = room.subdocs
        subdocs.learn_if_added(update)
        if subdocs.known:  # yrs re-encoded them
            changes = [subdocs.reinstate(change) for change in changes]
        for change in changes:
            room.broadcast(p.update_message(change))

    def _apply_awareness(self, replica: Replica, update: bytes, sender: bytes) -> None:
        room = replica.room
        assert room is not None
        accepted, verbatim, _ = room.awareness.apply(
            p.decode_awareness_update(update), peer_owner(sender), remind=False
        )
        if verbatim and accepted:
            room.broadcast(p.awareness_message(update))
        elif accepted:
            room.broadcast(p.awareness_message(p.encode_awareness_update(accepted)))

    def _answer_sync(self, replica: Replica, payload: bytes) -> None:
        """A process sent its state vector: send it what it lacks, and (flag 1) our own state
        vector and our connections' cursors, so the exchange goes both ways."""
        room = replica.room
        assert room is not None
        diff = room.encode_update(payload[1:])
        if diff != p.EMPTY_UPDATE:
            self.bus.publish(room.name, UPDATE, diff)
        if payload[0] == 1:
            self.bus.publish(room.name, SYNC, b"\x00" + room.doc.get_state())
            states = room.awareness.encode_all(_local)
            if states is not None:
                self.bus.publish(room.name, AWARENESS, states)

    async def _fetch_rows(self, replica: Replica) -> None:
        """Read what other processes committed to this document's log since we last looked."""
        replica.fetch_again = False
        try:
            stored = await self._store.load(replica.name, after_id=replica.last_row_id)
            for update in stored.parts:
                self._apply_update(replica, update, b"")
            replica.last_row_id = max(replica.last_row_id, stored.last_id)
        except Exception:
            log.exception("reading new rows of %r failed", replica.name)
        finally:
            replica.fetching = False
        if replica.fetch_again and self._replicas.get(replica.name) is replica:
            replica.fetching = True
            self._tg.start_soon(self._fetch_rows, replica)

    # -- state exchanges ---------------------------------------------------------------------

    def _ask(self, room: Room) -> None:
        """Publish our state vector, asking for an answer (flag 1)."""
        self.bus.publish(room.name, SYNC, b"\x01" + room.doc.get_state())

    def _exchange_all(self) -> None:
        """After (re)connecting (or losing messages), or hearing from a new peer: exchange
        state vectors and cursors for every room we hold. (The peers' silence is not counted
        while we were away: the bus's ticks stopped too.)"""
        for replica in self._replicas.values():
            if replica.room is not None:
                self._ask(replica.room)

    def _on_subscribed(self, document: str) -> None:
        """Our subscription to a document's channel was confirmed after its load went on
        without it: the answers to the load's state exchange may have been published before
        we listened. Exchange again (a room still loading exchanges at the end of its load)."""
        replica = self._replicas.get(document)
        if replica is not None and replica.room is not None:
            self._ask(replica.room)

    # -- peers -------------------------------------------------------------------------------

    def _heard_self(self) -> None:
        """Our own heartbeat (one a tick) is back from the bus: the bus's clock ticked. A peer
        not heard for more ticks than the peer timeout lasts is gone.

        Silence is counted in the bus's ticks, not the clock's seconds: when we read late (our
        loop saturated or stalled, a backlog in the socket) our heartbeats come back late too,
        behind the peers' ones, and while Redis is away nothing ticks at all. Heartbeats that
        come back in a burst count once: we are reading a backlog, or Redis is running what
        queued up while it stalled, in an order of its own (ours first, perhaps: the peers'
        ones from the same seconds are right behind)."""
        now = time.monotonic()
        if now - self._bus_ticked_at < self._tick_s / 2:
            return
        self._bus_ticked_at = now
        self._bus_ticks += 1
        limit = self._bus_ticks - self._peer_timeout_s / self._tick_s
        for pid in [pid for pid, heard in self._peers.items() if heard < limit]:
            self._peer_gone(pid)

    def _peer_gone(self, pid: bytes) -> None:
        """A process stopped: its users' cursors go, and what it sent us is kept durable."""
        self._loads.pop(pid, None)
        if self._peers.pop(pid, None) is None:
            return
        log.info("cluster peer %s is gone", pid.hex()[:8])
        owner = peer_owner(pid)
        for replica in self._replicas.values():
            room = replica.room
            if room is None:
                continue
            removed = room.awareness.remove_owned_by(owner)
            if removed:
                room.broadcast(p.awareness_message(p.encode_awareness_update(removed)))
            self._keep_peers_edits(replica, pid)

    def _keep_peers_edits(self, replica: Replica, pid: bytes | None) -> None:
        """The updates peer `pid` (None: any peer) sent this room may never be committed by
        it: it died, or we are stopping before it is judged gone. Record our full state, which
        holds them (harmless if all of it is stored already)."""
        room = replica.room
        if room is None or not replica.remote_peers:
            return
        if pid is None:
            replica.remote_peers.clear()
        elif pid in replica.remote_peers:
            replica.remote_peers.discard(pid)
        else:
            return
        self._record(room.name, room.encode_update(), 1)
