"""collab/api/paths.py and router.py without a server: raw-path matching (a name is one
percent-encoded segment, `%2F` included), the /ws name rules, the root_path of a mounted app,
and that a declared operation's query and body are validated before its handler runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount

from collab.api.errors import EXCEPTION_HANDLERS
from collab.api.paths import Template, document_name, raw_segments, version_id
from collab.api.router import Call, Operation, OperationRoute
from collab.errors import ApiError
from collab.settings import Settings

pytestmark = pytest.mark.anyio


def test_a_template_matches_raw_segments_one_for_one():
    t = Template("/api/documents/{name}/versions/{id}")
    assert t.params == ["name", "id"]
    assert t.match(["api", "documents", "a%2Fb", "versions", "7"]) == {"name": "a%2Fb", "id": "7"}
    assert t.match(["api", "documents", "a", "b", "versions", "7"]) is None
    assert t.match(["api", "documents", "a", "version", "7"]) is None


@pytest.mark.parametrize(
    ("scope", "segments"),
    [
        ({"raw_path": b"/api/documents/a%2Fb", "path": "/api/documents/a/b"}, None),
        ({"raw_path": b"/api/documents/a%2Fb?x=1", "path": "/api/documents/a/b"}, None),
        ({"raw_path": b"/root/api/documents/a%2Fb", "root_path": "/root", "path": "/"}, None),
        ({"path": "/api/documents/a b"}, ["api", "documents", "a%20b"]),
    ],
)
def test_raw_segments_keep_encoded_slashes(scope, segments):
    assert raw_segments(scope) == (segments or ["api", "documents", "a%2Fb"])


def test_names_follow_the_ws_rules_as_404s():
    assert document_name("team%2Fnotes") == "team/notes"
    assert document_name("caf%C3%A9") == "café"
    for raw, reason in [
        ("%FF", "document name is not valid UTF-8"),
        ("", "empty document name"),
        ("a%0Ab", "document name contains control characters"),
    ]:
        with pytest.raises(ApiError) as refused:
            document_name(raw)
        assert (refused.value.status, refused.value.message) == (404, reason)
    assert version_id("12") == 12
    for bad in ("-1", "1.5", "x", "١٢", "9" * 19):
        with pytest.raises(ApiError):
            version_id(bad)


class Query(BaseModel):
    n: int = 1


class Body(BaseModel):
    label: str


async def echo(call: Call) -> Any:
    return JSONResponse({"path": call.path, "n": call.query.n, "label": call.body.label})


def app_with(operation: Operation) -> Starlette:
    inner = Starlette(routes=[OperationRoute(operation)], exception_handlers=EXCEPTION_HANDLERS)
    inner.state.settings = Settings(max_message_bytes=100)
    return Starlette(routes=[Mount("/collab", app=inner)], exception_handlers=EXCEPTION_HANDLERS)


async def test_a_mounted_operation_gets_decoded_parameters_and_validated_input():
    op = Operation(
        "POST",
        "/api/documents/{name}/text/{field}",
        "echo",
        "echo",
        echo,
        public=True,
        query=Query,
        body=Body,
    )
    transport = httpx.ASGITransport(app=app_with(op))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        ok = await http.post("/collab/api/documents/a%2Fb/text/x%20y?n=3", json={"label": "L"})
        assert ok.json() == {"path": {"name": "a/b", "field": "x y"}, "n": 3, "label": "L"}
        bad_query = await http.post("/collab/api/documents/a/text/f?n=x", json={"label": "L"})
        assert bad_query.status_code == 400
        assert bad_query.json()["error"]["code"] == "bad_request"
        bad_body = await http.post("/collab/api/documents/a/text/f", json={"label": 1})
        assert bad_body.status_code == 422
        assert bad_body.json()["error"]["message"].startswith("label:")
        not_json = await http.post("/collab/api/documents/a/text/f", content=b"{")
        assert not_json.status_code == 400
        too_big = await http.post("/collab/api/documents/a/text/f", json={"label": "x" * 200})
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
        wrong_method = await http.get("/collab/api/documents/a/text/f")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
