"""The REST API's JSON shapes as frozen dataclasses (docs/api.md names each field).

Each has `from_json`, which reads what the server sends and nothing else: a field the server
adds later is ignored, one it drops is a KeyError here rather than a silent None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SegmentType = Literal["equal", "insert", "delete"]
VersionKind = Literal["auto", "named", "restore"]


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    online: int
    versions: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentInfo:
        return cls(
            name=data["name"],
            created_at_ms=int(data["created_at_ms"]),
            updated_at_ms=int(data["updated_at_ms"]),
            size_bytes=int(data["size_bytes"]),
            online=int(data["online"]),
            versions=int(data["versions"]),
        )


@dataclass(frozen=True, slots=True)
class DocumentPage:
    documents: list[DocumentInfo]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentPage:
        return cls([DocumentInfo.from_json(d) for d in data["documents"]], data["next_cursor"])


@dataclass(frozen=True, slots=True)
class Content:
    """A document's (or a version's) roots: `content[root]` is a str (text; with
    format="delta" a list of delta ops), a dict (map), a list (array) or an XML string, and
    `types[root]` says which: "text", "map", "array" or "xml"."""

    name: str
    content: dict[str, Any]
    types: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Content:
        return cls(data["name"], data["content"], data["types"])


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    created_at_ms: int
    kind: VersionKind
    label: str | None
    authors: list[str]
    size_bytes: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Version:
        return cls(
            id=int(data["id"]),
            created_at_ms=int(data["created_at_ms"]),
            kind=data["kind"],
            label=data["label"],
            authors=list(data["authors"]),
            size_bytes=int(data["size_bytes"]),
        )


@dataclass(frozen=True, slots=True)
class VersionPage:
    versions: list[Version]  # newest first
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionPage:
        return cls([Version.from_json(v) for v in data["versions"]], data["next_cursor"])


@dataclass(frozen=True, slots=True)
class VersionContent:
    name: str
    version: Version
    content: dict[str, Any]
    types: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionContent:
        version = Version.from_json(data["version"])
        return cls(data["name"], version, data["content"], data["types"])


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of a text field in a diff: unchanged, inserted or deleted, by whom where known."""

    type: SegmentType
    text: str
    author: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(data["type"], data["text"], data.get("author"))


@dataclass(frozen=True, slots=True)
class Diff:
    name: str
    from_id: int
    to_id: int | None  # None: against the document as it is now
    fields: dict[str, list[Segment]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diff:
        fields = {f: [Segment.from_json(s) for s in segs] for f, segs in data["fields"].items()}
        return cls(data["name"], int(data["from"]), data["to"], fields)


@dataclass(frozen=True, slots=True)
class Restore:
    """A restore: `before` is the version taken of the document just before it (restore that
    one to undo), `after` the version of the restored state."""

    name: str
    before: Version
    after: Version

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Restore:
        before, after = Version.from_json(data["before"]), Version.from_json(data["after"])
        return cls(data["name"], before, after)
