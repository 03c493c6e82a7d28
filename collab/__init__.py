"""Collab: a self-hosted, Yjs-compatible collaboration backend."""

from .access import Access
from .app import create_app, lifespan
from .auth import TokenAuth, mint_token
from .errors import ApiError, CloseCode, CollabError, HttpStatus, MissingExtra, Reject
from .hooks import (
    ConnectionInfo,
    Extension,
    OnAuthenticatePayload,
    OnChangePayload,
    OnConnectPayload,
    OnDisconnectPayload,
    OnLoadDocumentPayload,
    OnRequestPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from .server import serve
from .settings import Settings

__all__ = [
    "Access",
    "ApiError",
    "CloseCode",
    "CollabError",
    "ConnectionInfo",
    "Extension",
    "HttpStatus",
    "MissingExtra",
    "OnAuthenticatePayload",
    "OnChangePayload",
    "OnConnectPayload",
    "OnDisconnectPayload",
    "OnLoadDocumentPayload",
    "OnRequestPayload",
    "OnStoreDocumentPayload",
    "OnUnloadDocumentPayload",
    "Reject",
    "Settings",
    "TokenAuth",
    "create_app",
    "lifespan",
    "mint_token",
    "serve",
]
