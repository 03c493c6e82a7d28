"""docs/examples/summarize_bot.py, run as its README says (a process of its own) against a real
server, answering a real y-websocket client in Node; and its summary logic alone."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest

from tests.conftest import RunningServer

from .conftest import SpawnNode

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "docs" / "examples" / "summarize_bot.py"


def load_bot() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summarize_bot", BOT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_answers_each_finished_command_once_with_the_text_above_it() -> None:
    bot = load_bot()
    text = (
        "Cats sleep a lot. Cats sleep sixteen hours a day. Dogs bark.\n/summarize\n"
        "> Summary: already answered\n"
        "Rain fell. Rain fell all night on the roofs.\n/summarize\n"
        "/summarize"  # not finished: no Enter yet
    )
    todo = bot.answers(text)
    assert len(todo) == 1
    where, line = todo[0]
    assert text[:where].endswith("roofs.\n/summarize\n")
    assert line.startswith(bot.ANSWER) and "Rain" in line and "Cats" not in line


@pytest.mark.anyio
@pytest.mark.interop
async def test_the_bot_answers_a_yjs_user_live(server: RunningServer, node: SpawnNode) -> None:
    room = "bots/notes"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await anyio.open_process(
        [sys.executable, str(BOT), server.http, room, "--field", "text"],
        env=env,
        stdout=None,
        stderr=None,
    )
    try:
        user = await node(room)
        await user.synced()
        # The bot is there like a user (its awareness state), so it has synced.
        await user.wait(
            "r => Object.values(r.awareness).some(s => s?.user?.name === 'Summarizer bot')",
            timeout=15,
        )
        paragraph = (
            "The release slipped a week. The release needs the new storage engine. Lunch was good."
        )
        await user.edit({"type": "text_insert", "value": paragraph + "\n/summarize"})
        await user.edit({"type": "text_insert", "value": "\n"})  # Enter: now it answers
        report = await user.wait("r => r.text.includes('> Summary: ')", timeout=10)
        lines = report["text"].split("\n")
        assert lines[:2] == [paragraph, "/summarize"]
        assert lines[2].startswith("> Summary: The release")
        assert "Lunch" not in lines[2]
        assert report["text"].count("> Summary: ") == 1
        # Its cursor, as the editor would draw it: at the end of its answer.
        report = await user.wait(
            "r => Object.values(r.awareness).some(s => s?.cursor?.head)", timeout=10
        )
        bot_id = next(int(c) for c, s in report["awareness"].items() if s.get("cursor"))
        end = report["text"].index("\n", report["text"].index("> Summary: "))
        assert await user.cursor_of(bot_id) == {"anchor": end, "head": end}
    finally:
        proc.send_signal(signal.SIGINT)
        with anyio.move_on_after(10, shield=True) as waited:
            await proc.wait()
        if waited.cancelled_caught:
            proc.kill()
        await proc.aclose()
