"""SqlStore's history: which Yjs client ids wrote a document (and who they were), and its
versions, stored states that compaction never touches.

`HistoryTables` is a part of SqlStore (sql.py), written apart for its length; it runs
statements.py's statements on the store's engine, with the store's document ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import statements as q
from .base import VersionInfo, now_ms
from .outbox import APPEND_LOCK, EventSettings, new_event

VERSION_KINDS = ("auto", "named", "restore")
NO_ID = 2**62  # above every id: list_versions without before_id
# Held while deciding whether to store a version (PostgreSQL; sql.py has the others).
VERSION_LOCK = 0x636F6C6C6162 + 2


class HistoryTables:
    """The clients and versions of documents (SqlStore's; see sql.py for the rest)."""

    engine: AsyncEngine
    _dialect: str
    _insert_client: Any
    events: EventSettings | None

    async def _settle_changes(self, document: str) -> None:
        raise NotImplementedError  # (OutboxTables')

    def _event_written(self) -> None:
        raise NotImplementedError  # (OutboxTables')

    async def _find_id(self, conn: AsyncConnection, name: str) -> int | None:
        raise NotImplementedError  # (SqlStore's)

    async def _ensure_id(self, conn: AsyncConnection, name: str, stamp: int) -> int:
        raise NotImplementedError  # (SqlStore's)

    # -- clients -----------------------------------------------------------------------------

    async def clients(self, name: str) -> dict[int, str]:
        """Which Yjs client ids wrote `name`, and who they were."""
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return {}
            rows = (await conn.execute(q.CLIENTS, {"doc_id": doc_id})).all()
        return {int(r.client_id): r.author for r in rows}

    async def record_clients(self, name: str, clients: Mapping[int, str]) -> None:
        """Yjs client ids of `name` and who wrote with them; a client id already known keeps
        its first author. Creates the document's row if needed."""
        if not clients:
            return
        stamp = now_ms()
        async with self.engine.begin() as conn:
            doc_id = await self._ensure_id(conn, name, stamp)
            rows = [
                {"doc_id": doc_id, "client_id": c, "author": a, "stamp": stamp}
                for c, a in sorted(clients.items())
            ]
            await conn.execute(self._insert_client, rows)

    # -- versions ----------------------------------------------------------------------------

    async def add_version(
        self,
        name: str,
        data: bytes,
        state_vector: bytes,
        kind: str,
        label: str | None,
        authors: Sequence[str],
        created_at_ms: int,
    ) -> VersionInfo:
        """Store a version of `name` (its full state `data`, a v1 update, and its state vector);
        creates the document's row if needed."""
        version = _VersionRow(data, state_vector, kind, label, tuple(authors), created_at_ms)
        await self._settle_changes(name)
        async with self.engine.begin() as conn:
            info = await self._insert_version(conn, name, version)
        self._event_written()
        return info

    async def add_version_if_changed(
        self,
        name: str,
        data: bytes,
        state_vector: bytes,
        kind: str,
        label: str | None,
        authors: Sequence[str],
        created_at_ms: int,
    ) -> VersionInfo | None:
        """add_version, unless the latest version of `name` holds this very state (the same
        state vector, then the same bytes): then `authors` join that version's, and None.
        Decided and written in one transaction that other processes' take turns with, so
        processes that saw the same editing (cluster mode) store its state once, naming the
        authors each of them saw."""
        version = _VersionRow(data, state_vector, kind, label, tuple(authors), created_at_ms)
        await self._settle_changes(name)
        async with self.engine.begin() as conn:
            if self._dialect == "postgresql":
                await conn.execute(q.ADVISORY_XACT_LOCK, {"key": VERSION_LOCK})
            elif self._dialect == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            doc_id = await self._find_id(conn, name)
            held = await self._holding(conn, doc_id, data, state_vector) if doc_id else None
            info = None
            if held is None:
                info = await self._insert_version(conn, name, version)
            else:
                authors = sorted({*json.loads(held.authors), *version.authors})
                if len(authors) != len(json.loads(held.authors)):
                    params = {"version_id": held.id, "authors": json.dumps(authors)}
                    await conn.execute(q.SET_VERSION_AUTHORS, params)
        if info is not None:
            self._event_written()
        return info

    async def _holding(
        self, conn: AsyncConnection, doc_id: int, data: bytes, state_vector: bytes
    ) -> Row[Any] | None:
        """The latest version of doc_id if it is the state `data` (with `state_vector`)."""
        latest = (await conn.execute(q.LATEST_VERSION, {"doc_id": doc_id})).first()
        if latest is None:
            return None
        if decode_state_vector(bytes(latest.state_vector)) != decode_state_vector(state_vector):
            return None
        params = {"doc_id": doc_id, "version_id": latest.id}
        stored = (await conn.execute(q.VERSION, params)).first()
        return latest if stored is not None and bytes(stored.data) == data else None

    async def _insert_version(
        self, conn: AsyncConnection, name: str, version: _VersionRow
    ) -> VersionInfo:
        if version.kind not in VERSION_KINDS:
            raise ValueError(f"unknown version kind {version.kind!r}")
        row = version._asdict()
        row["authors"] = json.dumps(list(version.authors))
        doc_id = await self._ensure_id(conn, name, now_ms())
        result = await conn.execute(q.INSERT_VERSION, {"doc_id": doc_id, **row})
        key = result.inserted_primary_key
        assert key is not None
        info = VersionInfo(
            int(key[0]),
            name,
            version.created_at_ms,
            version.kind,
            version.label,
            version.authors,
            len(version.data),
        )
        if self.events is not None:  # (the outbox's: storage/outbox.py)
            if self._dialect == "postgresql":
                await conn.execute(q.ADVISORY_XACT_LOCK, {"key": APPEND_LOCK})
            event = new_event(
                "version.created",
                name,
                version.authors,
                version.state_vector,
                version={"id": info.id, "kind": info.kind, "label": info.label},
            )
            await conn.execute(q.INSERT_EVENT, event._asdict())
        return info

    async def delete_versions(self, name: str, ids: Sequence[int]) -> int:
        """Delete these versions of `name` (retention); how many there were."""
        if not ids:
            return 0
        async with self.engine.begin() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return 0
            deleted = 0
            for version_id in ids:  # (one by one: rowcount of an executemany is not portable)
                params = {"doc_id": doc_id, "version_id": version_id}
                deleted += (await conn.execute(q.DELETE_VERSION, params)).rowcount
        return deleted

    async def list_versions(
        self, name: str, limit: int = 100, before_id: int | None = None
    ) -> list[VersionInfo]:
        """The versions of `name`, newest first: at most `limit`, with ids below `before_id`."""
        params = {"limit": limit, "before_id": NO_ID if before_id is None else before_id}
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return []
            rows = (await conn.execute(q.LIST_VERSIONS, {"doc_id": doc_id, **params})).all()
        return [_version_info(name, r) for r in rows]

    async def count_versions(self, name: str) -> int:
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return 0
            return int((await conn.execute(q.COUNT_VERSIONS, {"doc_id": doc_id})).scalar_one())

    async def load_version(self, name: str, version_id: int) -> tuple[VersionInfo, bytes] | None:
        """Version `version_id` of `name` and its state (a full v1 update); None if none."""
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return None
            params = {"doc_id": doc_id, "version_id": version_id}
            row = (await conn.execute(q.VERSION, params)).first()
        return None if row is None else (_version_info(name, row), bytes(row.data))

    async def latest_version(self, name: str) -> tuple[VersionInfo, bytes] | None:
        """The newest version of `name` and its state vector; None if it has none."""
        async with self.engine.connect() as conn:
            doc_id = await self._find_id(conn, name)
            if doc_id is None:
                return None
            row = (await conn.execute(q.LATEST_VERSION, {"doc_id": doc_id})).first()
        return None if row is None else (_version_info(name, row), bytes(row.state_vector))


class _VersionRow(NamedTuple):
    data: bytes
    state_vector: bytes
    kind: str
    label: str | None
    authors: tuple[str, ...]
    created_at_ms: int


def decode_state_vector(vector: bytes) -> dict[int, int]:
    """A v1 state vector as {client id: clock} (lib0 varuints)."""
    values: list[int] = []
    value = shift = 0
    for b in vector:
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            values.append(value)
            value = shift = 0
    count = values[0] if values else 0
    return dict(zip(values[1 : 1 + 2 * count : 2], values[2 : 2 + 2 * count : 2], strict=True))


def _version_info(name: str, row: Row[Any]) -> VersionInfo:
    authors = tuple(str(a) for a in json.loads(row.authors))
    return VersionInfo(
        int(row.id), name, row.created_at_ms, row.kind, row.label, authors, int(row.size_bytes)
    )
