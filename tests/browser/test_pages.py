"""The start page and phone-sized screens, with screenshots under test-artifacts/browser/."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from playwright.async_api import Page, expect
from pycrdt import Text

from collab.extensions.token_auth import mint_token
from tests.conftest import serving
from tests.ywire import YClient

from .conftest import PHONE, BrowserLog, editor_url, new_user, shoot, status, wait_for_text

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

WEEKLY = (
    "# Weekly notes\n\n"
    "## Shipped\n\n"
    "The browser editor: live cursors with names, a presence bar, and an indicator that says "
    "whether your edits reached the server.\n\n"
    "## Next\n\n"
    "Comments in the margin, and **export to Markdown** from the start page.\n\n"
    "> Keep it fast on a phone.\n"
)
DOCS = {
    "team/weekly notes": WEEKLY,
    "team/launch plan": "# Launch plan\n\n" + "Friday, 10:00: announce in the team channel.\n" * 30,
    "ideas": "Dark mode that follows the system. Offline drafts.\n",
    "Recettes/crème brûlée": "# Crème brûlée\n\n500 ml de crème, 6 jaunes d'œufs, 80 g de sucre.\n",
}


async def write_doc(server: Any, name: str, text: str) -> None:
    """Write `text` into `name` with the Python y-websocket client; wait until the server has it."""
    async with YClient(server.url, name) as client:
        await client.wait_for(lambda: client.synced)
        client.doc.get("codemirror", type=Text).insert(0, text)
        with anyio.fail_after(5):
            while str(server.hub.rooms[name].doc.get("codemirror", type=Text)) != text:
                await anyio.sleep(0.02)


async def no_horizontal_scroll(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


async def test_start_page_lists_documents_with_size_time_and_people_online(
    server, browser, browser_log
):
    log: BrowserLog = browser_log
    log.origin = server.http
    for name, text in DOCS.items():
        await write_doc(server, name, text)
    grace = await new_user(browser, log, "Grace Hopper")
    await grace.goto(editor_url(server.http, "team/launch plan"))
    await expect(status(grace)).to_have_attribute("data-state", "connected", timeout=10_000)

    page = await new_user(browser, log, "Ada Lovelace")
    await page.goto(server.http + "/")
    rows = page.get_by_test_id("doc-list").locator("li")
    await expect(rows).to_have_count(len(DOCS), timeout=10_000)
    launch = rows.filter(has=page.get_by_text("team/launch plan", exact=True))
    await expect(launch).to_contain_text("1 online")
    await expect(launch).to_contain_text("just now")
    await expect(launch).to_contain_text(" KB")
    await expect(rows.filter(has_text="ideas")).to_contain_text("—")  # nobody there now
    await page.get_by_test_id("doc-name").fill("team/")  # filters the list as you type
    await expect(rows).to_have_count(2)
    await page.get_by_test_id("doc-name").fill("")
    await expect(rows).to_have_count(len(DOCS))
    await shoot(page, "start-page.png")

    # The row links to the editor, where the text comes from the server.
    await rows.filter(has_text="crème brûlée").get_by_role("link").click()
    await wait_for_text(page, "500 ml de crème")
    await expect(page.get_by_test_id("doc-title")).to_have_text("Recettes/crème brûlée")
    log.check()


async def test_phone_sized_start_page_and_editor(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    await write_doc(server, "team/weekly notes", DOCS["team/weekly notes"])
    phone: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 2}
    phone |= {"is_mobile": True, "has_touch": True}
    page = await new_user(browser, log, "Ada Lovelace", **phone)
    await page.goto(server.http + "/")
    await expect(page.get_by_test_id("doc-list").locator("li")).to_have_count(1, timeout=10_000)
    await no_horizontal_scroll(page)
    await shoot(page, "phone-start-page.png")

    await page.get_by_test_id("doc-list").get_by_role("link").click()
    await expect(status(page)).to_have_attribute("data-sync", "synced", timeout=10_000)
    await wait_for_text(page, "Keep it fast on a phone.")
    await expect(page.get_by_test_id("presence").locator(".avatar")).to_have_count(1)
    await expect(page.get_by_test_id("doc-title")).to_be_visible()
    await no_horizontal_scroll(page)
    await page.locator(".cm-line", has_text="## Next").tap()
    await page.keyboard.press("End")
    await page.keyboard.type(" (typed on a phone)")
    await wait_for_text(page, "## Next (typed on a phone)\n")
    await expect(status(page)).to_have_attribute("data-sync", "synced")
    await shoot(page, "phone-editor.png")
    log.check()


SECRET = "browser-secret-0123456789-abcdefghijklm"


async def test_start_page_with_auth_on_works_from_a_link_that_carries_a_token(
    settings, browser, browser_log
):
    """With auth on, the list needs a token: a page opened from a link with ?token= shows the
    documents that token covers, and its links keep it; without one it says why it is empty."""
    log: BrowserLog = browser_log
    writer = mint_token(doc="*", write=True, ttl_s=600, secret=SECRET)
    team = mint_token(doc="team/*", write=True, ttl_s=600, secret=SECRET, name="Ada")
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        log.origin = srv.http
        for name in ("team/weekly notes", "team/launch plan", "hr/layoffs-2027"):
            async with YClient(srv.url, name, query=f"token={writer}") as client:
                await client.wait_for(lambda client=client: client.synced)
                client.doc.get("codemirror", type=Text).insert(0, f"# {name}\n")
                with anyio.fail_after(5):
                    while name not in str(srv.hub.rooms[name].doc.get("codemirror", type=Text)):
                        await anyio.sleep(0.02)

        stranger = await new_user(browser, log, "Stranger")
        log.allow(r"status of 401")  # the browser logs the refused fetch
        await stranger.goto(srv.http + "/")
        await expect(stranger.locator(".list-status")).to_contain_text("access link")
        await expect(stranger.get_by_test_id("doc-list").locator("li")).to_have_count(0)
        assert "layoffs" not in await stranger.content()
        await shoot(stranger, "start-page-needs-token.png")

        page = await new_user(browser, log, "Ada Lovelace")
        await page.goto(f"{srv.http}/?token={team}")
        rows = page.get_by_test_id("doc-list").locator("li")
        await expect(rows).to_have_count(2, timeout=10_000)
        await expect(rows.filter(has_text="hr/")).to_have_count(0)
        await shoot(page, "start-page-with-token.png")
        await rows.filter(has_text="launch plan").get_by_role("link").click()
        await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
        await wait_for_text(page, "# team/launch plan")
        assert f"token={team}" in page.url
        # and back to the list, still with the token
        await page.locator("a.crumb-home").click()
        await expect(page.get_by_test_id("doc-list").locator("li")).to_have_count(2)
        log.check()
