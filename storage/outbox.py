"""SqlStore's outbox: change events written in the transactions that commit what they describe.

- Marks (`collab_event_marks`): each append transaction notes, for every document it commits
  updates of, that the document changed (who wrote, since when, and whether the transaction
  created it). The server's finalizer makes a due mark into events (`document.created`,
  `document.changed`) with `finish_mark`, in one transaction that deletes the mark, unless a
  commit touched it meanwhile. So a change is never lost between a commit and its event,
  whatever crashes when.
- Events (`collab_events`): immutable rows, `seq` ordered, the body JSON every sink sends.
  `document.deleted` and `version.created` are written in the transaction that deletes the
  document or stores the version (sql.py, history.py); others with `add_event`.
- Sinks and deliveries: each sink has a cursor (`collab_sinks`); `fill_deliveries` makes its
  deliveries of the events after it; a delivery is claimed (`claim_deliveries`), attempted by
  the server, and settled (delivered, retried later, failed).

On PostgreSQL every transaction that writes events takes the append lock, so events become
visible in seq order (a reader that has seen seq N never later finds a new one below N).

`OutboxTables` is a part of SqlStore, written apart for its length.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import statements as q
from .base import PendingUpdate, now_ms

APPEND_LOCK = 0x636F6C6C6162 + 1  # (sql.py's): taken by every transaction that writes events
NO_ID = 2**62


class EventSettings(NamedTuple):
    """How the store coalesces changes into document.changed events."""

    debounce_ms: int = 2000
    max_wait_ms: int = 10000


class NewEvent(NamedTuple):
    """An event to write: its id, type, document, time and JSON body."""

    event_id: str
    type: str
    document: str
    created_at_ms: int
    body: str


class StoredEvent(NamedTuple):
    seq: int
    event_id: str
    type: str
    document: str
    created_at_ms: int
    body: str


class Mark(NamedTuple):
    """A document's committed changes not yet made into events (claimed by this process)."""

    document: str
    first_at_ms: int
    users: tuple[str, ...]
    created: bool
    revision: int


class Claimed(NamedTuple):
    """A delivery this process holds: its id, attempts so far, since when it is tried (the
    delivery's creation, or the retry asked for), and the event."""

    id: int
    attempts: int
    since_ms: int
    event: StoredEvent


class DeliveryRow(NamedTuple):
    id: int
    sink: str
    event_id: str
    event_type: str
    document: str
    status: str
    attempts: int
    last_error: str | None
    created_at_ms: int
    updated_at_ms: int
    next_attempt_ms: int


def new_event(
    type: str,
    document: str,
    users: Sequence[str] = (),
    state_vector: bytes | None = None,
    time_ms: int | None = None,
    **extra: Any,
) -> NewEvent:
    """An event with a fresh id and its body (docs/events.md): id, type, document, time,
    time_ms, users, state_vector (base64, when known), then `extra`."""
    stamp = now_ms() if time_ms is None else time_ms
    event_id = "evt_" + secrets.token_hex(16)
    body: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "document": document,
        "time": datetime.fromtimestamp(stamp / 1000, UTC).isoformat(timespec="milliseconds")[:-6]
        + "Z",
        "time_ms": stamp,
        "users": sorted(set(users)),
        "state_vector": base64.b64encode(state_vector).decode()
        if state_vector is not None
        else None,
        **extra,
    }
    return NewEvent(event_id, type, document, stamp, json.dumps(body, separators=(",", ":")))


def next_mark(
    found: tuple[str, int, int] | None,
    authors: set[str],
    created: bool,
    stamp: int,
    config: EventSettings,
) -> tuple[bool, dict[str, Any]]:
    """What an append does to a document's mark: (insert?, parameters, without the
    document's name: INSERT_MARK takes it as `document`, EXTEND_MARK as `doc`). `found` is
    the mark as MARK reads it (users JSON, first_at_ms, revision), None when there is none.
    (An UPDATE given a parameter named like a column sets that column: never pass one.)"""
    if found is None:
        return True, {
            "stamp": stamp,
            "due_at_ms": stamp + config.debounce_ms,
            "users": json.dumps(sorted(authors)),
            "created": 1 if created else 0,
        }
    users_json, first_at, _ = found
    due = min(stamp + config.debounce_ms, int(first_at) + config.max_wait_ms)
    if not authors:  # (nobody known wrote: the users stay, unread, as most commits go)
        return False, {"due_at_ms": due, "users": users_json}
    users = set(json.loads(users_json))
    return False, {
        "due_at_ms": due,
        "users": json.dumps(sorted(users | authors)) if not authors <= users else users_json,
    }


def authors_by_document(batch: Sequence[PendingUpdate]) -> dict[str, set[str]]:
    """Each document of an append's batch and who wrote its updates (the known authors)."""
    authors: dict[str, set[str]] = {}
    for update in batch:
        names = authors.setdefault(update.name, set())
        if update.author is not None:
            names.add(update.author)
    return authors


async def write_marks(
    conn: AsyncConnection,
    batch: Sequence[PendingUpdate],
    created: set[str],
    stamp: int,
    config: EventSettings,
) -> None:
    """In an append transaction: mark every document of `batch` (`created`: the ones this
    transaction created)."""
    changed = authors_by_document(batch)
    for name in sorted(changed):
        authors = changed[name]
        row = (await conn.execute(q.MARK, {"document": name})).first()
        found = None if row is None else (row.users, row.first_at_ms, row.revision)
        insert, params = next_mark(found, authors, name in created, stamp, config)
        params["document" if insert else "doc"] = name
        await conn.execute(q.INSERT_MARK if insert else q.EXTEND_MARK, params)


def mark_of(row: Any) -> Mark:
    return Mark(
        row.document,
        int(row.first_at_ms),
        tuple(json.loads(row.users)),
        bool(row.created),
        int(row.revision),
    )


def claimed_delivery(row: Any) -> Claimed:
    return Claimed(int(row.id), int(row.attempts), int(row.since_ms), _event(row))


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        int(row.seq), row.event_id, row.type, row.document, int(row.created_at_ms), row.body
    )


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(
        int(row.id),
        row.sink,
        row.event_id,
        row.type,
        row.document,
        row.status,
        int(row.attempts),
        row.last_error,
        int(row.created_at_ms),
        int(row.updated_at_ms),
        int(row.next_attempt_ms),
    )


# A due mark that a commit holds is claimed this much later (the commit will have moved it).
LOCKED_RETRY_MS = 20
# A fast-path statement that finds SQLite busy is tried again for ~0.1 s before the engine
# runs it: an engine transaction costs ~0.45 ms of CPU and holds SQLite's lock across its
# thread's hops, so falling back at once made the next fast paths fail too (in a fanout run,
# 81 of the finalizer's ~200 writes in 15 s went to the engine that way).
FAST_TRIES = 20
FAST_RETRY_EVERY_S = 0.005  # (another connection's lock, or another process's: no event to await)
T = TypeVar("T")


async def fast_or_none(attempt: Callable[[], T | None]) -> T | None:
    """What `attempt` (a fast-path call: None when it cannot run now) returns, tried every
    FAST_RETRY_EVERY_S, FAST_TRIES times; None when it never ran."""
    for _ in range(FAST_TRIES - 1):
        done = attempt()
        if done is not None:
            return done
        await anyio.sleep(FAST_RETRY_EVERY_S)
    return attempt()


# Documents whose marks this process leaves to another for a while (`claim_due_marks`).
Defer = Callable[[str], bool]
DEFER_MS = 5_000


def deferred(defer: Defer | None, document: str, due_at_ms: int, now: int) -> bool:
    """Whether to leave `document`'s due mark alone now: `defer` names it and it fell due less
    than DEFER_MS ago (after that, any process takes it: the one that should may be gone)."""
    return defer is not None and due_at_ms > now - DEFER_MS and defer(document)


class OutboxFastPath(Protocol):
    """The finalizer's statements on a faster path (storage/sqlite.py's SqliteAppender): each
    returns None when it cannot run at once, and the engine runs it instead."""

    def claim_due_marks_now(
        self, now: int, hold_ms: int, limit: int, defer: Defer | None = None
    ) -> tuple[list[Mark], int | None] | None: ...

    def finish_mark_now(self, mark: Mark, events: Sequence[NewEvent]) -> bool | None: ...

    def last_change_now(self, document: str) -> tuple[str | None] | None: ...


class DeliveryFastPath(Protocol):
    """A sink's delivery loop's statements on a faster path (storage/sqlite.py's
    SqliteAppender), as OutboxFastPath: None when it cannot run at once."""

    def fill_deliveries_now(self, sink: str, now: int, limit: int) -> int | None: ...

    def claim_deliveries_now(
        self, sink: str, now: int, hold_ms: int, limit: int, skip: Sequence[str]
    ) -> list[Claimed] | None: ...

    def settle_delivery_now(self, params: dict[str, Any]) -> bool | None: ...

    def next_due_now(self, sink: str, now: int) -> tuple[int | None] | None: ...


class OutboxTables:
    """The outbox (SqlStore's; see sql.py for the rest)."""

    engine: AsyncEngine
    _dialect: str
    # On a SQLite file: the finalizer's statements run on its connection when it is free.
    _outbox_fast: OutboxFastPath | None = None
    # On a SQLite file: the delivery loops' statements too (~5 us a transaction there, against
    # ~0.45 ms of CPU through the async engine and its thread: most of a delivery's cost).
    _delivery_fast: DeliveryFastPath | None = None
    events: EventSettings | None = None  # None: no events are written
    # Called with a document's name before an event about it is written on its own (a
    # version, a deletion, add_event): the server makes the document's pending changes into
    # events first, so they come before it in the outbox.
    before_event: Callable[[str], Awaitable[None]] | None = None
    # Called after such an event was committed (the server wakes its sinks' loops).
    after_event: Callable[[], None] | None = None

    def configure_events(self, settings: EventSettings | None) -> None:
        """Write events from now on with these settings (None: none)."""
        self.events = settings

    def around_events(
        self, before: Callable[[str], Awaitable[None]], after: Callable[[], None]
    ) -> None:
        """`before(document)` runs before an event about it is written on its own, `after()`
        once it is committed (see the attributes)."""
        self.before_event, self.after_event = before, after

    async def _settle_changes(self, document: str) -> None:
        if self.before_event is not None and self.events is not None:
            await self.before_event(document)

    def _event_written(self) -> None:
        if self.after_event is not None and self.events is not None:
            self.after_event()

    async def _lock_events(self, conn: AsyncConnection) -> None:
        if self._dialect == "postgresql":
            await conn.execute(q.ADVISORY_XACT_LOCK, {"key": APPEND_LOCK})

    async def _insert_events(self, conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
        for event in events:
            await conn.execute(q.INSERT_EVENT, event._asdict())

    # -- writing events ----------------------------------------------------------------------

    async def add_event(self, event: NewEvent, settle: bool = True) -> int:
        """Write one event in a transaction of its own; `settle`: after the document's
        pending changes (made into events first). Its seq."""
        if settle:
            await self._settle_changes(event.document)
        async with self.engine.begin() as conn:
            await self._lock_events(conn)
            key = (await conn.execute(q.INSERT_EVENT, event._asdict())).inserted_primary_key
        self._event_written()
        assert key is not None
        return int(key[0])

    async def due_marks(self, now: int, hold_ms: int, limit: int = 100) -> list[Mark]:
        """Claim up to `limit` marks due at `now` for `hold_ms` (a finalizer that dies lets
        them go after that)."""
        return (await self.claim_due_marks(now, hold_ms, limit))[0]

    async def claim_due_marks(
        self, now: int, hold_ms: int, limit: int = 100, defer: Defer | None = None
    ) -> tuple[list[Mark], int | None]:
        """`due_marks`, and when none was due, when the earliest mark not held falls due
        (None: no mark): what a finalizer needs each time it wakes, in one transaction. A mark
        whose document `defer` names is left alone for DEFER_MS after it falls due (another
        process holds that document and makes its events cheaper: see `deferred`)."""
        fast = self._outbox_fast
        if fast is not None:
            done = await fast_or_none(lambda: fast.claim_due_marks_now(now, hold_ms, limit, defer))
            if done is not None:
                return done
        claimed: list[Mark] = []
        async with self.engine.begin() as conn:
            rows = (await conn.execute(q.DUE_MARKS, {"now": now, "limit": limit})).all()
            for row in rows:
                if deferred(defer, row.document, row.due_at_ms, now):
                    continue
                params = {"doc": row.document, "now": now, "until": now + hold_ms}
                if (await conn.execute(q.CLAIM_MARK, params)).rowcount == 1:
                    claimed.append(mark_of(row))
            if rows:
                return claimed, None
            found = (await conn.execute(q.NEXT_MARK_DUE, {"now": now})).scalar()
        if found is not None and int(found) <= now:  # due, but a commit holds it (PostgreSQL)
            return claimed, now + LOCKED_RETRY_MS
        return claimed, None if found is None else int(found)

    async def claim_mark(self, document: str, now: int, hold_ms: int) -> Mark | None:
        """Claim `document`'s mark, due or not; None when it has none (or another process
        holds it)."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(q.MARK_ROW, {"document": document})).first()
            if row is None:
                return None
            params = {"doc": document, "now": now, "until": now + hold_ms}
            if (await conn.execute(q.CLAIM_MARK, params)).rowcount != 1:
                return None
        return mark_of(row)

    async def finish_mark(self, mark: Mark, events: Sequence[NewEvent]) -> bool:
        """Write the events a claimed mark was made into and delete it, in one transaction;
        if a commit touched it since it was claimed, it stays (released, due again) and
        the events are still written. Whether it was deleted."""
        fast = self._outbox_fast
        if fast is not None:
            deleted = await fast_or_none(lambda: fast.finish_mark_now(mark, events))
            if deleted is not None:
                return deleted
        async with self.engine.begin() as conn:
            await self._lock_events(conn)
            await self._insert_events(conn, events)
            params = {"document": mark.document, "revision": mark.revision}
            if (await conn.execute(q.DELETE_MARK, params)).rowcount == 1:
                return True
            await conn.execute(q.RELEASE_MARK, {"doc": mark.document})
            return False

    async def drop_mark(self, document: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(q.DROP_MARK, {"document": document})

    # -- reading events ----------------------------------------------------------------------

    async def events_after(
        self, after: int, document: str | None = None, prefix: str = "", limit: int = 100
    ) -> list[StoredEvent]:
        stmt = q.events_after(document is not None, bool(prefix))
        params: dict[str, Any] = {"after": after, "limit": limit}
        if document is not None:
            params["document"] = document
        if prefix:
            params["prefix"] = prefix
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt, params)).all()
        return [_event(r) for r in rows]

    async def event_seq(self, event_id: str) -> int | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(q.EVENT_SEQ, {"event_id": event_id})).scalar()
        return None if found is None else int(found)

    async def event_bounds(self) -> tuple[int, int, int]:
        """(lowest seq, highest seq, count) of the events kept; (0, 0, 0) when none."""
        async with self.engine.connect() as conn:
            low, high, count = (await conn.execute(q.EVENT_BOUNDS)).one()
        return int(low or 0), int(high or 0), int(count or 0)

    async def last_change(self, document: str) -> dict[str, Any] | None:
        """The body of the newest document.changed event of `document`."""
        if self._outbox_fast is not None:
            found = self._outbox_fast.last_change_now(document)
            if found is not None:
                return None if found[0] is None else dict(json.loads(found[0]))
        async with self.engine.connect() as conn:
            body = (await conn.execute(q.LAST_CHANGE, {"document": document})).scalar()
        return None if body is None else dict(json.loads(body))

    async def purge_events(self, before_ms: int | None, max_rows: int) -> int:
        """Delete events older than `before_ms` (None: any age) and all but the newest
        `max_rows`, with their deliveries; how many events went."""
        low, _, count = await self.event_bounds()
        if count == 0:
            return 0
        through = 0
        async with self.engine.begin() as conn:
            if before_ms is not None:
                aged = (await conn.execute(q.SEQ_AT_AGE, {"before_ms": before_ms})).scalar()
                through = int(aged or 0)
            if count > max_rows:
                # seqs have gaps (rolled back inserts): count from the top
                rows = (
                    await conn.execute(
                        q.events_after(False, False),
                        {"after": low - 1, "limit": count - max_rows},
                    )
                ).all()
                if rows:
                    through = max(through, int(rows[-1].seq))
            if through == 0:
                return 0
            await conn.execute(q.DELETE_DELIVERIES_THROUGH, {"seq": through})
            deleted = (await conn.execute(q.DELETE_EVENTS_THROUGH, {"seq": through})).rowcount
        return int(deleted)

    # -- sinks and deliveries ----------------------------------------------------------------

    async def register_sink(self, sink: str) -> None:
        """Know `sink` from now on: a new one gets the events written after now, one known
        before resumes after the last event it has deliveries of."""
        async with self.engine.begin() as conn:
            await self._lock_events(conn)
            if (await conn.execute(q.SINK, {"sink": sink})).first() is not None:
                return
            _, high, _ = (await conn.execute(q.EVENT_BOUNDS)).one()
            await conn.execute(
                q.insert_sink(self._dialect), {"sink": sink, "seq": int(high or 0), "now": now_ms()}
            )

    async def fill_deliveries(self, sink: str, limit: int = 1000) -> int:
        """Make `sink`'s deliveries of the events after its cursor (at most `limit`); how many."""
        now = now_ms()
        fast = self._delivery_fast
        if fast is not None:
            made = await fast_or_none(lambda: fast.fill_deliveries_now(sink, now, limit))
            if made is not None:
                return made
        async with self.engine.begin() as conn:
            stmt = q.SINK.with_for_update() if self._dialect == "postgresql" else q.SINK
            through = (await conn.execute(stmt, {"sink": sink})).scalar()
            if through is None:
                return 0
            rows = (await conn.execute(q.NEW_FOR_SINK, {"after": through, "limit": limit})).all()
            if not rows:
                return 0
            await conn.execute(
                q.INSERT_DELIVERY,
                [
                    {"sink": sink, "event_seq": r.seq, "document": r.document, "now": now}
                    for r in rows
                ],
            )
            await conn.execute(q.ADVANCE_SINK, {"sink": sink, "seq": int(rows[-1].seq)})
        return len(rows)

    async def claim_deliveries(
        self, sink: str, now: int, hold_ms: int, limit: int, skip: Sequence[str] = ()
    ) -> list[Claimed]:
        """Hold up to `limit` of `sink`'s due deliveries for `hold_ms`: each the first
        pending one of its document, none of a document in `skip` (in flight here)."""
        fast = self._delivery_fast
        if fast is not None:
            done = await fast_or_none(
                lambda: fast.claim_deliveries_now(sink, now, hold_ms, limit, skip)
            )
            if done is not None:
                return done
        stmt = q.due_deliveries(self._dialect == "postgresql")
        claimed: list[Claimed] = []
        async with self.engine.begin() as conn:
            params = {"sink": sink, "now": now, "limit": limit + len(skip)}
            rows = (await conn.execute(stmt, params)).all()
            for row in rows:
                if row.document in skip or len(claimed) >= limit:
                    continue
                hold = {"delivery_id": row.id, "now": now, "until": now + hold_ms}
                if (await conn.execute(q.CLAIM_DELIVERY, hold)).rowcount == 1:
                    claimed.append(claimed_delivery(row))
        return claimed

    async def settle_delivery(
        self, delivery_id: int, status: str, attempts: int, next_attempt_ms: int, error: str | None
    ) -> None:
        params = {
            "delivery_id": delivery_id,
            "status": status,
            "attempts": attempts,
            "next_attempt_ms": next_attempt_ms,
            "last_error": error,
            "now": now_ms(),
        }
        fast = self._delivery_fast
        if fast is not None and await fast_or_none(lambda: fast.settle_delivery_now(params)):
            return
        async with self.engine.begin() as conn:
            await conn.execute(q.SETTLE_DELIVERY, params)

    async def release_claims(self) -> None:
        """Let go of every claim on marks and deliveries (only for a server that knows it is
        the only one: a killed one's claims would otherwise hold until they lapse)."""
        async with self.engine.begin() as conn:
            await conn.execute(q.RELEASE_ALL_DELIVERIES)
            await conn.execute(q.RELEASE_ALL_MARKS)

    async def release_delivery(self, delivery_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(q.RELEASE_DELIVERY, {"delivery_id": delivery_id})

    async def next_due(self, sink: str) -> int | None:
        """When the next of `sink`'s deliveries that could be claimed now is due."""
        now = now_ms()
        if self._delivery_fast is not None:
            done = self._delivery_fast.next_due_now(sink, now)
            if done is not None:
                return done[0]
        async with self.engine.connect() as conn:
            found = (await conn.execute(q.NEXT_DUE, {"sink": sink, "now": now})).scalar()
        return None if found is None else int(found)

    async def retry_delivery(self, delivery_id: int) -> DeliveryRow | None:
        async with self.engine.begin() as conn:
            await conn.execute(q.RETRY_DELIVERY, {"delivery_id": delivery_id, "now": now_ms()})
            row = (await conn.execute(q.DELIVERY, {"id": delivery_id})).first()
        return None if row is None else _delivery(row)

    async def get_delivery(self, delivery_id: int) -> DeliveryRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(q.DELIVERY, {"id": delivery_id})).first()
        return None if row is None else _delivery(row)

    async def list_deliveries(
        self,
        sink_prefix: str = "",
        status: str | None = None,
        document: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[DeliveryRow]:
        stmt = q.list_deliveries(status is not None, document is not None)
        params: dict[str, Any] = {
            "sink_prefix": sink_prefix,
            "before": NO_ID if before is None else before,
            "limit": limit,
        }
        if status is not None:
            params["status"] = status
        if document is not None:
            params["document"] = document
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt, params)).all()
        return [_delivery(r) for r in rows]

    async def outbox_counts(self) -> dict[str, int]:
        """{"pending", "delivered", "failed" (deliveries), "open_changes" (marks), "events"}"""
        async with self.engine.connect() as conn:
            by_status = {r[0]: r[1] for r in (await conn.execute(q.COUNT_DELIVERIES)).all()}
            marks = (await conn.execute(q.COUNT_MARKS)).scalar()
            _, _, events = (await conn.execute(q.EVENT_BOUNDS)).one()
        counts = {s: int(by_status.get(s, 0)) for s in ("pending", "delivered", "failed")}
        counts["open_changes"] = int(marks or 0)
        counts["events"] = int(events or 0)
        return counts
