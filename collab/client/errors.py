"""What the client raises: an API error answered by the server, and a live document the server
closed for good."""

from __future__ import annotations


class ApiError(Exception):
    """The REST API answered an error: its HTTP status, the `code` its JSON body names
    ("not_found", "unauthorized", "forbidden", "invalid", ...) and the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class DocumentClosed(Exception):
    """The server closed a live document with a code that means "do not come back" (4401 no or
    bad token, 4403 not allowed, 4404 no such name or the document was deleted, 1002/1003/1009 a
    message it refused): the client does not reconnect, and raises this from the `async with`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
