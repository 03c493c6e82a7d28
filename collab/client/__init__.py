"""A Python client for Collab: the REST API as typed async methods, and live documents (a
pycrdt `Doc` synced over the WebSocket, with awareness and reconnect). See docs/sdk.md.

    from collab.client import CollabClient

    async with CollabClient("http://localhost:8000", token=token) as client:
        async with client.open("team/notes") as live:
            await live.synced()
            ...

Needs httpx (the API) and websockets (live documents): `pip install 'collab[client]'`. Both are
imported when first used, not by `import collab.client`.
"""

from .client import CollabClient, document_path
from .errors import ApiError, DocumentClosed
from .live import FINAL_CLOSE_CODES, LiveDocument, websocket_url
from .models import (
    Content,
    Diff,
    DocumentInfo,
    DocumentPage,
    Restore,
    Segment,
    Version,
    VersionContent,
    VersionPage,
)

__all__ = [
    "FINAL_CLOSE_CODES",
    "ApiError",
    "CollabClient",
    "Content",
    "Diff",
    "DocumentClosed",
    "DocumentInfo",
    "DocumentPage",
    "LiveDocument",
    "Restore",
    "Segment",
    "Version",
    "VersionContent",
    "VersionPage",
    "document_path",
    "websocket_url",
]
