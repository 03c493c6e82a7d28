"""When the saver compacts a document's log (collab/saver.py, Saver._past_threshold): past
`compact_after_rows` rows, once the log weighs `compact_log_share` of the snapshot (a
compaction encodes and writes the whole document); at 10x the rows, or past
`compact_after_bytes`, whatever its share."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from collab.saver import MAX_ROWS_FACTOR, Saver
from storage import CompactionRaced, CompactResult, PendingUpdate, StoredDocument

pytestmark = pytest.mark.anyio


class Store:
    """Appends nothing anywhere; a compaction leaves a snapshot of `snapshot_bytes`."""

    def __init__(self, snapshot_bytes: int) -> None:
        self.snapshot_bytes = snapshot_bytes
        self.compacted_at: list[int] = []  # rows appended so far, at each compaction
        self.appended = 0

    async def append(self, batch: list[PendingUpdate]) -> None:
        self.appended += len(batch)

    async def compact(self, name: str, live: Any = None, keep: Any = None) -> CompactResult:
        self.compacted_at.append(self.appended)
        return CompactResult(name, live.rows, 0, self.snapshot_bytes, 0.0, self.appended)


async def typed(
    rows: int, row_bytes: int, snapshot_bytes: int, share: float, **settings: int
) -> list[int]:
    """Commit `rows` rows of `row_bytes` one by one into a document whose snapshot weighs
    `snapshot_bytes`: after how many rows each compaction ran."""
    store = Store(snapshot_bytes)
    saver = Saver(
        store,  # type: ignore[arg-type]
        commit_window_ms=1,
        compact_after_rows=settings.get("rows", 100),
        compact_after_bytes=settings.get("bytes", 1 << 30),
        compact_log_share=share,
    )
    stored = StoredDocument(b"s" * snapshot_bytes, [], 1, 1)
    saver.open("doc", lambda: b"", stored)
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        for _ in range(rows):
            saver.record("doc", b"k" * row_bytes)
            await saver.flush()
        tg.cancel_scope.cancel()
    return store.compacted_at


async def test_a_small_document_is_compacted_past_compact_after_rows() -> None:
    # 101 rows of 10 bytes outweigh a quarter of a 100-byte snapshot
    assert await typed(250, 10, 100, 0.25) == [101, 202]


async def test_a_big_document_waits_until_its_log_weighs_its_share() -> None:
    # a 40,000-byte snapshot: 10,000 bytes of log, 500 rows of 20 (not 101)
    assert await typed(1100, 20, 40_000, 0.25) == [500, 1000]


async def test_past_ten_times_the_rows_it_is_compacted_whatever_its_share() -> None:
    assert await typed(2100, 10, 10**9, 0.25) == [100 * MAX_ROWS_FACTOR + 1, 2002]


async def test_past_compact_after_bytes_too() -> None:
    assert await typed(30, 100, 10**9, 0.25, bytes=1000) == [11, 22]


async def test_share_zero_is_the_rows_alone() -> None:
    assert await typed(250, 20, 40_000, 0.0) == [101, 202]


async def test_a_loaded_log_already_due_is_compacted_soon() -> None:
    store = Store(10)
    saver = Saver(
        store,  # type: ignore[arg-type]
        commit_window_ms=1,
        compact_after_rows=100,
        compact_after_bytes=1 << 30,
        compact_log_share=0.25,
    )
    stored = StoredDocument(b"s" * 40_000, [b"k" * 20] * 600, 600, 1)
    saver.open("doc", lambda: b"", stored)  # 12,000 bytes of log: due
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        await saver.flush()
        tg.cancel_scope.cancel()
    assert store.compacted_at == [0]
    stored = StoredDocument(b"s" * 40_000, [b"k" * 20] * 400, 400, 1)
    saver.open("other", lambda: b"", stored)  # 8,000 bytes of log: not yet
    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        await saver.flush()
        tg.cancel_scope.cancel()
    assert store.compacted_at == [0]


class RacedStore(Store):
    """Each compaction finds the log changed by another process, until `races` ran out."""

    races = 1

    async def compact(self, name: str, live: Any = None, keep: Any = None) -> CompactResult:
        if self.races:
            self.races -= 1
            raise CompactionRaced(f"update log of {name!r} changed during compaction; retry")
        return await super().compact(name, live, keep)


async def test_a_compaction_that_raced_another_process_is_no_error_and_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two servers with one document open both compact its log; the one that comes second
    rolls back (the store's CompactionRaced). That is expected: no ERROR in the log, no store
    error counted, and the next commit past the threshold compacts it."""
    from collab.counts import Counts

    store, counts = RacedStore(100), Counts()
    saver = Saver(
        store,  # type: ignore[arg-type]
        commit_window_ms=1,
        compact_after_rows=10,
        compact_after_bytes=1 << 30,
        counts=counts,
    )
    saver.open("doc", lambda: b"", StoredDocument(b"s" * 100, [], 1, 1))
    with caplog.at_level(logging.INFO, logger="collab.saver"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(saver.run)
            for _ in range(15):
                saver.record("doc", b"k" * 10)
                await saver.flush()
            tg.cancel_scope.cancel()
    assert store.compacted_at == [12]  # the race at row 11; the next commit compacted it
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("met another writer" in r.getMessage() for r in caplog.records)
    assert ("store_errors", "compaction") not in counts.events
    assert counts.events[("compactions", "")] == 1
