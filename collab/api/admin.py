"""The admin API under /api/admin: what the /admin page shows and does, for an operator's token
(`Access.admin`: `collab token --admin`; a server without auth grants it to everyone, as the
rest of the API). Every route is an `Operation` with `admin=True` (403 for any other token),
so it is in the OpenAPI schema and scriptable; documents and their connections go through the
documents service, the process and the cluster through the hub.

- GET  /api/admin/overview: this process, the metrics' series (the charts), the cluster
- GET  /api/admin/documents?prefix=: documents with size, log rows, versions, who is online
- GET  /api/admin/documents/{name}: one document and its connections here
- DELETE /api/admin/documents/{name}/connections[/{connection}]: close them (4000)
- POST /api/admin/documents/{name}/compact, /versions; DELETE /api/admin/documents/{name}
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from ..documents import ConnectionSummary, DocumentSummary
from ..errors import ApiError, DocumentNotFound, HttpStatus
from .admin_models import (
    AdminConnection,
    AdminDocument,
    AdminDocumentPage,
    Closed,
    Cluster,
    ClusterProcess,
    Compacted,
    DocumentDetail,
    Overview,
    ProcessInfo,
    Sample,
)
from .meta import package_version
from .models import ListQuery, NewVersion, Version
from .router import Call, Operation
from .versions import version_of

ADMIN = "/api/admin"
DOCUMENTS = ADMIN + "/documents"
DOCUMENT = DOCUMENTS + "/{name}"
CONNECTIONS = DOCUMENT + "/connections"
HOST = socket.gethostname()

if TYPE_CHECKING:
    from ..hub import Hub


def _hub(call: Call) -> Hub:
    hub: Hub = call.request.app.state.hub
    return hub


async def get_overview(call: Call) -> Overview:
    hub = _hub(call)
    load = hub.load()
    process = ProcessInfo(
        pid=os.getpid(),
        host=HOST,
        version=package_version(),
        started_at_ms=load["started_at_ms"],
        uptime_s=round(time.time() - hub.started_at, 1),
        connections=load["connections"],
        rooms=load["rooms"],
        accepting=hub.accepting,
    )
    metrics = getattr(call.request.app.state, "metrics", None)
    series = [_sample(s) for s in metrics.series()] if metrics is not None else []
    return Overview(process=process, series=series, cluster=_cluster(call, hub))


def _sample(sample: dict[str, Any]) -> Sample:
    return Sample.model_validate({k: sample.get(k) for k in Sample.model_fields})


def _cluster(call: Call, hub: Hub) -> Cluster:
    bus: str = call.request.app.state.settings.bus
    processes = []
    for peer in hub.processes() or []:
        load = peer.load or {}
        processes.append(
            ClusterProcess(
                id=peer.process_id,
                this_process=peer.this_process,
                pid=_int(load.get("pid")),
                host=str(load["host"]) if "host" in load else None,
                connections=_int(load.get("connections")),
                rooms=_int(load.get("rooms")),
                started_at_ms=_int(load.get("started_at_ms")),
                silent_ticks=peer.silent_ticks,
            )
        )
    return Cluster(bus=bus or None, processes=processes)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


async def list_documents(call: Call) -> AdminDocumentPage:
    query: ListQuery = call.query
    try:
        page, next_cursor = await call.documents.list_page(
            call.access, query.prefix, query.limit, query.cursor
        )
    except ValueError:
        raise ApiError(HttpStatus.BAD_REQUEST, "invalid cursor") from None
    return AdminDocumentPage(documents=[_document(call, d) for d in page], next_cursor=next_cursor)


def _document(call: Call, d: DocumentSummary) -> AdminDocument:
    return AdminDocument(
        name=d.name,
        created_at_ms=d.created_at_ms,
        updated_at_ms=d.updated_at_ms,
        size_bytes=d.size_bytes,
        log_rows=d.log_rows,
        versions=d.versions,
        online=d.online,
        users=call.documents.users(d.name),
    )


def _connection(c: ConnectionSummary) -> AdminConnection:
    return AdminConnection(
        id=c.id,
        user=c.user,
        address=c.address,
        protocol=c.protocol,
        since_ms=c.since_ms,
        bytes_in=c.bytes_in,
        bytes_out=c.bytes_out,
        read_only=c.read_only,
    )


async def get_document(call: Call) -> DocumentDetail:
    info = await call.documents.info(call.name)
    return DocumentDetail(
        document=_document(call, info),
        connections=[_connection(c) for c in call.documents.connections(call.name)],
    )


async def close_connection(call: Call) -> None:
    if not call.documents.close_connection(call.name, call.path["connection"]):
        raise ApiError(HttpStatus.NOT_FOUND, "no such connection")


async def close_connections(call: Call) -> Closed:
    return Closed(closed=call.documents.close_connections(call.name))


async def compact(call: Call) -> Compacted:
    await call.documents.info(call.name)  # 404 for no document
    result = await call.documents.compact(call.name)
    if result is None:
        return Compacted(
            name=call.name, compacted=False, rows=0, bytes_before=0, bytes_after=0, seconds=0
        )
    return Compacted(
        name=call.name,
        compacted=True,
        rows=result.rows,
        bytes_before=result.bytes_before,
        bytes_after=result.bytes_after,
        seconds=round(result.seconds, 4),
    )


async def create_version(call: Call) -> Version:
    body: NewVersion = call.body
    return version_of(await call.documents.create_version(call.name, body.label))


async def delete_document(call: Call) -> None:
    if not await call.documents.delete(call.name):
        raise DocumentNotFound(f"no document named {call.name!r}")


def _op(method: str, path: str, op_id: str, summary: str, handler: Any, **kw: Any) -> Operation:
    return Operation(method, path, op_id, summary, handler, tag="admin", admin=True, **kw)


OPERATIONS = [
    _op(
        "GET",
        ADMIN + "/overview",
        "adminOverview",
        "This process, the last ten minutes of its numbers, the cluster",
        get_overview,
        response=Overview,
        description="An admin token only. `series` is a sample every 2 s (the page's charts);"
        " `cluster.processes` lists this process and the peers its bus hears, with the load"
        " their heartbeats carry.",
    ),
    _op(
        "GET",
        DOCUMENTS,
        "adminListDocuments",
        "Search documents by prefix, with size, log rows, versions and who is online",
        list_documents,
        query=ListQuery,
        response=AdminDocumentPage,
    ),
    _op(
        "GET",
        DOCUMENT,
        "adminGetDocument",
        "A document and its connections in this process",
        get_document,
        response=DocumentDetail,
    ),
    _op(
        "DELETE",
        CONNECTIONS + "/{connection}",
        "adminCloseConnection",
        "Close one connection (code 4000; the client reconnects)",
        close_connection,
        status=204,
    ),
    _op(
        "DELETE",
        CONNECTIONS,
        "adminCloseConnections",
        "Close every connection to a document in this process (code 4000)",
        close_connections,
        response=Closed,
    ),
    _op(
        "POST",
        DOCUMENT + "/compact",
        "adminCompact",
        "Fold the document's log into its snapshot now",
        compact,
        response=Compacted,
    ),
    _op(
        "POST",
        DOCUMENT + "/versions",
        "adminCreateVersion",
        "Store the document's current state as a named version",
        create_version,
        body=NewVersion,
        status=201,
        response=Version,
    ),
    _op(
        "DELETE",
        DOCUMENT,
        "adminDeleteDocument",
        "Delete a document, its history and versions",
        delete_document,
        status=204,
        description='Its connections are closed with 4404 "document deleted".',
    ),
]
