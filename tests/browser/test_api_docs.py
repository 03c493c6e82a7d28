"""/api/docs in Chromium: Swagger UI from our own assets (no request leaves the server) renders
the served schema and lists every operation. Nothing is clicked open: the list is the check."""

from __future__ import annotations

import pytest

from collab.api import OPERATIONS

from .conftest import BrowserLog, new_user, shoot

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_the_api_docs_page_lists_every_operation(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    page = await new_user(browser, log, "Reader")
    response = await page.goto(f"{server.http}/api/docs")
    assert response is not None and response.status == 200
    await page.wait_for_selector(".opblock", timeout=15_000)
    await page.wait_for_function(
        "n => document.querySelectorAll('.opblock').length >= n",
        arg=len(OPERATIONS),
        timeout=15_000,
    )
    shown = await page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path')
        ])""",
    )
    assert sorted(map(tuple, shown)) == sorted((op.method, op.path) for op in OPERATIONS)
    assert "Collab documents API" in await page.locator(".info .title").inner_text()
    path = await shoot(page, "api-docs.png", full_page=True)
    assert path.stat().st_size > 10_000
    await page.context.close()
