"""/admin in Chromium (issue 14): the token gate (no token, a document token, then an admin
token), the overview and the documents search, a document's view with its connections, closing
one (the editor in another browser context is told, reconnects, and shows up again as a new
connection), compact and a version from the page, and delete behind a confirmation (cancel
first: still there; then the editor is refused with 4404). Screenshots go to
test-artifacts/browser/admin-*.png."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.async_api import expect

from tests.conftest import free_port, serving
from tests.integration import test_cluster as cluster
from tests.integration.api_support import SECRET, api, text_update, token, write
from tests.ywire import YClient

from .conftest import BrowserLog, editor_url, new_user, shoot, status, wait_for_text

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

NAME = "team/notes"


def admin_token() -> str:
    return token("*", write=True, user="admin", role="admin")


async def test_token_gate_overview_and_document_search(settings, browser, browser_log):
    log: BrowserLog = browser_log
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        log.origin = srv.http
        log.allow("Failed to load resource: the server responded with a status of 40[13]")
        async with api(srv.http, admin_token()) as admin:
            for name in ("team/notes", "team/plan", "ops/runbook"):
                await write(admin, name, text_update(f"text of {name}"))
        page = await new_user(browser, log, "Operator")
        await page.goto(f"{srv.http}/admin")
        await expect(page.get_by_test_id("token-why")).to_have_text(
            "This server needs an admin token."
        )
        await shoot(page, "admin-token.png")
        await page.get_by_test_id("token-input").fill(token("*", write=True, user="ada"))
        await page.get_by_test_id("token-input").press("Enter")
        await expect(page.get_by_test_id("token-why")).to_have_text(
            "This token is not an admin token."
        )
        await page.get_by_test_id("token-input").fill(admin_token())
        await page.get_by_test_id("token-input").press("Enter")

        await expect(page.get_by_test_id("process")).to_contain_text("0 connections")
        await expect(page.get_by_test_id("cluster")).to_contain_text("A single process")
        # a client connects: the process line at once, the chart from the next sample (2 s)
        async with YClient(srv.url, "team/notes", query=f"token={admin_token()}") as client:
            await client.wait_for(lambda: client.synced)
            await expect(page.get_by_test_id("process")).to_contain_text("1 connection")
            value = page.get_by_test_id("chart-connections-value")
            await expect(value).to_have_text("1", timeout=10_000)
            rows = page.get_by_test_id("doc-row")
            await expect(rows).to_have_count(3)
            await expect(rows.first).to_have_attribute("data-name", "ops/runbook")
            await page.get_by_test_id("doc-search").fill("team/")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(1)).to_have_attribute("data-name", "team/plan")
            await expect(rows.nth(0)).to_contain_text("1")  # one log row
            await expect(rows.nth(0).locator(".user-chip")).to_have_text("admin")
            await shoot(page, "admin-overview.png", full_page=True)

        # the token stays for this tab: a reload does not ask again
        await page.reload()
        await expect(page.get_by_test_id("doc-row")).to_have_count(3)
        await page.context.close()


async def test_close_a_connection_and_the_editor_reacts_then_delete(settings, browser, browser_log):
    log: BrowserLog = browser_log
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        log.origin = srv.http
        async with api(srv.http, admin_token()) as admin:
            await write(admin, NAME, text_update("Agenda"))
        ada = await new_user(browser, log, "Ada")
        ada_token = token(NAME, write=True, user="ada")
        await ada.goto(f"{editor_url(srv.http, NAME)}?token={ada_token}")
        await wait_for_text(ada, "Agenda")
        await expect(status(ada)).to_have_attribute("data-state", "connected")

        page = await new_user(browser, log, "Operator")
        await page.goto(f"{srv.http}/admin?token={admin_token()}#/d/{quote(NAME, safe='')}")
        assert "token=" not in page.url  # taken out of the address bar, kept for the tab
        await expect(page.get_by_test_id("doc-title")).to_have_text(NAME)
        rows = page.get_by_test_id("connection-row")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-user", "ada")
        first_id = await rows.first.get_attribute("data-id")
        await shoot(page, "admin-document.png", full_page=True)

        await rows.first.get_by_test_id("close-connection").click()
        # the other browser context: told why, then back (a new connection, a new id)
        await expect(ada.locator(".toast")).to_contain_text(
            "An administrator closed this connection"
        )
        await ada.wait_for_function(
            "() => document.querySelector('.toast')?.getAnimations().length === 0"
        )
        await shoot(ada, "admin-editor-closed.png")
        await expect(status(ada)).to_have_attribute("data-state", "connected", timeout=10_000)
        await expect(rows).to_have_count(1)
        await expect(rows.first).not_to_have_attribute("data-id", first_id or "")
        await ada.locator(".cm-content").click()
        await ada.keyboard.press("End")
        await ada.keyboard.type(" after")
        await wait_for_text(ada, "Agenda after")

        await page.get_by_test_id("compact").click()
        await expect(page.locator(".toast")).to_contain_text("Compacted")
        await page.get_by_test_id("version-label").fill("before the cleanup")
        await page.get_by_test_id("create-version").click()
        await expect(page.locator(".toast")).to_contain_text("“before the cleanup”")
        await expect(page.get_by_test_id("doc-stats")).to_contain_text("1versions")

        await page.get_by_test_id("delete").click()
        dialog = page.get_by_test_id("confirm-delete")
        await expect(dialog).to_be_visible()
        await shoot(page, "admin-delete-confirm.png")
        await page.get_by_test_id("cancel-delete").click()
        await expect(dialog).to_have_count(0)
        await expect(rows).to_have_count(1)  # nothing happened
        await page.get_by_test_id("delete").click()
        await page.get_by_test_id("confirm-delete-button").click()
        await expect(page.locator(".toast")).to_contain_text(f"Deleted “{NAME}”")
        await expect(page.get_by_test_id("overview")).to_be_visible()
        await expect(page.get_by_test_id("doc-row")).to_have_count(0)
        await expect(status(ada)).to_have_attribute("data-state", "closed", timeout=10_000)
        await expect(ada.get_by_test_id("banner")).to_contain_text("document deleted")
        await page.context.close()
        await ada.context.close()


redis = cluster.redis  # a fixture: a redis-server of the test's own


@pytest.mark.redis
async def test_the_cluster_table_shows_both_processes(settings, redis, browser, browser_log):
    log: BrowserLog = browser_log
    shared = settings.replace(bus="redis", redis_url=redis.url)
    async with serving(shared) as a, serving(shared.replace(port=free_port())) as b:
        log.origin = a.http
        async with YClient(b.url, "on-b") as client:
            await client.wait_for(lambda: client.synced)
            page = await new_user(browser, log, "Operator")
            await page.goto(f"{a.http}/admin")
            rows = page.get_by_test_id("cluster-process")
            await expect(rows).to_have_count(2, timeout=10_000)
            await expect(rows.first).to_contain_text("this one")
            # b's heartbeats carry its one connection and one open document
            await expect(rows.nth(1).locator("td.num").nth(1)).to_have_text("1", timeout=10_000)
            await expect(page.get_by_test_id("cluster")).to_contain_text(
                "2 processes on the redis bus"
            )
            await shoot(page, "admin-cluster.png", full_page=True)
            await page.context.close()
