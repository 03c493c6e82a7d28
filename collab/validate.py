"""Structural validation of untrusted Yjs v1 updates and state vectors, before pycrdt sees them.

Why: the Rust decoder inside pycrdt (yrs 0.28) sizes its buffers from the length and count prefixes
it reads (`try_reserve`, `Vec::with_capacity`, `HashMap::with_capacity`) before it reads the items
they announce, so 16 bytes claiming a few hundred million clients make it allocate ~500 MB before it
notices the message is short. Its Any decoder is recursive as well: ~50 000 nested arrays (100 KB)
overflow the stack and kill the process with SIGSEGV. This module walks the whole update first, the
way yrs will, and checks every prefix against the bytes that actually follow, so the counts yrs
later trusts are counts of items that are really there.

The walk mirrors what yrs decodes, not what the Yjs documentation says, because it must never
refuse an update pycrdt would apply (a client whose update we refuse is disconnected, reconnects
and sends it again in its sync step 2). Where yrs is more lenient than Yjs, so is this module,
unless a Yjs peer would throw (see the last list below):

- varints: up to 11 bytes; clocks (in IDs and the delete set too) and the lengths of GC, Skip
  and Deleted structs and of deleted ranges wrap to 32 bits like yrs's u32 (Yjs reads them whole,
  and does not throw on them below 2^53);
- the content ref is `info & 0x0F` (yrs ignores bit 0x10; Yjs uses `info & 0x1F`);
- an item with JSON content (ref 2, legacy) is followed by count + 1 strings, not count;
- the type refs yrs knows are 0-6, 9 and 15; only XmlElement (3) carries a name, XmlHook (5)
  does not; weak links (7) and Move content (ref 11) are not compiled into pycrdt and are refused;
- Embed and Format values are JSON text, which yrs parses itself: only their UTF-8 is checked;
- bytes after the delete set are ignored (so does Yjs).

Five things are refused although yrs decodes them, for what yrs then does:

- an Any nested deeper than `MAX_ANY_DEPTH` (yrs recurses; ~50 000 levels crash the process);
- a GC struct of length 0: after an item of the same client it leaves the document unable to
  encode itself (`get_update` panics from then on: no client can sync the room any more);
- a client's clocks running past 2^32 - 1: yrs keeps clocks in a u32, and a struct that wraps
  around to clock 0 leaves the document in the same broken state. A string counts here with its
  UTF-8 length, an upper bound of its length in clock units (UTF-16), so for non-ASCII text the
  bound comes a little early; no real client gets within billions of it;
- runs of items yrs will merge, beyond `SQUASH_BUDGET` (see there): merging costs yrs memory
  quadratic in the length of the run;
- a client listed twice (yrs appends the second list to the first, which would let a run hide
  across lists). Yjs and yrs encoders write each client once.

And these, because the server forwards updates to Yjs peers as received and a stock Yjs peer
(yjs 13.6, lib0 0.2) throws while decoding them. Neither Yjs nor yrs writes any of them (but for
XmlHook, which the two write differently: see there):

- an item whose info byte has bit 0x10 set: yrs ignores the bit, Yjs takes it as part of the
  content ref and finds no reader for it;
- an integer above 2^53 - 1 (Number.MAX_SAFE_INTEGER) in any varint: lib0's readVarUint and
  readVarInt throw ("Integer out of Range") when the bytes before the last already exceed it, and
  return the others rounded (a rounded delete-set clock then makes Yjs throw on a zero length).
  The whole value is checked, so this also refuses the rounded ones, which yrs reads otherwise
  anyway (client ids kept to 53 bits, clocks wrapped to 32);
- a count or a length of 2^32 or more (`_var_len`): yrs wraps it to 32 bits and reads on, Yjs
  uses it whole: `new Array(count)` throws (structs), or it reads past the end of the update.
  And a parent info that only yrs reads as 1 (a root's name follows; else an ID), like 2^32 + 1:
  Yjs then reads the rest of the item otherwise (and throws, mostly);
- a type Yjs cannot read: 9 and 15 (Yjs has no reader for them) and XmlHook (5), which Yjs
  writes and reads with a name and yrs without one, so each side misreads what the other wrote
  from there on (Yjs throws, typically; yrs keeps a nameless hook and later sends it to every
  Yjs peer in sync step 2);
- a subdocument whose options are null or undefined: Yjs reads `opts.shouldLoad` and throws.

State vectors are read with the same varint readers, so integers beyond 2^53 are refused there
too (no client sends any). Errors are `ProtocolError` (close code 1002) with a short reason and
never any content.
"""

from __future__ import annotations

from typing import Final

from .errors import ProtocolError

# yrs decodes Any recursively: bound the nesting far below what overflows its stack (tens of
# thousands), and as deep as serde_json (inside yrs) already allows for Embed/Format JSON.
MAX_ANY_DEPTH: Final = 128

_U32: Final = 0xFFFFFFFF
_U64: Final = 0xFFFFFFFFFFFFFFFF
_I32_LIMIT: Final = 1 << 31
_MAX_SAFE: Final = (1 << 53) - 1  # Number.MAX_SAFE_INTEGER: JS numbers are exact up to here
# Type refs yrs 0.28 (as built into pycrdt) decodes without a name; XmlElement (3) has one.
_NAMELESS_TYPE_REFS: Final = frozenset((0, 1, 2, 4, 6))
# Type refs yrs decodes but Yjs cannot: XmlHook (5, Yjs expects a name), 9 and 15 (no reader).
_YJS_UNREADABLE_TYPE_REFS: Final = frozenset((5, 9, 15))
_TYPE_REF_XML_ELEMENT: Final = 3
_TRUNCATED: Final = "truncated Yjs update"
# The refusals of updates yrs would decode (everything else it decodes passes): see above.
TOO_DEEP: Final = "value nested too deeply in Yjs update"
ZERO_LENGTH_GC: Final = "zero-length GC struct in Yjs update"
CLOCK_OVERFLOW: Final = "clock beyond 2^32 in Yjs update"
DUPLICATE_CLIENT: Final = "client listed twice in Yjs update"
SQUASH_TOO_COSTLY: Final = "too many mergeable items in Yjs update"
YJS_UNREADABLE: Final = "content Yjs clients cannot read"
YJS_UNSAFE_INTEGER: Final = "integer beyond 2^53 in Yjs update"
YJS_TOO_LONG: Final = "count, length or parent info beyond 2^32 in Yjs update"
# yrs merges a run of items (one client, consecutive clocks, each item's origin the previous one's
# last clock, same right origin, same content: String, Any or legacy JSON) as it integrates them,
# and that costs memory quadratic in the run: each step allocates about (size of the run so far) ×
# weight bytes, freed only at the end. 4000 one-element Any items (24 KB) take 370 MB; 16 000
# take 6 GB and 18 s. Encoders merge such runs before they send them, so real updates have next
# to none; refuse updates whose runs would cost more than this.
SQUASH_BUDGET: Final = 16 * 1024 * 1024
_SQUASH_WEIGHT: Final = {4: 2, 8: 64, 2: 64}  # bytes per step per UTF-8 byte / value / string
_CLIENT_MASK: Final = (1 << 53) - 1


def validate_update(data: bytes) -> bool:
    """Raise ProtocolError unless `data` is a v1 update whose every prefix yrs can trust.
    Returns whether it holds a subdocument (collab/subdocs.py keeps their options)."""
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
        n, pos = _var_u32(data, 0)
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
        client_at = pos  # decoded only when needed
        client = -1
        pos = _skip_var(data, pos)
        client_bytes = data[client_at:pos]
        if seen is not None:
            client = _client_id(data, client_at)
            if client in seen:
                raise ProtocolError(DUPLICATE_CLIENT)
            seen.add(client)
        b = data[pos]  # clock of the first struct
        if b < 0x80:
            clock = b
            pos += 1
        else:
            clock, pos = _var_u32(data, pos)
        # The run of items yrs will squash into one (see SQUASH_BUDGET): its content kind (0: no
        # run), where the right origin of its last item starts (-1: none), its size so far.
        run_kind = 0
        run_right_at = -1
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
                    length, pos = _var_u32(data, pos)
                if not length:
                    if not info:
                        raise ProtocolError(ZERO_LENGTH_GC)
                    continue  # an empty Skip: nothing between the items around it
                clock += length
                if clock > _U32:
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
            origin_at = right_at = -1
            if info & 0x80:  # origin
                origin_at = pos
                pos = _skip_id(data, pos)
            if info & 0x40:  # right origin
                right_at = pos
                pos = _skip_id(data, pos)
            if not info & 0xC0:  # no origins: the parent is given
                b = data[pos]
                if b < 0x80:
                    pos += 1
                    parent_is_key = b == 1
                else:
                    parent_is_key, pos = _parent_info(data, pos)
                pos = _skip_str(data, pos, end) if parent_is_key else _skip_id(data, pos)
                if info & 0x20:  # parent sub (map key)
                    pos = _skip_str(data, pos, end)
            # Then the content, and its length in clock units.
            if ref == 4:  # String: its UTF-16 length, bounded here by its UTF-8 length
                b = data[pos]
                if b < 0x80:
                    length = b
                    pos += 1
                else:
                    length, pos = _var_len(data, pos)
                stop = pos + length
                if stop > end:
                    raise ProtocolError("length beyond end of update")
                chunk = data[pos:stop]
                if not chunk.isascii():
                    chunk.decode()
                pos = stop
            elif ref == 1:  # Deleted: a length
                b = data[pos]
                if b < 0x80:
                    length = b
                    pos += 1
                else:
                    length, pos = _var_u32(data, pos)
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
            elif ref == 5:  # Embed (JSON text)
                pos = _skip_str(data, pos, end)
                length = 1
            elif ref == 6:  # Format: key, JSON text
                pos = _skip_str(data, pos, end)
                pos = _skip_str(data, pos, end)
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
            elif ref == 2:  # JSON (legacy): yrs reads count + 1 strings
                length, pos = _var_len(data, pos)
                if length >= _I32_LIMIT or length >= end - pos:
                    raise ProtocolError("JSON count beyond end of update")
                length += 1
                for _ in range(length):
                    pos = _skip_str(data, pos, end)
            else:  # ref == 9, Doc: guid, options
                pos = _skip_str(data, pos, end)
                tag = data[pos]
                if tag == 126 or tag == 127:  # null, undefined: Yjs reads `opts.shouldLoad`
                    raise ProtocolError(YJS_UNREADABLE)
                pos = _skip_any(data, pos, end)
                length = 1
                subdocs = True
            if not length:
                continue  # yrs drops empty items as it decodes them: they are not there
            if ref == run_kind and origin_at >= 0:
                # Does this item continue the run? Its origin must be the run's last clock, and
                # its right origin the same as the run's last item's.
                at = origin_at + len(client_bytes)
                if data[origin_at:at] == client_bytes:  # the usual encoding of the same client
                    same_client = True
                else:  # another client, or the same one encoded differently
                    if client < 0:
                        client = _client_id(data, client_at)
                    same_client = _client_id(data, origin_at) == client
                    at = _skip_var(data, origin_at)
                b = data[at]
                origin_clock = b if b < 0x80 else _var_u32(data, at)[0]
                if (
                    same_client
                    and origin_clock == clock - 1
                    and _same_id(data, right_at, run_right_at)
                ):
                    run_size += length
                    squash_cost += run_size * _SQUASH_WEIGHT[ref]
                    if squash_cost > SQUASH_BUDGET:
                        raise ProtocolError(SQUASH_TOO_COSTLY)
                else:
                    run_size = length
            else:
                run_size = length
            run_kind = ref if ref in _SQUASH_WEIGHT else 0
            run_right_at = right_at
            clock += length
            if clock > _U32:
                raise ProtocolError(CLOCK_OVERFLOW)
    # Delete set: n × (client, k × (clock, length)).
    clients, pos = _var_len(data, pos)
    if clients * 2 > end - pos:
        raise ProtocolError("delete set count beyond end of update")
    for _ in range(clients):
        pos = _skip_var(data, pos)
        ranges, pos = _var_len(data, pos)
        if ranges * 2 > end - pos:
            raise ProtocolError("delete set count beyond end of update")
        for _ in range(ranges):
            pos = _skip_var(data, pos)
            pos = _skip_var(data, pos)
    # Bytes after the delete set: yrs and Yjs both ignore them, and so do we.
    return subdocs


def _client_id(data: bytes, pos: int) -> int:
    """A client id as yrs keeps it: the varint wrapped to 64 bits, then to 53."""
    return _var_u64(data, pos)[0] & _CLIENT_MASK


def _same_id(data: bytes, a: int, b: int) -> bool:
    """Whether the IDs encoded at `a` and `b` (-1: no ID) are the same for yrs."""
    if a < 0 or b < 0:
        return a == b
    if _client_id(data, a) != _client_id(data, b):
        return False
    return _var_u32(data, _skip_var(data, a))[0] == _var_u32(data, _skip_var(data, b))[0]


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
        shift += 7
        if b < 0x80:
            if value > _U32:
                raise ProtocolError(YJS_TOO_LONG)
            return value, pos
        if shift > 70:
            raise ProtocolError("varint too long in Yjs update")


def _parent_info(data: bytes, pos: int) -> tuple[bool, int]:
    """Whether a parent info of several bytes is 1 (a root's name follows, else an ID), refused
    when it is 1 only to yrs (which wraps it): 2^32 + 1 is 1 to yrs and not to Yjs, and the two
    would read the rest of the item differently."""
    start = pos
    value, pos = _var_u32(data, pos)
    if value == 1:
        whole = 0
        for i in range(start, pos):
            whole |= (data[i] & 0x7F) << (7 * (i - start))
        if whole != 1:
            raise ProtocolError(YJS_TOO_LONG)
    return value == 1, pos


def _var_u32(data: bytes, pos: int) -> tuple[int, int]:
    """A varint as yrs reads it into a u32: at most 11 bytes, bits above 32 wrapped away (and
    refused above 2^53 - 1, by `_long_var`). For clocks and lengths of clocks."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (shift & 31)
        shift += 7
        if b < 0x80:
            return value & _U32, pos
        if shift == 49:  # 7 bytes and more to follow
            return _long_u32(data, pos - 7)


def _long_u32(data: bytes, start: int) -> tuple[int, int]:
    """`_var_u32` of a varint of 8 bytes or more."""
    end = _long_var(data, start)
    value = 0
    for i in range(start, end):
        value |= (data[i] & 0x7F) << ((7 * (i - start)) & 31)
    return value & _U32, end


def _var_u64(data: bytes, pos: int) -> tuple[int, int]:
    """A varint as yrs reads it into a u64/usize: at most 11 bytes, wrapped to 64 bits."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (shift & 63)
        shift += 7
        if b < 0x80:
            return value & _U64, pos
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


def _skip_id(data: bytes, pos: int) -> int:
    """Skip an ID: client varint, clock varint."""
    near = pos + 6
    while data[pos] >= 0x80:
        if pos == near:  # 7 bytes and more to follow: 8 bytes below 2^53 are fine
            pos = pos + 2 if data[pos + 1] < 0x10 else _long_var(data, near - 6)
            break
        pos += 1
    else:
        pos += 1
    near = pos + 6
    while data[pos] >= 0x80:
        if pos == near:
            return pos + 2 if data[pos + 1] < 0x10 else _long_var(data, near - 6)
        pos += 1
    return pos + 1


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
