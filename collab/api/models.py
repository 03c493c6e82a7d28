"""The JSON shapes of the API, as pydantic v2 models: what the routes answer (they serialise
through these) and what the OpenAPI schema describes (its components are these models' JSON
schemas), so the two cannot differ. The SDK and the editor's history panel rely on these shapes
exactly (docs/api.md)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JsonValue = Any  # any JSON value (Map keys, Array items)
Format = Literal["json", "delta"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


SAFE_INTEGER = 2**53 - 1  # what a JavaScript number (a Yjs client's) holds exactly


def storable(value: Any, where: str) -> None:
    """Raise ValueError unless `value` is JSON a Yjs document can hold and every client read:
    integers within +-(2**53 - 1), finite numbers, strings that are valid Unicode (no lone
    surrogates, which JSON's \\u escapes can carry)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > SAFE_INTEGER:
            raise ValueError(f"{where}: integer outside +-(2**53 - 1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: not a finite number")
    elif isinstance(value, str):
        _unicode(value, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            storable(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode(key, where)
            storable(item, f"{where}.{key}")


def _unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: a lone surrogate is not text") from None


# -- errors ------------------------------------------------------------------------------------


class ErrorDetail(Model):
    code: str = Field(description="stable error code: not_found, unauthorized, forbidden, ...")
    message: str = Field(description="short plain text; never a token, SQL or content")
    status: int = Field(description="the HTTP status, repeated")


class Error(Model):
    """Every error the API answers with (4xx and 5xx)."""

    error: ErrorDetail


# -- documents ---------------------------------------------------------------------------------


class DocumentSummary(Model):
    name: str
    created_at_ms: int
    updated_at_ms: int
    size_bytes: int
    online: int = Field(description="connections to it on this server now")
    versions: int = Field(description="how many versions it has")


class DocumentPage(Model):
    documents: list[DocumentSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class ListQuery(Model):
    prefix: str = Field("", description="only names starting with this")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


RootType = Literal["text", "map", "array", "xml"]


class Content(Model):
    name: str
    content: dict[str, JsonValue] = Field(
        description="every root type: Text as a string (or a Yjs delta with ?format=delta), "
        "Map as an object, Array as a list, XmlFragment as an XML string"
    )
    types: dict[str, RootType] = Field(description="each root's type")


class ContentQuery(Model):
    format: Format = Field("json", description="delta: texts as Yjs deltas")


class UpdateQuery(Model):
    sv: str | None = Field(
        None, description="a state vector (standard or url-safe base64): only what it lacks"
    )


class Applied(Model):
    name: str
    applied: Literal[True]


class Patch(Model):
    """Set text fields (by a minimal diff: cursors and concurrent edits survive) and map keys."""

    text: dict[str, str] | None = Field(None, description="field -> its new full text")
    map: dict[str, dict[str, JsonValue]] | None = Field(None, description="root -> keys to set")

    @model_validator(mode="after")
    def _storable(self) -> Patch:
        storable(self.text or {}, "text")
        storable(self.map or {}, "map")
        return self


# -- versions ----------------------------------------------------------------------------------


class Version(Model):
    id: int
    created_at_ms: int
    kind: Literal["auto", "named", "restore"]
    label: str | None
    authors: list[str] = Field(description="who edited since the previous version")
    size_bytes: int


class VersionPage(Model):
    versions: list[Version] = Field(description="newest first")
    next_cursor: str | None


class VersionsQuery(Model):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = None


class NewVersion(Model):
    label: str | None = Field(None, max_length=200)

    @field_validator("label")
    @classmethod
    def _text(cls, label: str | None) -> str | None:
        if label is not None:
            _unicode(label, "label")
        return label


class VersionContent(Model):
    name: str
    version: Version
    content: dict[str, JsonValue]
    types: dict[str, RootType]


class DiffQuery(Model):
    to: int | None = Field(
        None, ge=1, le=SAFE_INTEGER, description="another version's id; absent: the document now"
    )


class Segment(Model):
    type: Literal["equal", "insert", "delete"]
    text: str
    author: str | None


class Diff(Model):
    name: str
    from_: int = Field(alias="from")
    to: int | None
    fields: dict[str, list[Segment]]


class Restored(Model):
    name: str
    before: Version = Field(description="the state just before the restore, kept as a version")
    after: Version = Field(description="the restored state, a new version")


# -- comments ----------------------------------------------------------------------------------


class CommentReply(Model):
    id: str
    body: str
    author: str | None
    created_ms: int | None


class Comment(Model):
    """A comment the editor stored in the document (docs/comments.md), its anchor resolved."""

    id: str
    field: str = Field(description="the text it is about (the editor's is `codemirror`)")
    body: str
    author: str | None
    created_ms: int | None
    resolved: bool
    resolved_by: str | None
    resolved_ms: int | None
    replies: list[CommentReply] = Field(description="oldest first")
    start: int | None = Field(
        description="where the commented text starts now, in Unicode code points into the "
        "field's text; null when the anchor cannot be read (the field is gone)"
    )
    end: int | None = Field(description="where it ends now (exclusive)")
    quote: str = Field(description="the text between start and end now")
    original_quote: str = Field(description="the text as it was when commented on")
    detached: bool = Field(description="the commented text was deleted (start == end)")


class CommentList(Model):
    name: str
    comments: list[Comment] = Field(description="oldest first")


class CommentsQuery(Model):
    resolved: bool | None = Field(
        None, description="true: only resolved threads; false: only open ones; absent: all"
    )
