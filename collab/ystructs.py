"""The structs of a v1 update, read for what they are: which root each item belongs to, what
kind of content it holds, which client wrote it.

A v1 update declares no root types: a root is only a name that items name as their parent. What
a root is (text, map, array, XML) shows in its items (`root_kinds`), and who wrote a run of
characters shows in its items' ids (`Struct.client`). pycrdt reads neither, so this module does.

It reads updates yrs encoded (pycrdt's `get_update`: a room's state, a stored version), which
collab/validate.py has checked on the way in when they came from a client; it is not a
validator: a malformed update raises `ValueError`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from .protocol import write_var_uint
from .steps import Steps, finish

GC: Final = 0
SKIP: Final = 10
# Content refs (info & 0x1F)
DELETED: Final = 1
JSON: Final = 2
BINARY: Final = 3
STRING: Final = 4
EMBED: Final = 5
FORMAT: Final = 6
TYPE: Final = 7
ANY: Final = 8
DOC: Final = 9
# Type refs of ContentType
XML_ELEMENT: Final = 3
XML_FRAGMENT: Final = 4
XML_HOOK: Final = 5
XML_TEXT: Final = 6

ID = tuple[int, int]
STEP = 256  # structs read between two steps (collab/steps.py; ~1.5 ms)


@dataclass(slots=True)
class Struct:
    """One struct as encoded: a GC or Skip range (`ref` 0 / 10) or an item."""

    client: int
    clock: int
    length: int  # in clocks (UTF-16 code units for strings)
    ref: int  # GC, SKIP or the item's content ref
    origin: ID | None = None
    right_origin: ID | None = None
    parent: str | ID | None = None  # a root's name, a nested type's item id, or from the origins
    parent_sub: str | None = None
    type_ref: int | None = None  # for TYPE content
    text: str | None = None  # for STRING content
    span: tuple[int, int] | None = None  # where STRING content's bytes (with length) are


@dataclass(slots=True)
class Structs:
    structs: list[Struct]
    deleted: dict[int, list[tuple[int, int]]]  # client -> [(clock, length)]


def read_update(data: bytes) -> Structs:
    """Every struct and the delete set of a v1 update."""
    return finish(read_update_steps(data))


def read_update_steps(data: bytes) -> Steps[Structs]:
    """`read_update` a step at a time (collab/steps.py): a step is `STEP` structs read."""
    reader = _Reader(data)
    structs: list[Struct] = []
    try:
        for struct in reader.structs():
            structs.append(struct)
            if not len(structs) % STEP:
                yield
        return Structs(structs, reader.delete_set())
    except IndexError:
        raise ValueError("truncated Yjs update") from None


def update_kinds(data: bytes, roots: Iterable[str]) -> dict[str, str]:
    """`root_kinds` of a v1 update whose roots are `roots` (pycrdt's Doc.keys()), reading only
    as far as needed: once an item naming each root has said "map" or "text" (a typed text
    root's first item usually comes early), the rest is not read."""
    return finish(update_kinds_steps(data, roots))


def update_kinds_steps(data: bytes, roots: Iterable[str]) -> Steps[dict[str, str]]:
    """`update_kinds` a step at a time (collab/steps.py): a step is `STEP` structs read."""
    undecided = set(roots)
    decided: dict[str, str] = {}
    read: list[Struct] = []
    try:
        for struct in _Reader(data).structs():
            read.append(struct)
            root = struct.parent
            if isinstance(root, str) and root in undecided:
                kind = _kind_of(struct)
                if kind in ("map", "text"):
                    decided[root] = kind
                    undecided.discard(root)
                    if not undecided:
                        return decided
            if not len(read) % STEP:
                yield
    except IndexError:
        raise ValueError("truncated Yjs update") from None
    # some root is an array, an XML fragment or all deleted: every struct has been read, once
    return (yield from _root_kinds_steps(read))


def root_kinds(structs: Structs) -> dict[str, str]:
    """Each root named by the update, as "text", "map", "array" or "xml", from its items:
    map entries (a parent key) make a map; characters, embeds or formats a text; XML elements
    or XML texts an XML fragment; other content an array. A root whose items are all deleted
    (and carry no key) reads as an empty text."""
    return finish(_root_kinds_steps(structs.structs))


def _root_kinds_steps(structs: list[Struct]) -> Steps[dict[str, str]]:
    evidence: dict[str, set[str]] = {}
    for struct in structs:  # first the items that name their root
        if isinstance(struct.parent, str):
            kind = _kind_of(struct)
            kinds = evidence.setdefault(struct.parent, set())
            if kind is not None:
                kinds.add(kind)
    if all(kinds & {"map", "text"} for kinds in evidence.values()):
        return {root: _decide(kinds) for root, kinds in evidence.items()}
    yield
    # some root only has deleted (or array-like) items that name it: follow every item's
    # origins to its root
    index = _ById(structs)
    for n, struct in enumerate(structs, 1):
        if not n % STEP:
            yield
        if struct.ref in (GC, SKIP):
            continue
        root = index.root_of(struct)
        if root is None:
            continue
        kinds = evidence.setdefault(root, set())
        kind = _kind_of(struct)
        if kind is not None:
            kinds.add(kind)
    return {root: _decide(kinds) for root, kinds in evidence.items()}


def _kind_of(struct: Struct) -> str | None:
    if struct.parent_sub is not None:
        return "map"
    ref = struct.ref
    if ref in (STRING, EMBED, FORMAT):
        return "text"
    if ref == TYPE and struct.type_ref in (XML_ELEMENT, XML_TEXT, XML_HOOK):
        return "xml"
    if ref in (JSON, BINARY, TYPE, ANY, DOC):
        return "array"
    return None  # deleted content says nothing


def _decide(kinds: set[str]) -> str:
    for kind in ("map", "text", "xml", "array"):
        if kind in kinds:
            return kind
    return "text"


class _ById:
    """Find the struct holding an id, and the root an item belongs to (through its origins when
    its parent is not written)."""

    def __init__(self, structs: list[Struct]) -> None:
        self._by_client: dict[int, tuple[list[int], list[Struct]]] = {}
        for struct in structs:
            clocks, items = self._by_client.setdefault(struct.client, ([], []))
            clocks.append(struct.clock)
            items.append(struct)
        for clocks, items in self._by_client.values():
            if any(a > b for a, b in pairwise(clocks)):
                order = sorted(range(len(clocks)), key=clocks.__getitem__)
                clocks[:] = [clocks[i] for i in order]
                items[:] = [items[i] for i in order]
        self._roots: dict[int, str | None] = {}  # id(struct) -> its root, resolved

    def find(self, ident: ID) -> Struct | None:
        entry = self._by_client.get(ident[0])
        if entry is None:
            return None
        clocks, items = entry
        i = bisect_right(clocks, ident[1]) - 1
        if i < 0:
            return None
        struct = items[i]
        return struct if ident[1] < struct.clock + struct.length else None

    def root_of(self, struct: Struct) -> str | None:
        """The root's name when the item sits directly in a root, else None (nested, or
        unknown: its neighbours were collected)."""
        chain: list[Struct] = []
        seen: set[int] = set()
        current: Struct | None = struct
        root: str | None = None
        while current is not None:
            known = self._roots.get(id(current), _UNSET)
            if known is not _UNSET:
                root = known  # type: ignore[assignment]
                break
            if isinstance(current.parent, str):
                root = current.parent
                chain.append(current)
                break
            if current.parent is not None or current.ref in (GC, SKIP):
                chain.append(current)
                break
            chain.append(current)
            seen.add(id(current))
            neighbour = current.origin or current.right_origin
            current = self.find(neighbour) if neighbour is not None else None
            if current is not None and id(current) in seen:
                break
        for resolved in chain:
            self._roots[id(resolved)] = root
        return root


_UNSET: Final = object()


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def structs(self) -> Iterator[Struct]:
        for _ in range(self.var()):
            count = self.var()
            client = self.var()
            clock = self.var()
            for _ in range(count):
                struct = self.struct(client, clock)
                clock += struct.length
                yield struct

    def delete_set(self) -> dict[int, list[tuple[int, int]]]:
        """The delete set, after the structs."""
        deleted: dict[int, list[tuple[int, int]]] = {}
        for _ in range(self.var()):
            client = self.var()
            deleted[client] = [(self.var(), self.var()) for _ in range(self.var())]
        return deleted

    def struct(self, client: int, clock: int) -> Struct:
        info = self.data[self.pos]
        self.pos += 1
        ref = info & 0x1F
        if ref in (GC, SKIP):
            return Struct(client, clock, self.var(), ref)
        struct = Struct(client, clock, 1, ref)
        if info & 0x80:
            struct.origin = (self.var(), self.var())
        if info & 0x40:
            struct.right_origin = (self.var(), self.var())
        if not info & 0xC0:
            struct.parent = self.string() if self.var() == 1 else (self.var(), self.var())
            if info & 0x20:
                struct.parent_sub = self.string()
        self.content(struct)
        return struct

    def content(self, struct: Struct) -> None:
        ref = struct.ref
        if ref == DELETED:
            struct.length = self.var()
        elif ref == JSON:
            struct.length = self.var()
            for _ in range(struct.length):
                self.string()
        elif ref == BINARY:
            self.skip(self.var())
        elif ref == STRING:
            start = self.pos
            text = self.string()
            struct.text = text
            struct.span = (start, self.pos)
            struct.length = utf16_length(text)
        elif ref == EMBED:
            self.string()
        elif ref == FORMAT:
            self.string()
            self.string()
        elif ref == TYPE:
            struct.type_ref = self.var()
            if struct.type_ref in (XML_ELEMENT, XML_HOOK):
                self.string()
        elif ref == ANY:
            struct.length = self.var()
            for _ in range(struct.length):
                self.any()
        elif ref == DOC:
            self.string()
            self.any()
        else:
            raise ValueError(f"unknown content ref {ref}")

    def var(self) -> int:
        data = self.data
        value = shift = 0
        while True:
            b = data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > len(self.data):
            raise IndexError

    def string(self) -> str:
        n = self.var()
        start = self.pos
        self.pos += n
        if self.pos > len(self.data):
            raise IndexError
        return self.data[start : self.pos].decode("utf-8")

    def any(self) -> None:
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # varint
            while self.data[self.pos] & 0x80:
                self.pos += 1
            self.pos += 1
        elif tag == 124:
            self.pos += 4
        elif tag in (123, 122):
            self.pos += 8
        elif tag == 119:
            self.string()
        elif tag == 118:
            for _ in range(self.var()):
                self.string()
                self.any()
        elif tag == 117:
            for _ in range(self.var()):
                self.any()
        elif tag == 116:
            self.skip(self.var())
        else:
            raise ValueError(f"unknown Any tag {tag}")


def with_strings(data: bytes, structs: list[Struct], write: Callable[[Struct], str]) -> bytes:
    """`data` (the update `structs` were read from) with each string item's characters
    replaced by `write(struct)`, which must be as long in UTF-16 units: the same items, ids and
    structure, other characters (collab/changes.py marks who wrote what this way)."""
    out: list[bytes] = []
    last = 0
    for struct in structs:
        if struct.span is None:
            continue
        start, end = struct.span
        text = write(struct).encode("utf-8", "surrogatepass")
        out += [data[last:start], write_var_uint(len(text)), text]
        last = end
    out.append(data[last:])
    return b"".join(out)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of Yjs clocks."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
