"""A server restart in the middle of an editing session loses nothing the user typed."""

from __future__ import annotations

import anyio
import pytest
from playwright.async_api import expect
from pycrdt import Text

from .conftest import (
    BrowserLog,
    RestartableServer,
    doc_text,
    editor_url,
    new_user,
    shoot,
    status,
    wait_for_text,
)

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

DOC = "ops/restart drill"
# Chromium logs each refused reconnect attempt while the server is down; that is expected here.
REFUSED = r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws/.*' failed"


async def test_restart_mid_session_reconnects_and_keeps_outage_edits(
    restartable_server, browser, browser_log
):
    srv: RestartableServer = restartable_server
    log: BrowserLog = browser_log
    log.origin = srv.http
    log.allow(REFUSED)
    page = await new_user(browser, log, "Ada Lovelace")
    await page.goto(editor_url(srv.http, DOC))
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await page.locator(".cm-content").click()
    await page.keyboard.type("Written before the restart.")
    await expect(status(page)).to_have_attribute("data-sync", "synced")

    await srv.stop()
    await expect(status(page)).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    await expect(status(page)).to_have_text("Reconnecting…")
    await page.keyboard.type(" Typed while the server was down.")
    await expect(status(page)).to_have_attribute("data-sync", "unsent")
    await expect(page.get_by_test_id("banner")).to_contain_text(
        "Reconnecting to the server", timeout=10_000
    )
    await shoot(page, "editor-reconnecting.png")

    # The browser losing its network as well reads "Offline"; getting it back, "Reconnecting".
    await page.context.set_offline(True)
    await expect(status(page)).to_have_attribute("data-state", "offline")
    await expect(page.get_by_test_id("banner")).to_contain_text("You’re offline.")
    await page.context.set_offline(False)
    await expect(status(page)).to_have_attribute("data-state", "reconnecting")

    await srv.start()  # same port, same database
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(status(page)).to_have_attribute("data-sync", "synced", timeout=10_000)
    await expect(page.get_by_test_id("banner")).to_be_hidden()
    expected = "Written before the restart. Typed while the server was down."
    assert await doc_text(page) == expected

    # The new server has the outage edits, and a newcomer gets them from it.
    with anyio.fail_after(5):
        while str(srv.hub.rooms[DOC].doc.get("codemirror", type=Text)) != expected:
            await anyio.sleep(0.02)
    other = await new_user(browser, log, "Grace Hopper")
    await other.goto(editor_url(srv.http, DOC))
    await wait_for_text(other, expected)
    log.check()
