"""One document in memory: its Doc, its awareness, its members, and the fan-out between them.

Everything here is synchronous and runs on the event loop: a message is applied once and the
same bytes are queued for every other member without awaiting anybody.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pycrdt import Doc, get_update, merge_updates

from . import protocol as p
from .awareness import AwarenessRegistry
from .counts import (
    AWARENESS,
    FANOUT_SAMPLE,
    MAX_SAMPLES,
    OTHER,
    QUERY_AWARENESS,
    REFUSED_READ_ONLY,
    SYNC_STEP2,
    SYNC_UPDATE,
    Counts,
)
from .counts import message_type as _message_type
from .errors import CollabError, ProtocolError, UnsupportedData
from .hooks import ConnectionInfo
from .subdocs import SubdocOptions
from .validate import validate_state_vector, validate_update
from .ydoc import SharedAnswers, apply_update, as_protocol_error, captured, is_yrs_failure

log = logging.getLogger(__name__)

# Updates with missing dependencies one connection may leave pending (see Room._check_pending).
MAX_PENDING_UPDATES = 64

# How a member's transport takes a message (`Member.framing`): a broadcast encodes a message
# once per kind and writes the same bytes to every member of that kind.
PLAIN_FRAME = 0  # a WebSocket frame, written to the socket as is (collab/wire.py)
DEFLATE_FRAME = 1  # a permessage-deflate frame (collab/wire.py)
BARE_MESSAGE = 2  # the message itself: the server frames it (the ASGI path)
# The Hocuspocus protocol (collab/protocols/hocuspocus.py) puts the document's name before every
# message: its members' encodings are the three above with that prefix (one name per room).
HOCUSPOCUS_OFFSET = 3  # HOCUSPOCUS_OFFSET + PLAIN_FRAME / DEFLATE_FRAME / BARE_MESSAGE
# A member whose bytes are its own (a Hocuspocus session-aware address): `encode` returns the
# message as is and `send_frame` frames it for that member alone.
PER_MEMBER = 6
FRAMING_KINDS = 7
# Stateless messages (the Hocuspocus protocol's type 5): only its members understand them.
STATELESS_MESSAGE = 5


class TooManyPending(ProtocolError):
    """A client left more than MAX_PENDING_UPDATES updates waiting for a dependency."""


class Member(Protocol):
    """One connection in one room (collab/session.py's Session, over either kind of socket).

    Everything here is called synchronously from the room's handlers: `send_frame` must never
    wait (a member that cannot keep up closes itself), `close` only starts the closing.
    """

    framing: int  # PLAIN_FRAME, DEFLATE_FRAME, BARE_MESSAGE; HOCUSPOCUS_OFFSET + one; PER_MEMBER
    read_only: bool
    info: ConnectionInfo  # what hooks know of it (on_change names its sender)
    author: str | None  # who writes through it (collab/authorship.py: author_of), None: unknown

    def encode(self, message: bytes) -> bytes:
        """The bytes `send_frame` takes for `message` (shared by members of the same framing)."""
        ...

    def send_frame(self, data: bytes) -> None:
        """Queue bytes made by `encode`; never waits."""
        ...

    def send_nowait(self, message: bytes) -> None:
        """Queue one message to this member alone."""
        ...

    def add_pending(self, edits: int) -> int:
        """Count `edits` updates of this member waiting for a missing dependency; the total."""
        ...

    def close(self, code: int, reason: str = "") -> None: ...

    def __hash__(self) -> int: ...  # (members key the room's dict and own awareness states)


class Recorder(Protocol):
    """Called for every change that must be persisted (collab.saver.Saver.record): `edits` is
    how many client updates were merged into it, `author` who wrote it (None: unknown)."""

    def __call__(
        self, name: str, data: bytes, edits: int = 1, author: str | None = None
    ) -> None: ...


# Called with (room, member or None, update bytes) after each change was fanned out.
ChangeListener = Callable[["Room", "Member | None", bytes], None]


class Publisher(Protocol):
    """Where a room sends what the other processes holding its document must hear (cluster
    mode: collab.cluster.sync gives each room one)."""

    def update(self, update: bytes) -> None: ...

    def awareness(self, update: bytes) -> None: ...

    def stateless(self, payload: str) -> None: ...


class Room:
    def __init__(
        self,
        name: str,
        doc: Doc[Any],
        record: Recorder,
        *,
        awareness_timeout_s: float,
        read_only_awareness: bool = True,
        on_change: ChangeListener | None = None,
        publish: Publisher | None = None,
        subdocs: SubdocOptions | None = None,
        counts: Counts | None = None,
    ) -> None:
        self.name = name
        self.doc = doc
        # The subdocuments' options as their clients wrote them, which yrs drops (subdocs.py).
        self.subdocs = subdocs if subdocs is not None else SubdocOptions()
        self.awareness = AwarenessRegistry(awareness_timeout_s)
        self.members: dict[Member, None] = {}
        self._record = record
        self._on_change = on_change
        self._publish = publish
        self.read_only_awareness = read_only_awareness
        self.read_only_dropped = 0  # updates from read-only connections, dropped
        self.empty_since: float | None = time.monotonic()
        # The process's counters (collab/counts.py), None when metrics are off.
        self.counts = counts
        # Big answers to a sync step 1, shared by the joiners that ask alike (ydoc.py).
        self.answers = SharedAnswers(doc)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} members={len(self.members)}>"

    def encode_update(self, state: bytes | None = None) -> bytes:
        """The document (or what a peer with state vector `state` lacks) as an update, with
        the subdocuments' options as their clients wrote them."""
        return self.subdocs.reinstate(self.doc.get_update(state))

    # -- membership --------------------------------------------------------------------------

    def add(self, member: Member) -> None:
        """A member joins: it gets our sync step 1 and everybody's awareness. It leaves with
        `remove`, which its session calls the moment it starts closing."""
        self.members[member] = None
        self.empty_since = None
        self._send_to(member, p.sync_step1(self.doc.get_state()))
        states = self.awareness.encode_all()
        if states is not None:
            self._send_to(member, p.awareness_message(states))

    def _send_to(self, member: Member, message: bytes) -> None:
        """One message to one member (replies, what a joiner is sent), counted."""
        member.send_nowait(message)
        if self.counts is not None:
            self.counts.sent_to(message, 1)

    def remove(self, member: Member) -> None:
        if member not in self.members:
            return
        del self.members[member]
        removed = self.awareness.remove_owned_by(member)
        if removed:
            update = p.encode_awareness_update(removed)
            self.broadcast(p.awareness_message(update))
            if self._publish is not None:
                self._publish.awareness(update)
        if not self.members:
            self.empty_since = time.monotonic()

    def broadcast(
        self, message: bytes, *, exclude: Member | None = None, counted_as: int = -1
    ) -> None:
        """Send to every member but `exclude`: encoded once per framing, the same bytes to each
        member of that framing (in practice one or two: a server runs one kind of socket, which
        may speak y-websocket or the Hocuspocus protocol). `counted_as` is the message's type
        for the counts (collab/counts.py) when the caller knows it."""
        encoded: list[bytes | None] = [None] * FRAMING_KINDS
        for member in tuple(self.members):  # (a member may close, and leave, as we write)
            if member is exclude:
                continue
            kind = member.framing
            data = encoded[kind]
            if data is None:
                data = encoded[kind] = member.encode(message)
            member.send_frame(data)
        counts = self.counts
        if counts is not None:  # one count per broadcast, not per member
            members = self.members
            n = len(members) - (exclude is not None and exclude in members)
            counts.sent[counted_as if counted_as >= 0 else _message_type(message)] += n
            counts.bytes_out += len(message) * n

    def send_stateless(
        self,
        payload: str,
        *,
        only: int | None = None,
        exclude: int | None = None,
        relay: bool = True,
    ) -> int:
        """A stateless message (Hocuspocus' `sendStateless`) to the members that speak the
        Hocuspocus protocol (to the one whose connection id is `only`, or to all but
        `exclude`); how many it went to. y-websocket clients know no such message. In
        cluster mode a message to all (no `only`: connection ids are this process's) goes to
        the other processes' members as well (`relay`; not for what the bus brought)."""
        message = bytes((STATELESS_MESSAGE,)) + p.var_bytes(payload.encode("utf-8"))
        sent = 0
        for member in tuple(self.members):
            if member.framing < HOCUSPOCUS_OFFSET:
                continue
            conn_id = member.info.id
            if (only is not None and conn_id != only) or conn_id == exclude:
                continue
            member.send_nowait(message)
            sent += 1
        if self.counts is not None and sent:
            self.counts.sent_to(message, sent)
        if relay and only is None and self._publish is not None:
            self._publish.stateless(payload)
        return sent

    # -- messages ----------------------------------------------------------------------------

    def handle(self, conn: Member, message: bytes) -> None:
        """Handle one frame from `conn`; raises a CollabError for anything malformed."""
        if not message:
            raise ProtocolError("empty message")
        counts = self.counts
        if counts is not None:
            counts.bytes_in += len(message)
        kind = message[0]
        if kind == p.MSG_SYNC:
            sync = p.parse_sync(message)
            if counts is not None:
                counts.received[sync.kind] += 1  # (SYNC_STEP1..SYNC_UPDATE: the same numbers)
            if sync.kind != p.SYNC_STEP1 and conn.read_only:
                # Nothing a read-only client sends reaches the document, the store or a peer
                # (its sync step 2 included: y-protocols PROTOCOL.md, jupyverse#546).
                self.read_only_dropped += 1
                if counts is not None:
                    counts.refused[REFUSED_READ_ONLY] += 1
                return
            if sync.kind == p.SYNC_UPDATE:
                self._apply_update(conn, sync.payload, message)
            elif sync.kind == p.SYNC_STEP1:
                self._answer_step1(conn, sync.payload)
            else:
                self._apply_step2(conn, sync.payload)
        elif kind == p.MSG_AWARENESS:
            if counts is not None:
                counts.received[AWARENESS] += 1
            if conn.read_only and not self.read_only_awareness:
                p.parse_awareness(message)  # still must be well-formed
                return
            self._apply_awareness(conn, p.parse_awareness(message), message)
        elif kind == p.MSG_QUERY_AWARENESS:
            if counts is not None:
                counts.received[QUERY_AWARENESS] += 1
            if len(message) != 1:
                raise ProtocolError("trailing bytes after query-awareness message")
            states = self.awareness.encode_all()
            self._send_to(conn, p.awareness_message(states or b"\x00"))
        else:
            if counts is not None:
                counts.received[OTHER] += 1
            raise UnsupportedData(f"unsupported message type {kind}")

    def _answer_step1(self, conn: Member, state_vector: bytes) -> None:
        """Our sync step 2 for a peer with `state_vector`. A big one is encoded and framed once
        and the same bytes go to every joiner that asks alike while the document is unchanged
        (ydoc.SharedAnswers): no copy of the document per joiner."""
        framing = conn.framing
        kept = self.answers.get(state_vector, framing) if framing != PER_MEMBER else None
        if kept is None:
            message = p.sync_step2(self._diff(state_vector))
            if framing == PER_MEMBER or len(message) < self.answers.min_bytes:
                self._send_to(conn, message)
                return
            kept = (conn.encode(message), len(message))
            del message
            self.answers.keep(state_vector, framing, *kept)
        data, size = kept
        conn.send_frame(data)
        if self.counts is not None:
            self.counts.sent[SYNC_STEP2] += 1
            self.counts.bytes_out += size

    def _diff(self, state_vector: bytes) -> bytes:
        validate_state_vector(state_vector)
        try:
            update: bytes = self.doc.get_update(state_vector)
        except BaseException as exc:
            raise as_protocol_error(exc, "invalid state vector")  # noqa: B904 (chained)
        return self.subdocs.reinstate(update)

    def _apply_update(self, conn: Member, update: bytes, message: bytes) -> None:
        # The hot path: apply once, forward the very bytes received, persist them.
        if update == p.EMPTY_UPDATE:
            return
        # Before pycrdt: a 16-byte update can make it allocate 500 MB.
        if validate_update(update):  # it holds a subdocument
            self.subdocs.learn_from(update)
        self._apply(conn, update, message, (update,))

    def handle_updates(self, conn: Member, messages: list[bytes]) -> None:
        """Several sync-update messages one client sent back to back (read in one go).

        Applied as one merged update: yrs' cost per applied update grows with the document
        (a 100,000-insert document: ~0.4 ms each, one by one; merged by 32, 30× less in all),
        and the other members get one frame, the store one row. Each update is validated on
        its own first; the valid ones before a bad one are applied before it is refused.
        """
        updates: list[bytes] = []
        sent: list[bytes] = []
        error: CollabError | None = None
        with_subdocs = False
        counts = self.counts
        if counts is not None:
            counts.received[SYNC_UPDATE] += len(messages)
            counts.bytes_in += sum(map(len, messages))
        for message in messages:
            try:
                update = p.parse_sync(message).payload
                if update != p.EMPTY_UPDATE:
                    if validate_update(update):  # it holds a subdocument
                        self.subdocs.learn_from(update)
                        with_subdocs = True
                    updates.append(update)
                    sent.append(message)
            except CollabError as exc:
                error = exc
                break
        if len(updates) == 1:
            self._apply(conn, updates[0], sent[0], updates)
        elif updates:
            try:
                merged = merge_updates(*updates)
            except BaseException as exc:
                if not is_yrs_failure(exc):
                    raise
                for update, message in zip(updates, sent, strict=True):
                    self._apply(conn, update, message, (update,))  # one by one, as sent
            else:
                if with_subdocs:  # merge_updates re-encoded their options
                    merged = self.subdocs.reinstate(merged)
                self._apply(conn, merged, p.update_message(merged), updates)
        if error is not None:
            raise error

    def _apply(self, conn: Member, update: bytes, message: bytes, parts: Sequence[bytes]) -> None:
        """Apply a validated update (the merge of `parts`, as the client sent them) once, send
        `message` (which carries it) to the other members, persist it, tell the bus/hooks."""
        apply_update(self.doc, update)
        self._check_pending(conn, update, len(parts))
        counts = self.counts
        if counts is None:
            self.broadcast(message, exclude=conn)
        else:
            counts.updates_applied += len(parts)
            counts.fanouts += 1
            if counts.fanouts & (FANOUT_SAMPLE - 1):
                self.broadcast(message, exclude=conn, counted_as=SYNC_UPDATE)
            else:  # one in FANOUT_SAMPLE is timed (collab/metrics.py observes it later)
                started = time.perf_counter()
                self.broadcast(message, exclude=conn, counted_as=SYNC_UPDATE)
                if len(counts.fanout_samples) < MAX_SAMPLES:
                    counts.fanout_samples.append(time.perf_counter() - started)
        self._record(self.name, update, len(parts), conn.author)
        if self._publish is not None:
            self._publish.update(update)
        if self._on_change is not None:
            for part in parts:  # on_change sees each update as its client sent it
                self._on_change(self, conn, part)

    def _check_pending(self, conn: Member, update: bytes, edits: int = 1) -> None:
        """Refuse a client that keeps sending updates whose dependencies are missing.

        A well-behaved client never does (it sends in causal order, and anything it builds on
        came through us). yrs holds such updates aside and, when the missing one arrives,
        integrates them all at once at a cost quadratic in their number (2,000 tiny ones: about
        90 MB). The diff of the update against our state is empty once it is integrated.
        """
        if get_update(update, self.doc.get_state())[0] == 0:
            return
        if conn.add_pending(edits) > MAX_PENDING_UPDATES:
            raise TooManyPending("too many updates with missing dependencies")

    def apply_server_update(self, update: bytes, author: str | None = None) -> None:
        """An update from the server side (the documents service), validated as a client's:
        what it changes goes to every member, the store (as written by `author`: "api", a
        token's user id, ...), the bus and on_change (with no connection), as a client's sync
        step 2 would.

        What yrs holds aside for a missing dependency changes nothing yet, so it would reach
        no one: it goes on as a client's update does, whole (to every member, the store and the
        bus), so that it completes wherever the dependency arrives, however it comes."""
        self._apply_step2(None, update, author)
        if get_update(update, self.doc.get_state())[0] != 0:  # something of it is held aside
            self.broadcast(p.update_message(update))
            self._record(self.name, update, 1, author)
            if self._publish is not None:
                self._publish.update(update)

    def _apply_step2(self, conn: Member | None, update: bytes, author: str | None = None) -> None:
        # A client's step 2 repeats its whole delete set and whatever we already have (e.g. on
        # every reconnect): forward and persist only what actually changed our document.
        if update == p.EMPTY_UPDATE:
            return
        if validate_update(update):  # it holds a subdocument
            self.subdocs.learn_from(update)
        with captured(self.doc) as changes:
            apply_update(self.doc, update)
        if self.subdocs.known:  # yrs re-encoded them
            changes = [self.subdocs.reinstate(change) for change in changes]
        if conn is not None:
            author = conn.author
        if self.counts is not None:
            self.counts.updates_applied += len(changes)
        for change in changes:
            self.broadcast(p.update_message(change), exclude=conn, counted_as=SYNC_UPDATE)
            self._record(self.name, change, 1, author)
            if self._publish is not None:
                self._publish.update(change)
            if self._on_change is not None:
                self._on_change(self, conn, change)

    def _apply_awareness(self, conn: Member, update: bytes, message: bytes) -> None:
        entries = p.decode_awareness_update(update)
        if not entries:
            return  # a client's keep-alive: nothing to relay
        accepted, verbatim, reminders = self.awareness.apply(entries, conn)
        if verbatim:
            self.broadcast(
                message, counted_as=AWARENESS
            )  # the sender too: y-websocket uses the echo as a heartbeat
            if self._publish is not None:
                self._publish.awareness(update)
        elif accepted:
            changed = p.encode_awareness_update(accepted)
            self.broadcast(p.awareness_message(changed))
            if self._publish is not None:
                self._publish.awareness(changed)
        if reminders:  # after the echo: see collab/awareness.py
            self._send_to(conn, p.awareness_message(p.encode_awareness_update(reminders)))

    def expire_awareness(self) -> None:
        removed = self.awareness.remove_expired()
        if removed:
            self.broadcast(p.awareness_message(p.encode_awareness_update(removed)))
