"""The one table of close codes, the one table of HTTP statuses, and the errors that carry
them (and the one that carries neither: MissingExtra, which stops the server before any client
connects)."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes the server sends, with the meaning each has for a client."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down
    PROTOCOL_ERROR = 1002  # undecodable y-websocket message or Yjs update
    UNSUPPORTED_DATA = 1003  # text frame, unknown message type
    POLICY_VIOLATION = 1008  # rate limit, forbidden origin
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # slow consumer, server full
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404  # invalid document name, a deleted document
    IDLE_TIMEOUT = 4408


class CollabError(Exception):
    """Base class: every error the server turns into a close code carries that code."""

    code: int = CloseCode.INTERNAL_ERROR

    def __init__(self, reason: str = "", code: int | None = None) -> None:
        super().__init__(reason)
        if code is not None:
            self.code = code
        # Close reasons are limited to 123 bytes by RFC 6455; keep them short and plain.
        self.reason = reason.encode("utf-8")[:120].decode("utf-8", "ignore")


class ProtocolError(CollabError):
    """A frame that is not a well-formed y-websocket message."""

    code = CloseCode.PROTOCOL_ERROR


class UnsupportedData(CollabError):
    """A text frame, or a message type this server does not speak."""

    code = CloseCode.UNSUPPORTED_DATA


class MessageTooBig(CollabError):
    code = CloseCode.MESSAGE_TOO_BIG


class InvalidDocumentName(CollabError):
    code = CloseCode.NOT_FOUND


class DocumentNotFound(CollabError):
    """Nothing is stored or open under that name (the API answers 404)."""

    code = CloseCode.NOT_FOUND


class Reject(CollabError):
    """Raised by a hook to refuse a connection with a given close code and reason."""

    def __init__(self, code: CloseCode | int, reason: str = "") -> None:
        code = int(code)
        # Codes a server may send: the registered ones below 1016 (not the reserved 1004-1006,
        # 1015) and 3000-4999 for libraries and applications (RFC 6455 §7.4).
        if not (code in _SENDABLE or 3000 <= code <= 4999):
            raise ValueError(f"{code} is not a close code a server may send")
        super().__init__(reason, CloseCode(code) if code in _KNOWN else code)


_KNOWN = {int(c) for c in CloseCode}
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


class DocumentLoadError(CollabError):
    """The store (or an on_load_document hook) could not produce the document."""

    code = CloseCode.INTERNAL_ERROR


class HttpStatus(IntEnum):
    """HTTP statuses the API answers with (a JSON body `{"error": message, "status": code}`)."""

    BAD_REQUEST = 400
    UNAUTHORIZED = 401  # no token, a bad one, or an expired one
    FORBIDDEN = 403  # the token does not cover that document
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    INTERNAL_ERROR = 500
    SERVICE_UNAVAILABLE = 503  # shutting down


class ApiError(Exception):
    """An HTTP API error: the status it is answered with, and a short plain message (never a
    token, SQL or document content)."""

    def __init__(self, status: HttpStatus | int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


# What a close code a hook raised (Reject) means for an HTTP request.
_HTTP_OF_CLOSE: dict[CloseCode, HttpStatus] = {
    CloseCode.UNAUTHORIZED: HttpStatus.UNAUTHORIZED,
    CloseCode.FORBIDDEN: HttpStatus.FORBIDDEN,
    CloseCode.NOT_FOUND: HttpStatus.NOT_FOUND,
    CloseCode.TRY_AGAIN_LATER: HttpStatus.SERVICE_UNAVAILABLE,
    CloseCode.GOING_AWAY: HttpStatus.SERVICE_UNAVAILABLE,
    CloseCode.INTERNAL_ERROR: HttpStatus.INTERNAL_ERROR,
}


def api_error_from(exc: CollabError) -> ApiError:
    """A refusal with a close code (a hook's Reject), as the HTTP error it means."""
    default = HttpStatus.FORBIDDEN if exc.code >= 4000 else HttpStatus.BAD_REQUEST
    status = _HTTP_OF_CLOSE.get(CloseCode(exc.code), default) if exc.code in _KNOWN else default
    return ApiError(status, exc.reason or status.name.replace("_", " ").lower())


class MissingExtra(ImportError):
    """An optional feature is configured but the package it needs is not installed.

    An ImportError, not a CollabError: no client ever sees it, it stops `create_app` (and every
    `collab` command, with exit status 2) before anything starts. Raised by
    `collab.extras.require_extra`, the one place an optional dependency is checked.
    """

    def __init__(self, module: str, extra: str, what: str) -> None:
        super().__init__(f"{what} needs {module}: pip install 'collab[{extra}]'", name=module)
        self.extra = extra


class StartupError(RuntimeError):
    """An on_startup hook failed: the server does not start. Like MissingExtra, no client ever
    sees it; it names the extension and carries what it raised as its cause."""
