"""collab/static.py's example routes: /examples and /examples/<editor> (no browser; a fake dist)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from collab.settings import Settings
from collab.static import CSP, frontend_routes

pytestmark = [pytest.mark.anyio]


def client(dist: Path) -> httpx.AsyncClient:
    app = Starlette(routes=frontend_routes(Settings(frontend_dir=str(dist))))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def make_dist(root: Path, examples: tuple[str, ...] = ("index", "prosemirror")) -> Path:
    (root / "examples").mkdir(parents=True)
    (root / "index.html").write_text("<title>editor</title>")
    (root / "secret.html").write_text("not a page")
    for name in examples:
        (root / "examples" / f"{name}.html").write_text(f"<title>{name}</title>")
    return root


async def test_index_and_each_built_example_with_the_page_headers(tmp_path):
    async with client(make_dist(tmp_path / "dist")) as http:
        for path, title in [("/examples", "index"), ("/examples/prosemirror", "prosemirror")]:
            page = await http.get(path)
            assert page.status_code == 200, path
            assert page.text == f"<title>{title}</title>"
            assert page.headers["content-security-policy"] == CSP
            assert page.headers["cache-control"] == "no-cache"
            again = await http.get(path, headers={"if-none-match": page.headers["etag"]})
            assert again.status_code == 304


@pytest.mark.parametrize(
    "path", ["/examples/tiptap", "/examples/Prosemirror", "/examples/..%2Fsecret", "/examples/a.b"]
)
async def test_an_example_not_built_or_not_a_name_is_not_found(tmp_path, path):
    async with client(make_dist(tmp_path / "dist")) as http:
        answer = await http.get(path)
        assert answer.status_code == 404
        assert "not a page" not in answer.text


async def test_a_build_without_examples_says_how_to_build_them(tmp_path):
    dist = tmp_path / "dist"
    make_dist(dist, examples=())
    async with client(dist) as http:
        for path in ["/examples", "/examples/quill"]:
            answer = await http.get(path)
            assert answer.status_code == 503
            assert "make frontend" in answer.text
