"""A real Tiptap editor (Tiptap 3 + @hocuspocus/provider, bundled by esbuild) in Chromium on
/hocuspocus, beside a y-websocket client on /ws: typing converges, the remote caret shows,
awareness crosses, a reload restores.

The page is served by the server under test through an extension's routes (so it comes from
the server's own origin and loads nothing from anywhere else); its bundle is built from
tests/interop/node_modules at the start.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from collab import Extension, Settings
from tests.browser.conftest import ARTIFACTS, DESKTOP, BrowserLog, browser, browser_log
from tests.conftest import RunningServer, free_port, require, serving

from .hocuspocus_node import provider_missing
from .yjsnode import HERE, NodeYClient

pytestmark = [pytest.mark.interop, pytest.mark.browser, pytest.mark.anyio]
__all__ = ["browser", "browser_log"]  # the fixtures, used by name

ENTRY = HERE / "hocuspocus_tiptap.mjs"
ESBUILD = HERE / "node_modules" / ".bin" / "esbuild"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Tiptap on /hocuspocus</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 24px; }
  #editor .ProseMirror { border: 1px solid #ccc; border-radius: 6px; padding: 12px 16px;
    min-height: 160px; outline: none; }
  .collaboration-carets__caret { border-left: 1px solid #0d0d0d; border-right: 1px solid #0d0d0d;
    margin-left: -1px; margin-right: -1px; pointer-events: none; position: relative;
    word-break: normal; }
  .collaboration-carets__label { border-radius: 3px 3px 3px 0; color: #0d0d0d; font-size: 12px;
    font-weight: 600; left: -1px; line-height: normal; padding: 0.1rem 0.3rem;
    position: absolute; top: -1.4em; user-select: none; white-space: nowrap; }
</style></head>
<body><h3>Tiptap over the Hocuspocus protocol</h3><div id="editor"></div>
<script type="module" src="/tiptap-test/page.js"></script></body></html>
"""


def build_bundle(out: Path) -> bytes:
    require(ESBUILD.exists(), f"{ESBUILD} is missing: run `make interop-deps`")
    subprocess.run(
        [
            str(ESBUILD),
            str(ENTRY),
            "--bundle",
            "--format=esm",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        check=True,
        cwd=HERE,
        timeout=60,
    )
    return out.read_bytes()


class TiptapPage(Extension):
    """Serves the test's page and its bundle."""

    def __init__(self, bundle: bytes) -> None:
        self.bundle = bundle

    def routes(self) -> list[BaseRoute]:
        async def page(request: Request) -> Response:
            return HTMLResponse(PAGE)

        async def script(request: Request) -> Response:
            return Response(self.bundle, media_type="text/javascript")

        return [Route("/tiptap-test/", page), Route("/tiptap-test/page.js", script)]


async def open_editor(
    browser: Browser, log: BrowserLog, server: RunningServer, user: str, color: str
) -> Page:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    log.watch(page, user)
    query = urlencode(
        {"url": f"{server.url}/hocuspocus", "doc": "tiptap", "user": user, "color": color}
    )
    await page.goto(f"{server.http}/tiptap-test/?{query}")
    await page.wait_for_selector("body[data-synced='1'][data-scope='read-write']")
    return page


async def text_of(page: Page) -> str:
    text: str = await page.evaluate("() => window.editor.getText()")
    return text


async def test_tiptap_in_chromium_with_a_y_websocket_peer(
    settings: Settings,
    browser: Browser,
    browser_log: BrowserLog,
    node_available: None,
    tmp_path: Path,
) -> None:
    reason = provider_missing() or (None if shutil.which("node") else "node is missing")
    require(reason is None, reason or "")
    bundle = build_bundle(tmp_path / "page.js")
    page_ext = TiptapPage(bundle)
    async with serving(settings.replace(port=free_port()), extensions=[page_ext]) as server:
        await editing(server, browser, browser_log)


async def editing(server: RunningServer, browser: Browser, browser_log: BrowserLog) -> None:
    browser_log.origin = server.http
    ada = await open_editor(browser, browser_log, server, "Ada", "#f783ac")
    bob = await open_editor(browser, browser_log, server, "Bob", "#94fadb")

    await ada.click(".ProseMirror")
    await ada.keyboard.type("Hello from Ada in Tiptap")
    await bob.wait_for_function("() => window.editor.getText().includes('Hello from Ada')")

    # A y-websocket client on /ws writes a paragraph into the same XML fragment.
    ws = await NodeYClient.start(server.url, "tiptap")
    try:
        await ws_edits(ws, ada, bob)
    finally:
        await ws.kill()
    # A reload restores the document from the server.
    expected = await text_of(ada)
    await ada.reload()
    await ada.wait_for_selector("body[data-synced='1']")
    await ada.wait_for_function("t => window.editor.getText() === t", arg=expected)
    assert await text_of(bob) == expected
    browser_log.check()


async def ws_edits(ws: NodeYClient, ada: Page, bob: Page) -> None:
    await ws.synced()
    await ws.set_awareness_field("user", {"name": "Ws", "color": "#ffd43b"})
    await ws.edit({"type": "xml_element", "name": "paragraph", "text": "A paragraph from /ws"})
    for page in (ada, bob):
        await page.wait_for_function("() => window.editor.getText().includes('from /ws')")
    # Awareness crosses: the /ws client sees both Tiptap users; Bob sees Ada's caret.
    await ws.wait(
        "r => ['Ada', 'Bob'].every(n => Object.values(r.awareness)"
        ".some(s => s.user && s.user.name === n))"
    )
    await bob.click(".ProseMirror p:last-child")
    await bob.keyboard.press("End")
    await bob.keyboard.type(" (Bob was here)")
    await ada.wait_for_function("() => window.editor.getText().includes('Bob was here')")
    await ada.wait_for_selector(".collaboration-carets__label:has-text('Bob')")
    await bob.wait_for_selector(".collaboration-carets__label:has-text('Ada')")
    report = await ws.wait("r => r.xmlString.includes('Bob was here')")
    assert "Hello from Ada in Tiptap" in report["xmlString"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await ada.screenshot(path=str(ARTIFACTS / "hocuspocus-tiptap-ada.png"))
    await bob.screenshot(path=str(ARTIFACTS / "hocuspocus-tiptap-bob.png"))
