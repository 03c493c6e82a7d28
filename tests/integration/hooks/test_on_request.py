"""on_request: every HTTP API request asks it first; the first Access returned decides what the
caller may see, None is no opinion, a Reject is the HTTP error (4401 -> 401, 4403 -> 403)."""

from __future__ import annotations

import httpx
import pytest

from collab.access import Access
from collab.errors import ERROR_CODES, Reject
from collab.hooks import OnRequestPayload
from tests.conftest import serving
from tests.integration.hooks.support import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Grants(Recorder):
    def __init__(self, name: str, priority: int, grant: Access | Exception | None) -> None:
        super().__init__(name, priority)
        self.grant = grant

    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        await super().on_request(payload)
        if isinstance(self.grant, Exception):
            raise self.grant
        return self.grant


async def test_receives_the_request_and_its_token(settings):
    rec = Grants("rec", 100, Access("*"))
    async with serving(settings, extensions=[rec]) as srv:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.get("/api/documents?token=tk.1&x=2", headers={"X-App": "yes"})
            assert response.status_code == 200
            await http.get("/api/documents", headers={"Authorization": "Bearer abc"})
    first, second = rec.payloads("on_request")
    assert (first.method, first.path, first.token) == ("GET", "/api/documents", "tk.1")
    assert first.query == {"x": "2"}  # the token is not among the parameters
    assert first.headers["x-app"] == "yes"
    assert first.client.startswith("127.0.0.1:")
    assert second.token == "abc"


async def test_first_access_in_priority_order_decides(settings):
    high = Grants("high", 200, None)  # no opinion
    mid = Grants("mid", 100, Access("a/*"))
    low = Grants("low", 50, Access("*"))
    async with serving(settings, extensions=[low, mid, high]) as srv:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            assert (await http.get("/api/documents")).json()["documents"] == []
    assert (high.count("on_request"), mid.count("on_request"), low.count("on_request")) == (
        1,
        1,
        0,
    )


@pytest.mark.parametrize(("code", "status"), [(4401, 401), (4403, 403), (4404, 404)])
async def test_a_reject_is_the_http_error(settings, code, status):
    ext = Grants("no", 100, Reject(code, "not you"))
    async with serving(settings, extensions=[ext]) as srv:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.get("/api/documents")
    assert response.status_code == status
    assert response.json() == {
        "error": {"code": ERROR_CODES[status], "message": "not you", "status": status}
    }


async def test_nobody_granting_is_401(settings):
    async with serving(settings, extensions=[Grants("none", 100, None)]) as srv:
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            response = await http.get("/api/documents")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "authentication required", "status": 401}
    }
