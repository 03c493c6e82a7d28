"""user.joined and user.left (COLLAB_EVENTS_PRESENCE): a user's first connection to a document
joins it, their last one leaving leaves it. Only identified users (a token's subject, an
on_authenticate hook's user id): anonymous connections make no events.

The hub tells `heard` synchronously on every join and leave; writing the event is a task of
the lifespan's, so a join never waits for the store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from anyio.abc import TaskGroup

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, emit: Callable[..., Awaitable[Any]], tg: TaskGroup) -> None:
        self.emit = emit  # EventFeed.emit
        self.tg = tg
        self.counts: dict[tuple[str, str], int] = {}  # (document, user) -> connections

    def heard(self, document: str, user: str | None, joined: bool) -> None:
        if user is None:
            return
        key = (document, user)
        count = self.counts.get(key, 0) + (1 if joined else -1)
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)
        if (joined and count == 1) or (not joined and count <= 0):
            kind = "user.joined" if joined else "user.left"
            try:
                self.tg.start_soon(self._write, kind, document, user)
            except RuntimeError:  # the server has stopped
                log.info(
                    "%s of %r for %r not written: the server has stopped", kind, user, document
                )

    async def _write(self, kind: str, document: str, user: str) -> None:
        try:
            await self.emit(kind, document, [user], settle=False)
        except Exception:
            log.exception("writing %s for %r failed", kind, document)
