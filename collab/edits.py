"""Changing a document as an editor would: set a text by the smallest edit, set map keys, make the
whole document look like an older state of itself (a restore).

Each function works on a pycrdt `Doc` in ONE transaction; the caller encodes what it did
(`doc.get_update(state_vector_before)`) and applies that update like any client's, so connected
clients receive a normal edit. Text is changed by a minimal diff, never replaced: characters
that stay keep their item ids, so other users' cursors (relative positions anchored to those
ids) and their concurrent edits survive.

yrs indexes a Text in UTF-8 bytes (pycrdt 0.14 creates every Doc with that offset kind), while
callers think in Python characters: the diff runs on `str` and each edit's position is turned
into a byte offset here, the one place that knows.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from .content import doc_of, kinds, root_value, typed_root

# Above this many characters in the changed middle of a line, the diff stays at line level.
MAX_CHAR_DIFF = 20_000
# A (start, stop, replacement) edit, in Python characters of the old text.
Edit = tuple[int, int, str]


def text_edits(old: str, new: str) -> list[Edit]:
    """The edits that turn `old` into `new`, small: common prefix and suffix first, then lines
    (difflib), then characters within each changed block of lines."""
    if old == new:
        return []
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    a, b = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    if not a or not b:
        return [(prefix, prefix + len(a), b)]
    a_lines, b_lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    a_starts = _starts(a_lines)
    b_starts = _starts(b_lines)
    edits: list[Edit] = []
    matcher = SequenceMatcher(None, a_lines, b_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start, stop = a_starts[i1], a_starts[i2]
        old_block, new_block = a[start:stop], b[b_starts[j1] : b_starts[j2]]
        if tag == "replace" and len(old_block) + len(new_block) <= MAX_CHAR_DIFF:
            edits.extend(
                (prefix + start + s, prefix + start + e, r)
                for s, e, r in _chars(old_block, new_block)
            )
        else:
            edits.append((prefix + start, prefix + stop, new_block))
    return edits


def _chars(old: str, new: str) -> list[Edit]:
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    return [(i1, i2, new[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _starts(lines: list[str]) -> list[int]:
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on slices compared in C
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def apply_edits(text: Text, old: str, edits: list[Edit]) -> None:
    """Apply `edits` (positions in characters of `old`, the text's current value) to `text`,
    last first so earlier positions stay valid, in the caller's transaction."""
    if not edits:
        return
    offsets = _byte_offsets(old, sorted({p for s, e, _ in edits for p in (s, e)}))
    for start, stop, replacement in sorted(edits, reverse=True):
        at, end = offsets[start], offsets[stop]
        if end > at:
            del text[at:end]
        if replacement:
            text.insert(at, replacement)


def _byte_offsets(text: str, positions: list[int]) -> dict[int, int]:
    offsets: dict[int, int] = {}
    last = nbytes = 0
    for position in positions:
        nbytes += len(text[last:position].encode("utf-8"))
        offsets[position] = nbytes
        last = position
    return offsets


def set_text(doc: Doc[Any], field: str, new_text: str) -> bool:
    """Make root text `field` read `new_text` by a minimal diff (the root is created when the
    document has none of that name). FieldTypeMismatch when it exists as another kind. Whether
    anything changed."""
    types = kinds(doc.get_update())
    text = typed_root(doc, types, field, "text") if field in types else doc.get(field, type=Text)
    old = str(text)
    edits = text_edits(old, new_text)
    with doc.transaction():
        apply_edits(text, old, edits)
    return bool(edits)


def set_map(doc: Doc[Any], root: str, mapping: dict[str, Any]) -> bool:
    """Set keys of root map `root` (created when absent) to JSON values; a None value deletes
    the key. Keys whose value is already equal are left alone. Whether anything changed."""
    types = kinds(doc.get_update())
    target = typed_root(doc, types, root, "map") if root in types else doc.get(root, type=Map)
    changed = False
    with doc.transaction():
        for key, value in mapping.items():
            if value is None:
                if key in target:
                    del target[key]
                    changed = True
            elif key not in target or _plain(target[key]) != _plain(value):
                target[key] = value
                changed = True
    return changed


def make_like(doc: Doc[Any], old_state: bytes) -> bool:
    """Make `doc` look like the document `old_state` (a v1 update) as one new edit: texts by a
    minimal diff, maps key by key, arrays and XML fragments replaced, roots the old state did
    not have emptied. Formatting of restored text is not carried over (its characters are).
    Whether anything changed."""
    old_doc = doc_of(old_state)
    old_kinds = kinds(old_state)
    now_kinds = kinds(doc.get_update())
    changed = False
    with doc.transaction():
        for root in sorted(set(old_kinds) | set(now_kinds)):
            kind = now_kinds.get(root) or old_kinds[root]
            old = None
            if root in old_kinds:
                if old_kinds[root] == kind:
                    old = old_doc.get(root, type=_CLASSES[kind])
                elif root_value(doc_of(old_state), root, old_kinds[root]) not in ("", [], {}):
                    continue  # another kind with content: a root cannot change type in Yjs
                # else: all its items were deleted then, which reads as an empty text
            changed |= _restore_root(doc, root, kind, old)
    return changed


_CLASSES: dict[str, type[Any]] = {"text": Text, "map": Map, "array": Array, "xml": XmlFragment}


def _restore_root(doc: Doc[Any], root: str, kind: str, old: Any) -> bool:
    now = doc.get(root, type=_CLASSES[kind])
    if kind == "text":
        before = str(now)
        edits = text_edits(before, str(old) if old is not None else "")
        apply_edits(now, before, edits)
        return bool(edits)
    if kind == "map":
        wanted = {k: old[k] for k in old} if old is not None else {}
        changed = False
        for key in list(now.keys()):
            if key not in wanted:
                del now[key]
                changed = True
        for key, value in wanted.items():
            if key not in now or _plain(now[key]) != _plain(value):
                now[key] = _prelim(value)
                changed = True
        return changed
    if old is None:
        wanted_items: list[Any] = []
    else:
        wanted_items = list(old.children) if kind == "xml" else list(old)
    current = list(now.children) if kind == "xml" else list(now)
    if [_plain(v) for v in current] == [_plain(v) for v in wanted_items]:
        return False
    if kind == "xml":
        del now.children[0 : len(now.children)]
        for child in wanted_items:
            _append_xml(now.children, child)
    else:
        del now[0 : len(now)]
        now.extend([_prelim(v) for v in wanted_items])
    return True


def _prelim(value: Any) -> Any:
    """A copy of a value read from another document, ready to insert (shared types become new
    prelim ones with the same content)."""
    if isinstance(value, Text):
        return Text(str(value))
    if isinstance(value, Doc):  # a subdocument: the same guid (its content is its own)
        return Doc(guid=value.guid)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, XmlFragment | XmlElement | XmlText):
        return str(value)  # XML nested in a map or array: kept as its text
    if isinstance(value, Map):
        return Map({k: _prelim(value[k]) for k in value.keys()})  # noqa: SIM118 (pycrdt Map)
    if isinstance(value, Array):
        return Array([_prelim(v) for v in value])
    return value


def _append_xml(children: Any, node: Any) -> None:
    """Append a copy of `node` (from another document) to an XML children view: elements with
    their attributes and children, texts with their formatting (y-prosemirror's marks)."""
    if isinstance(node, XmlText):
        text = children.append(XmlText())
        for insert, attrs in node.diff():
            if isinstance(insert, str):
                text.insert(len(text), insert, attrs)
            else:
                text.insert_embed(len(text), insert, attrs)
        return
    element = children.append(XmlElement(node.tag, _attributes(node)))
    for child in node.children:
        _append_xml(element.children, child)


def _attributes(node: XmlElement) -> dict[str, Any]:
    return {key: value for key, value in node.attributes}  # type: ignore[attr-defined]


def _plain(value: Any) -> Any:
    if isinstance(value, Doc):
        return ("doc", value.guid)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, XmlText | XmlElement | XmlFragment):
        return ("xml", str(value))
    if isinstance(value, Text):
        return ("text", str(value))
    if isinstance(value, Map | Array):
        return value.to_py()
    return value
