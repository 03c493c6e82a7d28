"""The change feed in a real browser: an EventSource receives the server's events, and the
editor's pill tells "Saving…" from "Saved" (what is on the server's disk) and shows an error
when the store cannot commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from pycrdt import Doc, Text

from tests.conftest import serving

from .conftest import BrowserLog, editor_url, new_user, shoot, status

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

FAST_EVENTS = {"events_debounce_ms": 50, "events_max_wait_ms": 200}


async def open_doc(page: Page, base: str, name: str) -> None:
    await page.goto(editor_url(base, name))
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(page.locator(".cm-content")).to_be_visible()


async def type_at_end(page: Page, text: str) -> None:
    await page.locator(".cm-content").click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(text)


async def test_event_source_receives_the_documents_events(settings, browser, browser_log):
    log: BrowserLog = browser_log
    async with serving(settings.replace(**FAST_EVENTS)) as srv:
        log.origin = srv.http
        page = await new_user(browser, log, "Ada Lovelace")
        await page.goto(srv.http + "/")
        await page.evaluate(
            """() => new Promise((resolve) => {
              window.got = []
              const source = new EventSource('/api/events?prefix=' + encodeURIComponent('news/'))
              for (const type of ['document.created', 'document.changed'])
                source.addEventListener(type, (e) => window.got.push(
                  { type: e.type, id: e.lastEventId, body: JSON.parse(e.data) }))
              source.onopen = () => resolve()
            })"""
        )
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.patch(
                "/api/documents/news%2Ftoday", json={"text": {"t": "Hello, readers."}}
            )
            assert response.status_code == 200, response.text
        await page.wait_for_function("() => window.got.length >= 2", timeout=10_000)
        got = await page.evaluate("window.got")
        await page.context.close()  # (before the server stops: no refused reconnects)
    assert [e["type"] for e in got[:2]] == ["document.created", "document.changed"]
    assert all(e["id"] == e["body"]["id"] for e in got)
    assert got[1]["body"]["text"] == {"t": "Hello, readers."}
    assert got[1]["body"]["document"] == "news/today"


async def test_saving_then_saved_with_a_long_commit_window(settings, browser, browser_log):
    log: BrowserLog = browser_log
    async with serving(settings.replace(commit_window_ms=3000)) as srv:
        log.origin = srv.http
        page = await new_user(browser, log, "Ada Lovelace")
        await open_doc(page, srv.http, "saved/window")
        await expect(status(page)).to_have_attribute("data-saved", "saved", timeout=10_000)
        await type_at_end(page, "Words that must reach the disk.")
        pill = status(page)
        await expect(pill).to_have_attribute("data-saved", "saving")
        await expect(pill).to_have_text("Saving…")
        # Handed to the server (what "Synced" used to mean) is not yet saved.
        await expect(pill).to_have_attribute("data-sync", "synced")
        await expect(pill).to_have_text("Saving…")
        await shoot(page, "saved-indicator-saving.png")
        await expect(pill).to_have_text("Saved", timeout=10_000)
        await expect(pill).to_have_attribute("data-saved", "saved")
        await shoot(page, "saved-indicator-saved.png")
        # "Saved" is a claim about the disk: the store has the words now.
        stored = await srv.hub.store.load("saved/window")
        doc = Doc()
        for update in ([stored.snapshot] if stored.snapshot else []) + list(stored.updates):
            doc.apply_update(update)
        assert str(doc.get("codemirror", type=Text)) == "Words that must reach the disk."
        await page.context.close()


@contextmanager
def database_locked(path: Path) -> Iterator[None]:
    """Another process's writer holding the database: every commit waits out the busy timeout
    and fails, until released."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=1)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.timeout(60)
async def test_a_failing_store_shows_an_error_not_saved(settings, browser, browser_log, tmp_path):
    log: BrowserLog = browser_log
    async with serving(settings.replace(commit_window_ms=20)) as srv:
        log.origin = srv.http
        page = await new_user(browser, log, "Ada Lovelace")
        await open_doc(page, srv.http, "saved/outage")
        await type_at_end(page, "Before. ")
        pill = status(page)
        await expect(pill).to_have_text("Saved", timeout=10_000)
        with database_locked(tmp_path / "collab.db"):
            await type_at_end(page, "During the outage.")
            await expect(pill).to_have_text("Saving…")
            await expect(pill).to_have_attribute("data-saved", "failed", timeout=20_000)
            await expect(pill).to_have_text("Not saved")
            title = await pill.get_attribute("title")
            assert title and "could not store" in title
            await shoot(page, "saved-indicator-failed.png")
        await expect(pill).to_have_text("Saved", timeout=20_000)
        await shoot(page, "saved-indicator-recovered.png")
        await page.context.close()
