"""The one table of close codes, the one table of HTTP statuses (with the error code an API
error body names), and the errors that carry them (and the one that carries neither:
MissingExtra, which stops the server before any client connects).

A CollabError carries its close code (`code`, for a WebSocket) and its HTTP status (`status`,
for the API): `api_error_from` turns one into the other's JSON error.
"""

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
    CLOSED_BY_ADMIN = 4000  # an operator closed it (the admin page or API); clients reconnect


class HttpStatus(IntEnum):
    """HTTP statuses the API answers with; the body is
    `{"error": {"code": ERROR_CODES[status], "message": ..., "status": status}}`."""

    BAD_REQUEST = 400  # a malformed parameter (a cursor, a state vector, a limit)
    UNAUTHORIZED = 401  # no token, a bad one, or an expired one
    FORBIDDEN = 403  # the token does not cover that document, or cannot write
    NOT_FOUND = 404  # no such document, version, field or route; an invalid name
    METHOD_NOT_ALLOWED = 405
    CONFLICT = 409  # the field exists with another type
    CONTENT_TOO_LARGE = 413  # an update over the message size limit
    UNPROCESSABLE = 422  # an invalid Yjs update or JSON body: nothing changed
    INTERNAL_ERROR = 500
    SERVICE_UNAVAILABLE = 503  # shutting down


# The error code an API error body carries for each status (stable: clients match on it).
ERROR_CODES: dict[int, str] = {
    HttpStatus.BAD_REQUEST: "bad_request",
    HttpStatus.UNAUTHORIZED: "unauthorized",
    HttpStatus.FORBIDDEN: "forbidden",
    HttpStatus.NOT_FOUND: "not_found",
    HttpStatus.METHOD_NOT_ALLOWED: "method_not_allowed",
    HttpStatus.CONFLICT: "conflict",
    HttpStatus.CONTENT_TOO_LARGE: "too_large",
    HttpStatus.UNPROCESSABLE: "invalid",
    HttpStatus.INTERNAL_ERROR: "internal",
    HttpStatus.SERVICE_UNAVAILABLE: "unavailable",
}


class CollabError(Exception):
    """Base class: every error the server turns into a close code carries that code, and the
    HTTP status the API answers it with."""

    code: int = CloseCode.INTERNAL_ERROR
    status: int = HttpStatus.INTERNAL_ERROR

    def __init__(self, reason: str = "", code: int | None = None) -> None:
        super().__init__(reason)
        if code is not None:
            self.code = code
        # Close reasons are limited to 123 bytes by RFC 6455; keep them short and plain.
        self.reason = reason.encode("utf-8")[:120].decode("utf-8", "ignore")


class ProtocolError(CollabError):
    """A frame that is not a well-formed y-websocket message, or an invalid Yjs update (the API
    answers 422: nothing was changed)."""

    code = CloseCode.PROTOCOL_ERROR
    status = HttpStatus.UNPROCESSABLE


# What the API calls an update that does not validate: the validator's own error.
InvalidUpdate = ProtocolError


class UnsupportedData(CollabError):
    """A text frame, or a message type this server does not speak."""

    code = CloseCode.UNSUPPORTED_DATA
    status = HttpStatus.UNPROCESSABLE


class MessageTooBig(CollabError):
    code = CloseCode.MESSAGE_TOO_BIG
    status = HttpStatus.CONTENT_TOO_LARGE


class InvalidDocumentName(CollabError):
    """A name the /ws route refuses (4404); the API answers 404 with the same reason."""

    code = CloseCode.NOT_FOUND
    status = HttpStatus.NOT_FOUND


class DocumentNotFound(CollabError):
    """Nothing is stored or open under that name (the API answers 404)."""

    code = CloseCode.NOT_FOUND
    status = HttpStatus.NOT_FOUND


class VersionNotFound(DocumentNotFound):
    """The document has no version with that id."""


class FieldNotFound(DocumentNotFound):
    """The document has no root type (field) of that name."""


class FieldTypeMismatch(CollabError):
    """The field exists with another type (e.g. a Map asked for as text): 409."""

    code = CloseCode.PROTOCOL_ERROR
    status = HttpStatus.CONFLICT


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


class ApiError(Exception):
    """An HTTP API error: the status it is answered with, its error code (ERROR_CODES by
    default), and a short plain message (never a token, SQL or document content)."""

    def __init__(self, status: HttpStatus | int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.code = code or ERROR_CODES.get(self.status, "error")

    def body(self) -> dict[str, dict[str, str | int]]:
        """The JSON body: `{"error": {"code", "message", "status"}}`."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


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
    """A CollabError as the HTTP error it means: its class's status when it names one (a
    DocumentNotFound is a 404, a ProtocolError 422), else from its close code (a hook's
    Reject)."""
    status: int
    if type(exc).status != CollabError.status:
        status = type(exc).status
    elif exc.code in _KNOWN:
        default = HttpStatus.FORBIDDEN if exc.code >= 4000 else HttpStatus.BAD_REQUEST
        status = _HTTP_OF_CLOSE.get(CloseCode(exc.code), default)
    else:
        status = HttpStatus.FORBIDDEN if exc.code >= 4000 else HttpStatus.BAD_REQUEST
    message = exc.reason or HttpStatus(status).name.replace("_", " ").lower()
    return ApiError(status, message)


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
