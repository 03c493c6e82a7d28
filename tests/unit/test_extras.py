"""A missing optional dependency is one line naming the extra to install, never a traceback.

The `collab` command runs as a user runs it, in a subprocess, with the module made to look
uninstalled: a sitecustomize on PYTHONPATH puts a finder first in sys.meta_path that raises
ModuleNotFoundError for it, as the import system does for a package that is not there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from collab import MissingExtra, Settings, create_app
from collab.extras import require_extra

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/collab_never_opened"
NEEDS_ASYNCPG = "the PostgreSQL store needs asyncpg: pip install 'collab[postgres]'"
NEEDS_REDIS = "the Redis bus (COLLAB_REDIS_URL) needs redis: pip install 'collab[redis]'"
NEEDS_AIO_PIKA = "the RabbitMQ sink (COLLAB_AMQP_URL) needs aio_pika: pip install 'collab[amqp]'"

UNINSTALL = """
import sys

HIDDEN = {hidden!r}


class Uninstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Uninstalled())
"""


def collab_without(
    tmp_path: Path, hidden: tuple[str, ...], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m collab *args` in a Python where the `hidden` packages are not installed."""
    shadow = tmp_path / "uninstalled"
    shadow.mkdir(exist_ok=True)
    (shadow / "sitecustomize.py").write_text(UNINSTALL.format(hidden=set(hidden)))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    path = [str(shadow), os.environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    environ.update(env or {})
    # Its own session, so a server that starts anyway (with --workers, several) is killed whole.
    proc = subprocess.Popen(
        [sys.executable, "-m", "collab", *args],
        env=environ,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"`collab {' '.join(args)}` did not exit; it said:\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


SQLITE = ("--database-url", "sqlite+aiosqlite:///c.db")
REDIS = {"COLLAB_REDIS_URL": "redis://127.0.0.1:6379/0"}
AMQP = {"COLLAB_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"}


@pytest.mark.parametrize(
    ("hidden", "args", "env", "line"),
    [
        ("asyncpg", ("serve", "--port", "0", "--database-url", PG_URL), {}, NEEDS_ASYNCPG),
        ("asyncpg", ("serve", "--bus", "postgres", "--database-url", PG_URL), {}, NEEDS_ASYNCPG),
        ("asyncpg", ("export", "doc", "--database-url", PG_URL), {}, NEEDS_ASYNCPG),
        ("asyncpg", ("import", "doc", "-", "--database-url", PG_URL), {}, NEEDS_ASYNCPG),
        ("asyncpg", ("compact", "--database-url", PG_URL), {}, NEEDS_ASYNCPG),
        ("redis", ("serve", "--port", "0", *SQLITE), REDIS, NEEDS_REDIS),
        ("redis", ("serve", "--port", "0", "--workers", "2", *SQLITE), REDIS, NEEDS_REDIS),
        ("aio_pika", ("serve", "--port", "0", *SQLITE), AMQP, NEEDS_AIO_PIKA),
    ],
    ids=[
        "serve",
        "serve-bus-postgres",
        "export",
        "import",
        "compact",
        "redis",
        "redis-workers",
        "amqp",
    ],
)
def test_the_command_names_the_extra_and_exits_2(
    tmp_path: Path, hidden: str, args: tuple[str, ...], env: dict[str, str], line: str
) -> None:
    result = collab_without(tmp_path, (hidden,), *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"collab: {line}\n"
    assert result.returncode == 2


def test_what_needs_no_extra_works_without_them(tmp_path: Path) -> None:
    hidden = ("asyncpg", "redis", "hiredis", "aio_pika")
    result = collab_without(tmp_path, hidden, "export", "doc", *SQLITE, env=AMQP)
    assert (result.returncode, result.stderr) == (1, "collab export: no document named 'doc'\n")


# -- create_app, for code that builds its own app ------------------------------------------------


def test_create_app_raises_it_for_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # what `import asyncpg` then raises
    with pytest.raises(MissingExtra, match=r"^the PostgreSQL store needs asyncpg: ") as info:
        create_app(Settings(database_url=PG_URL))
    assert isinstance(info.value, ImportError) and str(info.value) == NEEDS_ASYNCPG
    assert (info.value.name, info.value.extra) == ("asyncpg", "postgres")


def test_create_app_raises_it_for_the_redis_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingExtra) as info:
        create_app(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert str(info.value) == NEEDS_REDIS


def test_create_app_raises_it_for_the_rabbitmq_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aio_pika", None)
    with pytest.raises(MissingExtra) as info:
        create_app(Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/"))
    assert str(info.value) == NEEDS_AIO_PIKA
    assert (info.value.name, info.value.extra) == ("aio_pika", "amqp")


def test_the_rabbitmq_extension_module_loads_without_aio_pika(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """app.py asks it on every start: without COLLAB_AMQP_URL, no aio-pika needed."""
    import importlib

    monkeypatch.setitem(sys.modules, "aio_pika", None)
    monkeypatch.delitem(sys.modules, "collab.extensions.amqp", raising=False)
    amqp = importlib.import_module("collab.extensions.amqp")
    assert amqp.from_settings(Settings()) == []
    monkeypatch.delitem(sys.modules, "collab.extensions.amqp")  # (not this copy, for others)


def test_the_postgres_bus_needs_asyncpg_with_a_store_of_ones_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    settings = Settings(database_url=PG_URL)
    create_app(settings, store=object())  # type: ignore[arg-type]  # the caller's store: no check
    with pytest.raises(MissingExtra) as info:
        create_app(settings.replace(bus="postgres"), store=object())  # type: ignore[arg-type]
    assert str(info.value) == (
        "the PostgreSQL bus (COLLAB_BUS=postgres) needs asyncpg: pip install 'collab[postgres]'"
    )


def test_a_broken_install_keeps_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed, but missing a module of its own: not 'install the extra', the real error."""
    (tmp_path / "collab_broken_extra.py").write_text("import collab_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require_extra("collab_broken_extra", "broken", "a test")
    assert not isinstance(info.value, MissingExtra)
    assert info.value.name == "collab_no_such_module"
