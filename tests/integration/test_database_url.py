"""`collab serve --database-url` takes a database URL in the form tools and hosts hand it out.

`sqlite:///path.db` and Heroku's or Render's `postgres://user:pass@host/db` name no driver, and
SQLAlchemy's default for them is synchronous: the async engine refused them and the server died
at startup with a traceback. They mean our drivers (aiosqlite, asyncpg), as the explicit forms do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def edit_then_read_back(launch: Any, database_url: str) -> None:
    """A server on `database_url` keeps an edit; a second server on it serves the edit back."""
    writer_side = launch("--database-url", database_url)  # (the last --database-url wins)
    await writer_side.start()
    async with YClient(writer_side.url, "plain") as a, YClient(writer_side.url, "plain") as b:
        await a.wait_for(lambda: a.synced)
        a.doc.get("t", type=Text).insert(0, "kept")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "kept")  # the server has it
    await writer_side.stop()  # (a stop commits what is pending)
    reader_side = launch("--database-url", database_url)
    await reader_side.start()
    async with YClient(reader_side.url, "plain") as c:
        await c.wait_for(lambda: str(c.doc.get("t", type=Text)) == "kept")
    await reader_side.stop()


async def test_a_sqlite_url_without_a_driver(launch: Any, tmp_path: Path) -> None:
    path = tmp_path / "plain" / "notes.db"
    await edit_then_read_back(launch, f"sqlite:///{path}")
    assert path.exists()  # the file the URL names, not the default's


@pytest.mark.postgres
async def test_a_postgres_url_as_hosts_hand_it_out(launch: Any, pg_database: str) -> None:
    scheme, _, rest = pg_database.partition("://")
    assert scheme == "postgresql+asyncpg"
    await edit_then_read_back(launch, f"postgres://{rest}")
