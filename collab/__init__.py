"""Collab: a self-hosted, Yjs-compatible collaboration backend."""

from .app import create_app
from .errors import CloseCode, CollabError, Reject
from .settings import Settings

__all__ = ["CloseCode", "CollabError", "Reject", "Settings", "create_app"]
