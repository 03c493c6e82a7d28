"""Two Chromium pages running y-webrtc (10.3, from npm: tests/browser/webrtc/) meet through our
/signal and sync peer-to-peer; one of them also has a y-websocket provider, so what the other
writes over WebRTC alone reaches the server and is stored (read back through the API).

Auth is on: the pages' tokens cover `team/*`, the room is `team/webrtc`, and a page whose token
covers another prefix is refused by /signal (4403) and never meets them.

The page (tests/browser/webrtc/page.js) is bundled with esbuild for each run and served by
the server under test, through an extension's routes (the public hooks API): same origin, so
the browser log's "no other host" check holds and Chromium's local-network checks pass.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from collab.extensions.token_auth import mint_token
from collab.hooks import Extension
from collab.settings import Settings
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, BrowserLog, shoot
from tests.conftest import RunningServer, free_port, require, serving

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

HERE = Path(__file__).resolve().parent / "webrtc"
SECRET = "webrtc-secret-0123456789-abcdefghijklmnop"
ROOM = "team/webrtc"
# Chromium names its host candidates by mDNS (<uuid>.local) unless told not to; the pages here
# meet on this machine's own addresses, with no STUN server.
WEBRTC_ARGS = [*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    require((HERE / "node_modules" / "y-webrtc").exists(), "cd tests/browser/webrtc && npm ci")
    out = tmp_path_factory.mktemp("webrtc") / "page.js"
    subprocess.run(["node", str(HERE / "build.mjs"), str(out)], check=True, timeout=60)
    return out.read_text()


class WebrtcPage(Extension):
    """Serves the page at /webrtc-test/."""

    def __init__(self, bundle: str) -> None:
        self.bundle = bundle

    def routes(self) -> list[Route]:
        html = (
            '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">'
            '<body><script type="module" src="page.js">'
        )

        async def page(request: Request) -> Response:
            return HTMLResponse(html + "</script>")

        async def script(request: Request) -> Response:
            return Response(self.bundle, media_type="text/javascript")

        return [Route("/webrtc-test/", page), Route("/webrtc-test/page.js", script)]


@pytest.fixture
async def server(tmp_path: Path, bundle: str) -> AsyncIterator[RunningServer]:
    settings = Settings(
        port=free_port(),
        database_url=f"sqlite+aiosqlite:///{tmp_path}/collab.db",
        auth_secret=SECRET,
        log_level="debug",
    )
    async with serving(settings, extensions=[WebrtcPage(bundle)]) as running:
        yield running


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    playwright = pytest.importorskip("playwright.async_api")
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium")
    async_playwright = playwright.async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=WEBRTC_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def token(doc: str = "team/*") -> str:
    return mint_token(doc=doc, write=True, ttl_s=600, user=doc, secret=SECRET)


async def open_page(
    chromium: Any, log: BrowserLog, server: RunningServer, who: str, **query: str
) -> Any:
    """A page in a context of its own (own storage: y-webrtc's BroadcastChannel cannot reach
    the other page, so they can only meet through /signal)."""
    context = await chromium.new_context(viewport={"width": 640, "height": 360})
    page = await context.new_page()
    log.watch(page, who)
    params = {"who": who, "room": ROOM, **query}
    await page.goto(f"{server.http}/webrtc-test/?{urlencode(params)}")
    await page.wait_for_function("document.body.dataset.ready === '1'")
    return page


async def test_two_pages_sync_over_webrtc_through_our_signalling(
    chromium: Any, browser_log: BrowserLog, server: RunningServer
) -> None:
    browser_log.origin = server.http
    signal = f"{server.url}/signal?token={token()}"
    # A persists (y-websocket to /ws as well); B has y-webrtc only.
    a = await open_page(
        chromium,
        browser_log,
        server,
        "A",
        signal=signal,
        ws=f"{server.url}/ws",
        token=token(),
    )
    b = await open_page(chromium, browser_log, server, "B", signal=signal)
    for page in (a, b):
        await page.wait_for_function("collab.state.peers.length === 1", timeout=15_000)
    await a.wait_for_function("collab.state.wsSynced")

    await b.evaluate("collab.type('written by B over WebRTC. ')")
    await a.wait_for_function("collab.text().includes('written by B')", timeout=10_000)
    await a.evaluate("collab.type('and by A.')")
    await b.wait_for_function("collab.text().includes('and by A.')", timeout=10_000)
    assert await a.evaluate("collab.text()") == await b.evaluate("collab.text()")
    await shoot(a, "webrtc-a.png")
    await shoot(b, "webrtc-b.png")

    # B never spoke to /ws: what it wrote reached the store through A.
    sessions = {s.info.document for s in server.hub.connections}
    assert sessions == {ROOM}
    assert len(server.hub.connections) == 1
    url = f"{server.http}/api/documents/{quote(ROOM, safe='')}/text/text"
    headers = {"Authorization": f"Bearer {token()}"}
    async with httpx.AsyncClient(trust_env=False) as http:
        await server.hub.persisted(ROOM)
        response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.text == "written by B over WebRTC. and by A."

    # A page whose token covers another prefix is refused by /signal and meets nobody.
    browser_log.allow("WebSocket connection to .*/signal")
    c = await open_page(
        chromium, browser_log, server, "C", signal=f"{server.url}/signal?token={token('other/*')}"
    )
    # The server closed it once it asked for the room (4403), and again after its reconnect.
    await c.wait_for_function("collab.state.signalingClosed >= 2")
    await shoot(c, "webrtc-c-refused.png")
    assert await c.evaluate("collab.state.peers.length") == 0
    assert await c.evaluate("collab.text()") == ""
    assert await a.evaluate("collab.state.peers.length") == 1
    for page in (a, b, c):  # before the server stops (their providers would reconnect)
        await page.context.close()
