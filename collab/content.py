"""A document's content as JSON: every root type, read as what its items say it is.

`content(update)` -> `{"content": {root: value}, "types": {root: kind}}`, kind one of "text",
"map", "array", "xml" (collab/ystructs.py `root_kinds`: a v1 update declares no root types, so
the kind is read from the root's items, never guessed by asking pycrdt for each type in turn).
Values are what Yjs's own `toJSON()` gives: a Text as its string (or, with `format="delta"`, its
delta `[{"insert": ..., "attributes": {...}}]`), a Map or an Array as JSON, an XmlFragment as its
XML string. tests/interop/test_content.py checks this against Yjs on documents Yjs built.

Numbers: yrs hands every JSON number back as a float; integral ones within 2^53 are given back as
integers, as JavaScript prints them.
"""

from __future__ import annotations

from typing import Any, Literal

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from .errors import FieldNotFound, FieldTypeMismatch
from .steps import Steps, finish
from .ystructs import update_kinds_steps

Format = Literal["json", "delta"]
Kind = Literal["text", "map", "array", "xml"]
_TYPES: dict[str, type[Any]] = {
    "text": Text,
    "map": Map,
    "array": Array,
    "xml": XmlFragment,
}
_MAX_SAFE = (1 << 53) - 1


def kinds(update: bytes, doc: Doc[Any] | None = None) -> dict[str, str]:
    """Each root of the document (a v1 update; `doc`: the same, loaded) and its kind, sorted
    by name."""
    return finish(kinds_steps(update, doc))


def kinds_steps(update: bytes, doc: Doc[Any] | None = None) -> Steps[dict[str, str]]:
    """`kinds` a step at a time (collab/ystructs.py `update_kinds_steps`)."""
    roots = (doc if doc is not None else doc_of(update)).keys()
    found = yield from update_kinds_steps(update, roots)
    return {name: found[name] for name in sorted(found)}


def roots_steps(update: bytes) -> Steps[tuple[Doc[Any], dict[str, str]]]:
    """The document `update` makes, loaded, and its roots' kinds (`kinds`), a step at a time:
    what every reader of a whole document starts from."""
    doc = doc_of(update)
    types = yield from kinds_steps(update, doc)
    return doc, types


def texts(doc: Doc[Any], types: dict[str, str]) -> dict[str, str]:
    """The string of every root Y.Text of `doc` (`types`: its roots' kinds)."""
    return {name: str(doc.get(name, type=Text)) for name, kind in types.items() if kind == "text"}


def content(update: bytes, format: Format = "json") -> dict[str, Any]:
    """`{"content": {root: value}, "types": {root: kind}}` for every root of the document."""
    return finish(content_steps(update, format))


def content_steps(update: bytes, format: Format = "json") -> Steps[dict[str, Any]]:
    """`content` a step at a time (collab/steps.py)."""
    doc, types = yield from roots_steps(update)
    return {
        "content": {name: root_value(doc, name, kind, format) for name, kind in types.items()},
        "types": types,
    }


def text(update: bytes, field: str) -> str:
    """Root `field` as a string: FieldNotFound when there is no such root, FieldTypeMismatch
    when it is not a text."""
    return finish(text_steps(update, field))


def text_steps(update: bytes, field: str) -> Steps[str]:
    """`text` a step at a time (collab/steps.py)."""
    doc, types = yield from roots_steps(update)
    return str(typed_root(doc, types, field, "text"))


def typed_root(doc: Doc[Any], types: dict[str, str], field: str, want: str) -> Any:
    """Root `field` of `doc` as the pycrdt type of kind `want`, checked against `types`."""
    kind = types.get(field)
    if kind is None:
        raise FieldNotFound(f"no field {field!r}")
    if kind != want:
        raise FieldTypeMismatch(f"field {field!r} is a {kind}, not a {want}")
    return doc.get(field, type=_TYPES[kind])


def root_value(doc: Doc[Any], name: str, kind: str, format: Format = "json") -> Any:
    """Root `name` of `doc`, of kind `kind`, as Yjs's toJSON() gives it (a delta for a text
    with `format="delta"`)."""
    root = doc.get(name, type=_TYPES[kind])
    if kind == "text":
        return delta(root) if format == "delta" else str(root)
    if kind == "xml":
        return xml(root)
    return to_json(root)


def to_json(value: Any) -> Any:
    """A value read from a document as Yjs's toJSON() gives it: nested texts as strings, XML
    as its string, a subdocument as `{"guid": ...}`."""
    if isinstance(value, Map):
        return {key: to_json(value[key]) for key in value.keys()}  # noqa: SIM118 (pycrdt Map)
    if isinstance(value, Array):
        return [to_json(v) for v in value]
    return _jsonable(value)


def xml(node: XmlFragment | XmlElement | XmlText) -> str:
    """An XML node as Yjs's toString() writes it: attributes sorted by name, a text's formatting
    as nested elements (y-prosemirror's marks: `<bold>`, `<link href="...">`), nothing escaped."""
    if isinstance(node, XmlText):
        return "".join(_xml_run(insert, attrs) for insert, attrs in node.diff())
    inner = "".join(xml(child) for child in node.children)
    if isinstance(node, XmlElement):
        tag = (node.tag or "").lower()
        attrs = "".join(f' {k}="{_js_str(v)}"' for k, v in sorted(_attributes(node)))
        return f"<{tag}{attrs}>{inner}</{tag}>"
    return inner


def _attributes(node: XmlElement) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in node.attributes]  # type: ignore[attr-defined]


def _xml_run(insert: Any, attrs: dict[str, Any] | None) -> str:
    marks = sorted((attrs or {}).items())
    opening = "".join(
        f"<{mark}"
        + "".join(
            f' {k}="{_js_str(v)}"'
            for k, v in sorted(value.items() if isinstance(value, dict) else ())
        )
        + ">"
        for mark, value in marks
    )
    closing = "".join(f"</{mark}>" for mark, _ in reversed(marks))
    return f"{opening}{_js_str(_jsonable(insert))}{closing}"


def _js_str(value: Any) -> str:
    """A value as JavaScript's string concatenation writes it."""
    value = plain(value)
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(_js_str(v) for v in value)
    return "[object Object]"


def delta(text: Text) -> list[dict[str, Any]]:
    """A Text as a Yjs delta: `[{"insert": str | embed, "attributes"?: {...}}]`."""
    ops: list[dict[str, Any]] = []
    for insert, attrs in text.diff():
        op: dict[str, Any] = {"insert": _jsonable(insert)}
        if attrs:
            op["attributes"] = plain(attrs)
        ops.append(op)
    return ops


def plain(value: Any) -> Any:
    """JSON data as JavaScript prints it: integral floats as integers; bytes (a Uint8Array) as
    a list of integers."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= _MAX_SAFE else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return list(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)  # nothing else comes out of yrs's Any, but never an unserialisable value


def _jsonable(value: Any) -> Any:
    if isinstance(value, XmlText | XmlFragment | XmlElement):
        return xml(value)
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map | Array):
        return to_json(value)
    if isinstance(value, Doc):
        return {"guid": value.guid}
    return plain(value)


def doc_of(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc
