"""Who wrote what: a connection's author, and the Yjs client ids an update was written with.

Every item of a Yjs document carries the client id of the Doc that wrote it. The store keeps,
per document, which client id was whose (storage: `record_clients`, first writer wins), and that
survives compaction: a diff names the author of any item through its id (collab/changes.py).
The saver learns the client ids of the updates it commits (`Saver._learn_clients`), off the
room's hot path, and writes only the ones it has not seen for that document yet.

A connection's author is the user id its token or `on_authenticate` gave it (`author_of`);
the server side names itself: "api", "import", "cli".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def author_of(context: Mapping[str, Any]) -> str | None:
    """The author of a connection with this context: `context["user"]["id"]` (token_auth puts
    the token's subject there), else `context["user_id"]`, else None (anonymous)."""
    user = context.get("user")
    if isinstance(user, Mapping):
        found = user.get("id")
        if found is not None and found != "":
            return str(found)
    found = context.get("user_id")
    return None if found is None or found == "" else str(found)


def update_clients(data: bytes) -> list[int]:
    """The client ids whose structs a (validated) Yjs v1 update carries, in its order.

    An update from an editor carries one client, and reading it costs three varints; only an
    update with several (a sync step 2 with others' edits, a merge) has its structs walked."""
    clients, pos = read_var(data, 0)
    found = []
    for index in range(clients):
        structs, pos = read_var(data, pos)
        client, pos = read_var(data, pos)
        found.append(client)
        if index == clients - 1:
            break
        _, pos = read_var(data, pos)  # the first clock
        for _ in range(structs):
            pos = _skip_struct(data, pos)
    return found


# -- reading a v1 update (lib0 encoding; the update was validated by collab/validate.py) -----


def read_var(data: bytes, pos: int) -> tuple[int, int]:
    """The varuint at `pos` (lib0), and the position after it."""
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _skip_var(data: bytes, pos: int) -> int:
    while data[pos] & 0x80:
        pos += 1
    return pos + 1


def _skip_bytes(data: bytes, pos: int) -> int:  # a string or a buffer: length, then bytes
    length, pos = read_var(data, pos)
    return pos + length


def _skip_struct(data: bytes, pos: int) -> int:
    info = data[pos]
    pos += 1
    if info == 0 or info == 10:  # GC or Skip: a length
        return _skip_var(data, pos)
    if info & 0x80:  # origin
        pos = _skip_var(data, _skip_var(data, pos))
    if info & 0x40:  # right origin
        pos = _skip_var(data, _skip_var(data, pos))
    if not info & 0xC0:  # no origin: the parent, then maybe its key
        named, pos = read_var(data, pos)
        pos = _skip_bytes(data, pos) if named == 1 else _skip_var(data, _skip_var(data, pos))
        if info & 0x20:
            pos = _skip_bytes(data, pos)
    return _skip_content(data, info & 0x0F, pos)


def _skip_content(data: bytes, ref: int, pos: int) -> int:
    if ref == 1:  # Deleted: a length
        return _skip_var(data, pos)
    if ref in (3, 4, 5):  # Binary, String, Embed (JSON text)
        return _skip_bytes(data, pos)
    if ref == 6:  # Format: key, value (JSON text)
        return _skip_bytes(data, _skip_bytes(data, pos))
    if ref == 7:  # Type: its ref, and an XmlElement's name
        kind, pos = read_var(data, pos)
        return _skip_bytes(data, pos) if kind == 3 else pos
    if ref in (2, 8):  # JSON (count strings), Any (count values)
        count, pos = read_var(data, pos)
        for _ in range(count):
            pos = _skip_bytes(data, pos) if ref == 2 else _skip_any(data, pos)
        return pos
    if ref == 9:  # Doc: guid, options
        return _skip_any(data, _skip_bytes(data, pos))
    raise ValueError(f"content ref {ref} in a validated update")


_ANY_FIXED = {127: 0, 126: 0, 121: 0, 120: 0, 124: 4, 123: 8, 122: 8}


def _skip_any(data: bytes, pos: int) -> int:
    tag = data[pos]
    pos += 1
    fixed = _ANY_FIXED.get(tag)
    if fixed is not None:
        return pos + fixed
    if tag == 125:  # integer
        return _skip_var(data, pos)
    if tag in (119, 116):  # string, bytes
        return _skip_bytes(data, pos)
    if tag not in (117, 118):
        raise ValueError(f"Any tag {tag} in a validated update")
    count, pos = read_var(data, pos)
    for _ in range(count):
        if tag == 118:  # object: key, value
            pos = _skip_bytes(data, pos)
        pos = _skip_any(data, pos)
    return pos
