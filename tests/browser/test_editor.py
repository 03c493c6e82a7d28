"""Two people in two independent browser contexts, writing in the same document."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from .conftest import BrowserLog, doc_text, editor_url, new_user, shoot, status, wait_for_text

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

DOC = "team/launch plan"
ADA = "Ada Lovelace"
GRACE = "Grace Hopper"


async def open_doc(page: Page, base: str, name: str) -> None:
    await page.goto(editor_url(base, name))
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(page.locator(".cm-content")).to_be_visible()


async def type_at_end(page: Page, text: str) -> None:
    await page.locator(".cm-content").click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(text)


def presence(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("presence").locator(f'.avatar[data-name="{name}"]')


async def test_two_users_see_each_others_text_cursor_and_presence(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_doc(ada, server.http, DOC)
    await open_doc(grace, server.http, DOC)

    # Presence: each sees both, live.
    for page in (ada, grace):
        await expect(presence(page, ADA)).to_be_visible()
        await expect(presence(page, GRACE)).to_be_visible()
    await expect(presence(ada, ADA)).to_have_attribute("data-me", "true")

    # Text typed by one appears in the other.
    await type_at_end(ada, "# Launch plan\n\nWe ship the browser editor on Friday.\n\n")
    await wait_for_text(grace, "We ship the browser editor on Friday.")
    await type_at_end(grace, "## Open questions\n\nWho writes the announcement?")
    await wait_for_text(ada, "Who writes the announcement?")
    await type_at_end(ada, " I can draft it.")  # Ada's caret ends up next to Grace's text

    # The remote caret carries the other person's name.
    await expect(grace.locator(".cm-ySelectionInfo", has_text=ADA)).to_be_visible()
    await expect(ada.locator(".cm-ySelectionInfo", has_text=GRACE)).to_be_visible()
    await expect(status(ada)).to_have_attribute("data-sync", "synced")
    await expect(status(grace)).to_have_attribute("data-sync", "synced")
    await wait_for_text(grace, "Who writes the announcement? I can draft it.")
    # A selection shows in the other's view too, in the selector's colour.
    await ada.locator(".cm-line", has_text="We ship").click()
    await ada.keyboard.press("End")
    for _ in range(len("on Friday.")):
        await ada.keyboard.press("Shift+ArrowLeft")
    await expect(grace.locator(".cm-ySelection")).to_have_text("on Friday.")
    await shoot(ada, "editor-two-users-ada.png")
    await shoot(grace, "editor-two-users-grace.png")

    # Closing Ada's browser removes her from Grace's presence bar and her caret from the text.
    await ada.context.close()
    await expect(presence(grace, ADA)).to_have_count(0, timeout=5_000)
    await expect(grace.locator(".cm-ySelectionInfo", has_text=ADA)).to_have_count(0)
    await expect(presence(grace, GRACE)).to_be_visible()

    # A reload fetches the whole document from the server.
    await grace.reload()
    await expect(status(grace)).to_have_attribute("data-state", "connected", timeout=10_000)
    await wait_for_text(grace, "Who writes the announcement? I can draft it.")
    assert await doc_text(grace) == (
        "# Launch plan\n\nWe ship the browser editor on Friday.\n\n"
        "## Open questions\n\nWho writes the announcement? I can draft it."
    )
    await expect(grace.locator(".cm-line", has_text="We ship the browser editor")).to_be_visible()
    log.check()


async def test_undo_reverts_only_my_own_edits(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_doc(ada, server.http, "undo")
    await open_doc(grace, server.http, "undo")
    await type_at_end(ada, "Ada's line.")
    await wait_for_text(grace, "Ada's line.")
    await type_at_end(grace, " Grace's words.")
    await wait_for_text(ada, "Ada's line. Grace's words.")

    await grace.keyboard.press("Control+z")  # Grace undoes her words, not Ada's line
    await wait_for_text(ada, "Grace's words.", present=False)
    assert await doc_text(ada) == "Ada's line."
    await grace.keyboard.press("Control+y")
    await wait_for_text(ada, "Ada's line. Grace's words.")
    await ada.keyboard.press("Control+z")  # and Ada undoes hers, keeping Grace's
    await wait_for_text(grace, "Ada's line.", present=False)
    assert await doc_text(grace) == " Grace's words."
    log.check()


async def test_refused_document_stops_reconnecting_and_says_why(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    page = await new_user(browser, log, ADA)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    # A control character in the name: the server accepts the socket, then closes it with 4404.
    await page.goto(f"{server.http}/d/bad%01name")
    await expect(status(page)).to_have_attribute("data-state", "closed", timeout=10_000)
    await expect(status(page)).to_have_text("Disconnected")
    banner = page.get_by_test_id("banner")
    await expect(banner).to_have_attribute("data-kind", "refused-4404")
    await expect(banner).to_contain_text("This document can’t be opened")
    await expect(banner).to_contain_text("control characters")
    provider = await page.evaluate(
        "({ should: collab.provider.shouldConnect, ws: collab.provider.ws === null })"
    )
    assert provider == {"should": False, "ws": True}
    assert len(sockets) == 1
    await expect(page.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    log.check()


async def test_start_page_creates_and_lists_documents_by_unicode_name(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    name = "Équipe Ω/notes ✓"
    page = await new_user(browser, log, GRACE)
    await page.goto(server.http + "/")
    await expect(page.get_by_text("Write together, in real time.")).to_be_visible()
    await page.get_by_test_id("doc-name").fill(name)
    await expect(page.get_by_test_id("open-doc")).to_contain_text("Create")
    await page.get_by_test_id("doc-name").press("Enter")
    await page.wait_for_url(re.compile(r"/d/%C3%89quipe%20%CE%A9/notes%20%E2%9C%93$"))
    await expect(page.get_by_test_id("doc-title")).to_have_text(name)
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await type_at_end(page, "Bonjour à tous.")
    await expect(status(page)).to_have_attribute("data-sync", "synced")

    await page.goto(server.http + "/")
    row = page.locator(f'.doc-list li[data-name="{name}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row).to_contain_text("just now")
    box = page.get_by_test_id("doc-name")
    await box.fill("notes")  # the box filters the list as you type
    await expect(row).to_be_visible()
    await box.fill("no such thing")
    await expect(row).to_be_hidden()
    await expect(page.get_by_text("No document matches")).to_be_visible()
    await box.fill(name)
    await expect(page.get_by_test_id("open-doc")).to_contain_text("Open")
    await row.get_by_role("link").click()
    await wait_for_text(page, "Bonjour à tous.")
    log.check()


async def test_a_new_display_name_reaches_others_live_and_is_remembered(
    server, browser, browser_log
):
    log: BrowserLog = browser_log
    log.origin = server.http
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_doc(ada, server.http, "names")
    await open_doc(grace, server.http, "names")
    await type_at_end(ada, "Hello.")
    await expect(grace.locator(".cm-ySelectionInfo", has_text=ADA)).to_be_visible()

    await ada.get_by_test_id("presence").click()
    await ada.get_by_role("button", name="Change your name").click()
    await ada.get_by_test_id("name-input").fill("Countess of Lovelace")
    await ada.get_by_role("button", name="Save").click()
    await expect(presence(grace, "Countess of Lovelace")).to_be_visible()
    await expect(presence(grace, ADA)).to_have_count(0)
    await ada.keyboard.type(" Again.")  # the editor has the focus back
    await expect(
        grace.locator(".cm-ySelectionInfo", has_text="Countess of Lovelace")
    ).to_be_visible()

    await ada.reload()
    await expect(status(ada)).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(presence(ada, "Countess of Lovelace")).to_have_attribute("data-me", "true")
    await expect(presence(grace, "Countess of Lovelace")).to_be_visible()
    await expect(presence(grace, "Countess of Lovelace")).to_have_count(1)
    await wait_for_text(grace, "Hello. Again.")
    log.check()
