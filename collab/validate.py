"""Structural validation of untrusted Yjs v1 updates and state vectors, before pycrdt sees them.

Why: the Rust decoder inside pycrdt (yrs 0.28) sizes its buffers from the length and count prefixes
it reads (`try_reserve`, `Vec::with_capacity`, `HashMap::with_capacity`) before it reads the items
they announce, so 16 bytes claiming a few hundred million clients make it allocate ~500 MB before it
notices the message is short. Its Any decoder is recursive as well: ~50 000 nested arrays (100 KB)
overflow the stack and kill the process with SIGSEGV. This module walks the whole update first, the
way yrs will, and checks every prefix against the bytes that actually follow, so the counts yrs
later trusts are counts of items that are really there.

The walk mirrors what yrs decodes, not what the Yjs documentation says, because it must never
refuse an update pycrdt would apply without a reason given below (a client whose update we refuse
is disconnected, reconnects and sends it again in its sync step 2). Where yrs is more lenient
than Yjs, so is this module, unless a Yjs peer would throw or read it otherwise (the last list):

- varints: up to 11 bytes (the padding of short values with 0x80 bytes included);
- the content ref is `info & 0x0F` (yrs ignores bit 0x10; Yjs uses `info & 0x1F`);
- the type refs yrs knows are 0-6, 9 and 15; only XmlElement (3) carries a name, XmlHook (5)
  does not; weak links (7) and Move content (ref 11) are not compiled into pycrdt and are refused;
- Embed and Format values are JSON text, parsed by yrs (serde_json) and by Yjs (JSON.parse):
  refused unless both read it (`INVALID_JSON`);
- bytes after the delete set are ignored (so does Yjs).

Six things are refused although yrs decodes them, for what yrs then does:

- an Any nested deeper than `MAX_ANY_DEPTH` (yrs recurses; ~50 000 levels crash the process);
- a GC struct of length 0: after an item of the same client it leaves the document unable to
  encode itself (`get_update` panics from then on: no client can sync the room any more);
- a client's clocks running past `MAX_CLOCK` (2^31 - 1; strings count in UTF-16 units, as in
  Yjs and yrs): yrs keeps clocks in a u32, and a struct that wraps around to clock 0 leaves the
  document in the same broken state; and yrs panics on some clocks beyond 2^31 already (a first
  clock above it and a deleted range of the same client below it). No real client gets within
  two billion edits of it;
- runs of items yrs will merge, beyond `SQUASH_BUDGET` (see there): merging costs yrs memory
  quadratic in the length of the run;
- a client listed twice (yrs appends the second list to the first, which would let a run hide
  across lists). Yjs and yrs encoders write each client once;
- a client listed without structs (`EMPTY_CLIENT`): yrs panics on it once the document holds
  items of that client. No encoder writes one.

And these, because the server forwards updates to Yjs peers as received (and stores them), and a
stock Yjs peer (yjs 13.6, lib0 0.2) throws on them, or reads them otherwise than yrs does. Yjs
throws while decoding, while integrating, or later: when it encodes the document again, or when
what the update was waiting for arrives. The module sees the update alone, not the document it
lands in, so each kind is refused whatever the document holds: a Yjs peer may hold anything.
Neither Yjs nor yrs writes any of them (but for XmlHook, which the two write differently):

- an item whose info byte has bit 0x10 set: yrs ignores the bit, Yjs takes it as part of the
  content ref and finds no reader for it;
- an integer above 2^53 - 1 (Number.MAX_SAFE_INTEGER) in any varint: lib0's readVarUint and
  readVarInt throw ("Integer out of Range") when the bytes before the last already exceed it, and
  return the others rounded (a rounded delete-set clock then makes Yjs throw on a zero length).
  The whole value is checked, so this also refuses the rounded ones, which yrs reads otherwise
  anyway (client ids kept to 53 bits);
- a count or a length of 2^32 or more (`_var_len`): yrs wraps it to 32 bits and reads on, Yjs
  uses it whole: `new Array(count)` throws (structs), or it reads past the end of the update.
  And a parent info of 2^32 or more, which yrs may read as 1 (a root's name follows; else an
  ID), like 2^32 + 1: Yjs then reads the rest of the item otherwise (and throws, mostly);
- a clock or a length in clocks of 2^32 or more (`CLOCK_OVERFLOW`, like all clocks beyond
  `MAX_CLOCK`: first clocks, the clocks of origins and parents, GC, Skip and Deleted lengths,
  deleted ranges): yrs wraps it to 32 bits, Yjs reads it whole, so the two take it for different
  items (Yjs waits forever for a clock yrs integrates at once);
- a type Yjs cannot read: 9 and 15 (Yjs has no reader for them) and XmlHook (5), which Yjs
  writes and reads with a name and yrs without one, so each side misreads what the other wrote
  from there on (Yjs throws, typically; yrs keeps a nameless hook and later sends it to every
  Yjs peer in sync step 2);
- a subdocument whose options are null or undefined: Yjs reads `opts.shouldLoad` and throws;
- an item or a deleted range of length 0 (`YJS_ZERO_LENGTH`: an empty string, a Deleted or
  Any content of length 0): yrs drops such items as it decodes them; Yjs throws on a Deleted one
  and on an empty range (as it encodes what it keeps aside), and keeps the others in its store,
  where they break the lookups of later updates (an item placed after one throws, and yrs panics
  on an empty item at a client's next clock);
- an origin, right origin or parent of the item's own client at the item's clock or later
  (`YJS_SELF_REFERENCE`): Yjs waits for the missing items of other clients only, and looks these
  up as if they were there: it throws (at once, or once the update's earlier clocks arrive);
- legacy JSON content (ref 2, `LEGACY_JSON`): Yjs reads count strings, yrs count + 1, so each
  misreads what follows (Yjs 13 writes it only for documents that hold some from Yjs 12);
- a delete set that lists a client twice or its ranges out of order or overlapping
  (`YJS_DELETE_ORDER`): Yjs keeps the ranges it cannot apply yet aside, encoded as differences
  from the previous range, and a range before the previous one's end comes back as another range:
  Yjs later deletes other items than yrs did, silently.

Some of these a fresh Yjs document applies without throwing (legacy JSON it can read, empty items,
self-references that wait, clocks beyond 2^31, delete sets out of order, integers lib0
rounds, an XmlHook as Yjs writes it): refused all the same, for the peers that hold the state in
which they throw or diverge. tests/unit/test_validate_differential.py checks the module against
Yjs in Node on tens of thousands of mutated real updates, with a predicate for each of these.

State vectors are read with the same varint readers, so integers beyond 2^53 are refused there
too (no client sends any). Errors are `ProtocolError` (close code 1002) with a short reason and
never any content.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, Final

from .errors import ProtocolError

# yrs decodes Any recursively: bound the nesting far below what overflows its stack (tens of
# thousands), and as deep as serde_json (inside yrs) already allows for Embed/Format JSON.
MAX_ANY_DEPTH: Final = 128
MAX_JSON_DEPTH: Final = 127  # serde_json refuses arrays and objects nested deeper

_U32: Final = 0xFFFFFFFF
# The last clock a client's structs may reach. yrs keeps clocks in a u32, but panics on some
# beyond 2^31 (a first clock above it with a deleted range below it: "index out of bounds").
MAX_CLOCK: Final = (1 << 31) - 1
_MAX_SAFE: Final = (1 << 53) - 1  # Number.MAX_SAFE_INTEGER: JS numbers are exact up to here
_NO_CLOCK: Final = -2  # no origin of the item's own client (never an item's clock - 1)
# Type refs yrs 0.28 (as built into pycrdt) decodes without a name; XmlElement (3) has one.
_NAMELESS_TYPE_REFS: Final = frozenset((0, 1, 2, 4, 6))
# Type refs yrs decodes but Yjs cannot: XmlHook (5, Yjs expects a name), 9 and 15 (no reader).
_YJS_UNREADABLE_TYPE_REFS: Final = frozenset((5, 9, 15))
_TYPE_REF_XML_ELEMENT: Final = 3
_UTF8_LEAD4: Final = bytes(range(0xF0, 0xF8))  # first bytes of 4-byte UTF-8 sequences
_TRUNCATED: Final = "truncated Yjs update"
INVALID_JSON: Final = "invalid JSON in Yjs update"
# The refusals of updates yrs would decode (everything else it decodes passes): see above.
TOO_DEEP: Final = "value nested too deeply in Yjs update"
ZERO_LENGTH_GC: Final = "zero-length GC struct in Yjs update"
CLOCK_OVERFLOW: Final = "clock beyond 2^31 in Yjs update"
DUPLICATE_CLIENT: Final = "client listed twice in Yjs update"
EMPTY_CLIENT: Final = "client without structs in Yjs update"
SQUASH_TOO_COSTLY: Final = "too many mergeable items in Yjs update"
YJS_UNREADABLE: Final = "content Yjs clients cannot read"
YJS_UNSAFE_INTEGER: Final = "integer beyond 2^53 in Yjs update"
YJS_TOO_LONG: Final = "count, length or parent info beyond 2^32 in Yjs update"
YJS_ZERO_LENGTH: Final = "zero-length item or deletion in Yjs update"
YJS_SELF_REFERENCE: Final = "item refers to itself or a later item of its client"
LEGACY_JSON: Final = "legacy JSON content in Yjs update"
YJS_DELETE_ORDER: Final = "delete set out of order in Yjs update"
# yrs merges a run of items (one client, consecutive clocks, each item's origin the previous one's
# last clock, same right origin, same content: String or Any) as it integrates them, and that
# costs memory quadratic in the run: each step allocates about (size of the run so far) × weight
# bytes, freed only at the end. 4000 one-element Any items (24 KB) take 370 MB; 16 000 take 6 GB
# and 18 s. Encoders merge such runs before they send them, so real updates have next to none;
# refuse updates whose runs would cost more than this.
SQUASH_BUDGET: Final = 16 * 1024 * 1024
_SQUASH_WEIGHT: Final = {4: 2, 8: 64}  # bytes per step per UTF-8 byte (String), value (Any)


def validate_update(data: bytes) -> bool:
    """Raise ProtocolError unless `data` is a v1 update whose every prefix yrs can trust and
    that Yjs peers can apply. Returns whether it holds a subdocument (collab/subdocs.py keeps
    their options)."""
    try:
        return _walk_update(data)
    except IndexError:
        raise ProtocolError(_TRUNCATED) from None
    except UnicodeDecodeError:
        raise ProtocolError("string in Yjs update is not UTF-8") from None


def validate_state_vector(data: bytes) -> None:
    """Raise ProtocolError unless `data` is exactly: varuint n, then n × (client, clock)."""
    try:
        end = len(data)
        n, pos = _var_len(data, 0)
        if n * 2 > end - pos:
            raise ProtocolError("state vector count beyond end of message")
        for _ in range(n):
            pos = _skip_var(data, pos)
            pos = _skip_var(data, pos)
    except IndexError:
        raise ProtocolError("truncated state vector") from None
    if pos != end:
        raise ProtocolError("trailing bytes after state vector")


def _walk_update(data: bytes) -> bool:
    # The hot path: every varint that is usually one byte is read inline, the rest out of line.
    end = len(data)
    subdocs = False
    b = data[0]
    if b < 0x80:
        clients, pos = b, 1
    else:
        clients, pos = _var_len(data, 0)
    # A client needs at least 3 bytes (struct count, client id, clock), the delete set 1.
    if clients * 3 + 1 > end - pos:
        raise ProtocolError("client count beyond end of update")
    seen: set[int] | None = set() if clients > 1 else None
    squash_cost = 0  # see SQUASH_BUDGET
    for _ in range(clients):
        b = data[pos]
        if b < 0x80:
            structs = b
            pos += 1
        else:
            structs, pos = _var_len(data, pos)
        if structs * 2 > end - pos:  # a struct is at least 2 bytes (GC: info + length)
            raise ProtocolError("struct count beyond end of update")
        if not structs:
            raise ProtocolError(EMPTY_CLIENT)
        client_at = pos  # decoded only when needed
        pos = _skip_var(data, pos)
        client_bytes = data[client_at:pos]
        if seen is not None:
            client = _var(data, client_at)[0]
            if client in seen:
                raise ProtocolError(DUPLICATE_CLIENT)
            seen.add(client)
        b = data[pos]  # clock of the first struct
        if b < 0x80:
            clock = b
            pos += 1
        else:
            clock, pos = _var_clock(data, pos)
        # The run of items yrs will squash into one (see SQUASH_BUDGET): its content kind (0: no
        # run), where the right origin of its last item starts (-1: none), its size so far.
        run_kind = 0
        run_right_at = run_right_end = -1
        run_size = 0
        for _ in range(structs):
            info = data[pos]
            pos += 1
            if info == 0 or info == 10:  # GC / Skip: a length
                b = data[pos]
                if b < 0x80:
                    length = b
                    pos += 1
                else:
                    length, pos = _var_clock(data, pos)
                if not length:
                    if not info:
                        raise ProtocolError(ZERO_LENGTH_GC)
                    continue  # an empty Skip: nothing between the items around it
                clock += length
                if clock > MAX_CLOCK:
                    raise ProtocolError(CLOCK_OVERFLOW)
                run_kind = 0
                continue
            ref = info & 0x0F
            if ref == 0 or ref >= 10:
                raise ProtocolError("unknown content type in Yjs update")
            if info & 0x10:
                # yrs ignores this bit, Yjs reads it as part of the content type (info & 0x1F)
                # and throws: we forward updates as received, so it would break every Yjs peer.
                raise ProtocolError(YJS_UNREADABLE)
            # An origin, right origin or parent of the item's own client must be an earlier
            # item: Yjs looks it up without checking that it is there, and throws.
            origin_clock = _NO_CLOCK
            right_at = right_end = -1
            if info & 0x80:  # origin, mostly of the same client (the previous keystroke)
                if data.startswith(client_bytes, pos):
                    at = start = pos + len(client_bytes)
                    origin_clock = shift = 0
                    while True:  # its clock, inline
                        b = data[at]
                        at += 1
                        origin_clock |= (b & 0x7F) << shift
                        if b < 0x80:
                            break
                        shift += 7
                    if origin_clock >= clock or at - start > 8:
                        _var_clock(data, start)  # refuses what is too long or too big
                        if origin_clock >= clock:
                            raise ProtocolError(YJS_SELF_REFERENCE)
                    pos = at
                else:
                    origin_clock, pos = _id(data, pos, client_bytes, client_at, clock)
            if info & 0x40:  # right origin: the same, but its clock is not needed
                right_at = pos
                if data.startswith(client_bytes, pos):
                    at = start = pos + len(client_bytes)
                    right_clock = shift = 0
                    while True:
                        b = data[at]
                        at += 1
                        right_clock |= (b & 0x7F) << shift
                        if b < 0x80:
                            break
                        shift += 7
                    if right_clock >= clock or at - start > 8:
                        _var_clock(data, start)
                        if right_clock >= clock:
                            raise ProtocolError(YJS_SELF_REFERENCE)
                    pos = right_end = at
                else:
                    pos = right_end = _id(data, pos, client_bytes, client_at, clock)[1]
            if not info & 0xC0:  # no origins: the parent is given
                b = data[pos]
                if b < 0x80:
                    pos += 1
                else:
                    b, pos = _var_len(data, pos)
                if b == 1:  # a root's name, else an item's ID
                    pos = _skip_str(data, pos, end)
                else:
                    pos = _id(data, pos, client_bytes, client_at, clock)[1]
                if info & 0x20:  # parent sub (map key)
                    pos = _skip_str(data, pos, end)
            # Then the content, and its length in clock units.
            if ref == 4:  # String: its UTF-16 length (what Yjs and yrs count in clocks)
                b = data[pos]
                if b < 0x80:
                    size = b
                    pos += 1
                else:
                    size, pos = _var_len(data, pos)
                stop = pos + size
                if stop > end:
                    raise ProtocolError("length beyond end of update")
                chunk = data[pos:stop]
                if chunk.isascii():
                    length = size
                else:  # one unit per code point, two for those beyond U+FFFF (4 UTF-8 bytes)
                    length = len(chunk.decode()) + size - len(chunk.translate(None, _UTF8_LEAD4))
                pos = stop
            elif ref == 1:  # Deleted: a length
                b = data[pos]
                if b < 0x80:
                    length = b
                    pos += 1
                else:
                    length, pos = _var_clock(data, pos)
            elif ref == 8:  # Any: count × Any
                b = data[pos]
                if b < 0x80:
                    length = b
                    pos += 1
                else:
                    length, pos = _var_len(data, pos)
                if length > end - pos:
                    raise ProtocolError("value count beyond end of update")
                for _ in range(length):
                    pos = _skip_any(data, pos, end)
                size = length
            elif ref == 5:  # Embed (JSON text)
                pos = _skip_json(data, pos, end)
                length = 1
            elif ref == 6:  # Format: key, JSON text
                pos = _skip_str(data, pos, end)
                pos = _skip_json(data, pos, end)
                length = 1
            elif ref == 7:  # Type
                type_ref = data[pos]  # yrs reads a single byte here, not a varint
                pos += 1
                if type_ref == _TYPE_REF_XML_ELEMENT:
                    pos = _skip_str(data, pos, end)
                elif type_ref not in _NAMELESS_TYPE_REFS:
                    if type_ref in _YJS_UNREADABLE_TYPE_REFS:
                        raise ProtocolError(YJS_UNREADABLE)
                    raise ProtocolError("unknown type in Yjs update")
                length = 1
            elif ref == 3:  # Binary
                pos = _skip_bytes(data, pos, end)
                length = 1
            elif ref == 2:  # JSON (legacy): Yjs reads count strings, yrs count + 1
                raise ProtocolError(LEGACY_JSON)
            else:  # ref == 9, Doc: guid, options
                pos = _skip_str(data, pos, end)
                tag = data[pos]
                if tag == 126 or tag == 127:  # null, undefined: Yjs reads `opts.shouldLoad`
                    raise ProtocolError(YJS_UNREADABLE)
                pos = _skip_any(data, pos, end)
                length = 1
                subdocs = True
            if not length:  # yrs drops it; Yjs keeps an item of no length, and throws on it
                raise ProtocolError(YJS_ZERO_LENGTH)
            if (
                ref == run_kind
                and origin_clock == clock - 1
                and _same_id(data, right_at, right_end, run_right_at, run_right_end)
            ):  # the item continues the run: right after its last item, same right origin
                run_size += size
                squash_cost += run_size * _SQUASH_WEIGHT[ref]
                if squash_cost > SQUASH_BUDGET:
                    raise ProtocolError(SQUASH_TOO_COSTLY)
            elif ref == 4 or ref == 8:  # String, Any: a run may start here
                run_kind = ref
                run_size = size
            else:
                run_kind = 0
            run_right_at = right_at
            run_right_end = right_end
            clock += length
            if clock > MAX_CLOCK:
                raise ProtocolError(CLOCK_OVERFLOW)
    # Delete set: n × (client, k × (clock, length)).
    b = data[pos]
    if b < 0x80:
        clients = b
        pos += 1
    else:
        clients, pos = _var_len(data, pos)
    if clients * 2 > end - pos:
        raise ProtocolError("delete set count beyond end of update")
    # Each client once, its ranges in order without overlaps: Yjs keeps the ranges it cannot
    # apply yet aside, encoded as differences from the previous one, which a range before the
    # previous one's end turns into another range (it later deletes other items than yrs).
    seen = set() if clients > 1 else None
    for _ in range(clients):
        if seen is not None:
            client = _var(data, pos)[0]
            if client in seen:
                raise ProtocolError(YJS_DELETE_ORDER)
            seen.add(client)
        pos = _skip_var(data, pos)
        ranges, pos = _var_len(data, pos)
        if ranges * 2 > end - pos:
            raise ProtocolError("delete set count beyond end of update")
        next_clock = 0
        for _ in range(ranges):
            b = data[pos]
            if b < 0x80:
                clock = b
                pos += 1
            else:
                clock, pos = _var_clock(data, pos)
            b = data[pos]
            if b < 0x80:
                length = b
                pos += 1
            else:
                length, pos = _var_clock(data, pos)
            if not length:  # Yjs keeps it aside and throws as it encodes it again
                raise ProtocolError(YJS_ZERO_LENGTH)
            if clock < next_clock:
                raise ProtocolError(YJS_DELETE_ORDER)
            next_clock = clock + length
            if next_clock > MAX_CLOCK:
                raise ProtocolError(CLOCK_OVERFLOW)
    # Bytes after the delete set: yrs and Yjs both ignore them, and so do we.
    return subdocs


def _id(data: bytes, pos: int, client_bytes: bytes, client_at: int, clock: int) -> tuple[int, int]:
    """Read an ID (client, clock) at `pos`: its clock if it is of the item's client (written
    `client_bytes` at `client_at`), refused at the item's clock `clock` or later; _NO_CLOCK if of
    another client. And where it ends."""
    if data.startswith(client_bytes, pos):  # the usual encoding of the same client
        at = pos + len(client_bytes)
        same = True
    else:  # another client, or the same one encoded otherwise
        at = pos
        while data[at] >= 0x80:
            at += 1
        at += 1
        if at - pos > 7:
            _skip_var(data, pos)  # at most 11 bytes, below 2^53
        # Different bytes are different values, unless one of the two is padded (ends in 0).
        same = (data[at - 1] == 0 or client_bytes[-1] == 0) and _var(data, pos)[0] == _var(
            data, client_at
        )[0]
    b = data[at]
    if b < 0x80:
        id_clock = b
        at += 1
    else:
        id_clock, at = _var_clock(data, at)
    if not same:
        return _NO_CLOCK, at
    if id_clock >= clock:
        raise ProtocolError(YJS_SELF_REFERENCE)
    return id_clock, at


def _same_id(data: bytes, a: int, a_end: int, b: int, b_end: int) -> bool:
    """Whether the IDs at data[a:a_end] and data[b:b_end] (a, b = -1: no ID) are the same."""
    if a < 0 or b < 0:
        return a == b
    x = data[a:a_end]
    y = data[b:b_end]
    if x == y:
        return True
    if 0 not in x and 0 not in y:  # no padding (a varint ending in 0): different values
        return False
    client_a, a = _var(data, a)
    client_b, b = _var(data, b)
    return client_a == client_b and _var(data, a)[0] == _var(data, b)[0]


# The varint readers. Real updates hold varints of up to 8 bytes (client ids: Yjs draws them from
# 32 bits, 5 bytes; pycrdt from 53, mostly 8 bytes), read inline; an 8-byte one is below 2^53 if
# its last byte is below 0x10. Longer ones go to `_long_var`, out of the hot path.


def _var_len(data: bytes, pos: int) -> tuple[int, int]:
    """A count or a length: yrs reads it into a u32 and wraps it, Yjs reads it whole and throws
    (allocating that many, or reading past the end), so from 2^32 on it is refused. Below, yrs's
    value is the varint's."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 70:
            raise ProtocolError("varint too long in Yjs update")
    if value > _U32:
        raise ProtocolError(YJS_TOO_LONG)
    return value, pos


def _var_clock(data: bytes, pos: int) -> tuple[int, int]:
    """A clock or a length of clocks, refused beyond MAX_CLOCK: yrs keeps them in a u32 and
    wraps them, Yjs reads them whole (and waits for clocks that yrs takes for others)."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 70:
            raise ProtocolError("varint too long in Yjs update")
    if value > MAX_CLOCK:
        raise ProtocolError(YJS_UNSAFE_INTEGER if value > _MAX_SAFE else CLOCK_OVERFLOW)
    return value, pos


def _var(data: bytes, pos: int) -> tuple[int, int]:
    """A varint of at most 11 bytes (as yrs reads them), whole."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 70:
            raise ProtocolError("varint too long in Yjs update")


def _skip_var(data: bytes, pos: int, signed: bool = False) -> int:
    """Skip a varint whose value does not matter (ids, clocks, lengths of ranges); `signed`: one
    written by lib0's writeVarInt (an Any integer)."""
    if data[pos] < 0x80:
        return pos + 1
    stop = pos + 7
    pos += 1
    while pos < stop:
        if data[pos] < 0x80:
            return pos + 1
        pos += 1
    if data[pos] < 0x10 and not signed:  # 8 bytes, below 2^53
        return pos + 1
    return _long_var(data, stop - 7, signed)


def _long_var(data: bytes, start: int, signed: bool = False) -> int:
    """Where a varint of 8 bytes or more ends. Refused: longer than 11 bytes (yrs reads no more),
    or above 2^53 - 1, which Yjs cannot read (see the module's docstring). In a signed varint
    (lib0's readVarInt) the first byte holds 6 bits of the value, then the sign."""
    value = 0
    pos = start
    stop = start + 11
    while True:
        if pos == stop:
            raise ProtocolError("varint too long in Yjs update")
        b = data[pos]
        value |= (b & 0x7F) << (7 * (pos - start))
        pos += 1
        if b < 0x80:
            break
    if signed:
        value = (value & 0x3F) | (value >> 7 << 6)
    if value > _MAX_SAFE:
        raise ProtocolError(YJS_UNSAFE_INTEGER)
    return pos


def _byte_span(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Where the bytes of a length-prefixed buffer at `pos` start and stop."""
    b = data[pos]
    if b < 0x80:
        length = b
        pos += 1
    else:
        length, pos = _var_len(data, pos)
    stop = pos + length
    if stop > end:
        raise ProtocolError("length beyond end of update")
    return pos, stop


def _skip_bytes(data: bytes, pos: int, end: int) -> int:
    return _byte_span(data, pos, end)[1]


def _skip_str(data: bytes, pos: int, end: int) -> int:
    pos, stop = _byte_span(data, pos, end)
    chunk = data[pos:stop]
    if not chunk.isascii():
        chunk.decode()  # UnicodeDecodeError: caught by validate_update
    return stop


def _skip_json(data: bytes, pos: int, end: int) -> int:
    """Skip a JSON text (Embed, Format), refused unless both JSON.parse (Yjs, which throws) and
    serde_json (yrs, which refuses the update) read it."""
    pos, stop = _byte_span(data, pos, end)
    text = data[pos:stop].decode()  # UnicodeDecodeError: caught by validate_update
    if text in _JSON_WORDS or (
        # what Yjs writes for most attributes: a string without escapes or control characters
        text[:1] == '"' == text[-1:]
        and len(text) > 1
        and '"' not in text[1:-1]
        and "\\" not in text
        and text.isprintable()
    ):
        return stop
    if (text.count("[") + text.count("{") > MAX_JSON_DEPTH) and _json_depth(text) > MAX_JSON_DEPTH:
        raise ProtocolError(INVALID_JSON)
    try:
        value = json.loads(
            text, parse_constant=_no_json_constant, parse_float=_json_float, parse_int=_json_int
        )
    except ValueError:  # json.JSONDecodeError, and ours below
        raise ProtocolError(INVALID_JSON) from None
    if "\\u" in text and not _no_lone_surrogate(value):
        raise ProtocolError(INVALID_JSON)  # Python and JS read "\ud800", serde_json does not
    return stop


_JSON_WORDS: Final = frozenset(("true", "false", "null"))
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKETS: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _json_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (outside its strings)."""
    outside = _JSON_STRING.sub("", text)
    steps = (_JSON_BRACKETS[ord(c)] for c in outside if ord(c) in _JSON_BRACKETS)
    return max(accumulate(steps), default=0)


def _no_json_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity: not JSON


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: JSON.parse gives Infinity, serde_json refuses it
        raise ValueError(text)
    return value


def _json_int(text: str) -> int:
    value = int(text)
    if len(text) > 300 and math.isinf(float(text)):  # what serde_json reads as a float
        raise ValueError(text)
    return value


def _no_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return value.isascii() or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_no_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return all(_no_lone_surrogate(k) and _no_lone_surrogate(v) for k, v in value.items())
    return True


def _skip_any(data: bytes, pos: int, end: int) -> int:
    """Skip one lib0 Any, iteratively: `stack` holds the unread counts of the open containers."""
    pending = 1  # values still to read in the innermost open container
    in_map = False  # whether each of those values is preceded by a key
    stack: list[tuple[int, bool]] = []
    while True:
        if not pending:
            if not stack:
                return pos
            pending, in_map = stack.pop()
            continue
        if in_map:
            pos = _skip_str(data, pos, end)
        pending -= 1
        tag = data[pos]
        pos += 1
        if tag == 119:  # string
            pos = _skip_str(data, pos, end)
        elif tag == 125:  # varint (signed)
            pos = _skip_var(data, pos, True)
        elif tag >= 120:  # 120 true, 121 false, 122 bigint64, 123 float64, 124 float32, 126, 127
            if tag > 127:
                raise ProtocolError("unknown value type in Yjs update")
            if tag == 123 or tag == 122:
                pos += 8
            elif tag == 124:
                pos += 4
            if pos > end:
                raise ProtocolError(_TRUNCATED)
        elif tag == 117 or tag == 118:  # array, object
            count, pos = _var_len(data, pos)
            if count > end - pos:
                raise ProtocolError("value count beyond end of update")
            if count:
                stack.append((pending, in_map))
                if len(stack) > MAX_ANY_DEPTH:
                    raise ProtocolError(TOO_DEEP)
                pending = count
                in_map = tag == 118
        elif tag == 116:  # Uint8Array
            pos = _skip_bytes(data, pos, end)
        else:
            raise ProtocolError("unknown value type in Yjs update")
