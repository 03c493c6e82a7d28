"""make_engine(url): an async SQLAlchemy engine for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


# The async driver of each database the store runs on, for a URL that names none: the form most
# tools and hosts hand out (`sqlite:///x.db`, Heroku's and Render's `postgres://u:p@h/db`) names
# SQLAlchemy's synchronous default, which an async engine refuses at startup.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """`url` with the async driver of its database when it names none; otherwise unchanged."""
    scheme, sep, rest = url.partition("://")
    driver = ASYNC_DRIVERS.get(scheme.lower()) if sep else None
    return f"{driver}://{rest}" if driver else url


def is_supported(url: str) -> bool:
    """Whether `url` (after async_url) names a database and driver the store runs on."""
    scheme = async_url(url).partition("://")[0].lower()
    return scheme in ASYNC_DRIVERS.values()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        sqlite_pragmas(cursor)
        cursor.close()

    return engine


def sqlite_pragmas(cursor: Any) -> None:
    """What every connection to our SQLite file runs first (aiosqlite's and the appender's)."""
    # WAL: readers never block the writer. NORMAL: a committed transaction survives a process
    # crash (kill -9); only an OS crash or power loss may roll back the last ones.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
