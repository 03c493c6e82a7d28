"""Signal: wakes whoever waits when something happened (new events written, an attempt settled).

The outbox's loops wait on a signal with a bound (`POLL_S`): what this process does wakes them at
once; what other processes write is found by looking again after that bound.
"""

from __future__ import annotations

import asyncio

import anyio

POLL_S = 1.0  # how often the loops look for what other processes wrote


class Signal:
    """Wakes every waiter when something happened (new events, an attempt settled). A waiter
    that looks at the state first and waits after takes `generation` before looking and
    passes it to `wait`: a fire in between then ends the wait at once (no lost wakeup)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.generation = 0  # fires so far

    def fire(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float, since: int | None = None) -> None:  # noqa: ASYNC109
        """Until the next fire (or one since `since`), at most `timeout` seconds."""
        if since is not None and since != self.generation:
            return
        with anyio.move_on_after(timeout):
            await self._event.wait()
