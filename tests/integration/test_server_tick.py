"""uvicorn's own housekeeping in `collab serve` (collab/server.py's CollabServer.main_loop): it
runs once a second, as the work it does is (the Date header), not uvicorn's ten times a second,
each a wake-up of an idle process; the Date header stays current; a stop is still prompt."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_uvicorn_ticks_once_a_second_and_the_date_header_stays_current(
    settings: Any,
) -> None:
    async with serving(settings) as running:
        server = running.server
        ticks: list[float] = []
        enough = anyio.Event()
        on_tick = server.on_tick

        async def counted(counter: int) -> bool:
            ticks.append(time.monotonic())
            if len(ticks) == 3:
                enough.set()
            return bool(await on_tick(counter))

        server.on_tick = counted  # (main_loop calls it through the instance)
        with anyio.fail_after(10):
            await enough.wait()
        # Three ticks are two intervals: 0.2 s with uvicorn's 0.1 s tick, ~2 s with ours.
        assert ticks[2] - ticks[0] >= 1.5, ticks

        async with httpx.AsyncClient(base_url=running.http, trust_env=False) as http:
            for _ in range(2):
                response = await http.get("/healthz")
                date = parsedate_to_datetime(response.headers["date"]).timestamp()
                assert abs(date - time.time()) < 2.5  # (its second, refreshed each tick)
                await anyio.sleep(1.1)

        stopped = time.monotonic()
    assert time.monotonic() - stopped < 1.0  # the stop does not wait out the tick
