"""Serve the built browser editor (frontend/dist) at `/`.

- `/` and `/d/<document name>` answer with dist/index.html (the page routes on the client);
  it is revalidated on every load (`no-cache` + ETag), so a new build shows up at once.
- `/admin` answers with dist/admin.html, the operators' page (its data comes from /api/admin,
  for an admin token; the page itself holds none).
- `/examples` and `/examples/<editor>` answer with dist/examples/<...>.html: the embedding
  examples (docs/embedding.md), each its own bundle; an editor whose page was not built is a 404.
  They run under the editor's CSP: each editor's styles, fonts and (Monaco's) worker come from
  this origin, and no page needs more (a violation is a console error the browser tests fail on).
- `/assets/...` are the bundler's outputs; every name there carries a content hash, so they are
  cached for a year. A pre-compressed `<file>.gz` written by the build is sent to clients that
  accept gzip.
- Which dist: `settings.frontend_dir` when set; else frontend/dist of the repository checkout
  this package sits in, when it is built (development: `make frontend` output wins); else the copy
  an installed wheel carries as collab/_editor (setup.py's build hook puts it there). Files are
  looked up per request: a build made while the server runs is picked up, and a missing build
  gives a 503 page that says how to make it instead of a crash.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .settings import Settings

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The page talks only to its own origin (HTTP and the /ws socket). CodeMirror injects <style>
# elements and remote cursors carry inline colours, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
METHODS = ["GET", "HEAD"]
# The examples (dist/examples/<name>.html): lower-case names, so no path leaves the folder.
EXAMPLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIST = PACKAGE_DIR.parent / "frontend" / "dist"  # a repository checkout's build
PACKAGED_DIST = PACKAGE_DIR / "_editor"  # in an installed wheel (setup.py, BuildPyWithEditor)


def frontend_dir(settings: Settings) -> Path:
    """Where the built editor lives: settings.frontend_dir; else the checkout's frontend/dist
    when built; else the wheel's collab/_editor when there; else the checkout's (not built)."""
    if settings.frontend_dir:
        return Path(settings.frontend_dir).expanduser().resolve()
    if (CHECKOUT_DIST / "index.html").is_file():
        return CHECKOUT_DIST
    if (PACKAGED_DIST / "index.html").is_file():
        return PACKAGED_DIST
    return CHECKOUT_DIST


def frontend_routes(settings: Settings) -> list[BaseRoute]:
    """The start page, the editor's SPA fallback and the hashed assets."""
    site = _Site(frontend_dir(settings))
    return [
        Route("/", site.index, methods=METHODS),
        Route("/d/{name:path}", site.index, methods=METHODS),
        Route("/admin", site.admin, methods=METHODS),
        Route("/examples", site.example, methods=METHODS),
        Route("/examples/{example}", site.example, methods=METHODS),
        Route("/assets/{path:path}", site.asset, methods=METHODS),
    ]


@dataclass(slots=True)
class _Page:
    key: tuple[int, int]  # (mtime_ns, size) of the file it was read from
    body: bytes
    etag: str


class _Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.assets = root / "assets"
        self._pages: dict[str, _Page] = {}

    async def index(self, request: Request) -> Response:
        return self._page_response(request, "index.html")

    async def admin(self, request: Request) -> Response:
        return self._page_response(request, "admin.html")

    async def example(self, request: Request) -> Response:
        example = request.path_params.get("example") or "index"
        if not EXAMPLE_NAME.fullmatch(example):
            return PlainTextResponse("Not Found", status_code=404)
        built = self._load_page("examples/index.html") is not None
        if built and self._load_page(f"examples/{example}.html") is None:
            return PlainTextResponse("Not Found", status_code=404)
        return self._page_response(request, f"examples/{example}.html")

    def _page_response(self, request: Request, filename: str) -> Response:
        page = self._load_page(filename)
        if page is None:
            return _not_built(self.root)
        headers = {"Cache-Control": REVALIDATE, "ETag": page.etag, **PAGE_HEADERS}
        if _etag_matches(request, page.etag):
            return Response(status_code=304, headers=headers)
        return HTMLResponse(page.body, headers=headers)

    async def asset(self, request: Request) -> Response:
        path = self._asset_path(request.path_params["path"])
        if path is None:
            return PlainTextResponse("Not Found", status_code=404)
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        gz = path.with_name(path.name + ".gz")
        if "gzip" in request.headers.get("accept-encoding", "") and gz.is_file():
            headers["Content-Encoding"] = "gzip"
            path = gz
        try:
            stat = path.stat()
        except OSError:
            return PlainTextResponse("Not Found", status_code=404)
        # With the stat given, FileResponse sets its ETag now, so a revalidation can be answered.
        response = FileResponse(path, headers=headers, media_type=media_type, stat_result=stat)
        if _etag_matches(request, response.headers.get("etag", "")):
            return Response(status_code=304, headers=headers | {"ETag": response.headers["etag"]})
        return response

    def _load_page(self, filename: str) -> _Page | None:
        path = self.root / filename
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            cached = self._pages.get(filename)
            if cached is not None and cached.key == key:
                return cached
            body = path.read_bytes()
        except OSError:
            return None
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        page = self._pages[filename] = _Page(key, body, etag)
        return page

    def _asset_path(self, relative: str) -> Path | None:
        if not relative or "\x00" in relative:
            return None
        base = self.assets.resolve()
        path = (base / relative).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header or not etag:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def _not_built(root: Path) -> HTMLResponse:
    where = html.escape(os.fspath(root))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Collab — editor not built</title>
<style>
body{{font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
display:grid;place-items:center;min-height:100vh;background:#f6f7f9;color:#1d2330}}
main{{max-width:34rem;padding:2rem;background:#fff;border-radius:14px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}}
code{{background:#eef0f4;padding:.15em .4em;border-radius:5px}}
</style></head><body><main>
<h1>The editor has not been built yet</h1>
<p>The collaboration server is running, but the browser editor is missing
(no <code>index.html</code> in <code>{where}</code>).</p>
<p>In a source checkout, run <code>make frontend</code> (or start the server with
<code>make run</code>, which builds it), then reload this page. An installed package carries the
editor: install it from a wheel (<code>python -m build</code> builds it in). WebSocket clients can
connect to <code>/ws</code> meanwhile.</p>
</main></body></html>
"""
    return HTMLResponse(
        body, status_code=503, headers={"Cache-Control": "no-store", **PAGE_HEADERS}
    )
