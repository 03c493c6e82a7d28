"""One declaration per operation (`Operation`) drives both the router and the OpenAPI schema
(collab.api.openapi), so a route cannot exist without being described, nor be described in a
shape it does not answer.

An operation names its method, its path template, its query and body models, the model (or
media type) of its answer and the errors it may answer. `OperationRoute` matches the raw path
(collab.api.paths), checks access (`access_of`: 401; the document in the token's scope and write
scope for a write: 403), parses the name, the query (400) and the body (400 / 413 / 422), runs
the handler with a `Call` and serialises what it returns through the response model.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from ..access import EVERYTHING, Access
from ..documents import DocumentService
from ..errors import ApiError, HttpStatus
from .access import access_of
from .paths import (
    Template,
    connection_id,
    delivery_id,
    document_name,
    field_name,
    raw_segments,
    version_id,
)

Binary = Literal["application/octet-stream"]
BINARY: Binary = "application/octet-stream"
TEXT = "text/plain"
HTML = "text/html"
JSON = "application/json"  # any JSON object (the schema itself)
# A stream that stays open (Server-Sent Events): the handler returns a Response that writes it.
EVENT_STREAM = "text/event-stream"


@dataclass(slots=True)
class Call:
    """One request to an operation, parsed: what a handler works with."""

    request: Request
    access: Access
    path: dict[str, Any]  # name: str, field: str, id, delivery, connection: int (decoded)
    query: Any  # an instance of the operation's query model, or None
    body: Any  # an instance of its body model, raw bytes, or None

    @property
    def documents(self) -> DocumentService:
        documents: DocumentService = self.request.app.state.documents
        return documents

    @property
    def name(self) -> str:
        name: str = self.path["name"]
        return name

    @property
    def author(self) -> str:
        """Who an edit through the API is by: the token's user id, else "api"."""
        user = self.access.user.get("id") if self.access.user else None
        return str(user) if user else "api"


Handler = Callable[[Call], Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    tag: str = "documents"
    write: bool = False  # needs a write scope
    query: type[BaseModel] | None = None
    body: type[BaseModel] | Binary | None = None
    status: int = 200
    # a model (JSON), a media type (TEXT, BINARY, HTML, JSON: any object, EVENT_STREAM: a
    # stream the handler's Response writes), None: no body (204)
    response: type[BaseModel] | str | None = None
    errors: tuple[int, ...] = ()
    # other statuses answered with a model of their own instead of the Error body (/readyz's 503)
    answers: tuple[tuple[int, type[BaseModel]], ...] = ()
    description: str = ""
    public: bool = False  # no access check (the schema and its page)
    admin: bool = False  # only for an operator's access (Access.admin: the admin API)
    template: Template = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", Template(self.path))

    @property
    def all_errors(self) -> tuple[int, ...]:
        """Every status other than success this operation may answer."""
        common: list[int] = [] if self.public else [HttpStatus.UNAUTHORIZED, HttpStatus.FORBIDDEN]
        if self.template.params:
            common.append(HttpStatus.NOT_FOUND)
        if self.query is not None:
            common.append(HttpStatus.BAD_REQUEST)
        if isinstance(self.body, type):
            common += [HttpStatus.BAD_REQUEST, HttpStatus.UNPROCESSABLE]
        return tuple(sorted({int(s) for s in (*common, *self.errors)}))


class OperationRoute(BaseRoute):
    """The route of one operation (HEAD answers as GET, without a body)."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.path = operation.path
        methods = {operation.method}
        if operation.method == "GET":
            methods.add("HEAD")
        self.methods = methods

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        params = self.operation.template.match(raw_segments(scope))
        if params is None:
            return Match.NONE, {}
        child = {"path_params": params, "endpoint": self.operation.handler}
        return (Match.FULL if scope["method"] in self.methods else Match.PARTIAL), child

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if scope["method"] not in self.methods:
            if not self.operation.public:
                await access_of(request)  # not even which methods exist, without a token
            raise ApiError(HttpStatus.METHOD_NOT_ALLOWED, "method not allowed")
        response = await self.run(request)
        await response(scope, receive, send)

    async def run(self, request: Request) -> Response:
        op = self.operation
        access = EVERYTHING if op.public else await access_of(request)
        if op.admin and not access.admin:
            raise ApiError(HttpStatus.FORBIDDEN, "an admin token is required")
        path = _path_params(request.path_params)
        if "name" in path:
            if not access.covers(path["name"]):
                raise ApiError(HttpStatus.FORBIDDEN, "token not valid for this document")
            if op.write and not access.write:
                raise ApiError(HttpStatus.FORBIDDEN, "token is read-only")
        query = _parse_query(op.query, request) if op.query is not None else None
        body = await _parse_body(op.body, request) if op.body is not None else None
        result = await op.handler(Call(request, access, path, query, body))
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=op.status)
        return JSONResponse(result.model_dump(mode="json", by_alias=True), status_code=op.status)


def _path_params(raw: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if "name" in raw:
        parsed["name"] = document_name(raw["name"])
    if "field" in raw:
        parsed["field"] = field_name(raw["field"])
    if "id" in raw:
        parsed["id"] = version_id(raw["id"])
    if "delivery" in raw:
        parsed["delivery"] = delivery_id(raw["delivery"])
    if "connection" in raw:
        parsed["connection"] = connection_id(raw["connection"])
    return parsed


def _parse_query(model: type[BaseModel], request: Request) -> BaseModel:
    params = request.query_params
    values = {k: params[k] for k in model.model_fields if k in params}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(HttpStatus.BAD_REQUEST, _first_problem(exc)) from None


async def _parse_body(kind: type[BaseModel] | Binary, request: Request) -> Any:
    data = await _read_body(request)
    if kind == BINARY:
        return data
    assert isinstance(kind, type)
    try:
        value = json.loads(data, parse_constant=_not_json) if data.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ApiError(HttpStatus.BAD_REQUEST, "the body is not JSON") from None
    try:
        return kind.model_validate(value)
    except ValidationError as exc:
        raise ApiError(HttpStatus.UNPROCESSABLE, _first_problem(exc)) from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python's json reads NaN and Infinity


async def _read_body(request: Request) -> bytes:
    """The body, up to the server's message size limit (413 beyond it, without reading on)."""
    limit: int = request.app.state.settings.max_message_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(HttpStatus.CONTENT_TOO_LARGE, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(HttpStatus.CONTENT_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _first_problem(exc: ValidationError) -> str:
    """A short message naming the first invalid field (never echoing the value)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"[:200]
