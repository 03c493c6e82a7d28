"""tests/pg.py: the databases a test run creates are its own, and none outlives the run.

A pytest run of its own (a subprocess) creates databases through the fixtures: one test fails
while connected to its own (which must be gone before the next test starts), another leaves one
behind on purpose, as a teardown that never ran would. Afterwards, none of that run's databases
may be left on the server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from tests import pg

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]

INNER = """
import os

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import pg

pytestmark = pytest.mark.anyio
NAMES = os.environ["NAMES_FILE"]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def note(url):
    with open(NAMES, "a") as f:
        f.write(url.rpartition("/")[2] + "\\n")


async def test_fails_holding_its_database(pg_database):
    note(pg_database)
    engine = create_async_engine(pg_database)
    conn = await engine.connect()  # still connected when the test fails: WITH (FORCE) is needed
    await conn.execute(text("CREATE TABLE t (x int)"))
    assert False, "fails on purpose"


async def test_leaves_one_behind(pg_run):
    failed = open(NAMES).read().split()[0]
    assert await pg.databases_starting_with(failed) == [], "a failed test's database outlived it"
    note(pg.store_url(await pg.create_database()))  # never dropped by the test itself
"""


async def test_a_run_leaves_no_database_behind_even_when_its_tests_fail(tmp_path: Path) -> None:
    admin = await pg.connect_admin()  # skips (or fails in CI) when PostgreSQL is not reachable
    await admin.close()
    (tmp_path / "test_inner.py").write_text(INNER)
    names_file = tmp_path / "names"
    env = {
        **os.environ,
        "NAMES_FILE": str(names_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "pytest", "-p", "tests.pg", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path,
            env=env,
            check=False,
        )
    out = (result.stdout + result.stderr).decode()
    assert "1 failed, 1 passed" in out, out
    names = names_file.read_text().split()
    assert len(names) == 2
    inner_run = names[0].rpartition("_")[0]
    assert inner_run.startswith("collab_test_") and inner_run != pg.RUN
    assert all(name.startswith(inner_run + "_") for name in names)
    left = await pg.databases_starting_with(inner_run + "_")
    assert left == [], f"left behind: {left}"
