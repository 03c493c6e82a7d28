"""Fixtures for driving Debian's Chromium with Playwright against a real server.

Skips (with the reason) when /usr/bin/chromium or frontend/dist is missing: `apt-get install
chromium` and `make frontend` provide them (`make test` builds dist first).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import pytest
from anyio.abc import TaskGroup

from collab.app import create_app
from collab.hub import Hub
from collab.server import CollabServer, uvicorn_config
from collab.settings import Settings

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DIST_INDEX = ROOT / "frontend" / "dist" / "index.html"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _missing() -> str | None:
    if async_playwright is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install chromium"
    if not DIST_INDEX.exists():
        return f"{DIST_INDEX.relative_to(ROOT)} is missing: run `make frontend`"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class BrowserLog:
    """Console errors, uncaught page errors and requests that leave our server, of every page.

    Tests call `check()` at the end; the fixture checks again on teardown.
    """

    origin: str = ""  # http://127.0.0.1:PORT of the server under test; set by each test
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Tolerate console errors matching `pattern` (refused sockets while a server is down)."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Page, who: str) -> None:
        page.on("console", lambda msg: self._console(who, msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{who}: uncaught {exc}"))
        page.on("request", lambda req: self._request(who, req.url))
        page.on("websocket", lambda ws: self._request(who, ws.url))

    def _console(self, who: str, msg: ConsoleMessage) -> None:
        if msg.type not in ("error", "assert"):
            return
        if any(p.search(msg.text) for p in self.allowed):
            return
        self.errors.append(f"{who}: console.{msg.type}: {msg.text}")

    def _request(self, who: str, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return
        ours = urlsplit(self.origin).netloc
        if parts.netloc != ours:
            self.errors.append(f"{who}: request to another host: {url}")

    def check(self) -> None:
        assert not self.errors, "browser reported problems:\n" + "\n".join(self.errors)


@pytest.fixture
def browser_log() -> Iterator[BrowserLog]:
    log = BrowserLog()
    yield log
    log.check()


def seed_user(name: str) -> str:
    """An init script that makes the page's stored identity `name` (stable id, intro seen)."""
    stored = {"id": "test-" + re.sub(r"\W+", "-", name.lower()), "name": name, "introSeen": True}
    value = json.dumps(json.dumps(stored))
    # Only when nothing is stored yet: a name changed in the page must survive a reload.
    return (
        "try { if (!localStorage.getItem('collab.user'))"
        f" localStorage.setItem('collab.user', {value}) }} catch (e) {{}}"
    )


async def new_user(
    browser: Browser, log: BrowserLog, name: str, *, viewport: dict[str, int] = DESKTOP, **kw: Any
) -> Page:
    """A page in its own browser context (own storage, own sockets): another person."""
    context = await browser.new_context(viewport=viewport, **kw)
    await context.add_init_script(seed_user(name))
    page = await context.new_page()
    log.watch(page, name)
    return page


def editor_url(base: str, name: str) -> str:
    return f"{base}/d/{quote(name, safe='/')}"


async def wait_for_text(
    page: Page, text: str, *, present: bool = True, timeout: float = 10_000
) -> None:
    """Wait until the editor's document does (or does not) contain `text`.

    Reads the CodeMirror state the page exposes as `window.collab.view`: the DOM text would also
    hold the names drawn on remote carets.
    """
    await page.wait_for_function(
        "([text, present]) => window.collab !== undefined"
        " && collab.view.state.doc.toString().includes(text) === present",
        arg=[text, present],
        timeout=timeout,
    )


async def doc_text(page: Page) -> str:
    text: str = await page.evaluate("collab.view.state.doc.toString()")
    return text


def status(page: Page) -> Any:
    return page.get_by_test_id("connection")


async def shoot(page: Page, filename: str, **kw: Any) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / filename
    await page.screenshot(path=str(path), **kw)
    return path


@dataclass
class RestartableServer:
    """A server that can be stopped and started again on the same port and the same database."""

    settings: Settings
    tg: TaskGroup
    server: CollabServer | None = None
    app: Any = None
    _done: anyio.Event | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    async def start(self) -> None:
        app = create_app(self.settings)
        server = CollabServer(uvicorn_config(app, self.settings), app)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        done = anyio.Event()

        async def serve() -> None:
            try:
                await server.serve()
            finally:
                done.set()

        self.tg.start_soon(serve)
        with anyio.fail_after(10):
            while not server.started:
                if done.is_set():
                    raise RuntimeError("the server exited while starting")
                await anyio.sleep(0.01)
        self.server, self.app, self._done = server, app, done

    async def stop(self) -> None:
        """What SIGTERM does (clients closed with 1001, rooms flushed), then wait for the exit."""
        assert self.server is not None and self._done is not None
        await self.server.stop()
        with anyio.fail_after(15):
            await self._done.wait()
        self.server = None


@pytest.fixture
async def restartable_server(settings: Settings) -> AsyncIterator[RestartableServer]:
    async with anyio.create_task_group() as tg:
        running = RestartableServer(settings, tg)
        await running.start()
        try:
            yield running
        finally:
            if running.server is not None:
                await running.stop()
