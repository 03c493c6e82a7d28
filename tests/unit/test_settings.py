from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from collab.cli import build_parser, main
from collab.settings import Settings


def test_env_then_overrides():
    env = {
        "COLLAB_PORT": "9001",
        "COLLAB_COMMIT_WINDOW_MS": "20",
        "COLLAB_WS_PER_MESSAGE_DEFLATE": "yes",
    }
    s = Settings.from_env(env, commit_window_ms=30)
    assert (s.port, s.commit_window_ms, s.ws_per_message_deflate) == (9001, 30, True)


def test_bad_values_are_named_in_the_error():
    with pytest.raises(ValueError, match="COLLAB_PORT"):
        Settings.from_env({"COLLAB_PORT": "eighty"})
    with pytest.raises(ValueError, match="commit_window_ms"):
        Settings(commit_window_ms=0)


def test_every_field_is_a_serve_flag():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {opt for action in serve._actions for opt in action.option_strings}
    for f in fields(Settings):
        assert "--" + f.name.replace("_", "-") in flags


def test_readme_settings_table_lists_every_field_with_its_default():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `COLLAB_(\w+)` \| `--[\w-]+` \| `([^`]*)` \|", readme, re.M))
    for f in fields(Settings):
        assert rows.get(f.name.upper()) == str(f.default), f.name


def test_bad_flag_value_exits_2(capsys):
    assert main(["serve", "--port", "nope"]) == 2
    assert "COLLAB_PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite:////srv/x.db", "sqlite+aiosqlite:////srv/x.db"),
        (
            "postgres://u:p%40ss@db:5433/app?ssl=require",
            "postgresql+asyncpg://u:p%40ss@db:5433/app?ssl=require",
        ),
        ("postgresql://collab@db/collab", "postgresql+asyncpg://collab@db/collab"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+asyncpg://collab@db/collab", "postgresql+asyncpg://collab@db/collab"),
    ],
)
def test_a_database_url_without_a_driver_means_ours(given: str, used: str) -> None:
    """What tools and hosts hand out (`sqlite:///x.db`, Heroku's `postgres://`) names
    SQLAlchemy's synchronous default, which the async engine refused at startup."""
    assert Settings(database_url=given).database_url == used
    assert Settings.from_env({"COLLAB_DATABASE_URL": given}).database_url == used


def test_bus_postgres_takes_a_postgres_url() -> None:
    settings = Settings(database_url="postgres://collab@db/collab", bus="postgres")
    assert settings.database_url.startswith("postgresql+asyncpg://")


@pytest.mark.parametrize(
    "url", ["mysql://collab@db/collab", "postgresql+psycopg2://db/x", "sqlite+pysqlite:///x.db"]
)
def test_a_database_we_do_not_run_on_is_one_line_and_exit_2(url: str, capsys) -> None:
    assert main(["serve", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "database_url must be SQLite or PostgreSQL" in err and "Traceback" not in err
