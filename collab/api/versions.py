"""The versions routes: list, create a named one, read one, diff two, restore one. Each is one
`Operation`; all go through the documents service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ApiError, HttpStatus
from .documents import DOCUMENT
from .models import (
    ContentQuery,
    Diff,
    DiffQuery,
    NewVersion,
    Restored,
    Segment,
    Version,
    VersionContent,
    VersionPage,
    VersionsQuery,
)
from .router import Call, Operation

if TYPE_CHECKING:
    from storage import VersionInfo

VERSIONS = DOCUMENT + "/versions"
VERSION = VERSIONS + "/{id}"


def version_of(info: VersionInfo) -> Version:
    return Version(
        id=info.id,
        created_at_ms=info.created_at_ms,
        kind=info.kind,  # type: ignore[arg-type]  # 'auto' | 'named' | 'restore' in the store
        label=info.label,
        authors=list(info.authors),
        size_bytes=info.size_bytes,
    )


async def list_versions(call: Call) -> VersionPage:
    query: VersionsQuery = call.query
    try:
        page, next_cursor = await call.documents.versions(call.name, query.limit, query.cursor)
    except ValueError:
        raise ApiError(HttpStatus.BAD_REQUEST, "invalid cursor") from None
    return VersionPage(versions=[version_of(v) for v in page], next_cursor=next_cursor)


async def create_version(call: Call) -> Version:
    body: NewVersion = call.body
    return version_of(await call.documents.create_version(call.name, body.label))


async def get_version(call: Call) -> VersionContent:
    query: ContentQuery = call.query
    version_id: int = call.path["id"]
    info = await call.documents.version(call.name, version_id)
    read = await call.documents.version_content(call.name, version_id, query.format)
    return VersionContent(
        name=call.name, version=version_of(info), content=read["content"], types=read["types"]
    )


async def diff_versions(call: Call) -> Diff:
    query: DiffQuery = call.query
    from_id: int = call.path["id"]
    changes: dict[str, Any] = await call.documents.diff(call.name, from_id, query.to)
    fields = {
        field: [Segment(**segment) for segment in segments] for field, segments in changes.items()
    }
    return Diff.model_validate(
        {"name": call.name, "from": from_id, "to": query.to, "fields": fields}
    )


async def restore_version(call: Call) -> Restored:
    done = await call.documents.restore(call.name, call.path["id"], author=call.author)
    return Restored(
        name=call.name, before=version_of(done["before"]), after=version_of(done["after"])
    )


OPERATIONS = [
    Operation(
        "GET",
        VERSIONS,
        "listVersions",
        "List a document's versions, newest first",
        list_versions,
        tag="versions",
        query=VersionsQuery,
        response=VersionPage,
    ),
    Operation(
        "POST",
        VERSIONS,
        "createVersion",
        "Name the document's current state as a version",
        create_version,
        tag="versions",
        write=True,
        body=NewVersion,
        status=201,
        response=Version,
    ),
    Operation(
        "GET",
        VERSION,
        "getVersion",
        "Read the content at a version",
        get_version,
        tag="versions",
        query=ContentQuery,
        response=VersionContent,
    ),
    Operation(
        "GET",
        VERSION + "/diff",
        "diffVersion",
        "What changed in each text field since a version",
        diff_versions,
        tag="versions",
        query=DiffQuery,
        response=Diff,
        description="Between this version and `to` (another version's id), or the document now"
        " when `to` is absent: insertions and deletions, each with its author where known.",
    ),
    Operation(
        "POST",
        VERSION + "/restore",
        "restoreVersion",
        "Make the document look like a version again",
        restore_version,
        tag="versions",
        write=True,
        response=Restored,
        description="A new edit every connected client receives; the states before and after"
        " are kept as versions (kind restore).",
    ),
]
