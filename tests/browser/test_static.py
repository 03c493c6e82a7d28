"""collab/static.py: how the built editor is served (no browser needed; a fake dist in tmp)."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from collab import static
from collab.settings import Settings
from collab.static import IMMUTABLE, frontend_dir, frontend_routes

pytestmark = [pytest.mark.anyio]

INDEX = b'<!doctype html><title>Collab</title><script type="module" src="/assets/main-AB12.js">'
SCRIPT = b"console.log('hello from the editor bundle');" * 20


def make_dist(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "main-AB12.js").write_bytes(SCRIPT)
    (root / "assets" / "main-AB12.js.gz").write_bytes(gzip.compress(SCRIPT))
    (root / "secret.txt").write_text("not an asset")
    return root


def client(dist: Path) -> httpx.AsyncClient:
    app = Starlette(routes=frontend_routes(Settings(frontend_dir=str(dist))))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_index_for_root_and_every_editor_path_revalidated_with_etag(tmp_path):
    async with client(make_dist(tmp_path / "dist")) as http:
        first = await http.get("/")
        assert first.status_code == 200
        assert first.content == INDEX
        assert first.headers["content-type"].startswith("text/html")
        assert first.headers["cache-control"] == "no-cache"
        assert "connect-src 'self' ws: wss:" in first.headers["content-security-policy"]
        etag = first.headers["etag"]
        for path in ("/d/notes", "/d/team/notes", "/d/%C3%89quipe%20%CE%A9/notes%20%E2%9C%93"):
            page = await http.get(path)
            assert (page.status_code, page.content, page.headers["etag"]) == (200, INDEX, etag)
        again = await http.get("/d/team/notes", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        head = await http.head("/")
        assert (head.status_code, head.headers["etag"]) == (200, etag)


async def test_a_new_build_changes_the_etag_at_once(tmp_path):
    dist = make_dist(tmp_path / "dist")
    async with client(dist) as http:
        before = (await http.get("/")).headers["etag"]
        (dist / "index.html").write_bytes(INDEX.replace(b"AB12", b"CD34") + b"\n")
        after = await http.get("/", headers={"If-None-Match": before})
        assert after.status_code == 200
        assert b"main-CD34.js" in after.content
        assert after.headers["etag"] != before


async def test_hashed_assets_are_immutable_and_sent_gzipped_when_accepted(tmp_path):
    async with client(make_dist(tmp_path / "dist")) as http:
        plain = await http.get("/assets/main-AB12.js", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.content == SCRIPT
        assert "content-encoding" not in plain.headers
        assert plain.headers["cache-control"] == IMMUTABLE
        assert "javascript" in plain.headers["content-type"]
        zipped = await http.get("/assets/main-AB12.js", headers={"Accept-Encoding": "gzip, br"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.content == SCRIPT  # httpx decodes it
        assert int(zipped.headers["content-length"]) < len(SCRIPT)
        assert zipped.headers["vary"] == "Accept-Encoding"
        cached = await http.get(
            "/assets/main-AB12.js",
            headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]},
        )
        assert cached.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/assets/missing.js",
        "/assets/",
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/..%2fsecret.txt",
        "/secret.txt",
        "/index.html/../secret.txt",
    ],
)
async def test_nothing_outside_assets_is_served(tmp_path, path):
    async with client(make_dist(tmp_path / "dist")) as http:
        response = await http.get(path)
        assert response.status_code == 404
        assert b"not an asset" not in response.content


async def test_missing_build_answers_503_saying_how_to_build_it(tmp_path):
    async with client(tmp_path / "nothing here") as http:
        for path in ("/", "/d/team/notes"):
            response = await http.get(path)
            assert response.status_code == 503
            assert "make frontend" in response.text
            assert response.headers["cache-control"] == "no-store"
        assert (await http.get("/assets/main-AB12.js")).status_code == 404


def test_dist_is_found_in_the_checkout_unless_configured(tmp_path):
    checkout = Path(__file__).resolve().parents[2] / "frontend" / "dist"
    assert checkout == static.CHECKOUT_DIST
    assert Path(static.__file__).resolve().parent / "_editor" == static.PACKAGED_DIST
    assert frontend_dir(Settings(frontend_dir=str(tmp_path))) == tmp_path.resolve()


def test_checkout_build_then_the_packaged_copy_then_the_checkout_page(tmp_path, monkeypatch):
    """An installed wheel has no checkout build beside it: its collab/_editor is served; a
    checkout's own build wins (development); with neither, the checkout path (its 503 page)."""
    checkout, packaged = tmp_path / "checkout-dist", tmp_path / "_editor"
    monkeypatch.setattr(static, "CHECKOUT_DIST", checkout)
    monkeypatch.setattr(static, "PACKAGED_DIST", packaged)
    assert frontend_dir(Settings()) == checkout
    make_dist(packaged)
    assert frontend_dir(Settings()) == packaged
    make_dist(checkout)
    assert frontend_dir(Settings()) == checkout
    assert frontend_dir(Settings(frontend_dir=str(packaged))) == packaged


@pytest.mark.integration
async def test_real_server_serves_the_editor_beside_ws_and_api(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        page = await http.get("/d/some/doc")
        assert page.status_code in (200, 503)  # 503 only where frontend/dist was not built
        assert page.headers["content-type"].startswith("text/html")
        assert (await http.get("/healthz")).json()["status"] == "ok"
        assert (await http.get("/api/documents")).json()["documents"] == []
