"""Structure-aware mutations of Yjs v1 updates, for the validator's differential test.

Each mutation reads the update as Yjs does (tests/yupdate.py) and changes one thing at the level
of the structure: a varint set to a boundary value (0, 1, 2^32 - 1, 2^32, 2^53 - 1, 2^53, ...,
sometimes padded to more bytes), a length made zero, a content ref swapped, an origin bumped to a
later clock of the same client, a struct duplicated, dropped or swapped, a client renamed into
another's, a delete range added or reordered, a string or JSON text replaced, an Any replaced.
An update Yjs cannot read any more only gets byte-level damage (flips, inserts, cuts).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tests.yupdate import (
    ANY,
    JSON_,
    TYPE,
    Field,
    Struct,
    Update,
    YjsReadError,
    read_update,
    write_string,
    write_var_int,
    write_var_uint,
)

BOUNDARIES = [
    0,
    1,
    2,
    5,
    0x7F,
    0x80,
    2**31 - 1,
    2**31,
    2**32 - 2,
    2**32 - 1,
    2**32,
    2**32 + 1,
    2**53 - 2,
    2**53 - 1,
    2**53,
    2**53 + 1,
    2**56,
    2**63,
    2**64 - 1,
    2**64,
    2**64 + 1,
]
STRINGS: list[bytes] = [
    b"",
    b"a",
    b"undefined",
    "é👍🏽".encode(),
    b"\xff",
    b"\xed\xa0\x80",  # a UTF-16 surrogate in UTF-8
    b"\xc3",
    "\ufeffx".encode(),
    b"x" * 200,
]
JSON_TEXTS: list[bytes] = [
    b"",
    b"undefined",
    b"null",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-0",
    b"{}",
    b"[]",
    b"[",
    b"tru",
    b' "x" ',
    b'"\\ud800"',
    "\ufeff1".encode(),
    b'{"a":1,"a":2}',
    b"[" * 127 + b"]" * 127,
    b"[" * 129 + b"]" * 129,
    b"[" * 3000 + b"]" * 3000,
    b"1 2",
    b'"\x01"',
    b"9007199254740993",
]


def any_nested(depth: int, tag: int = 0x75) -> bytes:
    if tag == 0x76:
        return (b"\x76\x01" + write_string("k")) * depth + b"\x7e"
    return b"\x75\x01" * depth + b"\x7e"


ANY_VALUES: list[bytes] = [
    b"\x7f",
    b"\x7e",
    b"\x78",
    b"\x79",
    b"\x7d" + write_var_int(0),
    b"\x7d" + write_var_int(2**53 - 1),
    b"\x7d" + write_var_int(-(2**53 - 1)),
    b"\x7d" + write_var_int(2**53),
    b"\x7d" + write_var_int(-(2**60)),
    b"\x7d" + b"\xff" * 10 + b"\x01",
    b"\x7d\x81\x80\x80\x00",
    b"\x7c\x00\x00\xc0\x7f",
    b"\x7b" + b"\x00" * 7 + b"\xf0",
    b"\x7a" + b"\xff" * 8,
    b"\x77" + write_string("s"),
    b"\x77" + write_string(b"\xff"),
    b"\x74" + write_string(b"\x00\x01"),
    b"\x76\x00",
    b"\x75\x00",
    b"\x76\x01" + write_string("__proto__") + b"\x7d\x01",
    any_nested(127),
    any_nested(128),
    any_nested(129),
    any_nested(128, 0x76),
    any_nested(129, 0x76),
    b"\x73",
    b"\x00",
    b"\x80",
    b"\x75" + write_var_uint(2**32) + b"\x7e",
]
DOC_OPTS: list[bytes] = [
    b"\x7e",
    b"\x7f",
    b"\x76\x00",
    b"\x75\x00",
    b"\x77" + write_string("opts"),
    b"\x7d\x05",
    b"\x78",
    b"\x76\x01" + write_string("autoLoad") + b"\x78",
    b"\x76\x01" + write_string("guid") + b"\x77" + write_string("other"),
    b"\x76\x01" + write_string("gc") + b"\x79",
]

VARINT_KINDS = {
    "client count",
    "struct count",
    "client",
    "clock",
    "gc length",
    "skip length",
    "origin client",
    "origin clock",
    "right origin client",
    "right origin clock",
    "parent info",
    "parent client",
    "parent clock",
    "deleted length",
    "json count",
    "type ref",
    "any count",
    "ds client count",
    "ds client",
    "ds range count",
    "ds clock",
    "ds length",
}
STRING_KINDS = {"parent name", "parent sub", "string", "format key", "type name", "doc guid"}
JSON_KINDS = {"embed json", "format json", "json string"}


def varint(value: int, rng: random.Random) -> bytes:
    """`value` as a varint, now and then padded with continuation bytes (up to 12 bytes)."""
    raw = write_var_uint(value)
    if rng.random() < 0.15:
        size = rng.randint(len(raw), 12)
        if size > len(raw):
            raw = bytes(b | 0x80 for b in raw) + b"\x80" * (size - len(raw) - 1) + b"\x00"
    return raw


def splice(data: bytes, start: int, end: int, new: bytes) -> bytes:
    return data[:start] + new + data[end:]


def replace(data: bytes, f: Field, new: bytes) -> bytes:
    return splice(data, f.start, f.end, new)


class Mutator:
    def __init__(self, rng: random.Random, donors: list[bytes]) -> None:
        self.rng = rng
        self.donors = donors  # updates to take structs from
        self.structural: list[tuple[int, Callable[[bytes, Update], bytes | None]]] = [
            (8, self.varint_boundary),
            (5, self.zero_length),
            (3, self.content_ref),
            (5, self.bump_reference),
            (2, self.duplicate_struct),
            (2, self.drop_struct),
            (1, self.swap_structs),
            (2, self.rename_client),
            (4, self.delete_set),
            (3, self.strings),
            (2, self.any_value),
            (1, self.type_ref),
            (1, self.doc_opts),
            (1, self.graft),
            (1, self.truncate_at_field),
        ]
        self.weights = [w for w, _ in self.structural]

    def mutate(self, data: bytes, count: int) -> bytes:
        for _ in range(count):
            data = self.once(data)
        return data

    def once(self, data: bytes) -> bytes:
        rng = self.rng
        if rng.random() < 0.85:
            try:
                update = read_update(data)
            except YjsReadError:
                update = None
            if update is not None:
                for _ in range(4):  # a mutation may not apply to this update: try another
                    (mutation,) = rng.choices(self.structural, self.weights)
                    new = mutation[1](data, update)
                    if new is not None and new != data:
                        return new
        return self.bytes_level(data)

    # -- byte level -----------------------------------------------------------------------

    def bytes_level(self, data: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        pos = rng.randrange(len(buf) + 1)
        op = rng.randrange(5)
        if op == 0 and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and pos < len(buf):
            special = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x0A, 0x14, 0x20, 0x7E, rng.randrange(256)]
            buf[pos] = rng.choice(special)
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3:
            del buf[pos : pos + rng.randint(1, 4)]
        else:
            del buf[pos:]
        return bytes(buf)

    # -- structure ------------------------------------------------------------------------

    def varint_boundary(self, data: bytes, u: Update) -> bytes | None:
        fields = [f for f in u.fields() if f.kind in VARINT_KINDS]
        if not fields:
            return None
        f = self.rng.choice(fields)
        value = f.value if isinstance(f.value, int) else 0
        choices = [*BOUNDARIES, value + 1, max(0, value - 1), value * 2, value + 2**32]
        if f.kind.endswith("clock"):
            choices += [s.clock for s in u.structs()] + [s.clock + s.length for s in u.structs()]
        return replace(data, f, varint(self.rng.choice(choices), self.rng))

    def zero_length(self, data: bytes, u: Update) -> bytes | None:
        options: list[tuple[int, int, bytes]] = []
        for s in u.structs():
            for f in s.fields:
                if f.kind in ("gc length", "skip length", "deleted length", "string"):
                    options.append((f.start, f.end, b"\x00"))
            if s.ref in (ANY, JSON_):  # the count and every value after it
                first = next(f for f in s.fields if f.kind in ("any count", "json count"))
                options.append((first.start, s.end, b"\x00"))
        for entry in u.deletes:
            for r in entry.ranges:
                options.append((r.fields[1].start, r.fields[1].end, b"\x00"))
        if not options:
            return None
        start, end, new = self.rng.choice(options)
        return splice(data, start, end, new)

    def content_ref(self, data: bytes, u: Update) -> bytes | None:
        structs = u.structs()
        if not structs:
            return None
        s = self.rng.choice(structs)
        rng = self.rng
        if rng.random() < 0.5:
            info = (s.info & 0xE0) | rng.choice([*range(12), rng.randrange(32)])
        else:
            info = s.info ^ rng.choice([0x80, 0x40, 0x20, 0x10])
        return splice(data, s.start, s.start + 1, bytes([info]))

    def bump_reference(self, data: bytes, u: Update) -> bytes | None:
        """An origin, right origin or parent ID pointing at the item itself, later, or at
        another client; or an item given an origin of its own client where it had none."""
        rng = self.rng
        structs = [s for s in u.structs() if s.ref not in (0, 10)]
        if not structs:
            return None
        s = rng.choice(structs)
        clients = [sec.client for sec in u.sections]
        ids = [
            (f, g)
            for f, g in zip(s.fields, s.fields[1:], strict=False)
            if f.kind.endswith(" client") and g.kind.endswith(" clock") and f.kind != "ds client"
        ]
        later = rng.choice(
            [s.clock, s.clock + 1, s.clock + max(0, s.length - 1), s.clock + s.length, s.clock + 7]
        )
        if ids and rng.random() < 0.8:
            client_field, clock_field = rng.choice(ids)
            client = s.client if rng.random() < 0.7 else rng.choice([*clients, 12345])
            clock = later if rng.random() < 0.8 else rng.choice([0, max(0, s.clock - 1)])
            new = write_var_uint(client) + write_var_uint(clock)
            return splice(data, client_field.start, clock_field.end, new)
        # no ID to bump: give the item an origin (its own client), dropping its parent
        if s.info & 0xC0:
            return None
        parent = [f for f in s.fields if f.kind.startswith("parent")]
        if not parent:
            return None
        new_id = write_var_uint(s.client) + write_var_uint(later)
        info = bytes([(s.info | 0x80) & ~0x20])
        start, end = parent[0].start, parent[-1].end
        return data[: s.start] + info + new_id + data[s.start + 1 : start] + data[end:]

    def _section_of(self, u: Update, s: Struct) -> Any:
        return next(sec for sec in u.sections if s in sec.structs)

    def _with_count(
        self, data: bytes, u: Update, s: Struct, delta: int, edit: bytes, at: tuple[int, int]
    ) -> bytes:
        """Replace data[at] by `edit` and add `delta` to the struct count of `s`'s section."""
        sec = self._section_of(u, s)
        count = sec.fields[0]
        out = splice(data, at[0], at[1], edit)
        new_count = write_var_uint(max(0, count.value + delta))
        if self.rng.random() < 0.15:  # now and then the count is left as it was
            return out
        return splice(out, count.start, count.end, new_count)

    def duplicate_struct(self, data: bytes, u: Update) -> bytes | None:
        structs = u.structs()
        if not structs:
            return None
        s = self.rng.choice(structs)
        copy = data[s.start : s.end]
        return self._with_count(data, u, s, 1, copy, (s.end, s.end))

    def drop_struct(self, data: bytes, u: Update) -> bytes | None:
        structs = u.structs()
        if not structs:
            return None
        s = self.rng.choice(structs)
        return self._with_count(data, u, s, -1, b"", (s.start, s.end))

    def swap_structs(self, data: bytes, u: Update) -> bytes | None:
        pairs = [
            (a, b) for sec in u.sections for a, b in zip(sec.structs, sec.structs[1:], strict=False)
        ]
        if not pairs:
            return None
        a, b = self.rng.choice(pairs)
        return data[: a.start] + data[b.start : b.end] + data[a.start : a.end] + data[b.end :]

    def rename_client(self, data: bytes, u: Update) -> bytes | None:
        rng = self.rng
        clients = [sec.client for sec in u.sections] + [e.client for e in u.deletes]
        targets = [sec.fields[1] for sec in u.sections] + [e.fields[0] for e in u.deletes]
        if not targets:
            return None
        f = rng.choice(targets)
        new = rng.choice([*clients, 0, 1, 2**53 - 1, f.value + 1])
        return replace(data, f, varint(new, rng))

    def delete_set(self, data: bytes, u: Update) -> bytes | None:
        """Add a range or an entry, swap or overlap ranges, list a client twice."""
        rng = self.rng
        op = rng.randrange(5)
        clients = [sec.client for sec in u.sections] or [1]
        clock = rng.choice([0, 1, 2, 5, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**53 - 1])
        length = rng.choice([0, 1, 2, 3, 2**31, 2**32 - 1, 2**32])
        rangebytes = varint(clock, rng) + varint(length, rng)
        if op == 0 or not u.deletes:  # a new entry at the end
            entry = varint(rng.choice(clients), rng) + b"\x01" + rangebytes
            new_count = write_var_uint(u.ds_count.value + 1)
            out = data[: u.end] + entry + data[u.end :]
            return replace(out, u.ds_count, new_count)
        entry = rng.choice(u.deletes)
        if op == 1:  # one more range in an entry
            count = entry.fields[1]
            out = data[: entry.end] + rangebytes + data[entry.end :]
            return replace(out, count, write_var_uint(count.value + 1))
        if op == 2:  # the entry twice
            copy = data[entry.start : entry.end]
            out = data[: entry.end] + copy + data[entry.end :]
            return replace(out, u.ds_count, write_var_uint(u.ds_count.value + 1))
        if len(entry.ranges) < 2:
            return None
        i = rng.randrange(len(entry.ranges) - 1)
        a, b = entry.ranges[i], entry.ranges[i + 1]
        span_a = data[a.fields[0].start : a.fields[1].end]
        span_b = data[b.fields[0].start : b.fields[1].end]
        if op == 3:  # swapped
            return data[: a.fields[0].start] + span_b + span_a + data[b.fields[1].end :]
        # overlapping: b starts inside a
        return replace(data, b.fields[0], write_var_uint(a.clock + max(0, a.length - 1)))

    def strings(self, data: bytes, u: Update) -> bytes | None:
        fields = [f for f in u.fields() if f.kind in STRING_KINDS | JSON_KINDS]
        if not fields:
            return None
        f = self.rng.choice(fields)
        pool = JSON_TEXTS if f.kind in JSON_KINDS else STRINGS
        return replace(data, f, write_string(self.rng.choice(pool)))

    def any_value(self, data: bytes, u: Update) -> bytes | None:
        fields = [f for f in u.fields() if f.kind in ("any value", "doc opts")]
        if not fields:
            return None
        return replace(data, self.rng.choice(fields), self.rng.choice(ANY_VALUES))

    def type_ref(self, data: bytes, u: Update) -> bytes | None:
        structs = [s for s in u.structs() if s.ref == TYPE]
        if not structs:
            return None
        s = self.rng.choice(structs)
        f = next(f for f in s.fields if f.kind == "type ref")
        ref = self.rng.choice([*range(17), 0x80])
        new = varint(ref, self.rng) if ref < 0x80 else b"\x80\x00"
        if ref in (3, 5) and f.value not in (3, 5):
            new += write_string(self.rng.choice(["p", "hook", ""]))
        return replace(data, f, new)

    def doc_opts(self, data: bytes, u: Update) -> bytes | None:
        fields = [f for f in u.fields() if f.kind == "doc opts"]
        if not fields:
            return None
        return replace(data, self.rng.choice(fields), self.rng.choice(DOC_OPTS))

    def graft(self, data: bytes, u: Update) -> bytes | None:
        """A struct of another update appended to one of this update's sections."""
        if not u.sections or not self.donors:
            return None
        try:
            donor = read_update(self.rng.choice(self.donors))
        except YjsReadError:
            return None
        structs = donor.structs()
        if not structs:
            return None
        piece = donor.data[(d := self.rng.choice(structs)).start : d.end]
        sec = self.rng.choice(u.sections)
        if not sec.structs:
            return None
        last = sec.structs[-1]
        return self._with_count(data, u, last, 1, piece, (last.end, last.end))

    def truncate_at_field(self, data: bytes, u: Update) -> bytes | None:
        fields = u.fields()
        f = self.rng.choice(fields)
        return data[: self.rng.choice([f.start, f.end])]
