"""Awareness (presence, cursors) of one room, kept as the raw JSON each client sent.

The rules are y-protocols' (an entry is taken when its clock is newer, or when it is a removal at
the same clock), plus what a server must add:

- ownership: each state belongs to the connection that last renewed it, so a closing connection
  removes exactly its own users' states, never states that merely passed through it, and never a
  state that a newer connection of the same user has since renewed. (Stock y-websocket clients
  send back every state they receive, at the clock they received it: such relays are never newer
  and are dropped, and they take no ownership.)
- a client that comes back with a clock its peers may already hold is reminded of it. That is a
  client we removed (its socket dropped) returning on a new socket with the clock it had, which
  every peer holds as "removed", and a client this registry has not seen yet, whose peers may
  hold its clock from before a restart of the server. Either way, re-sent at the same clock, its
  state would stay invisible to the peers until its next change or its 15 s renewal. The
  reminder is the removal at that clock, sent to that connection only: y-protocols' rule "never
  let a remote client remove the local state" makes the client answer with the same state at
  the next clock, which every peer takes. The server never invents a clock for a client: a
  clock bumped here would be one the client does not know, and its own next change, carrying
  that same clock, would then be dropped everywhere (a change made before the answer arrives
  carries the next clock anyway, and is taken);
- a cluster peer is not a client: it cannot be reminded (its clients never saw the removal). When
  a peer this process took for gone (it fell silent) comes back with its users' states at the
  clocks we removed them at, their clocks from that peer are shifted here past the removal, for
  as long as that peer owns them;
- states not renewed for `timeout` seconds are dropped, so newcomers are not shown ghosts;
- a removal is remembered for FORGET_REMOVED_S, long enough for the relays of the last state
  and the reconnects it is kept for, then forgotten: a room lives as long as it has clients,
  and every browser session is a new client id, so the removals of a busy room's turnover
  would otherwise pile up (and the ticker walks them every second). A client that comes back
  later is one the registry has not seen: it is reminded all the same.

States are never parsed beyond validation: bytes in, same bytes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from .protocol import NULL_STATE, AwarenessEntry, encode_awareness_update

FORGET_REMOVED_S = 300.0


@dataclass(slots=True)
class _Client:
    clock: int
    state: bytes | None  # None: removed
    updated_at: float  # (when removed, for a removal)
    owner: Hashable | None
    removed_here: bool = False  # removed by this registry (owner gone, expired), not by itself
    # A cluster peer's clocks for this client, shifted by `offset` here (see `apply`).
    offset: int = 0
    offset_owner: Hashable | None = None


def _removal(client_id: int, clock: int) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, NULL_STATE)


class AwarenessRegistry:
    def __init__(self, timeout_s: float = 30.0) -> None:
        self._clients: dict[int, _Client] = {}
        self._timeout = timeout_s

    def __len__(self) -> int:
        if not self._clients:  # (most rooms, every tick: the metrics count them all)
            return 0
        return sum(1 for c in self._clients.values() if c.state is not None)

    @property
    def remembered(self) -> int:
        """Clients it holds anything of: present states and removals not forgotten yet."""
        return len(self._clients)

    def apply(
        self, entries: list[AwarenessEntry], owner: Hashable, *, remind: bool = True
    ) -> tuple[list[AwarenessEntry], bool, list[AwarenessEntry]]:
        """Take what is newer; return (the accepted entries, whether they are exactly the input,
        the reminders to send back to `owner` alone).

        When the second value is True the caller may forward the original bytes unchanged.
        `remind`: whether `owner` is a client connection that can be reminded (see the module's
        docstring); a cluster peer relays what its own connections were reminded of.
        """
        now = time.monotonic()
        accepted: list[AwarenessEntry] = []
        reminders: list[AwarenessEntry] = []
        verbatim = True
        for entry in entries:
            taken, reminder = self._apply_one(entry, owner, remind, now)
            if taken is not entry:
                verbatim = False
            if taken is not None:
                accepted.append(taken)
            if reminder is not None:
                reminders.append(reminder)
        return accepted, verbatim, reminders

    def _apply_one(
        self, entry: AwarenessEntry, owner: Hashable, remind: bool, now: float
    ) -> tuple[AwarenessEntry | None, AwarenessEntry | None]:
        """(the entry as taken, or None; the reminder to send back, or None)."""
        client = self._clients.get(entry.client_id)
        is_null = entry.state == NULL_STATE
        if client is None:
            # y-protocols treats an unknown client as clock 0: only a newer clock counts.
            if entry.clock == 0:
                return None, None
            self._clients[entry.client_id] = _Client(
                entry.clock, None if is_null else entry.state, now, None if is_null else owner
            )
            # Peers may hold this clock from before we knew the client (a restart).
            return entry, _removal(entry.client_id, entry.clock) if remind and not is_null else None
        clock = entry.clock
        if client.offset and owner == client.offset_owner:
            clock += client.offset
        if clock > client.clock or (clock == client.clock and is_null and client.state is not None):
            if clock != entry.clock:
                entry = AwarenessEntry(entry.client_id, clock, entry.state)
            elif client.offset_owner is not None:
                client.offset, client.offset_owner = 0, None
            self._take(client, entry, owner, now)
            return entry, None
        if is_null or client.state is not None:
            return None, None
        if remind:
            # Removed here (its socket dropped, or it expired), and back with a clock its peers
            # hold as removed.
            return None, _removal(entry.client_id, client.clock)
        if not client.removed_here:
            return None, None
        # A cluster peer we took for gone is back with its users' states at the clocks we
        # removed them at. Its process reminds nobody (its clients were never told), so we shift
        # this client's clocks from that peer by what puts it past our removal: our clients see
        # it again now, and its later changes too.
        shifted = client.clock + 1
        client.offset, client.offset_owner = shifted - entry.clock, owner
        entry = AwarenessEntry(entry.client_id, shifted, entry.state)
        self._take(client, entry, owner, now)
        return entry, None

    @staticmethod
    def _take(client: _Client, entry: AwarenessEntry, owner: Hashable, now: float) -> None:
        client.clock = entry.clock
        is_null = entry.state == NULL_STATE
        client.state = None if is_null else entry.state
        client.owner = None if is_null else owner
        client.removed_here = False
        client.updated_at = now

    def remove_owned_by(self, owner: Hashable) -> list[AwarenessEntry]:
        """Remove the states `owner` announced last; return the removal entries to broadcast."""
        return self._remove([cid for cid, c in self._clients.items() if c.owner == owner])

    def remove_expired(self) -> list[AwarenessEntry]:
        """Remove the states not renewed within the timeout (the removals to broadcast), and
        forget the removals older than FORGET_REMOVED_S."""
        if not self._clients:  # (the ticker asks every room, every tick)
            return []
        now = time.monotonic()
        cutoff, forget = now - self._timeout, now - FORGET_REMOVED_S
        expired: list[int] = []
        forgotten: list[int] = []
        for cid, c in self._clients.items():
            if c.state is not None:
                if c.updated_at < cutoff:
                    expired.append(cid)
            elif c.updated_at < forget:
                forgotten.append(cid)
        for cid in forgotten:
            del self._clients[cid]
        return self._remove(expired, now)

    def _remove(self, client_ids: Iterable[int], now: float | None = None) -> list[AwarenessEntry]:
        removed = []
        for cid in client_ids:
            client = self._clients[cid]
            if client.state is None:
                continue
            client.state = None
            client.owner = None
            client.removed_here = True
            client.updated_at = time.monotonic() if now is None else now
            # Same clock + null: y-protocols peers accept this as a removal.
            removed.append(AwarenessEntry(cid, client.clock, NULL_STATE))
        return removed

    def owned_by(self, owner: Hashable) -> list[int]:
        return [cid for cid, c in self._clients.items() if c.owner == owner]

    def encode_all(self, owned: Callable[[Hashable], bool] | None = None) -> bytes | None:
        """Every present state (of owners `owned` accepts) as one awareness update, or None."""
        present = [
            AwarenessEntry(cid, c.clock, c.state)
            for cid, c in self._clients.items()
            if c.state is not None and (owned is None or owned(c.owner))
        ]
        return encode_awareness_update(present) if present else None

    def states(self) -> dict[int, bytes]:
        return {cid: c.state for cid, c in self._clients.items() if c.state is not None}
