"""pycrdt at the server's edge: what yrs refuses, and what a change did to a Doc.

- yrs reports bad input as an exception or, for some malformed bytes, as a Rust panic, which
  pyo3 raises as `PanicException`, a BaseException. Either is the peer's malformed input, a
  protocol error (1002) on that connection only: `as_protocol_error` says so in one place.
  What is not yrs's (KeyboardInterrupt, a cancellation) goes through untouched.
- `captured(doc)` collects the updates a block of code made to a Doc, as yrs encodes them: what
  a client's sync step 2 or another process's update actually changed, what an
  on_load_document hook wrote.
- `SharedAnswers`: a big answer to a sync step 1, encoded and framed once for every joiner
  that asks with the same state vector while the document is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pycrdt import Doc

from .errors import ProtocolError


def is_yrs_failure(exc: BaseException) -> bool:
    """True for an exception yrs raised on bad input, a Rust panic included."""
    # pyo3's PanicException derives from BaseException and lives in a module created at run time.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def as_protocol_error(exc: BaseException, reason: str) -> BaseException:
    """What to raise for `exc`, caught around a call into yrs: `ProtocolError(reason)` (caused
    by it) for a yrs failure, `exc` itself for anything else. Used as
    `except BaseException as exc: raise as_protocol_error(exc, "...")`, which costs nothing
    until something is raised (the hot path applies every update this way)."""
    if not is_yrs_failure(exc):
        return exc
    error = ProtocolError(reason)
    error.__cause__ = exc
    return error


def apply_update(doc: Doc[Any], update: bytes) -> None:
    """Apply a v1 update; any decoding failure (or a Rust panic) becomes a ProtocolError."""
    try:
        doc.apply_update(update)
    except BaseException as exc:
        raise as_protocol_error(exc, "invalid Yjs update")  # noqa: B904 (it chains itself)


@contextmanager
def captured(doc: Doc[Any]) -> Iterator[list[bytes]]:
    """The updates `doc`'s transactions make inside the block, in order (filled as they
    happen; complete when the block ends)."""
    changes: list[bytes] = []
    subscription = doc.observe(lambda event: changes.append(event.update))
    try:
        yield changes
    finally:
        doc.unobserve(subscription)


# What a whole-state answer must weigh before it is kept for the next joiner (below this,
# encoding it again costs less than the observer and the timer that keeping it takes).
SHARE_MIN_BYTES = 64 * 1024
# How long a kept answer lives, unchanged document or not (joiners of one burst come within it;
# after it the bytes are only held by the transports still sending them).
SHARE_HOLD_S = 2.0
# Different state vectors kept at once (fresh providers all send the empty one).
SHARE_MAX_KEYS = 4


class SharedAnswers:
    """Answers to a sync step 1 (what a peer with that state vector lacks) encoded once and
    sent, as the very same bytes, to every joiner that asks with the same state vector while
    the document is unchanged: 100 fresh providers joining a 20 MB document cost one
    `get_update` and one frame, not 100 of each (and the transports share one buffer).

    Keyed by (state vector, the member's framing). Kept only for answers of `SHARE_MIN_BYTES`
    or more, for at most `SHARE_HOLD_S`, and dropped by the first change to the document: an
    observer on the Doc, subscribed only while something is kept (a deletion changes no state
    vector, so the state vector alone cannot tell)."""

    __slots__ = ("_doc", "_kept", "_subscription", "_timer", "encoded", "min_bytes", "shared")

    def __init__(self, doc: Doc[Any]) -> None:
        self._doc = doc
        self._kept: dict[tuple[bytes, int], tuple[bytes, int]] = {}  # -> (data, message size)
        self._subscription: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self.min_bytes = SHARE_MIN_BYTES  # smaller answers are not kept
        self.encoded = 0  # answers kept
        self.shared = 0  # answers sent from what was kept

    def get(self, state_vector: bytes, framing: int) -> tuple[bytes, int] | None:
        """The kept answer for a joiner with `state_vector` and `framing` (the bytes to send,
        the size of the message they carry), or None."""
        found = self._kept.get((state_vector, framing))
        if found is not None:
            self.shared += 1
        return found

    def keep(self, state_vector: bytes, framing: int, data: bytes, size: int) -> None:
        """Keep `data`, the answer (a message of `size` bytes) as `framing` sends it, if it
        is worth it."""
        if size < self.min_bytes:
            return
        if len(self._kept) >= SHARE_MAX_KEYS:
            self._kept.pop(next(iter(self._kept)))
        if self._subscription is None:
            self._subscription = self._doc.observe(self._changed)
        self._kept[(state_vector, framing)] = (data, size)
        self.encoded += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # (no loop: kept until the document changes)
                return
            self._timer = loop.call_later(SHARE_HOLD_S, self.drop)

    def _changed(self, event: object) -> None:
        # Inside yrs' transaction: must not raise (pycrdt would raise it from the apply).
        self._kept.clear()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with suppress(Exception):  # (pycrdt allows it; never raise from here)
                self._doc.unobserve(subscription)

    def drop(self) -> None:
        """Forget what is kept (the timer; a room that unloads)."""
        self._kept.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            self._doc.unobserve(subscription)
