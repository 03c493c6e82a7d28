"""The package installs like a Python server: the wheel built from this checkout, installed
into a fresh venv outside it, `collab serve` from a directory of its own, and Chromium loads
the editor it carries (collab/_editor, put there by setup.py's build hook): no checkout, no
Node.

`pytest -m wheel` selects it. It builds the wheel with `python -m build` (an isolated build, as
users' installers do), so setup.py's frontend step runs as it does for them: it packages
frontend/dist when `make frontend` has built it from the current sources, and builds it first
otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import IO

import anyio
import httpx
import pytest
from anyio.abc import Process

from collab._version import __version__
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, BrowserLog, seed_user, shoot
from tests.conftest import free_port, require

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

# ~15 s with pip's cache warm (as after `make install`); a cold cache downloads the dependencies
pytestmark = [
    pytest.mark.wheel,
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 180  # one subprocess step (a build or an install) on a slow machine
TEXT = "Typed into the editor that the wheel carries."


def _env() -> dict[str, str]:
    """This environment without what would point the venv's programs back at the checkout."""
    drop = ("COLLAB_", "PYTHON", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _run(command: list[str | Path], cwd: Path) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{command} exited with {done.returncode}:\n{out[-4000:]}"
    return out


def build_wheel(outdir: Path) -> Path:
    require(
        shutil.which("node") is not None or (ROOT / "frontend/dist/index.html").is_file(),
        "building the wheel needs Node (or `make frontend` run before)",
    )
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", outdir, ROOT], cwd=ROOT)
    (wheel,) = outdir.glob("collab-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A fresh venv (from the base interpreter, with nothing of this one's), the wheel and its
    dependencies installed into it by this environment's pip (`--python`: no copy of pip to set
    up in the venv) without byte-compiling them (seconds saved; imports compile what they use)."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile"]
    _run([*pip, wheel], cwd=venv.parent)
    return venv / "bin" / "collab"


async def wait_healthy(proc: Process, base: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        with anyio.fail_after(30):
            while True:
                assert proc.returncode is None, "collab serve exited (its log is printed below)"
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)


async def wait_for_server_text(base: str, name: str, text: str) -> None:
    """Until the server's copy of the document holds `text` (the room's, through the API)."""
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        with anyio.fail_after(10):
            while True:
                got = await http.get(f"/api/documents/{name}/text/codemirror")
                if got.status_code == 200 and text in got.text:
                    return
                await anyio.sleep(0.05)


def test_the_wheel_in_a_fresh_venv_serves_the_editor_it_carries(tmp_path):
    require(async_playwright is not None, "playwright is not installed (the test extra)")
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium")
    wheel = build_wheel(tmp_path / "wheelhouse")
    assert wheel.name == f"collab-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged_index = zf.read("collab/_editor/index.html")
    assert "collab/_editor/api-docs.html" in names
    assert any(n.startswith("collab/_editor/assets/main-") and n.endswith(".js") for n in names)

    collab = install(wheel, tmp_path / "venv")
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    assert (site / "collab" / "_editor" / "index.html").is_file()
    assert not (site / "frontend").exists()  # so no checkout build can be what is served
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert _run([collab, "--version"], cwd=run_dir).strip() == f"collab {__version__}"

    log_path = run_dir / "server.log"
    try:
        with log_path.open("wb") as log:
            anyio.run(serve_and_load, collab, run_dir, log, packaged_index)
    except BaseException:
        print(f"collab serve's log:\n{log_path.read_text(errors='replace')[-4000:]}")
        raise
    assert (run_dir / "data").is_dir()  # the default database, in the server's own cwd


async def serve_and_load(collab: Path, run_dir: Path, log: IO[bytes], index: bytes) -> None:
    """`collab serve` from run_dir; `/` answers the wheel's index.html; Chromium; SIGTERM."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [collab, "serve", "--port", str(port)]
    # its default database goes into ./data/ of run_dir
    async with await anyio.open_process(
        command, cwd=run_dir, env=_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
    ) as proc:
        try:
            await wait_healthy(proc, base)
            async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
                page = await http.get("/")
                assert page.status_code == 200, page.text[:300]
                assert page.content == index
            await _load_in_chromium(base)
            proc.terminate()
            with anyio.fail_after(20):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _load_in_chromium(base: str) -> None:
    """`/` shows the start page and `/d/x` the editor, connected; what is typed there reaches
    the server (the API reads it back) and the page says so."""
    log = BrowserLog(origin=base)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context()
            await context.add_init_script(seed_user("Wheel"))
            page = await context.new_page()
            log.watch(page, "wheel")
            await page.goto(f"{base}/")
            await expect(page.get_by_test_id("doc-name")).to_be_visible()
            await expect(page.get_by_test_id("doc-list")).to_be_attached()
            await page.goto(f"{base}/d/x")
            await expect(page.locator(".cm-editor .cm-content")).to_be_visible()
            connection = page.get_by_test_id("connection")
            await expect(connection).to_have_attribute("data-state", "connected", timeout=10_000)
            await page.locator(".cm-content").click()
            await page.keyboard.type(TEXT)
            await wait_for_server_text(base, "x", TEXT)
            await expect(connection).to_have_attribute("data-sync", "synced")
            await shoot(page, "wheel-editor.png")
        finally:
            await chromium.close()
    log.check()
