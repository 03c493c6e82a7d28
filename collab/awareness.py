"""Awareness (presence, cursors) of one room, kept as the raw JSON each client sent.

The rules are y-protocols' (an entry is taken when its clock is newer, or when it is a removal at
the same clock), plus what a server must add:

- ownership: each state belongs to the connection that last renewed it, so a closing connection
  removes exactly its own users' states, never states that merely passed through it, and never a
  state that a newer connection of the same user has since renewed;
- a client that reconnects with the clock we removed it at would be ignored by every peer (they
  hold that clock as "removed"): we take it and hand it on with the clock bumped by one, so it
  reappears at once instead of after its next renewal;
- states not renewed for `timeout` seconds are dropped, so newcomers are not shown ghosts.

States are never parsed beyond validation: bytes in, same bytes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from .protocol import NULL_STATE, AwarenessEntry, encode_awareness_update


@dataclass(slots=True)
class _Client:
    clock: int
    state: bytes | None  # None: removed
    updated_at: float
    owner: Hashable | None
    removed_by_server: bool = False


class AwarenessRegistry:
    def __init__(self, timeout_s: float = 30.0) -> None:
        self._clients: dict[int, _Client] = {}
        self._timeout = timeout_s

    def __len__(self) -> int:
        return sum(1 for c in self._clients.values() if c.state is not None)

    def apply(
        self, entries: list[AwarenessEntry], owner: Hashable
    ) -> tuple[list[AwarenessEntry], bool]:
        """Take what is newer; return (the accepted entries, whether they are exactly the input).

        When the second value is True the caller may forward the original bytes unchanged.
        """
        now = time.monotonic()
        accepted: list[AwarenessEntry] = []
        verbatim = True
        for entry in entries:
            client = self._clients.get(entry.client_id)
            is_null = entry.state == NULL_STATE
            if client is None:
                # y-protocols treats an unknown client as clock 0: only a newer clock counts.
                if entry.clock == 0:
                    verbatim = False
                    continue
                self._clients[entry.client_id] = _Client(
                    entry.clock, None if is_null else entry.state, now, None if is_null else owner
                )
                accepted.append(entry)
                continue
            if entry.clock > client.clock or (
                entry.clock == client.clock and is_null and client.state is not None
            ):
                client.clock = entry.clock
            elif client.state is None and client.removed_by_server and not is_null:
                # The server removed this client (its socket closed or timed out) and it came
                # back with the clock it had: bump it so peers take it as new.
                client.clock += 1
                entry = AwarenessEntry(entry.client_id, client.clock, entry.state)
                verbatim = False
            else:
                verbatim = False
                continue
            client.state = None if is_null else entry.state
            client.owner = None if is_null else owner
            client.removed_by_server = False
            client.updated_at = now
            accepted.append(entry)
        return accepted, verbatim

    def remove_owned_by(self, owner: Hashable) -> list[AwarenessEntry]:
        """Remove the states `owner` announced last; return the removal entries to broadcast."""
        return self._remove([cid for cid, c in self._clients.items() if c.owner == owner])

    def remove_expired(self) -> list[AwarenessEntry]:
        cutoff = time.monotonic() - self._timeout
        return self._remove(
            [
                cid
                for cid, c in self._clients.items()
                if c.state is not None and c.updated_at < cutoff
            ]
        )

    def _remove(self, client_ids: Iterable[int]) -> list[AwarenessEntry]:
        removed = []
        for cid in client_ids:
            client = self._clients[cid]
            if client.state is None:
                continue
            client.state = None
            client.owner = None
            client.removed_by_server = True
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
