"""GET /healthz and GET /readyz: open to everyone (a load balancer's or an orchestrator's probes),
in the OpenAPI schema under the "health" tag.

- /healthz is liveness: the process answers, so it is 200 for as long as the event loop runs,
  shutdown included (a liveness probe that failed during a drain would have the process killed
  before it flushed). The body is counts only (and the change feed's backlog).
- /readyz is readiness: 200 when the store answers a trivial query within STORE_TIMEOUT_S, the
  bus is connected (when one is configured) and the server is not shutting down; 503 with the
  same body otherwise. After SIGTERM it turns 503 at once and stays so for the whole shutdown
  (collab/server.py: the drain), so a balancer stops sending new clients before they are closed.

`Readiness` (app.state.readiness, made by the lifespan) owns the "shutting down" mark and the
store probe. One probe at a time runs against the store, in the lifespan's task group, bounded by
the same timeout: probes from many balancers, or from a probe interval shorter than a slow
store's answers, join the one in flight instead of piling connections onto a database that is
already struggling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from storage import DocumentStore

from ..hub import Hub
from .router import Call, Operation

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 1.0  # under Kubernetes' default probe timeout (1 s) with the rest of the answer

StoreState = Literal["ok", "timeout", "error"]
BusState = Literal["ok", "disconnected", "none"]


class Readiness:
    """What /readyz reports: the store probe, the bus, and whether shutdown began."""

    def __init__(
        self,
        store: DocumentStore,
        hub: Hub,
        task_group: TaskGroup,
        timeout_s: float = STORE_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._hub = hub
        self._tg = task_group
        self.timeout_s = timeout_s
        self._shutting_down = False
        self._probe: asyncio.Future[StoreState] | None = None
        self._last: StoreState = "ok"  # the previous probe's answer (to log changes only)

    def shutting_down(self) -> None:
        """Shutdown began (SIGTERM): from now on /readyz answers 503."""
        self._shutting_down = True

    @property
    def accepting(self) -> bool:
        return not self._shutting_down and self._hub.accepting

    def bus(self) -> BusState:
        cluster = self._hub.cluster
        if cluster is None:
            return "none"
        return "ok" if cluster.bus.connected else "disconnected"

    async def store(self) -> StoreState:
        """The store's answer to a trivial query: "ok", "timeout" (none within timeout_s) or
        "error" (it raised: logged, once per change)."""
        probe = self._probe
        if probe is None or probe.done():
            probe = self._probe = asyncio.get_running_loop().create_future()
            try:
                self._tg.start_soon(self._run_probe, probe)
            except RuntimeError:  # the lifespan's task group is done: the store is closed
                probe.set_result("error")
        try:
            with anyio.fail_after(self.timeout_s):
                return await asyncio.shield(probe)
        except TimeoutError:
            return "timeout"

    async def _run_probe(self, probe: asyncio.Future[StoreState]) -> None:
        state: StoreState = "error"
        try:
            with anyio.move_on_after(self.timeout_s) as scope:
                await _ping(self._store)
                state = "ok"
            if scope.cancelled_caught:
                state = "timeout"
        except Exception as exc:
            if self._last == "ok":
                log.warning("readiness: the store does not answer: %s", type(exc).__name__)
        finally:
            if state == "timeout" and self._last == "ok":
                log.warning("readiness: the store did not answer in %.1f s", self.timeout_s)
            elif state == "ok" and self._last != "ok":
                log.info("readiness: the store answers again")
            self._last = state
            if not probe.done():
                probe.set_result(state)


async def _ping(store: DocumentStore) -> None:
    ping = getattr(store, "ping", None)  # SqlStore's; a store of one's own may lack it
    if ping is not None:
        await ping()
    else:
        await store.list_documents(limit=1)


# -- the models ----------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "shutting down"] = Field(
        description='"shutting down" once SIGTERM arrived (still 200: the process is alive)'
    )
    rooms: int = Field(description="documents held in memory")
    connections: int = Field(description="WebSocket connections in a room")
    uncommitted_updates: int = Field(description="updates applied but not yet committed")
    recorded_updates: int = Field(description="updates handed to the saver since start")
    committed_updates: int = Field(description="updates committed since start")
    events: dict[str, int] | None = Field(
        description="the change feed's backlog (pending, failed, delivered, open_changes,"
        " events); null when the store does not answer"
    )


class ReadyChecks(BaseModel):
    store: StoreState = Field(
        description=f'"ok": a trivial query answered within {STORE_TIMEOUT_S:g} s'
    )
    bus: BusState = Field(description='the cluster bus: "none" when no bus is configured')
    accepting: bool = Field(description="false once shutdown began (SIGTERM, the drain)")


class Ready(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: ReadyChecks


# -- the handlers --------------------------------------------------------------------------------


async def healthz(call: Call) -> Health:
    state: Any = call.request.app.state
    hub: Hub = state.hub
    backlog: dict[str, int] | None = None
    try:  # bounded: liveness must answer while the store does not (a hung probe gets killed)
        with anyio.move_on_after(STORE_TIMEOUT_S):
            backlog = await state.events.backlog()
    except Exception:  # the store does not answer: still alive, say so
        backlog = None
    return Health(
        status="ok" if hub.accepting and state.readiness.accepting else "shutting down",
        rooms=len(hub.rooms),
        connections=len(hub.connections),
        uncommitted_updates=hub.saver.recorded - hub.saver.committed,
        recorded_updates=hub.saver.recorded,
        committed_updates=hub.saver.committed,
        events=backlog,
    )


async def readyz(call: Call) -> Response:
    readiness: Readiness = call.request.app.state.readiness
    checks = ReadyChecks(
        store=await readiness.store(), bus=readiness.bus(), accepting=readiness.accepting
    )
    ready = checks.store == "ok" and checks.bus != "disconnected" and checks.accepting
    body = Ready(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


OPERATIONS = [
    Operation(
        "GET",
        "/healthz",
        "getHealth",
        "Liveness: the process answers (200 while it runs, shutdown included), with counts",
        healthz,
        tag="health",
        public=True,
        response=Health,
    ),
    Operation(
        "GET",
        "/readyz",
        "getReadiness",
        "Readiness: the store answers, the bus is connected, not shutting down (else 503)",
        readyz,
        tag="health",
        public=True,
        response=Ready,
        answers=((503, Ready),),
        description="A balancer sends new clients only to a process whose /readyz answers 200."
        " After SIGTERM it answers 503 at once, for COLLAB_DRAIN_S before clients are closed"
        " and until the process exits.",
    ),
]
