"""Subdocuments keep the options their client wrote, through everything yrs re-encodes.

A Yjs client writes a subdocument (`map.set(key, new Y.Doc({guid, meta, autoLoad, gc}))`: a
ContentDoc item, content ref 9) as its guid and an Any of options: `gc: false`, `autoLoad:
true` and `meta` when they are set (yjs 13.6, ContentDoc.js). A peer that reads it makes its
Y.Doc of them: `new Doc({guid, ...opts, shouldLoad: opts.shouldLoad || opts.autoLoad})`.

yrs (pycrdt 0.14.13 bundles yrs 0.28) decodes the options into its own `Options`, which has no
`meta`, and writes them back as {gc, autoLoad, shouldLoad, encoding}, whatever they were. Every
update the server encodes through yrs is written that way: a joiner's sync step 2
(`doc.get_update(sv)`), `merge_updates`, what a client's sync step 2 or another process's update
changed (an observer's `event.update`), the document's state for a snapshot, a fold of the log.
So only the clients online when a subdocument was made got its `meta`; a client joining later,
after a restart or after a compaction got the subdocument without it. (gc and autoLoad survive
yrs, and yrs's shouldLoad reads the same to Yjs; `meta`, and anything else a client writes
there, does not.)

The server has no use for the options itself. So each room keeps them as their client encoded
them, by the item's ID (client, clock: a ContentDoc item has length 1 and is never split or
merged), with the guid, in a `SubdocOptions`, and puts them back into every update yrs encodes
for it (`reinstate`: where yrs wrote the same guid at that ID, its Any is replaced by the bytes
the client sent). The room learns them
- from every client update that holds one, which the validator tells as it walks the update
  anyway: this costs nothing for updates without any, and it learns them before yrs integrates
  them, also when yrs holds an update back for a missing dependency;
- from another process's update (cluster mode) when applying it added a subdocument: yrs
  tells a subdocs observer, which costs nothing measurable on transactions that add none (the
  observer lives as long as the room, which drops it when it unloads);
- at load, from the stored snapshot and log, when restoring them added a subdocument.
Snapshots keep them too: a live compaction encodes the room's document through
`Room.encode_update`, a replay of the log goes through `keep_options` (which storage/ is handed
as a callable: storage never imports collab). What the store holds therefore always carries the
client's bytes, and a restart finds them there.

Documents without subdocuments pay nothing: the map stays empty and no update is walked again.
With subdocuments, an update that holds one, and every update yrs encodes for the room, is
walked once more in Python (a joiner's sync step 2: about a microsecond per struct).

Not kept: a subdocument another process sent us in an update whose dependency came later, in an
update without the subdocument (our observer then fires for the later one; real peers send in
causal order, and a resync carries the subdocument itself), and subdocuments that come after
legacy JSON content (ref 2) in an update, which stops the walk (yrs cannot read back what it
writes for that content anyway). There, yrs's options stand, as they did before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anyio
from pycrdt import Doc, Subscription

log = logging.getLogger(__name__)

# A subdocument item of an update: (client, clock, guid, options), the guid and the options as
# encoded (the guid with its length prefix).
FoundSubdoc = tuple[int, int, bytes, bytes]

# What `learn_stored` walks on the event loop (a few milliseconds at most).
_ON_LOOP_BYTES = 256 * 1024
_REF_JSON = 2
_REF_DOC = 9
_TYPE_REF_XML_ELEMENT = 3


class SubdocOptions:
    """The subdocuments' options of one document, as their clients encoded them."""

    __slots__ = ("added", "known")

    def __init__(self) -> None:
        # (client, clock) -> (guid, options), both as encoded; the first seen wins, as in yrs,
        # which keeps the first item it integrates under an ID.
        self.known: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.added = False  # a watched document added a subdocument (see `watch`)

    def learn(self, found: Iterable[FoundSubdoc]) -> None:
        for client, clock, guid, options in found:
            self.known.setdefault((client, clock), (guid, options))

    def learn_from(self, update: bytes) -> None:
        """Learn the subdocuments of an update the server trusts (stored, or from a peer)."""
        try:
            self.learn(
                (client, clock, update[guid_at:options_at], update[options_at:end])
                for client, clock, guid_at, options_at, end in subdoc_items(update)
            )
        except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
            log.warning("subdocument options: an update of %d bytes not understood", len(update))

    async def learn_stored(self, updates: Sequence[bytes]) -> None:
        """`learn_from` each of the updates, in order; in a worker thread when they are many
        (a load: the snapshot and the log)."""
        if len(updates) <= 64 and sum(len(update) for update in updates) <= _ON_LOOP_BYTES:
            self._learn_all(updates)
        else:
            await anyio.to_thread.run_sync(self._learn_all, updates)

    def _learn_all(self, updates: Sequence[bytes]) -> None:
        for update in updates:
            self.learn_from(update)

    def reinstate(self, update: bytes) -> bytes:
        """`update` (encoded by yrs) with the known subdocuments' options as their client wrote
        them; itself when there are none."""
        if not self.known:
            return update
        parts: list[bytes] = []
        last = 0
        try:
            for client, clock, guid_at, options_at, end in subdoc_items(update):
                known = self.known.get((client, clock))
                if known is None or known[0] != update[guid_at:options_at]:
                    continue  # not a client's (a hook's, made in pycrdt), or another item
                if known[1] != update[options_at:end]:
                    parts.append(update[last:options_at])
                    parts.append(known[1])
                    last = end
        except (IndexError, ValueError):
            log.warning("subdocument options: an update of %d bytes not understood", len(update))
            return update
        if not parts:
            return update
        parts.append(update[last:])
        return b"".join(parts)

    def watch(self, doc: Doc[Any]) -> Subscription:
        """Set `added` whenever a transaction on `doc` adds a subdocument. The subscription
        keeps `doc` alive (pycrdt's callback holds it): unobserve it when done."""
        return doc.observe_subdocs(self._on_subdocs)

    def learn_if_added(self, update: bytes) -> None:
        """`update` was just applied to the watched document: learn its subdocuments if that
        (or an update before it) added one."""
        if self.added:
            self.added = False
            self.learn_from(update)

    def _on_subdocs(self, event: Any) -> None:
        if event.added:
            self.added = True


def keep_options(inputs: Sequence[bytes], folded: bytes) -> bytes:
    """`folded` (yrs's encoding of the document `inputs` make) with the options the subdocuments
    have in `inputs`. Given to storage's fold and compaction (storage.Refold)."""
    options = SubdocOptions()
    options._learn_all(inputs)
    return options.reinstate(folded)


# -- reading v1 updates ----------------------------------------------------------------------
# Only updates the server trusts come here: validated client updates, what yrs encoded, the
# store's rows. They are walked as yrs reads them (see collab/validate.py), without its checks.


def subdoc_items(update: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(client, clock, where the guid starts, where the options start, where they end) of each
    subdocument item in a v1 update, in order."""
    data = update
    clients, pos = _uint(data, 0)
    for _ in range(clients):
        structs, pos = _uint(data, pos)
        client, pos = _uint(data, pos)
        clock, pos = _uint(data, pos)
        for _ in range(structs):
            info = data[pos]
            pos += 1
            if info == 0 or info == 10:  # GC, Skip: a length
                length, pos = _uint(data, pos)
                clock += length
                continue
            if info & 0x80:  # origin
                pos = _skip_id(data, pos)
            if info & 0x40:  # right origin
                pos = _skip_id(data, pos)
            if not info & 0xC0:  # the parent: a root's name, or an ID
                parent_info, pos = _uint(data, pos)
                pos = _skip_buf(data, pos) if parent_info == 1 else _skip_id(data, pos)
                if info & 0x20:  # parent sub (map key)
                    pos = _skip_buf(data, pos)
            ref = info & 0x0F
            if ref == _REF_DOC:
                guid_at = pos
                options_at = pos = _skip_buf(data, pos)
                pos = _skip_any(data, pos)
                yield client, clock, guid_at, options_at, pos
                length = 1
            elif ref == _REF_JSON:
                # Legacy JSON: yrs reads count + 1 strings and writes count, so its length here
                # depends on who wrote it. Nothing after it can be placed.
                log.debug("subdocument options: an update with JSON content, not walked on")
                return
            else:
                length, pos = _skip_content(data, pos, ref)
            clock += length


def _skip_content(data: bytes, pos: int, ref: int) -> tuple[int, int]:
    """Skip an item's content of type `ref` (not a subdocument, not JSON): (its length in clock
    units, where it ends)."""
    length = 1
    if ref == 4:  # String: its length in UTF-16 code units
        start, pos = _buf(data, pos)
        chunk = data[start:pos]
        length = len(chunk) if chunk.isascii() else len(chunk.decode().encode("utf-16-le")) // 2
    elif ref == 8:  # Any: count × Any
        length, pos = _uint(data, pos)
        for _ in range(length):
            pos = _skip_any(data, pos)
    elif ref == 1:  # Deleted: a length
        length, pos = _uint(data, pos)
    elif ref == 7:  # Type: one byte (yrs), XmlElement's name
        pos += 1
        if data[pos - 1] == _TYPE_REF_XML_ELEMENT:
            pos = _skip_buf(data, pos)
    elif ref == 3 or ref == 5:  # Binary; Embed (JSON text)
        pos = _skip_buf(data, pos)
    elif ref == 6:  # Format: key, JSON text
        pos = _skip_buf(data, _skip_buf(data, pos))
    else:
        raise ValueError(f"unknown content type {ref}")
    return length, pos


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = data[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + 1
        shift += 7


def _skip_var(data: bytes, pos: int) -> int:
    while data[pos] >= 0x80:
        pos += 1
    return pos + 1


def _skip_id(data: bytes, pos: int) -> int:
    return _skip_var(data, _skip_var(data, pos))


def _buf(data: bytes, pos: int) -> tuple[int, int]:
    """Where a length-prefixed buffer's bytes start and stop."""
    length, pos = _uint(data, pos)
    return pos, pos + length


def _skip_buf(data: bytes, pos: int) -> int:
    length, pos = _uint(data, pos)
    return pos + length


def _skip_any(data: bytes, pos: int) -> int:
    """Skip one lib0 Any, iteratively: `stack` holds the unread counts of the open containers
    and whether their values have keys (objects)."""
    pending = 1  # values left in the innermost open container
    keyed = False
    stack: list[tuple[int, bool]] = []
    while True:
        if not pending:
            if not stack:
                return pos
            pending, keyed = stack.pop()
            continue
        pending -= 1
        if keyed:
            pos = _skip_buf(data, pos)
        tag = data[pos]
        pos += 1
        if tag == 119 or tag == 116:  # string, Uint8Array
            pos = _skip_buf(data, pos)
        elif tag == 125:  # integer (signed varint)
            pos = _skip_var(data, pos)
        elif tag == 123 or tag == 122:  # float64, bigint64
            pos += 8
        elif tag == 124:  # float32
            pos += 4
        elif tag == 117 or tag == 118:  # array, object
            count, pos = _uint(data, pos)
            if count:
                stack.append((pending, keyed))
                pending, keyed = count, tag == 118
        elif tag < 120:
            raise ValueError(f"unknown Any type {tag}")
        # 120 true, 121 false, 126 null, 127 undefined: the tag alone
