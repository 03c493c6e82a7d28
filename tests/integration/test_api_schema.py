"""The OpenAPI schema (GET /api/openapi.json) against the routes: every route of the issue's
table and every /api route the app serves is in it, and the running server, fuzzed from its own
schema by schemathesis, never answers a 5xx nor a response the schema does not describe."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from collab.api import OPERATIONS, catch_all, openapi_schema
from collab.api.router import EVENT_STREAM, OperationRoute
from collab.app import create_app
from collab.settings import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 40  # per operation: the whole fuzz stays within ~30 s

# The issue's table, as written there: a route missing from the schema fails here.
ISSUE_ROUTES = {
    ("GET", "/api/documents"),
    ("GET", "/api/documents/{name}"),
    ("GET", "/api/documents/{name}/text/{field}"),
    ("GET", "/api/documents/{name}/update"),
    ("POST", "/api/documents/{name}/update"),
    ("PATCH", "/api/documents/{name}"),
    ("DELETE", "/api/documents/{name}"),
    ("GET", "/api/documents/{name}/versions"),
    ("POST", "/api/documents/{name}/versions"),
    ("GET", "/api/documents/{name}/versions/{id}"),
    ("GET", "/api/documents/{name}/versions/{id}/diff"),
    ("POST", "/api/documents/{name}/versions/{id}/restore"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
}


def described(schema: dict) -> set[tuple[str, str]]:
    return {(method.upper(), p) for p, item in schema["paths"].items() for method in item}


def test_the_schema_covers_the_issues_table_and_every_api_route(tmp_path):
    schema = openapi_schema()
    assert schema["openapi"] == "3.1.0"
    assert described(schema) >= ISSUE_ROUTES, ISSUE_ROUTES - described(schema)
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    catch_all_paths = {r.path for r in catch_all() if isinstance(r, Route)}
    served = set()
    for route in app.routes:
        if isinstance(route, OperationRoute):
            served |= {(m, route.path) for m in route.methods if m != "HEAD"}
        elif isinstance(route, Route) and route.path.startswith("/api"):
            assert route.path in catch_all_paths, f"{route.path} is served but not declared"
    assert served == described(schema)
    assert len(served) == len(OPERATIONS)


def test_every_reference_resolves_and_every_operation_has_an_error_answer():
    schema = openapi_schema()
    components = schema["components"]["schemas"]
    text = str(schema)
    for ref in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert ref in components, ref
    for p, item in schema["paths"].items():
        for method, op in item.items():
            assert op["operationId"] and op["summary"], (method, p)
            if p.startswith("/api/documents"):
                assert {"401", "403", "404"} <= set(op["responses"]) or p == "/api/documents"


@pytest.mark.anyio
@pytest.mark.integration
async def test_the_server_serves_the_schema_it_is_built_from(server):
    async with httpx.AsyncClient(base_url=server.http, trust_env=False) as http:
        response = await http.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_schema()


# -- fuzzing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m collab serve` in a process of its own (the fuzzer's HTTP calls are blocking)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collab",
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite+aiosqlite:///{tmp}/fuzz.db",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if httpx.get(base + "/healthz", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)  # polling a process's readiness: there is no event to wait on
        seed(base)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert "Traceback" not in (tmp / "server.log").read_text(), (tmp / "server.log").read_text()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


SEEDED = {"name": "team/notes", "field": "codemirror", "id": 1}


def seed(base: str) -> None:
    """A document with a text, a map and a version: what the pinned cases reach."""
    with httpx.Client(base_url=base, trust_env=False) as http:
        patched = http.patch(
            "/api/documents/team%2Fnotes",
            json={"text": {"codemirror": "hello"}, "map": {"meta": {"k": 1}}},
        )
        assert patched.status_code == 200, patched.text
        version = http.post("/api/documents/team%2Fnotes/versions", json={"label": "seed"})
        assert version.status_code == 201 and version.json()["id"] == SEEDED["id"]


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_fuzz_the_api_from_its_own_schema(fuzzed_server: str) -> None:
    """Every operation, with cases generated from the served schema, once with any path
    parameters (mostly names that do not exist) and once on a seeded document, field and
    version (so queries and bodies reach the service): no 5xx, and every answer one the schema
    describes (status, media type, body). (schemathesis.pytest's lazy fixture does not run under
    this pytest, so the operations are driven here with hypothesis.)"""
    schema = schemathesis.openapi.from_url(fuzzed_server + "/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # (schemathesis leaves out the operation that serves the schema it was loaded from)
    assert {op.label for op in operations} == {
        f"{op.method} {op.path}" for op in OPERATIONS if op.path != "/api/openapi.json"
    }
    # A Server-Sent Events stream never ends, and the fuzzer reads every answer to its end:
    # tests/integration/test_sse.py drives those with a streaming client instead.
    streams = {f"{op.method} {op.path}" for op in OPERATIONS if op.response == EVENT_STREAM}
    for operation in operations:
        if operation.label in streams:
            continue
        fuzz(operation.as_strategy())
        params = {p.name for p in operation.iter_parameters() if p.location == "path"}
        if params and operation.method.upper() != "DELETE":  # (keep the seeded document)
            pinned = {k: v for k, v in SEEDED.items() if k in params}
            fuzz(operation.as_strategy(path_parameters=pinned))


def fuzz(strategy: Any) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=30)

    run()
