"""Who may reach which documents: the scope a token (or an extension) grants.

A scope names documents the way a token's `doc` claim does: one document ("team/notes"), every
name starting with a prefix ("team/*"), or all of them ("*"). The WebSocket route checks one
document against it; the HTTP API filters what it lists and refuses (403) what it may not show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def document_matches(pattern: str, document: str) -> bool:
    """Whether `pattern` ("name", "prefix*" or "*") covers `document`."""
    if pattern.endswith("*"):
        return document.startswith(pattern[:-1])
    return pattern == document


@dataclass(frozen=True, slots=True)
class Access:
    """What one HTTP request may see and do. `documents` is a pattern as above."""

    documents: str = "*"
    write: bool = False
    user: Mapping[str, Any] = field(default_factory=dict)
    # The operator's powers: the admin API and page (/api/admin/..., /admin) and /metrics.
    admin: bool = False
    # Only /metrics (a token for Prometheus): `collab token --metrics`.
    metrics: bool = False

    @property
    def reads_metrics(self) -> bool:
        return self.admin or self.metrics

    def covers(self, document: str) -> bool:
        return document_matches(self.documents, document)

    def reaches(self, prefix: str) -> bool:
        """Whether any document whose name starts with `prefix` could be covered."""
        pattern = self.documents
        if pattern.endswith("*"):
            base = pattern[:-1]
            return prefix.startswith(base) or base.startswith(prefix)
        return pattern.startswith(prefix)


# A server without authentication: everything, to everybody (as the WebSocket route), the
# admin API included (as the rest of the API: whoever reaches the port may delete documents).
EVERYTHING = Access("*", write=True, admin=True, metrics=True)
