"""GET /healthz: open to everyone (a load balancer's probe), counts only, 503 while stopping."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..hub import Hub


async def healthz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    return JSONResponse(
        {
            "status": "ok" if hub.accepting else "shutting down",
            "rooms": len(hub.rooms),
            "connections": len(hub.connections),
            "uncommitted_updates": hub.saver.recorded - hub.saver.committed,
            "recorded_updates": hub.saver.recorded,
            "committed_updates": hub.saver.committed,
        },
        status_code=200 if hub.accepting else 503,
    )
