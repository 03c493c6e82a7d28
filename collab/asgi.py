"""The app built from the COLLAB_* environment, for any ASGI server:

    uvicorn collab.asgi:app          (uvicorn's own WebSocket implementation)
    hypercorn collab.asgi:app

/ws is then served by the standard ASGI route (collab/asgi_endpoint.py). `collab serve` is the
faster way to run it (its own WebSocket layer, graceful 1001 shutdown, workers); this is for a
deployment that wants its own server. The server's settings (address, TLS, message size,
pings, proxy headers) are its own; everything else comes from COLLAB_* as for `collab serve`.
"""

from __future__ import annotations

from .app import create_app
from .settings import Settings

app = create_app(Settings.from_env())
