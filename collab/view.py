"""Reading a document without changing it: `DocumentView`, and a document's roots as plain data.

Hooks that run after the fact (on_change, on_store_document) get a view of the room's document,
not the `Doc` itself: whatever they write into the live Doc would bypass the fan-out, the store
and the other processes, so they cannot. Every read encodes the document (or reads its state
vector) and works on a detached copy; the live Doc is never even asked for a typed root (in
yrs a root, once typed, stays typed).

A view reads the document as it is when the view is read, not as it was when the hook was
scheduled: a background hook runs after the fact, and the room may have moved on meanwhile (it
holds at least the change the hook is about).

Roots are untyped on the wire: `to_py` reads each as what its items say it is (collab/content.py,
the same reading as `GET /api/documents/{name}` and `collab export --format json`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text, get_state, get_update

from .content import content
from .validate import validate_state_vector

# (state vector or None) -> the document, or what a peer with that state vector lacks, as a
# v1 update.
Encoder = Callable[[bytes | None], bytes]


class DocumentView:
    """Read-only access to one document: its state as an update, its state vector, its roots as
    plain data, or a detached copy to read with pycrdt (changing the copy changes nothing)."""

    __slots__ = ("_encode", "_state_vector", "name")

    def __init__(self, name: str, encode: Encoder, state_vector: Callable[[], bytes]) -> None:
        self.name = name
        self._encode = encode
        self._state_vector = state_vector

    @classmethod
    def of_update(cls, name: str, update: bytes) -> DocumentView:
        """A view of a document given as one update (e.g. read from the store)."""

        def encode(since: bytes | None) -> bytes:
            return update if since is None else get_update(update, since)

        return cls(name, encode, lambda: get_state(update))

    def __repr__(self) -> str:
        return f"<DocumentView {self.name!r}>"

    def update(self, since: bytes | None = None) -> bytes:
        """The whole document as a v1 update; with `since` (a state vector), only what a peer
        holding that state lacks."""
        if since is not None:
            validate_state_vector(since)
        return self._encode(since)

    def state_vector(self) -> bytes:
        return self._state_vector()

    def snapshot(self) -> Doc[Any]:
        """A detached copy of the document, to read with pycrdt's types."""
        return doc_of(self.update())

    def roots(self) -> list[str]:
        """The names of the document's root types, sorted."""
        return root_names(self.update())

    def text(self, root: str) -> str:
        """Root `root` read as a Y.Text ("" when there is no such root)."""
        update = self.update()
        if root not in root_names(update):
            return ""
        return str(doc_of(update).get(root, type=Text))

    def to_py(self) -> dict[str, Any]:
        """Every root as plain data, as Yjs's toJSON() gives it (collab/content.py)."""
        read: dict[str, Any] = content(self.update())["content"]
        return read


def doc_of(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc


def root_names(update: bytes) -> list[str]:
    return sorted(doc_of(update).keys())
