"""The finalizer: makes the documents' change marks into events once they are due.

An append transaction marks each document it commits updates of (storage/outbox.py); a mark
is due `events_debounce_ms` after its latest commit, and no later than `events_max_wait_ms`
after its first. The finalizer claims due marks (in cluster mode each is claimed by one
process), reads each document as it is now (everything the mark says, perhaps a little more),
and writes `document.created` (when the mark created the document) and `document.changed`
with the document's state vector, the text of each Y.Text and, when asked for, the update
since the previous `document.changed`, in the transaction that deletes the mark. A document
with comments also gets comment.* events, from its comments compared with those the previous
document.changed kept (comment_events.py).

It sleeps until the earliest mark in the store is due (a commit here that makes an earlier one
wakes it), and at most a second (marks of other processes, or of a process that died).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from pycrdt import Doc, get_state, get_update

from storage import Mark, NewEvent, new_event

from .. import steps
from ..comments import read_steps as read_comments
from ..content import roots_steps, texts
from ..errors import DocumentNotFound
from .comment_events import comment_events, states

if TYPE_CHECKING:
    from ..documents import DocumentService
    from ..settings import Settings
    from .signal import Signal

log = logging.getLogger(__name__)

HOLD_MS = 15_000  # a claimed mark is another process's again after this (one that died)
TEXT_MAX_CHARS = 1_000_000  # beyond this, a document.changed says text_omitted instead
POLL_S = 1.0


async def read_roots(update: bytes) -> tuple[Doc[Any], dict[str, str]]:
    """The document `update` makes, and its roots' kinds, told apart on the event loop a step
    at a time (collab/steps.py): a big document's took the process's other tasks 100 ms behind
    in a worker thread. The texts and the comments are read from the same two."""
    return await steps.run(roots_steps(update))


class Finalizer:
    def __init__(
        self, store: Any, settings: Settings, documents: DocumentService, written: Signal
    ) -> None:
        self.store = store
        self.settings = settings
        self.documents = documents
        self.written = written
        self._wakeup = anyio.Event()
        self._wake_at = 0.0  # monotonic time the finalizer next looks (when asleep)
        self.finalized = 0
        # Documents whose due marks another process takes first (one that holds them live:
        # under --workers, the document's own worker; see storage/outbox.py's `deferred`).
        self.defer: Callable[[str], bool] | None = None

    def committed(self, name: str, edits: int) -> None:
        """The saver committed updates of `name` (its on_committed): wake early if its mark
        falls due before the finalizer would look anyway."""
        due = time.monotonic() + self.settings.events_debounce_ms / 1000
        if due < self._wake_at:
            self._wakeup.set()

    async def run(self) -> None:
        while True:
            now = time.time()
            try:
                found, next_due = await self._finalize_due(int(now * 1000))
            except Exception:
                log.exception("making change events failed; trying again")
                found, next_due = 0, None
            if found:
                continue
            # the earliest mark not held, of any process: sleep exactly until it is due
            delay = POLL_S if next_due is None else min(POLL_S, max(next_due / 1000 - now, 0.0))
            self._wake_at = time.monotonic() + delay
            # (a timer that ends the wait: cheaper than a cancel scope, several times a second)
            timer = asyncio.get_running_loop().call_later(delay, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                timer.cancel()
            self._wakeup = anyio.Event()

    async def flush(self) -> None:
        """Finalize every mark now, due or not (a clean shutdown)."""
        await self.finalize_due(now_ms=2**62)

    async def finalize_due(self, now_ms: int | None = None) -> int:
        """Claim and finalize the due marks; how many."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return (await self._finalize_due(now))[0]

    async def _finalize_due(self, now: int) -> tuple[int, int | None]:
        """`finalize_due`, and when nothing was due, when the next mark falls due."""
        marks, next_due = await self.store.claim_due_marks(now, HOLD_MS, defer=self.defer)
        for mark in marks:
            try:
                await self.finalize(mark)
            except Exception:
                log.exception("making the events of %r failed; it stays due", mark.document)
        if marks:
            self.written.fire()
        return len(marks), next_due

    async def finalize_document(self, name: str) -> None:
        """Make `name`'s pending changes into events now, due or not (before another event
        about it: the store's `before_event`)."""
        mark = await self.store.claim_mark(name, int(time.time() * 1000), HOLD_MS)
        if mark is not None:
            await self.finalize(mark)
            self.written.fire()

    async def finalize(self, mark: Mark) -> None:
        name = mark.document
        try:
            update = await self.documents.read(name)
        except DocumentNotFound:
            await self.store.drop_mark(name)
            return
        state_vector = get_state(update)
        events: list[NewEvent] = []
        if mark.created:
            events.append(new_event("document.created", name, mark.users, state_vector))
        extra: dict[str, Any] = {}
        roots: tuple[Doc[Any], dict[str, str]] | None = None
        if self.settings.events_include_text:
            roots = await read_roots(update)
            found = texts(*roots)
            if sum(len(t) for t in found.values()) > TEXT_MAX_CHARS:
                extra["text"] = None
                extra["text_omitted"] = True
            else:
                extra["text"] = found
        last = await self.store.last_change(name) or {}
        if self.settings.events_include_update:
            extra["update"] = base64.b64encode(self._since(last, update)).decode()
        comments = await steps.run(read_comments(update, *(roots or ())))
        before = last.get("comments") or {}
        if comments or before:
            extra["comments"] = states(comments)
        events.append(new_event("document.changed", name, mark.users, state_vector, **extra))
        events += comment_events(name, mark.users, state_vector, comments, before)
        await self.store.finish_mark(mark, events)
        self.finalized += 1

    @staticmethod
    def _since(last: dict[str, Any], update: bytes) -> bytes:
        """What `update` holds beyond the state of the previous document.changed (`last`)."""
        previous = last.get("state_vector")
        if not previous:
            return update
        return get_update(update, base64.b64decode(previous))
