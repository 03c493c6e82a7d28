"""Extension.routes(): an extension serves HTTP routes of its own, in the same app: before the
API's catch-all 404 (so /api/<theirs> works) and the editor's pages. A route that shows
documents asks `access_of` what the caller may see, as the API does, and reads them through the
documents service; a path already served is refused when the app is made."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from collab import (
    ApiError,
    DocumentService,
    DocumentView,
    Extension,
    HttpStatus,
    access_of,
    create_app,
    mint_token,
)
from tests.conftest import serving
from tests.integration.hooks.support import update_inserting

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "routes-secret-0123456789-abcdefghijklmn"


class Texts(Extension):
    """GET /hello, and GET /api/texts/<name>: a document's Text "t" as plain text."""

    def routes(self) -> Sequence[BaseRoute]:
        return [Route("/hello", self.hello), Route("/api/texts/{name:path}", self.text)]

    async def hello(self, request: Request) -> Response:
        return PlainTextResponse("hello from an extension")

    async def text(self, request: Request) -> Response:
        name = request.path_params["name"]
        access = await access_of(request)
        if not access.covers(name):
            raise ApiError(HttpStatus.FORBIDDEN, "token not valid for this document")
        documents: DocumentService = request.app.state.documents
        update = await documents.read(name)
        return PlainTextResponse(DocumentView.of_update(name, update).text("t"))


async def test_an_extension_serves_its_routes_beside_the_api(settings):
    async with serving(settings, extensions=[Texts()]) as srv:
        await srv.app.state.documents.apply_update("notes", update_inserting("live text"))
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            hello = await http.get("/hello")
            assert (hello.status_code, hello.text) == (200, "hello from an extension")
            # not the API's 404: the extension's route, reading the document
            texts = await http.get("/api/texts/notes")
            assert (texts.status_code, texts.text) == (200, "live text")
            # the API's own routes and its 404 are still there
            assert (await http.get("/api/documents")).status_code == 200
            missing = await http.get("/api/nothing")
            assert missing.status_code == 404
            assert missing.json() == {
                "error": {"code": "not_found", "message": "no such API route", "status": 404}
            }


async def test_its_routes_answer_by_the_same_access_check_as_the_api(settings):
    async with serving(settings.replace(auth_secret=SECRET), extensions=[Texts()]) as srv:
        await srv.app.state.documents.apply_update("team/a", update_inserting("A"))
        async with httpx.AsyncClient(base_url=srv.http, trust_env=False) as http:
            anonymous = await http.get("/api/texts/team/a")
            assert anonymous.status_code == 401
            assert anonymous.json() == {
                "error": {
                    "code": "unauthorized",
                    "message": "authentication required",
                    "status": 401,
                }
            }
            other = mint_token(doc="hr/*", write=False, ttl_s=60, secret=SECRET)
            forbidden = await http.get("/api/texts/team/a", params={"token": other})
            assert forbidden.status_code == 403
            team = mint_token(doc="team/*", write=False, ttl_s=60, secret=SECRET)
            allowed = await http.get(
                "/api/texts/team/a", headers={"Authorization": f"Bearer {team}"}
            )
            assert (allowed.status_code, allowed.text) == (200, "A")


def test_a_path_already_served_is_refused(settings):
    class Shadows(Extension):
        def routes(self) -> Sequence[BaseRoute]:
            return [Route("/api/documents", Texts().hello)]

    with pytest.raises(ValueError, match="Shadows serves '/api/documents', already served"):
        create_app(settings, extensions=[Shadows()])
    with pytest.raises(ValueError, match="Texts serves '/hello', already served"):
        create_app(settings, extensions=[Texts(), Texts()])
