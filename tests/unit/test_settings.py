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
