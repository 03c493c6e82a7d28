"""Paths under /api as the client sent them. A document name is one percent-encoded segment
(`team%2Fnotes`), and Starlette decodes `%2F` before routing, so the API routes on
`scope["raw_path"]`: split it into raw segments, match a template segment by segment, and decode
a name with the /ws route's rules (collab.admission.parse_name: the same 4404 reasons, answered
here as a 404)."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from starlette.types import Scope

from ..admission import parse_name
from ..errors import ApiError, HttpStatus, InvalidDocumentName

_PARAM = re.compile(r"^\{(\w+)\}$")


class Template:
    """A path like `/api/documents/{name}/versions/{id}`: literal segments and parameters,
    each parameter exactly one raw segment."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.segments = path.strip("/").split("/")
        self.params = [m.group(1) for s in self.segments if (m := _PARAM.match(s))]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The raw (still percent-encoded) value of each parameter, or None."""
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.segments, segments, strict=True):
            m = _PARAM.match(want)
            if m:
                params[m.group(1)] = got
            elif want != got:
                return None
        return params


def raw_segments(scope: Scope) -> list[str]:
    """The request's path as sent, below the app's root_path, in raw segments."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        path = raw.decode("latin-1").partition("?")[0]
    else:  # a server without raw_path: the decoded path, re-encoded (a %2F is lost)
        path = quote(scope["path"], safe="/")
    root = scope.get("root_path", "")
    if root:
        encoded_root = quote(root, safe="/")
        if path.startswith(encoded_root + "/"):
            path = path[len(encoded_root) :]
    return path.strip("/").split("/") if path.strip("/") else []


def document_name(raw: str) -> str:
    """A name segment, decoded with the /ws rules; a 404 with the same reason when invalid."""
    try:
        return parse_name(raw)
    except InvalidDocumentName as exc:
        raise ApiError(HttpStatus.NOT_FOUND, exc.reason) from None


def field_name(raw: str) -> str:
    """A field (root type) name segment: percent-decoded, strictly UTF-8."""
    try:
        field = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(HttpStatus.NOT_FOUND, "field name is not valid UTF-8") from None
    if not field:
        raise ApiError(HttpStatus.NOT_FOUND, "empty field name")
    return field


def version_id(raw: str) -> int:
    """A version id segment: a positive integer (anything else names no version: 404)."""
    return _positive_id(raw, "no such version")


def delivery_id(raw: str) -> int:
    """A webhook delivery's id segment, as a version's."""
    return _positive_id(raw, "no such delivery")


def connection_id(raw: str) -> int:
    """A connection's id segment (the admin API), as a version's."""
    return _positive_id(raw, "no such connection")


def _positive_id(raw: str, missing: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(HttpStatus.NOT_FOUND, missing)
    return int(raw)
