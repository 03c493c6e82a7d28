"""pycrdt at the server's edge: what yrs refuses, and what a change did to a Doc.

- yrs reports bad input as an exception or, for some malformed bytes, as a Rust panic, which
  pyo3 raises as `PanicException`, a BaseException. Either is the peer's malformed input, a
  protocol error (1002) on that connection only: `as_protocol_error` says so in one place.
  What is not yrs's (KeyboardInterrupt, a cancellation) goes through untouched.
- `captured(doc)` collects the updates a block of code made to a Doc, as yrs encodes them: what
  a client's sync step 2 or another process's update actually changed, what an
  on_load_document hook wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
