"""A Yjs v1 update as Yjs 13.6 (with lib0 0.2) reads it, every field with its place in the bytes.

Test tooling, written from yjs.cjs and lib0's decoding.js, independent of collab/validate.py: the
differential test (tests/unit/test_validate_differential.py) uses it to mutate real updates field
by field, to build the updates that supply what an input refers to, and to recognise the inputs
the validator refuses on purpose although Yjs applies them. `read_update` raises `YjsReadError`
where Yjs's reader would throw; it does not model integration (Node does that).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

MAX_SAFE = 2**53 - 1

# lib0's readAny tags
ANY_UNDEFINED, ANY_NULL, ANY_INT, ANY_F32, ANY_F64, ANY_BIGINT = 127, 126, 125, 124, 123, 122
ANY_FALSE, ANY_TRUE, ANY_STRING, ANY_OBJECT, ANY_ARRAY, ANY_BYTES = 121, 120, 119, 118, 117, 116

# content refs (info & 0x1F)
GC, DELETED, JSON_, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)


class YjsReadError(Exception):
    """Where Yjs's decoder throws."""


@dataclass
class Field:
    """A run of bytes Yjs reads as one thing: a varint, a string with its length, a value..."""

    start: int
    end: int
    kind: str
    value: Any = None


@dataclass
class Struct:
    start: int
    end: int
    client: int
    clock: int
    info: int
    length: int = 0
    origin: tuple[int, int] | None = None
    right_origin: tuple[int, int] | None = None
    parent: str | tuple[int, int] | None = None  # a root's name or an item's ID
    parent_sub: str | None = None
    type_ref: int | None = None
    any_depth: int = 0  # deepest nesting of an Any in the content (1: a scalar)
    utf8_length: int = 0  # String content: its UTF-8 length
    fields: list[Field] = field(default_factory=list)

    @property
    def ref(self) -> int:
        return self.info & 0x1F


@dataclass
class ClientSection:
    start: int
    end: int
    client: int
    clock: int
    fields: list[Field]  # the struct count, the client, the first clock
    structs: list[Struct]


@dataclass
class DeleteRange:
    client: int
    clock: int
    length: int
    fields: list[Field]  # clock, length


@dataclass
class DeleteEntry:
    start: int
    end: int
    client: int
    fields: list[Field]  # client, range count
    ranges: list[DeleteRange]


@dataclass
class Update:
    data: bytes
    client_count: Field
    sections: list[ClientSection]
    ds_count: Field
    deletes: list[DeleteEntry]
    end: int  # where the delete set ends; Yjs ignores what follows
    largest: int = 0  # the largest integer of any varint (in magnitude), as written

    def fields(self) -> list[Field]:
        out = [self.client_count]
        for section in self.sections:
            out += section.fields
            for struct in section.structs:
                out += struct.fields
        out.append(self.ds_count)
        for entry in self.deletes:
            out += entry.fields
            for r in entry.ranges:
                out += r.fields
        return out

    def structs(self) -> list[Struct]:
        return [s for section in self.sections for s in section.structs]


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.largest = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            # lib0 reads `undefined` here and carries on; what follows throws or reads garbage
            raise YjsReadError("read past the end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def var_uint(self) -> int:
        """lib0 readVarUint: throws once the bytes before the last exceed 2^53 - 1; the value
        it returns is rounded above that (we return it exact: callers compare with MAX_SAFE)."""
        num = 0
        shift = 0
        while True:
            b = self.u8()
            num += (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                self.largest = max(self.largest, num)
                return num
            if num > MAX_SAFE:
                raise YjsReadError("Integer out of Range")

    def var_int(self) -> int:
        """lib0 readVarInt: 6 bits and the sign in the first byte."""
        b = self.u8()
        num = b & 0x3F
        shift = 6
        negative = bool(b & 0x40)
        while b & 0x80:
            b = self.u8()
            num += (b & 0x7F) << shift
            shift += 7
            if num > MAX_SAFE and b & 0x80:
                raise YjsReadError("Integer out of Range")
        self.largest = max(self.largest, num)
        return -num if negative else num

    def bytes_(self) -> bytes:
        n = self.var_uint()
        if self.pos + n > len(self.data):
            raise YjsReadError("Unexpected end of array")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        try:
            return self.bytes_().decode("utf-8")  # lib0: TextDecoder('utf-8', {fatal: true})
        except UnicodeDecodeError:
            raise YjsReadError("The encoded data was not valid for encoding utf-8") from None

    def field(self, kind: str, read: Any) -> Field:
        start = self.pos
        value = read()
        return Field(start, self.pos, kind, value)

    def any_(self) -> tuple[Any, int]:
        """One lib0 Any and its depth (1 for a scalar)."""
        tag = self.u8()
        if tag == ANY_UNDEFINED:
            return None, 1
        if tag == ANY_NULL:
            return None, 1
        if tag == ANY_INT:
            return self.var_int(), 1
        if tag in (ANY_F32, ANY_F64, ANY_BIGINT):
            size = 4 if tag == ANY_F32 else 8
            if self.pos + size > len(self.data):
                raise YjsReadError("Offset is outside the bounds of the DataView")
            self.pos += size
            return None, 1
        if tag in (ANY_FALSE, ANY_TRUE):
            return tag == ANY_TRUE, 1
        if tag == ANY_STRING:
            return self.string(), 1
        if tag == ANY_BYTES:
            return self.bytes_(), 1
        if tag in (ANY_OBJECT, ANY_ARRAY):
            count = self.var_uint()
            depth = 1
            values = []
            for _ in range(count):
                if tag == ANY_OBJECT:
                    self.string()
                value, d = self.any_()
                values.append(value)
                depth = max(depth, d + 1)
            return values, depth
        raise YjsReadError("readAnyLookupTable[...] is not a function")


def js_json_parse(text: str) -> Any:
    """JSON.parse: Python's json without NaN and Infinity (JS has neither), and as deep as V8
    goes (its parser does not recurse; Python's does, within the recursion limit)."""

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return json.loads(text, parse_constant=no_constant)
    except ValueError:
        raise YjsReadError("SyntaxError (JSON.parse)") from None
    finally:
        sys.setrecursionlimit(limit)


def read_update(data: bytes) -> Update:
    r = Reader(data)
    client_count = r.field("client count", r.var_uint)
    sections = []
    for _ in range(client_count.value):
        start = r.pos
        count = r.field("struct count", r.var_uint)
        client = r.field("client", r.var_uint)
        clock_field = r.field("clock", r.var_uint)
        clock = clock_field.value
        structs = []
        for _ in range(count.value):
            struct = _read_struct(r, client.value, clock)
            structs.append(struct)
            clock += struct.length
        fields = [count, client, clock_field]
        sections.append(
            ClientSection(start, r.pos, client.value, clock_field.value, fields, structs)
        )
    ds_count = r.field("ds client count", r.var_uint)
    deletes = []
    for _ in range(ds_count.value):
        start = r.pos
        client = r.field("ds client", r.var_uint)
        n = r.field("ds range count", r.var_uint)
        ranges = []
        for _ in range(n.value):
            clock = r.field("ds clock", r.var_uint)
            length = r.field("ds length", r.var_uint)
            ranges.append(DeleteRange(client.value, clock.value, length.value, [clock, length]))
        deletes.append(DeleteEntry(start, r.pos, client.value, [client, n], ranges))
    return Update(data, client_count, sections, ds_count, deletes, r.pos, r.largest)


def _read_id(r: Reader, kind: str, fields: list[Field]) -> tuple[int, int]:
    client = r.field(kind + " client", r.var_uint)
    clock = r.field(kind + " clock", r.var_uint)
    fields += [client, clock]
    return client.value, clock.value


def _read_struct(r: Reader, client: int, clock: int) -> Struct:
    start = r.pos
    info = r.u8()
    s = Struct(start, start, client, clock, info, fields=[Field(start, r.pos, "info", info)])
    ref = info & 0x1F
    if ref in (GC, SKIP):
        f = r.field("gc length" if ref == GC else "skip length", r.var_uint)
        s.fields.append(f)
        s.length = f.value
        s.end = r.pos
        return s
    if info & 0x80:
        s.origin = _read_id(r, "origin", s.fields)
    if info & 0x40:
        s.right_origin = _read_id(r, "right origin", s.fields)
    if not info & 0xC0:
        f = r.field("parent info", r.var_uint)
        s.fields.append(f)
        if f.value == 1:
            name = r.field("parent name", r.string)
            s.fields.append(name)
            s.parent = name.value
        else:
            s.parent = _read_id(r, "parent", s.fields)
        if info & 0x20:
            sub = r.field("parent sub", r.string)
            s.fields.append(sub)
            s.parent_sub = sub.value
    _read_content(r, s, ref)
    s.end = r.pos
    return s


def _read_content(r: Reader, s: Struct, ref: int) -> None:
    add = s.fields.append
    if ref == DELETED:
        f = r.field("deleted length", r.var_uint)
        add(f)
        s.length = f.value
    elif ref == JSON_:
        count = r.field("json count", r.var_uint)
        add(count)
        for _ in range(count.value):
            f = r.field("json string", r.string)
            add(f)
            if f.value != "undefined":
                js_json_parse(f.value)
        s.length = count.value
    elif ref == BINARY:
        add(r.field("binary", r.bytes_))
        s.length = 1
    elif ref == STRING:
        f = r.field("string", r.string)
        add(f)
        s.length = len(f.value.encode("utf-16-le")) // 2
        s.utf8_length = len(f.value.encode())
    elif ref == EMBED:
        f = r.field("embed json", r.string)
        add(f)
        js_json_parse(f.value)
        s.length = 1
    elif ref == FORMAT:
        add(r.field("format key", r.string))
        f = r.field("format json", r.string)
        add(f)
        js_json_parse(f.value)
        s.length = 1
    elif ref == TYPE:
        f = r.field("type ref", r.var_uint)
        add(f)
        s.type_ref = f.value
        if f.value > 6:
            raise YjsReadError("typeRefs[...] is not a function")
        if f.value in (3, 5):  # XmlElement, XmlHook: a name
            add(r.field("type name", r.string))
        s.length = 1
    elif ref == ANY:
        count = r.field("any count", r.var_uint)
        add(count)
        for _ in range(count.value):
            start = r.pos
            _, depth = r.any_()
            add(Field(start, r.pos, "any value"))
            s.any_depth = max(s.any_depth, depth)
        s.length = count.value
    elif ref == DOC:
        add(r.field("doc guid", r.string))
        start = r.pos
        opts, depth = r.any_()
        add(Field(start, r.pos, "doc opts", opts))
        s.any_depth = depth
        if r.data[start] in (ANY_NULL, ANY_UNDEFINED):
            raise YjsReadError("Cannot read properties of null (reading 'shouldLoad')")
        s.length = 1
    else:  # 0 and 10 are handled before; 11-31 have no reader
        raise YjsReadError("contentRefs[...] is not a function")


def write_var_uint(n: int) -> bytes:
    """lib0 writeVarUint."""
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def write_var_int(n: int) -> bytes:
    """lib0 writeVarInt."""
    magnitude = abs(n)
    out = bytearray([(0x80 if magnitude > 0x3F else 0) | (0x40 if n < 0 else 0) | magnitude & 0x3F])
    magnitude >>= 6
    while magnitude:
        out.append((0x80 if magnitude > 0x7F else 0) | magnitude & 0x7F)
        magnitude >>= 7
    return bytes(out)


def write_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return write_var_uint(len(raw)) + raw


def state_vector(update: Update) -> dict[int, int]:
    """Each client's next clock after the update's structs (Skips count: they end a range)."""
    state: dict[int, int] = {}
    for section in update.sections:
        end = section.clock + sum(s.length for s in section.structs)
        state[section.client] = max(state.get(section.client, 0), end)
    return state


def needed_clocks(update: Update) -> dict[int, int]:
    """How far each client's clocks must reach for every reference in `update` to resolve: the
    start of each client's structs, and one past every origin, right origin, parent and deleted
    range that the update does not hold itself."""
    starts = {section.client: section.clock for section in update.sections}
    need: dict[int, int] = {}

    def want(client: int, clock: int) -> None:
        if client in starts and clock > starts[client]:
            return  # inside (or past) what the update brings itself
        need[client] = max(need.get(client, 0), clock)

    for client, clock in starts.items():
        want(client, clock)
    for s in update.structs():
        for ref in (s.origin, s.right_origin, s.parent if isinstance(s.parent, tuple) else None):
            if ref is not None:
                want(ref[0], ref[1] + 1)
    for entry in update.deletes:
        for r in entry.ranges:
            want(r.client, r.clock + r.length)
    return {c: n for c, n in need.items() if n > 0}


FILLER_ROOT = "filler"


def filler(need: dict[int, int], have: dict[int, int]) -> bytes:
    """An update giving each client of `need` deleted items up to the clock it needs (from the
    state `have` on), in a root of their own: what a peer would hold before such an update."""
    sections = []
    for client, clock in sorted(need.items(), reverse=True):
        start = have.get(client, 0)
        if clock <= start or clock > 2**32 - 1 or client > MAX_SAFE:
            continue
        vu = write_var_uint
        item = b"\x01" + vu(1) + write_string(FILLER_ROOT) + vu(clock - start)  # Deleted
        sections.append(vu(1) + vu(client) + vu(start) + item)
    if not sections:
        return b""
    return write_var_uint(len(sections)) + b"".join(sections) + b"\x00"
