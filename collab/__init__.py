"""Collab: a self-hosted, Yjs-compatible collaboration backend."""

from ._version import __version__
from .access import Access
from .api import access_of
from .app import create_app, lifespan
from .documents import DocumentService, DocumentSummary
from .errors import (
    ApiError,
    CloseCode,
    CollabError,
    DocumentNotFound,
    HttpStatus,
    MissingExtra,
    Reject,
    StartupError,
)
from .events import DeliveryInfo, Event, Sink
from .events.feed import EventFeed
from .extensions.token_auth import TokenAuth, mint_token
from .extensions.webhooks import Webhooks
from .hooks import (
    ConnectionInfo,
    Extension,
    HookName,
    OnAuthenticatePayload,
    OnChangePayload,
    OnConnectPayload,
    OnDisconnectPayload,
    OnLoadDocumentPayload,
    OnRequestPayload,
    OnShutdownPayload,
    OnStartupPayload,
    OnStatelessPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from .server import serve
from .settings import Settings
from .view import DocumentView

__all__ = [
    "Access",
    "ApiError",
    "CloseCode",
    "CollabError",
    "ConnectionInfo",
    "DeliveryInfo",
    "DocumentNotFound",
    "DocumentService",
    "DocumentSummary",
    "DocumentView",
    "Event",
    "EventFeed",
    "Extension",
    "HookName",
    "HttpStatus",
    "MissingExtra",
    "OnAuthenticatePayload",
    "OnChangePayload",
    "OnConnectPayload",
    "OnDisconnectPayload",
    "OnLoadDocumentPayload",
    "OnRequestPayload",
    "OnShutdownPayload",
    "OnStartupPayload",
    "OnStatelessPayload",
    "OnStoreDocumentPayload",
    "OnUnloadDocumentPayload",
    "Reject",
    "Settings",
    "Sink",
    "StartupError",
    "TokenAuth",
    "Webhooks",
    "__version__",
    "access_of",
    "create_app",
    "lifespan",
    "mint_token",
    "serve",
]
