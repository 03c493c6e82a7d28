"""The hook table: one name per Extension hook, each of one kind, and the runner that follows
the kinds (inline: errors stop the rest; logged: errors are logged, the next runs; background:
only through the queue)."""

from __future__ import annotations

import logging
from typing import get_args

import pytest

from collab.hooks import (
    HOOKS,
    Extension,
    HookName,
    HookRunner,
    Kind,
    OnShutdownPayload,
    OnUnloadDocumentPayload,
)


def test_every_hook_name_is_a_method_of_extension_with_a_kind() -> None:
    assert list(HOOKS) == [
        "on_startup",
        "on_connect",
        "on_authenticate",
        "on_load_document",
        "on_change",
        "on_store_document",
        "on_disconnect",
        "on_unload_document",
        "on_request",
        "on_shutdown",
        "on_stateless",
    ]
    assert set(HOOKS) == set(get_args(HookName))
    assert all(callable(getattr(Extension, name)) for name in HOOKS)
    background = {name for name, kind in HOOKS.items() if kind is Kind.BACKGROUND}
    assert background == {
        "on_change",
        "on_store_document",
        "on_unload_document",
        "on_stateless",
    }
    logged = {name for name, kind in HOOKS.items() if kind is Kind.LOGGED}
    assert logged == {"on_disconnect", "on_shutdown"}


class Calls(Extension):
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("boom")

    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("boom")


pytestmark = pytest.mark.anyio


async def test_only_overridden_hooks_are_run() -> None:
    runner = HookRunner([Calls("a", [])])
    assert runner.has("on_unload_document") and runner.has("on_shutdown")
    assert not runner.has("on_change") and not runner.has("on_startup")
    await runner.drain(0)


async def test_a_background_hook_is_queued_and_no_other_kind_is() -> None:
    log: list[str] = []
    runner = HookRunner([Calls("a", log)])
    runner.enqueue("on_unload_document", OnUnloadDocumentPayload("doc"))
    with pytest.raises(ValueError, match="not a background hook"):
        runner.enqueue("on_shutdown", object())
    assert log == []  # queued, not run
    await runner.drain(0)


async def test_logged_hooks_go_on_after_an_error(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    runner = HookRunner([Calls("a", log, fail=True), Calls("b", log)])
    with caplog.at_level(logging.ERROR):
        await runner.run("on_shutdown", object())
    assert log == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == ["on_shutdown hook Calls.on_shutdown failed"]
    await runner.drain(0)
