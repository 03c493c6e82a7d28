"""Comments as they live in a document: read them, with their anchors resolved.

The editor keeps comments in the document itself (docs/comments.md has the schema), next to the
text they are about: a root Y.Map `comments`, one Y.Map per comment by its id, each anchored
by two Yjs relative positions (`start`, `end`, in the JSON form of
`Y.relativePositionToJSON`) into a root Y.Text (`field`). So comments sync, persist and come
back with versions like the text does, and the server only reads them: `read(update)` gives
each comment with its anchor as offsets into the text as it is now, and the quoted text.

Offsets are in Unicode code points (Python `str` indices; a JavaScript client counts UTF-16
units: the `quote` is the text to compare with). yrs resolves a position in UTF-8 bytes, and
inside a run of non-ASCII characters counts part of the way in UTF-16 units (it is off by the
difference), so positions are resolved in a copy of the document whose characters are all
replaced by as many ASCII ones (collab/ystructs.py `with_strings`): there bytes, UTF-16 units
and clocks agree, and the offset is turned into code points on the real text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map, StickyIndex, Text

from .content import doc_of, roots_steps
from .content import texts as root_texts
from .protocol import write_var_uint
from .steps import Steps, finish
from .ystructs import Struct, read_update_steps, with_strings

ROOT = "comments"  # the root Y.Map of comments
DEFAULT_FIELD = "codemirror"  # the editor's text


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    body: str
    author: str | None
    created_ms: int | None


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    field: str
    body: str
    author: str | None
    created_ms: int | None
    resolved: bool
    resolved_by: str | None
    resolved_ms: int | None
    replies: tuple[Reply, ...]
    start: int | None  # code points into the text now; None when the anchor cannot be read
    end: int | None
    quote: str  # the text between start and end now ("" when it was all deleted)
    original_quote: str  # the text as it was when commented on
    detached: bool  # the commented text was deleted


def read(update: bytes) -> list[Comment]:
    """The comments of the document `update` makes (a v1 update), oldest first."""
    return finish(read_steps(update))


def read_steps(
    update: bytes, doc: Doc[Any] | None = None, types: dict[str, str] | None = None
) -> Steps[list[Comment]]:
    """`read` a step at a time (collab/steps.py). A caller that has already loaded the
    document (`doc`, from `update`) and told its roots' kinds apart (`types`) hands them over,
    so that neither is done twice."""
    if ROOT.encode() not in update:
        # The first item of each key of a root map names the root (no origin to derive it
        # from), and stays, as a deleted item, after the key is overwritten or removed: a
        # document without the name has no comments, and is not parsed (the finalizer asks
        # this of every document.changed).
        return []
    if doc is None or types is None:
        doc, types = yield from roots_steps(update)
    if types.get(ROOT) != "map":
        return []
    raw = doc.get(ROOT, type=Map).to_py() or {}
    if not raw:
        return []
    texts = root_texts(doc, types)
    structs = (yield from read_update_steps(update)).structs  # for the anchors
    resolver = _Resolver(update, structs, texts)
    found = [_comment(key, value, texts, resolver) for key, value in raw.items()]
    comments = [c for c in found if c is not None]
    comments.sort(key=lambda c: (c.created_ms or 0, c.id))
    return comments


def digest(comments: list[Comment]) -> dict[str, dict[str, Any]]:
    """What the change feeds compare between two events: each comment's resolved flag and
    reply ids (events/finalizer.py keeps it in document.changed)."""
    return {c.id: {"resolved": c.resolved, "replies": [r.id for r in c.replies]} for c in comments}


def _comment(key: str, value: Any, texts: dict[str, str], resolver: _Resolver) -> Comment | None:
    if not isinstance(value, dict):
        return None
    name = _str(value.get("field")) or DEFAULT_FIELD
    text = texts.get(name)
    start = end = None
    if text is not None:
        start = resolver.offset(name, value.get("start"))
        end = resolver.offset(name, value.get("end"))
    if start is not None and end is not None and end < start:
        end = start
    quote = text[start:end] if text is not None and start is not None and end is not None else ""
    replies = value.get("replies")
    return Comment(
        id=str(key),
        field=name,
        body=_str(value.get("body")) or "",
        author=_str(value.get("author")),
        created_ms=_int(value.get("created_ms")),
        resolved=value.get("resolved") is True,
        resolved_by=_str(value.get("resolved_by")),
        resolved_ms=_int(value.get("resolved_ms")),
        replies=tuple(_replies(replies if isinstance(replies, list) else [])),
        start=start,
        end=end,
        quote=quote,
        original_quote=_str(value.get("quote")) or "",
        detached=start is not None and start == end and bool(value.get("quote")),
    )


def _replies(items: list[Any]) -> list[Reply]:
    return [
        Reply(
            id=_str(item.get("id")) or str(i),
            body=_str(item.get("body")) or "",
            author=_str(item.get("author")),
            created_ms=_int(item.get("created_ms")),
        )
        for i, item in enumerate(items)
        if isinstance(item, dict)
    ]


class _Resolver:
    """Relative positions into the document's texts, resolved to code point offsets."""

    def __init__(self, update: bytes, structs: list[Struct], texts: dict[str, str]) -> None:
        self._update = update
        self._structs = structs
        self._texts = texts
        self._ascii: Doc[Any] | None = None

    def offset(self, name: str, position: Any) -> int | None:
        if not isinstance(position, dict):
            return None
        assoc = _int(position.get("assoc")) or 0
        item = position.get("item")
        text = self._texts[name]
        if not isinstance(item, dict):  # {tname}/{type}: the start or end of the text
            return len(text) if assoc >= 0 else 0
        client, clock = _int(item.get("client")), _int(item.get("clock"))
        if client is None or clock is None or client < 0 or clock < 0:
            return None
        encoded = bytes([0]) + write_var_uint(client) + write_var_uint(clock) + _varint(assoc)
        ascii_text = self._ascii_doc().get(name, type=Text)
        try:
            units = StickyIndex.decode(encoded, ascii_text).get_index()
        except Exception:  # an id this document never had: no position
            return None
        return _code_points(text, units)

    def _ascii_doc(self) -> Doc[Any]:
        if self._ascii is None:
            ascii = with_strings(self._update, self._structs, lambda s: "x" * s.length)
            self._ascii = doc_of(ascii)
        return self._ascii


def _code_points(text: str, units: int) -> int:
    """The code point offset of UTF-16 offset `units` in `text`."""
    encoded = text.encode("utf-16-le", "surrogatepass")
    return len(encoded[: 2 * max(units, 0)].decode("utf-16-le", "ignore"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _varint(n: int) -> bytes:
    """lib0's signed varint: sign in bit 6 of the first byte, six bits, then seven a byte."""
    negative = n < 0
    n = abs(n)
    first = (n & 0x3F) | (0x40 if negative else 0)
    n >>= 6
    out = bytearray([first | (0x80 if n else 0)])
    while n:
        out.append((n & 0x7F) | (0x80 if n >= 0x80 else 0))
        n >>= 7
    return bytes(out)
