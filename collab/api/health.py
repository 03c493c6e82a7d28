"""GET /healthz: open to everyone (a load balancer's probe), counts only (and the change feed's
backlog: deliveries pending and failed, changes not yet made into events), 503 while stopping."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..events.feed import EventFeed
from ..hub import Hub


async def healthz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    events: EventFeed = request.app.state.events
    try:
        backlog: dict[str, int] | None = await events.backlog()
    except Exception:  # the store does not answer: still alive, say so
        backlog = None
    return JSONResponse(
        {
            "status": "ok" if hub.accepting else "shutting down",
            "rooms": len(hub.rooms),
            "connections": len(hub.connections),
            "uncommitted_updates": hub.saver.recorded - hub.saver.committed,
            "recorded_updates": hub.saver.recorded,
            "committed_updates": hub.saver.committed,
            "events": backlog,
        },
        status_code=200 if hub.accepting else 503,
    )
