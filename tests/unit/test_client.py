"""collab.client without a server: URLs, error bodies, JSON shapes, and what importing costs."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from collab.client import ApiError, Diff, Restore, VersionContent, document_path, websocket_url
from collab.client.client import _api_error


def test_websocket_url_keeps_the_path_prefix_and_encodes_name_and_token() -> None:
    assert websocket_url("http://h:8000", "team/notes") == "ws://h:8000/ws/team/notes"
    assert (
        websocket_url("https://h/collab/", "a b", "t/k=")
        == "wss://h/collab/ws/a%20b?token=t%2Fk%3D"
    )


def test_document_path_is_one_segment() -> None:
    assert document_path("team/notes") == "/api/documents/team%2Fnotes"
    assert document_path("é?#%") == "/api/documents/%C3%A9%3F%23%25"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"error": {"code": "not_found", "message": "no such document", "status": 404}},
            ("not_found", "no such document"),
        ),
        ({"error": "no such document", "status": 404}, ("http_404", "no such document")),
        ("<html>proxy</html>", ("http_404", "Not Found")),
    ],
)
def test_api_error_from_any_body(body: object, expected: tuple[str, str]) -> None:
    if isinstance(body, str):
        response = httpx.Response(404, text=body)
    else:
        response = httpx.Response(404, json=body)
    error = _api_error(response)
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.message) == (404, *expected)


def test_models_read_the_contract_shapes() -> None:
    version = {
        "id": 3,
        "created_at_ms": 1,
        "kind": "named",
        "label": "v1",
        "authors": ["ada"],
        "size_bytes": 10,
    }
    vc = VersionContent.from_json(
        {"name": "n", "version": version, "content": {"t": "x"}, "types": {"t": "text"}}
    )
    assert vc.version.label == "v1" and vc.content == {"t": "x"}
    diff = Diff.from_json(
        {
            "name": "n",
            "from": 3,
            "to": None,
            "fields": {"t": [{"type": "insert", "text": "x", "author": "ada"}]},
        }
    )
    assert diff.from_id == 3 and diff.to_id is None and diff.fields["t"][0].author == "ada"
    restore = Restore.from_json({"name": "n", "before": version, "after": {**version, "id": 4}})
    assert (restore.before.id, restore.after.id) == (3, 4)


def test_importing_the_client_imports_neither_httpx_nor_websockets_itself() -> None:
    code = (
        "import sys; import collab; before = set(sys.modules); import collab.client; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in ('httpx', 'websockets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
