"""The JSON shapes of the admin API (collab/api/admin.py): what an operator sees of the
process, the cluster, the documents and their connections. docs/admin.md describes them."""

from __future__ import annotations

from pydantic import Field

from .models import Model


class Sample(Model):
    """One point of the overview's charts (collab.metrics.Metrics.series), every 2 s."""

    t: float = Field(description="unix time, seconds")
    connections: float
    rooms: float
    messages_in_per_s: float
    messages_out_per_s: float
    updates_per_s: float
    commit_latency_ms: float | None = Field(
        description="mean arrival-to-durable time over the interval; null: nothing committed"
    )


class ProcessInfo(Model):
    pid: int
    host: str
    version: str
    started_at_ms: int
    uptime_s: float
    connections: int
    rooms: int
    accepting: bool = Field(description="false once shutdown began")


class ClusterProcess(Model):
    id: str = Field(description="the process's id on the bus (hex)")
    this_process: bool
    pid: int | None = Field(description="null: the peer's heartbeats carry no load")
    host: str | None
    connections: int | None
    rooms: int | None
    started_at_ms: int | None
    silent_ticks: int = Field(description="bus ticks (about 1 s) since it was last heard")


class Cluster(Model):
    bus: str | None = Field(description='"redis", "postgres", or null: a single process')
    processes: list[ClusterProcess]


class Overview(Model):
    process: ProcessInfo
    series: list[Sample] = Field(description="the last ten minutes, oldest first")
    cluster: Cluster


class AdminDocument(Model):
    name: str
    created_at_ms: int
    updated_at_ms: int = Field(description="last committed edit (0: nothing committed yet)")
    size_bytes: int = Field(description="snapshot and log, as stored")
    log_rows: int = Field(description="updates in the log, not yet compacted")
    versions: int
    online: int = Field(description="connections to it in this process")
    users: list[str] = Field(description="the user ids of those connections, once each")


class AdminDocumentPage(Model):
    documents: list[AdminDocument]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class AdminConnection(Model):
    id: int
    user: str | None = Field(description="the token's user id (null without auth)")
    address: str = Field(description="host:port of the client (behind a proxy: as trusted)")
    protocol: str = Field(description='"websocket", "websocket+deflate" or "asgi"')
    since_ms: int = Field(description="when it opened, unix ms")
    bytes_in: int
    bytes_out: int
    read_only: bool


class DocumentDetail(Model):
    document: AdminDocument
    connections: list[AdminConnection]


class Closed(Model):
    closed: int = Field(description="how many connections were closed (code 4000)")


class Compacted(Model):
    name: str
    compacted: bool = Field(description="false: the log was empty, nothing to fold")
    rows: int
    bytes_before: int
    bytes_after: int
    seconds: float
