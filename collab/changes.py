"""What changed in each text of a document between two states, and who wrote it.

`diff(old_state, new_state, clients)` -> `{field: [{"type": "equal"|"insert"|"delete", "text",
"author"}]}` for every text root. The segments come from yrs itself: the old state is loaded
into a scratch Doc and the new one applied to it in one transaction, and the text event's delta
(retain / delete / insert, relative to the old text) is the diff. It is the CRDT's own account,
not a guess from comparing strings: a paragraph typed anew is an insert even if it matches one
that was deleted.

Authors: an inserted character is an item whose id names the Yjs client that wrote it;
`clients` (the store's `collab_clients`: client id -> author, first writer wins) names the
person. Which client deleted an item Yjs does not record: a deletion is attributed to the one
author who was active in the interval when there was exactly one (`deleters`, or else the
authors of the clients that wrote anything in between), and to nobody (null) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pycrdt import Assoc, StickyIndex, Text, TextEvent, get_state
from pycrdt import get_update as diff_update

from .content import doc_of, kinds
from .ystructs import EMBED, STRING, Struct, read_update

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
    scratch = doc_of(old_state)
    texts = {name: scratch.get(name, type=Text) for name in fields}
    olds = {name: text.diff() for name, text in texts.items()}
    deltas: dict[str, list[dict[str, Any]]] = {}
    subscriptions = [
        text.observe(_collect(deltas.setdefault(name, []))) for name, text in texts.items()
    ]
    scratch.apply_update(new_state)
    for name, subscription in zip(fields, subscriptions, strict=True):
        texts[name].unobserve(subscription)
    added = _Added(read_update(diff_update(new_state, get_state(old_state))).structs, clients)
    return {
        name: _segments(olds[name], deltas.get(name, []), texts[name], added, deleter)
        for name in fields
    }


def _collect(into: list[dict[str, Any]]) -> Callable[[TextEvent], None]:
    def collect(event: TextEvent) -> None:
        into.extend(getattr(event, "delta", ()))

    return collect


def _segments(
    old: list[tuple[Any, Any]],
    delta: list[dict[str, Any]],
    text: Text,
    added: _Added,
    deleter: str | None,
) -> list[Segment]:
    before = _Units(old)
    out: list[Segment] = []
    at = 0  # in the new text, in yrs units (UTF-8 bytes, 1 per embed)
    for op in delta:
        if "retain" in op:
            taken = before.take(op["retain"])
            out.append({"type": "equal", "text": taken, "author": None})
            at += op["retain"]
        elif "delete" in op:
            out.append({"type": "delete", "text": before.take(op["delete"]), "author": deleter})
        else:
            insert = op["insert"]
            for piece, author in added.authors(text, at, insert):
                out.append({"type": "insert", "text": piece, "author": author})
            at += len(insert.encode("utf-8")) if isinstance(insert, str) else 1
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


class _Added:
    """The text items the new state added, to name the author of each inserted run.

    Every such item is visible (a deleted one is encoded as deleted content) and contiguous in
    the text (yrs splits a block where anything is inserted into it or deleted from it), so an
    inserted run of the delta is a sequence of whole items. Which ones: the item that continues
    the previous one (its origin is the previous one's last character, as when one types on),
    else one whose text the run starts with (the sticky index of the run's start names it when
    it can; yrs's own positions inside non-ASCII blocks are not reliable, so it is only a
    hint). Two authors inserting the same characters at the same place concurrently is the one
    case this may name the wrong one of the two.
    """

    def __init__(self, structs: list[Struct], clients: dict[int, str]) -> None:
        self._clients = clients
        self._by_start: dict[tuple[int, int], Struct] = {}
        self._by_origin: dict[tuple[int, int], list[Struct]] = {}
        self._by_first: dict[str, list[Struct]] = {}
        for struct in structs:
            if struct.ref == STRING and struct.text:
                self._by_first.setdefault(struct.text[0], []).append(struct)
            elif struct.ref == EMBED:
                self._by_first.setdefault(EMBED_CHAR, []).append(struct)
            else:
                continue
            self._by_start[(struct.client, struct.clock)] = struct
            if struct.origin is not None:
                self._by_origin.setdefault(struct.origin, []).append(struct)
        self._used: set[int] = set()

    def authors(self, text: Text, at: int, insert: Any) -> list[tuple[str, str | None]]:
        """`insert` (found at `at`, in yrs units, in the new text) cut into runs by author."""
        rest = insert if isinstance(insert, str) else EMBED_CHAR
        out: list[tuple[str, str | None]] = []
        previous: Struct | None = None
        hint = _id_at(text, at)
        while rest:
            struct = self._next(rest, previous, hint)
            hint = None
            if struct is None:
                out.append((rest, None))
                break
            self._used.add(id(struct))
            piece = _piece(struct)
            out.append((piece, self._clients.get(struct.client)))
            rest = rest[len(piece) :]
            previous = struct
        return out

    def _next(
        self, rest: str, previous: Struct | None, hint: tuple[int, int] | None
    ) -> Struct | None:
        """The item the run continues with: the one that continues `previous`, else the one
        the sticky index named, else the longest whose text the run starts with."""
        preferred: list[Struct] = []
        if previous is not None:
            last = (previous.client, previous.clock + previous.length - 1)
            preferred.extend(self._by_origin.get(last, ()))
        if hint is not None and hint in self._by_start:
            preferred.append(self._by_start[hint])
        for struct in preferred:
            if id(struct) not in self._used and rest.startswith(_piece(struct)):
                return struct
        matching = [
            s
            for s in self._by_first.get(rest[0], ())
            if id(s) not in self._used and rest.startswith(_piece(s))
        ]
        return max(matching, key=lambda s: len(_piece(s))) if matching else None


def _piece(struct: Struct) -> str:
    return struct.text if struct.ref == STRING and struct.text else EMBED_CHAR


def _id_at(text: Text, at: int) -> tuple[int, int] | None:
    try:
        item = StickyIndex.new(text, at, Assoc.AFTER).to_json().get("item")
    except BaseException:  # yrs panics on some positions: no hint, then
        return None
    return (item["client"], item["clock"]) if item else None


def _common_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


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
    n, pos = _var(state_vector, pos)
    for _ in range(n):
        client, pos = _var(state_vector, pos)
        clock, pos = _var(state_vector, pos)
        out[client] = clock
    return out


def _var(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


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
