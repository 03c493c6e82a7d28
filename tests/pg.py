"""PostgreSQL for tests: every database a test uses is new, this run's own, and dropped after.

A test asks for `pg_database` (a SQLAlchemy URL) and gets an empty database named
`collab_test_<pid>_<random>_<n>`, created from the server's maintenance database and dropped
when the test ends, passed or failed (WITH (FORCE): server processes may still be connected).
Nothing else on the server is touched, so two runs at once, other people's tests and a user's
data never meet. When the session ends, any database of this run's still there (a teardown that
could not run) is dropped as well.

COLLAB_TEST_PG_URL names the server and its maintenance database (default
postgresql://postgres@127.0.0.1:5432/postgres); the user needs CREATEDB. A server that cannot be
reached skips the test, or fails it in CI (tests.conftest.require).

tests/conftest.py re-exports the fixtures; `pytest -p tests.pg` loads them elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from sqlalchemy.engine import URL, make_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RUN = f"collab_test_{os.getpid()}_{secrets.token_hex(3)}"  # every name this run creates
_numbers = itertools.count(1)
_created: list[str] = []


def server_url() -> URL:
    return make_url(os.environ.get("COLLAB_TEST_PG_URL") or DEFAULT_URL)


def store_url(database: str) -> str:
    url = server_url().set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


async def connect_admin(*, required: bool = True) -> Any:
    """A connection to the maintenance database; unreachable: skip (fail in CI), or None."""
    import asyncpg

    url = server_url()
    try:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if not required:
            return None
        from tests.conftest import require

        where = url.render_as_string(hide_password=True)
        require(False, f"PostgreSQL is not reachable at {where}: {exc!r}")
        raise  # require() skipped or failed already


async def create_database() -> str:
    """A new, empty database of this run's; returns its name. The caller drops it."""
    admin = await connect_admin()
    try:
        name = f"{RUN}_{next(_numbers)}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        _created.append(name)
        return name
    finally:
        await admin.close()


async def drop_databases(names: list[str]) -> None:
    admin = await connect_admin(required=False)
    if admin is None:
        return
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def databases_starting_with(prefix: str) -> list[str]:
    """The databases on the server whose names start with `prefix`."""
    admin = await connect_admin(required=False)
    if admin is None:
        return []
    try:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE left(datname, $1) = $2", len(prefix), prefix
        )
        return sorted(row["datname"] for row in rows)
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database (its SQLAlchemy URL), dropped afterwards whatever happened."""
    name = await create_database()
    try:
        yield store_url(name)
    finally:
        with anyio.CancelScope(shield=True):
            await drop_databases([name])


@pytest.fixture(scope="session")
def pg_run() -> Iterator[str]:
    """This run's name prefix; at the end of the session, what is left of it is dropped."""
    yield RUN
    if _created:
        asyncio.run(_drop_what_is_left())


async def _drop_what_is_left() -> None:
    await drop_databases(await databases_starting_with(RUN + "_"))


@pytest.fixture
async def pg_database(pg_run: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database of this test's own, as a postgresql+asyncpg:// URL."""
    async with fresh_database() as url:
        yield url
