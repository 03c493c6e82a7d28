"""The server's numbers: what /metrics exposes (Prometheus) and the admin page's overview.

SKELETON (issue 14 contract): the metrics helper replaces the inside; the interface below is what
the admin API reads (`series()`), and what the lifespan calls (`start`, `stop`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from .settings import Settings

if TYPE_CHECKING:
    from .hub import Hub

SAMPLE_EVERY_S = 2.0
SERIES_SPAN_S = 600.0  # the admin page's charts: the last ten minutes

Sample = dict[str, float | None]


class Metrics:
    """One per app (`app.state.metrics`)."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self._series: deque[Sample] = deque(maxlen=int(SERIES_SPAN_S / SAMPLE_EVERY_S))

    def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._sample_forever)

    async def _sample_forever(self) -> None:
        while True:
            self._series.append(self.sample())
            await anyio.sleep(SAMPLE_EVERY_S)

    def sample(self) -> Sample:
        """Now, for the overview: t (unix seconds), connections, rooms, messages_in_per_s,
        messages_out_per_s, updates_per_s, commit_latency_ms (mean over the last interval; None
        when nothing was committed)."""
        return {
            "t": time.time(),
            "connections": float(len(self.hub.connections)),
            "rooms": float(len(self.hub.rooms)),
            "messages_in_per_s": 0.0,
            "messages_out_per_s": 0.0,
            "updates_per_s": 0.0,
            "commit_latency_ms": None,
        }

    def series(self) -> list[Sample]:
        """The samples of the last ten minutes, oldest first, one every two seconds."""
        return list(self._series)
