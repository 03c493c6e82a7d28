"""The editor's history panel: two people with their own tokens (so the server knows who wrote
what) edit a document; the panel lists its versions with their authors, previews one with the
changes since then marked, names a version, and restores one, which the other person's editor
and panel receive live; then Undo puts the text back. Screenshots under test-artifacts/browser/."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from collab.extensions.token_auth import mint_token
from tests.conftest import serving

from .conftest import (
    PHONE,
    BrowserLog,
    doc_text,
    editor_url,
    new_user,
    shoot,
    status,
    wait_for_text,
)

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SECRET = "history-secret-0123456789-abcdefghijklm"
DOC = "team/launch plan"
DRAFT = "# Launch plan\n\nWe ship the editor on Friday.\n"
GRACES = "Grace: the history panel ships too."
# Automatic versions come after this pause in editing; the panel's list polls every 10 s.
PAUSE_S = 0.3
LIST_TIMEOUT = 20_000


def history_settings(settings: Any) -> Any:
    return settings.replace(auth_secret=SECRET, version_pause_s=PAUSE_S)


def token(user: str, name: str) -> str:
    return mint_token(doc="*", write=True, ttl_s=600, secret=SECRET, user=user, name=name)


async def open_doc(page: Page, base: str, user_token: str) -> None:
    await page.goto(f"{editor_url(base, DOC)}?token={user_token}")
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(page.locator(".cm-content")).to_be_visible()


async def type_at_end(page: Page, text: str) -> None:
    await page.locator(".cm-content").click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(text)
    await expect(status(page)).to_have_attribute("data-sync", "synced", timeout=10_000)


def versions(page: Page) -> Locator:
    return page.get_by_test_id("version-list").locator("button.version-item")


def version(
    page: Page, *, kind: str | None, text: str | None = None, author: str | None = None
) -> Locator:
    found = versions(page)
    if kind is not None:
        found = found.and_(page.locator(f'[data-kind="{kind}"]'))
    if text is not None:
        found = found.filter(has_text=text)
    if author is not None:
        found = found.filter(has=page.locator(f'.author-chip[data-author="{author}"]'))
    return found


async def leave(*pages: Page) -> None:
    for page in pages:
        await page.context.close()


async def open_history(page: Page) -> None:
    await page.get_by_test_id("history-button").click()
    await expect(page.get_by_test_id("history-panel")).to_be_visible()


async def name_version(page: Page, label: str) -> None:
    await page.get_by_test_id("name-version").click()
    await page.get_by_test_id("version-label").fill(label)
    await page.get_by_test_id("version-label").press("Enter")
    await expect(page.get_by_test_id("history-notice")).to_contain_text(f"Saved “{label}”")


async def test_versions_with_authors_preview_name_restore_live_and_undo(
    settings, browser, browser_log
):
    log: BrowserLog = browser_log
    async with serving(history_settings(settings)) as srv:
        log.origin = srv.http
        ada = await new_user(browser, log, "Ada Lovelace")
        grace = await new_user(browser, log, "Grace Hopper")
        await open_doc(ada, srv.http, token("ada", "Ada Lovelace"))
        await type_at_end(ada, DRAFT)

        # Ada names the draft: it is listed at once. Her typing is by her: in this version, or in
        # an automatic one taken when she paused before naming it.
        await open_history(ada)
        await name_version(ada, "First draft")
        first = version(ada, kind="named", text="First draft")
        await expect(first).to_have_count(1)
        await expect(version(ada, kind=None, author="ada").first).to_be_visible()

        # Grace adds a line; after a pause the server saves an automatic version by her, which
        # Ada's open panel picks up (it refreshes after a remote change and every 10 s).
        await open_doc(grace, srv.http, token("grace", "Grace Hopper"))
        await wait_for_text(grace, "We ship the editor on Friday.")
        await type_at_end(grace, GRACES)
        await wait_for_text(ada, GRACES)
        # (Ada's own typing may have had an automatic version before she named it: not asserted.)
        by_grace = version(ada, kind="auto", author="grace")
        await expect(by_grace.first).to_be_visible(timeout=LIST_TIMEOUT)
        await expect(
            by_grace.filter(has=ada.locator('.author-chip[data-author="ada"]'))
        ).to_have_count(0)
        await shoot(ada, "history-list.png")

        # The preview of the draft marks Grace's line as added since, by her.
        await first.click()
        preview = ada.get_by_test_id("version-preview")
        await expect(preview.get_by_test_id("preview-title")).to_have_text("First draft")
        body = preview.get_by_test_id("preview-body")
        added = body.locator("ins.diff-insert")
        await expect(added).to_have_count(1)
        await expect(added).to_have_text(GRACES)
        await expect(added).to_have_attribute("data-author", "grace")
        await expect(body.locator("del.diff-delete")).to_have_count(0)
        await expect(body).to_contain_text("We ship the editor on Friday.")
        await expect(preview.get_by_test_id("preview-summary")).to_contain_text(
            f"{len(GRACES)} characters added, 0 removed"
        )
        await shoot(ada, "history-preview.png")
        # "As it was" shows the draft's own text, without Grace's line.
        await preview.get_by_role("button", name="As it was").click()
        await expect(body).to_have_text(DRAFT)
        await preview.get_by_role("button", name="Changes since").click()
        await expect(added).to_have_text(GRACES)

        # Grace watches with her own panel open while Ada restores the draft.
        await open_history(grace)
        await expect(version(grace, kind="named", text="First draft")).to_have_count(1)
        await preview.get_by_test_id("restore-version").click()
        await expect(ada.get_by_test_id("history-notice")).to_contain_text("Restored")
        await wait_for_text(ada, GRACES, present=False)
        await wait_for_text(grace, GRACES, present=False)  # live, as an ordinary edit
        assert await doc_text(grace) == DRAFT
        for page in (ada, grace):
            await expect(version(page, kind="restore", text="Before restoring")).to_have_count(
                1, timeout=LIST_TIMEOUT
            )
            await expect(version(page, kind="restore", text="Restored")).to_have_count(1)
        await expect(version(ada, kind="restore", text="Restored “First draft”")).to_have_count(1)
        await shoot(ada, "history-restored-ada.png")
        await shoot(grace, "history-restored-grace.png")

        # Grace looks at the state before the restore: her line is marked as removed since.
        await version(grace, kind="restore", text="Before restoring").click()
        grace_body = grace.get_by_test_id("preview-body")
        await expect(grace_body.locator("del.diff-delete")).to_have_text(GRACES)
        await expect(grace_body.locator("ins.diff-insert")).to_have_count(0)
        await shoot(grace, "history-removed-since.png")
        await grace.get_by_role("button", name="All versions").click()

        # Undo restores the version taken just before: Grace's line is back for both.
        await ada.get_by_test_id("undo-restore").click()
        await expect(ada.get_by_test_id("history-notice")).to_contain_text("Undone")
        await wait_for_text(ada, GRACES)
        await wait_for_text(grace, GRACES)
        assert await doc_text(grace) == DRAFT + GRACES
        await expect(version(ada, kind="restore")).to_have_count(4)

        # Keyboard: Escape closes the panel and gives the focus back to its button.
        await grace.get_by_test_id("version-list").locator("button").first.focus()
        await grace.keyboard.press("ArrowDown")
        await expect(versions(grace).nth(1)).to_be_focused()
        await grace.keyboard.press("Escape")
        await expect(grace.get_by_test_id("history-panel")).to_be_hidden()
        await expect(grace.get_by_test_id("history-button")).to_be_focused()
        await expect(grace.get_by_test_id("history-button")).to_have_attribute(
            "aria-expanded", "false"
        )
        await leave(ada, grace)  # before the server stops: no refused reconnects
        log.check()


async def test_history_panel_on_a_phone_and_a_read_only_token(settings, browser, browser_log):
    """On a phone (in dark mode) the panel covers the editor; a read-only token can look but
    not name or restore."""
    log: BrowserLog = browser_log
    async with serving(history_settings(settings)) as srv:
        log.origin = srv.http
        ada = await new_user(browser, log, "Ada Lovelace")
        await open_doc(ada, srv.http, token("ada", "Ada Lovelace"))
        await type_at_end(ada, DRAFT)
        await open_history(ada)
        await name_version(ada, "Before the phone")

        reader = mint_token(doc="*", write=False, ttl_s=600, secret=SECRET, user="rita")
        phone = await new_user(
            browser,
            log,
            "Rita",
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
            color_scheme="dark",
        )
        log.allow(r"status of 403")  # the browser logs the refused request
        await phone.goto(f"{editor_url(srv.http, DOC)}?token={reader}")
        await wait_for_text(phone, "We ship the editor on Friday.")
        await open_history(phone)
        await version(phone, kind="named", text="Before the phone").click()
        await expect(phone.get_by_test_id("preview-summary")).to_contain_text("No changes")
        await shoot(phone, "history-phone-preview.png")
        await phone.get_by_role("button", name="All versions").click()
        await phone.get_by_test_id("name-version").click()
        await phone.get_by_test_id("version-label").fill("Not allowed")
        await phone.get_by_test_id("save-version").click()
        await expect(phone.get_by_test_id("history-error")).to_contain_text("does not allow it")
        await shoot(phone, "history-phone-read-only.png")
        await expect(version(phone, kind="named")).to_have_count(1)
        await leave(ada, phone)  # before the server stops: no refused reconnects
        log.check()


async def test_older_versions_load_page_by_page_and_stay_on_refresh(settings, browser, browser_log):
    """55 named versions: the panel shows the newest 50, "Show older" the other 5; a refresh
    (here: after naming one more) keeps all of them listed; a preview follows new typing."""
    log: BrowserLog = browser_log
    ada_token = token("ada", "Ada Lovelace")
    async with serving(history_settings(settings)) as srv:
        log.origin = srv.http
        path = "/api/documents/" + quote(DOC, safe="")
        headers = {"Authorization": f"Bearer {ada_token}"}
        async with httpx.AsyncClient(base_url=srv.http, headers=headers) as http:
            created = await http.patch(path, json={"text": {"codemirror": DRAFT}})
            assert created.status_code == 200, created.text
            for n in range(1, 56):
                answer = await http.post(f"{path}/versions", json={"label": f"Step {n}"})
                assert answer.status_code == 201, answer.text
        ada = await new_user(browser, log, "Ada Lovelace")
        await open_doc(ada, srv.http, ada_token)
        await open_history(ada)
        await expect(versions(ada)).to_have_count(50)
        await expect(versions(ada).first).to_contain_text("Step 55")
        more = ada.get_by_role("button", name="Show older")
        await more.click()
        await expect(versions(ada)).to_have_count(55)
        await expect(versions(ada).last).to_contain_text("Step 1")
        await expect(more).to_be_hidden()
        await name_version(ada, "Step 56")
        await expect(versions(ada)).to_have_count(56)
        await expect(versions(ada).first).to_contain_text("Step 56")

        # An open preview follows "now": typing in the editor shows up as added since.
        await versions(ada).first.click()
        await expect(ada.get_by_test_id("preview-summary")).to_contain_text("No changes")
        await type_at_end(ada, "Typed while looking.")
        added = ada.get_by_test_id("preview-body").locator("ins.diff-insert")
        await expect(added).to_have_text("Typed while looking.")
        await expect(added).to_have_attribute("data-author", "ada")
        await leave(ada)  # before the server stops: no refused reconnects
        log.check()
