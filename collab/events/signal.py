"""Signal: wakes whoever waits when something happened (new events written, an attempt settled).

The outbox's loops wait on a signal with a bound (`POLL_S`): what this process does wakes them at
once; what other processes write is found by looking again after that bound.
"""

from __future__ import annotations

import asyncio

import anyio

POLL_S = 1.0  # how often the loops look for what other processes wrote


class Signal:
    """Wakes every waiter when something happened (new events, a commit); a waiter that was
    not waiting when it fired sees it at its next wait only if it compares positions."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 (a bounded wait, not a deadline)
        with anyio.move_on_after(timeout):
            await self._event.wait()
