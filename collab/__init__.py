"""Collab: a self-hosted, Yjs-compatible collaboration backend."""

from .app import create_app
from .auth import TokenAuth, mint_token
from .errors import CloseCode, CollabError, MissingExtra, Reject
from .hooks import (
    ConnectionInfo,
    Extension,
    OnAuthenticatePayload,
    OnChangePayload,
    OnConnectPayload,
    OnDisconnectPayload,
    OnLoadDocumentPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from .server import serve
from .settings import Settings

__all__ = [
    "CloseCode",
    "CollabError",
    "ConnectionInfo",
    "Extension",
    "MissingExtra",
    "OnAuthenticatePayload",
    "OnChangePayload",
    "OnConnectPayload",
    "OnDisconnectPayload",
    "OnLoadDocumentPayload",
    "OnStoreDocumentPayload",
    "OnUnloadDocumentPayload",
    "Reject",
    "Settings",
    "TokenAuth",
    "create_app",
    "mint_token",
    "serve",
]
