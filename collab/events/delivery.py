"""One sink's delivery loop: at least once, in order per document, with retries.

The loop makes the sink's deliveries of new events (storage: `fill_deliveries`), claims the
due ones (each the first pending delivery of its document, none of a document already in
flight here; in cluster mode, rows another process claims are skipped), and attempts up to
`sink.max_in_flight` at once, each in a task. An attempt that raises is retried with
exponential backoff and jitter (1 s, 2 s, 4 s ... at most 15 min apart) until the delivery
was tried for longer than the sink's `max_age_s` (default: the webhooks' 24 h), then it is
failed and the document's next event goes. A slow or dead sink holds up no other: each has
its own loop.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

import anyio

from storage import Claimed

from . import event_of
from .signal import POLL_S, Signal

if TYPE_CHECKING:
    from ..settings import Settings
    from . import Sink

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MIN_SLEEP_S = 0.01  # (never a busy loop, whatever the store answers)
MAX_RETRY_S = 900.0
# An attempt that has not returned after this failed: 10 s, or the sink's own `timeout_s` (the
# webhooks' 5 s) and 5 s more. A claim lasts 5 s longer than that: a process that died while
# attempting lets go of the delivery by then.
ATTEMPT_LIMIT_S = 10.0


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (with jitter)."""
    base: float = min(FIRST_RETRY_S * 2.0 ** (attempts - 1), MAX_RETRY_S)
    return base * random.uniform(0.75, 1.0)


class DeliveryLoop:
    def __init__(
        self,
        store: Any,
        settings: Settings,
        sink: Sink,
        written: Signal,
        progress: Signal | None = None,
    ) -> None:
        self.store = store
        self.progress = progress  # fired after each round
        self.sink = sink
        self.written = written
        self.max_age_ms = int(getattr(sink, "max_age_s", settings.webhook_max_age_s) * 1000)
        self.attempt_limit_s = max(ATTEMPT_LIMIT_S, float(getattr(sink, "timeout_s", 0)) + 5)
        self.hold_ms = int((self.attempt_limit_s + 5) * 1000)
        self._in_flight: set[str] = set()  # documents with an attempt running here
        self._settled = Signal()
        self.delivered = 0
        self.rounds = 0  # rounds run (a shutdown's drain waits for one after its last events)
        self.idle = False  # the last round started nothing and nothing is in flight
        self._scope = anyio.CancelScope()  # cancelled by stop()
        self._filled_generation = -1  # `written` when deliveries were last made of new events
        self._filled_at = 0.0

    def stop(self) -> None:
        """End `run` (and the attempts in flight: their claims are let go)."""
        self._scope.cancel()

    async def run(self) -> None:
        with self._scope:
            await self._run()

    async def _run(self) -> None:
        name = self.sink.name  # (registered by the feed before this runs)
        async with anyio.create_task_group() as tg:
            while True:
                # (taken before the round: what fires while it looks is not slept through)
                seen = (self.written.generation, self._settled.generation)
                try:
                    idle = await self._round(tg)
                except Exception:
                    log.exception("the delivery loop of %s failed; trying again", name)
                    idle = True
                self.idle = idle and not self._in_flight
                self.rounds += 1
                if self.progress is not None:
                    self.progress.fire()
                if idle:
                    await self._sleep(seen)

    async def _round(self, tg: Any) -> bool:
        """Fill, claim and start what is due; True when nothing was started."""
        # New events come from this process (it fires `written`) or from others (found by
        # looking at least every POLL_S): no need to look after every settled attempt.
        generation, now_s = self.written.generation, time.monotonic()
        if generation != self._filled_generation or now_s - self._filled_at >= POLL_S:
            self._filled_generation, self._filled_at = generation, now_s
            while await self.store.fill_deliveries(self.sink.name) >= 1000:
                pass
        free = max(self.sink.max_in_flight, 1) - len(self._in_flight)
        if free <= 0:
            return True
        now = int(time.time() * 1000)
        claimed = await self.store.claim_deliveries(
            self.sink.name, now, self.hold_ms, free, skip=sorted(self._in_flight)
        )
        for delivery in claimed:
            self._in_flight.add(delivery.event.document)
            tg.start_soon(self._attempt, delivery)
        return not claimed

    async def _sleep(self, seen: tuple[int, int]) -> None:
        """Until new events here, an attempt settled, the next retry is due, or POLL_S."""
        delay = POLL_S
        next_due = await self.store.next_due(self.sink.name)
        if next_due is not None:
            delay = min(delay, max((next_due - time.time() * 1000) / 1000, 0.0))
        if delay <= 0 and self._in_flight:
            delay = POLL_S  # (what is due waits for what is in flight: wait for it to settle)
        delay = max(delay, MIN_SLEEP_S)
        written, settled = self.written, self._settled
        with anyio.move_on_after(delay):
            async with anyio.create_task_group() as tg:

                async def wait(signal: Signal, since: int) -> None:
                    await signal.wait(delay, since)
                    tg.cancel_scope.cancel()

                tg.start_soon(wait, written, seen[0])
                tg.start_soon(wait, settled, seen[1])

    async def _attempt(self, delivery: Claimed) -> None:
        event = event_of(delivery.event)
        attempts = delivery.attempts + 1
        error: str | None = None
        try:
            with anyio.fail_after(self.attempt_limit_s):
                await self.sink.deliver(event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000] if str(exc) else type(exc).__name__
        except BaseException:  # cancelled (the server stops): the next process tries again
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self.store.release_delivery(delivery.id)
            raise
        try:
            with anyio.CancelScope(shield=True):
                await self._settle(delivery, attempts, error)
        except Exception:
            log.exception("recording the delivery of %s to %s failed", event.id, self.sink.name)
        finally:
            self._in_flight.discard(event.document)
            self._settled.fire()

    async def _settle(self, delivery: Claimed, attempts: int, error: str | None) -> None:
        now = int(time.time() * 1000)
        if error is None:
            self.delivered += 1
            await self.store.settle_delivery(delivery.id, "delivered", attempts, now, None)
            return
        event = delivery.event
        retry_at = now + int(retry_delay(attempts) * 1000)
        if retry_at - delivery.since_ms > self.max_age_ms:
            log.warning(
                "giving up delivering %s (%s of %r) to %s after %d attempts: %s",
                event.event_id,
                event.type,
                event.document,
                self.sink.name,
                attempts,
                error,
            )
            await self.store.settle_delivery(delivery.id, "failed", attempts, now, error)
            return
        log.info(
            "delivering %s to %s failed (attempt %d, again in %.1f s): %s",
            event.event_id,
            self.sink.name,
            attempts,
            (retry_at - now) / 1000,
            error,
        )
        await self.store.settle_delivery(delivery.id, "pending", attempts, retry_at, error)
