"""The OpenAPI 3.1 schema, built from the operations' declarations (collab.api.router) and the
pydantic models' JSON schemas (JSON Schema 2020-12, which OpenAPI 3.1 uses as is). Nothing is
written by hand but the frame: paths, parameters, bodies and answers all come from the
`Operation`s the router serves."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..errors import ERROR_CODES
from ..events.schema import EventBody
from .models import Error
from .router import BINARY, EVENT_STREAM, HTML, JSON, TEXT, Operation

REF = "#/components/schemas/{model}"

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "name": {
        "description": "the document name, percent-encoded as ONE path segment"
        " (`team/notes` is `team%2Fnotes`)",
        "schema": {"type": "string", "minLength": 1},
    },
    "field": {
        "description": "a text field (root type) name, percent-encoded",
        "schema": {"type": "string", "minLength": 1},
    },
    "id": {"description": "a version id", "schema": {"type": "integer", "minimum": 1}},
    "delivery": {
        "description": "a webhook delivery's id",
        "schema": {"type": "integer", "minimum": 1},
    },
    "connection": {
        "description": "a connection's id (this process's; see the admin document view)",
        "schema": {"type": "integer", "minimum": 1},
    },
}


def build(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    models = _models(operations)
    keys, schemas = models_json_schema(
        [(m, "validation") for m in models] + [(m, "serialization") for m in models],
        ref_template=REF,
    )
    refs = {(m, mode): ref for (m, mode), ref in keys.items()}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Collab documents API",
            "version": version,
            "description": "Read, change, version and restore the documents of a Collab"
            " server. With auth on, send a token (`Authorization: Bearer ...`): read scope for"
            " GET, write scope for the rest.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "tags": [
            {"name": "documents"},
            {"name": "versions"},
            {"name": "events"},
            {"name": "webhooks"},
            {"name": "admin"},
            {"name": "meta"},
            {"name": "health"},
        ],
    }


def _models(operations: Sequence[Operation]) -> list[type[BaseModel]]:
    # EventBody: what the change feeds send (SSE data, webhook bodies), published here too
    seen: dict[type[BaseModel], None] = {Error: None, EventBody: None}
    for op in operations:
        for kind in (op.body, op.response, *(model for _, model in op.answers)):
            if isinstance(kind, type):
                seen[kind] = None
    return list(seen)


def _ref(refs: dict[Any, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    ref: dict[str, Any] = refs[(model, mode)]
    return ref


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op, refs),
    }
    if op.description:
        spec["description"] = op.description
    if op.public:
        spec["security"] = []
    else:
        spec["security"] = [{"bearer": []}, {}]  # {}: a server without auth
    if op.body == BINARY:
        spec["requestBody"] = {
            "required": True,
            "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
        }
    elif isinstance(op.body, type):
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(refs, op.body, "validation")}},
        }
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [
        {"name": p, "in": "path", "required": True, **_PATH_PARAMS[p]} for p in op.template.params
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            prop = _without_null(dict(prop))
            description = prop.pop("description", None)
            prop.pop("title", None)
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if description:
                param["description"] = description
            params.append(param)
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: `anyOf [X, null]` is X there."""
    options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _responses(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if isinstance(op.response, type):
        ok["content"] = {"application/json": {"schema": _ref(refs, op.response, "serialization")}}
    elif op.response == BINARY:
        ok["content"] = {BINARY: {"schema": {"type": "string", "format": "binary"}}}
    elif op.response in (TEXT, HTML):
        ok["content"] = {op.response: {"schema": {"type": "string"}}}
    elif op.response == JSON:
        ok["content"] = {JSON: {"schema": {"type": "object"}}}
    elif op.response == EVENT_STREAM:
        # Server-Sent Events: `id:` the event id, `event:` its type, `data:` its JSON body
        # (docs/events.md); OpenAPI 3.1 describes such a stream only as text.
        ok["content"] = {EVENT_STREAM: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    error = _ref(refs, Error, "serialization")
    for status in op.all_errors:
        responses[str(status)] = {
            "description": ERROR_CODES.get(status, "error"),
            "content": {"application/json": {"schema": error}},
        }
    for status, model in op.answers:
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": _ref(refs, model, "serialization")}},
        }
    return responses
