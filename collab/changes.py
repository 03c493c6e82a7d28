"""What changed in each text of a document between two states, and who wrote it.

`diff(old_state, new_state, clients)` -> `{field: [{"type": "equal"|"insert"|"delete", "text",
"author"}]}` for every text root. The segments come from yrs itself: the old state is loaded
into a scratch Doc and the new one applied to it in one transaction, and the text event's delta
(retain / delete / insert, relative to the old text) is the diff. It is the CRDT's own account,
not a guess from comparing strings: a paragraph typed anew is an insert even if it matches one
that was deleted.

Authors: an inserted character is an item whose id names the Yjs client that wrote it;
`clients` (the store's `collab_clients`: client id -> author, first writer wins) names the
person. The client of each inserted character is read from a twin delta (`_Marks`): the same
update with each added item's characters replaced by a mark of its client. Which client
deleted an item Yjs does not record: a deletion is attributed to the one author who was
active in the interval when there was exactly one (`deleters`, or else the authors of the
clients that wrote anything in between), and to nobody (null) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pycrdt import Text, TextEvent, get_state
from pycrdt import get_update as diff_update

from .content import doc_of, kinds
from .protocol import read_var_uint
from .ystructs import EMBED, Struct, read_update, with_strings

Segment = dict[str, Any]
EMBED_CHAR = "\ufffc"  # an embed in a text (an image, a mention), as a segment shows it


def diff(
    old_state: bytes,
    new_state: bytes,
    clients: dict[int, str] | None = None,
    deleters: Iterable[str] | None = None,
) -> dict[str, list[Segment]]:
    """Each text field's changes from `old_state` to `new_state` (v1 updates of one document).
    When `new_state` is the older one (its clocks all behind), the diff is computed the other
    way round and read backwards, so a diff to an earlier version shows what it lacks as
    deletions."""
    clients = clients or {}
    old_sv, new_sv = clocks(get_state(old_state)), clocks(get_state(new_state))
    if _behind(new_sv, old_sv) and not _behind(old_sv, new_sv):
        reverse = diff(new_state, old_state, clients, deleters)
        return {field: [_reversed(s) for s in segments] for field, segments in reverse.items()}
    deleter = _sole_deleter(old_sv, new_sv, clients, deleters)
    fields = sorted(
        name for name, kind in {**kinds(old_state), **kinds(new_state)}.items() if kind == "text"
    )
    added = diff_update(new_state, get_state(old_state))
    structs = read_update(added).structs
    marks = _Marks(structs, clients)
    real = _deltas(old_state, new_state, fields)
    marked = _deltas(old_state, with_strings(added, structs, marks.write), fields)
    return {
        name: _segments(olds, real[name], marked[name], marks, deleter)
        for name, olds in _old_texts(old_state, fields).items()
    }


def _deltas(old_state: bytes, update: bytes, fields: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each text's delta when `update` is applied to the document `old_state`."""
    scratch = doc_of(old_state)
    texts = {name: scratch.get(name, type=Text) for name in fields}
    deltas: dict[str, list[dict[str, Any]]] = {name: [] for name in fields}
    subscriptions = [text.observe(_collect(deltas[name])) for name, text in texts.items()]
    scratch.apply_update(update)
    for name, subscription in zip(fields, subscriptions, strict=True):
        texts[name].unobserve(subscription)
    return deltas


def _old_texts(old_state: bytes, fields: list[str]) -> dict[str, list[tuple[Any, Any]]]:
    doc = doc_of(old_state)
    return {name: doc.get(name, type=Text).diff() for name in fields}


class _Marks:
    """Who wrote each inserted character, carried through yrs: the added items' characters
    are replaced by one private-use character per Yjs client (as many UTF-16 units as the
    item has), and the marked update, applied like the real one, gives the same delta with
    marks where the real one has text. The items, their ids and their order are the same;
    only their characters differ."""

    def __init__(self, structs: list[Struct], clients: dict[int, str]) -> None:
        self._mark: dict[int, str] = {}
        self._author: dict[str, str | None] = {}
        # an embed has no characters to mark: named when one author added embeds
        embedders = {clients.get(s.client) for s in structs if s.ref == EMBED}
        self._embedder = embedders.pop() if len(embedders) == 1 else None
        for struct in structs:
            if struct.span is not None and struct.client not in self._mark:
                mark = chr(_MARKS + len(self._mark) % _MARK_COUNT)
                self._mark[struct.client] = mark
                self._author.setdefault(mark, clients.get(struct.client))
                if len(self._mark) > _MARK_COUNT:  # more clients than marks: unknown
                    self._author[mark] = None

    def write(self, struct: Struct) -> str:
        return self._mark[struct.client] * struct.length

    def authors(self, real: Any, marked: Any) -> list[tuple[str, str | None]]:
        """A real insert cut into runs by author, read from its marked twin."""
        if not isinstance(real, str):
            return [(EMBED_CHAR, self._embedder)]
        if not isinstance(marked, str):
            return [(real, None)]
        out: list[tuple[str, str | None]] = []
        unit = 0
        start = 0
        current: str | None = None
        for i, ch in enumerate(real):
            author = self._author.get(marked[unit]) if unit < len(marked) else None
            if i and author != current:
                out.append((real[start:i], current))
                start = i
            current = author
            unit += 2 if ord(ch) > 0xFFFF else 1
        out.append((real[start:], current))
        return out


_MARKS = 0xE000  # the Private Use Area: one UTF-16 unit, never in a delta's retain counts
_MARK_COUNT = 0x1900


def _collect(into: list[dict[str, Any]]) -> Callable[[TextEvent], None]:
    def collect(event: TextEvent) -> None:
        into.extend(getattr(event, "delta", ()))

    return collect


def _segments(
    old: list[tuple[Any, Any]],
    delta: list[dict[str, Any]],
    marked: list[dict[str, Any]],
    marks: _Marks,
    deleter: str | None,
) -> list[Segment]:
    before = _Units(old)
    out: list[Segment] = []
    inserts = iter([op["insert"] for op in marked if "insert" in op])
    for op in delta:
        if "retain" in op:
            out.append({"type": "equal", "text": before.take(op["retain"]), "author": None})
        elif "delete" in op:
            out.append({"type": "delete", "text": before.take(op["delete"]), "author": deleter})
        else:
            twin = next(inserts, None)
            for piece, author in marks.authors(op["insert"], twin):
                out.append({"type": "insert", "text": piece, "author": author})
    rest = before.rest()
    if rest:
        out.append({"type": "equal", "text": rest, "author": None})
    return _merged(out)


class _Units:
    """The old text as yrs counts it (UTF-8 bytes for characters, 1 for an embed), taken from
    the front."""

    def __init__(self, chunks: list[tuple[Any, Any]]) -> None:
        self._parts: list[bytes | None] = [
            c.encode("utf-8") if isinstance(c, str) else None for c, _ in chunks
        ]
        self._i = 0
        self._offset = 0

    def take(self, n: int) -> str:
        out: list[str] = []
        while n > 0 and self._i < len(self._parts):
            part = self._parts[self._i]
            if part is None:
                out.append(EMBED_CHAR)
                n -= 1
                self._i += 1
                continue
            piece = part[self._offset : self._offset + n]
            out.append(piece.decode("utf-8", "replace"))
            n -= len(piece)
            self._offset += len(piece)
            if self._offset >= len(part):
                self._i += 1
                self._offset = 0
        return "".join(out)

    def rest(self) -> str:
        return self.take(1 << 62)


def _merged(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for segment in segments:
        if not segment["text"]:
            continue
        last = out[-1] if out else None
        if last and last["type"] == segment["type"] and last["author"] == segment["author"]:
            last["text"] += segment["text"]
        else:
            out.append(dict(segment))
    return out


def _reversed(segment: Segment) -> Segment:
    kind = {"insert": "delete", "delete": "insert"}.get(segment["type"], segment["type"])
    return {**segment, "type": kind}


def clocks(state_vector: bytes) -> dict[int, int]:
    """A state vector as {client: clock}."""
    pos = 0
    out: dict[int, int] = {}
    n, pos = read_var_uint(state_vector, pos)
    for _ in range(n):
        client, pos = read_var_uint(state_vector, pos)
        clock, pos = read_var_uint(state_vector, pos)
        out[client] = clock
    return out


def _behind(a: dict[int, int], b: dict[int, int]) -> bool:
    """Whether state `a` is strictly behind `b` (every clock <=, one <)."""
    return all(b.get(c, 0) >= k for c, k in a.items()) and any(
        k > a.get(c, 0) for c, k in b.items()
    )


def _sole_deleter(
    old_sv: dict[int, int],
    new_sv: dict[int, int],
    clients: dict[int, str],
    deleters: Iterable[str] | None,
) -> str | None:
    if deleters is not None:
        named = set(deleters)
    else:
        named = {clients[c] for c, k in new_sv.items() if k > old_sv.get(c, 0) and c in clients}
    return next(iter(named)) if len(named) == 1 else None
