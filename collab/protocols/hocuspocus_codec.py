"""The Hocuspocus protocol's messages (`@hocuspocus/provider` 4.x): pure, no I/O.

One socket carries many documents. Every message starts with its document's address (a lib0
varString: the name, or `name\\0sessionId` from a provider with `sessionAwareness`), then a
varUint type:

    0 Sync            [0|1|2, varBytes]   y-protocols sync, as y-websocket's message 0
    1 Awareness       varBytes            as y-websocket's message 1
    2 Auth            client: 0, varString token, varString provider version
                      server: 1, varString reason (permission denied) |
                              2, varString "read-write" | "readonly" (authenticated)
    3 QueryAwareness                      answered with every awareness state
    5 Stateless       varString           any string; nothing stored (on_stateless)
    7 Close                               client: "close this document"; server: + varString
                                          reason, "this document is closed for you"
    8 SyncStatus      varInt 1|0          server: the client's update was applied (or not)
    9 / 10 Ping/Pong                      a bare byte, no address (connection level)

How the server answers each: collab/protocols/hocuspocus.py.
"""

from __future__ import annotations

from typing import Any, Final

from pycrdt import Doc

from .. import protocol as p
from ..errors import CollabError, ProtocolError
from ..validate import validate_update
from ..ydoc import apply_update, as_protocol_error, captured

SYNC: Final = 0
AWARENESS: Final = 1
AUTH: Final = 2
QUERY_AWARENESS: Final = 3
STATELESS: Final = 5
CLOSE: Final = 7
SYNC_STATUS: Final = 8
PING: Final = 9
PONG: Final = 10

AUTH_TOKEN: Final = 0
AUTH_PERMISSION_DENIED: Final = 1
AUTH_AUTHENTICATED: Final = 2

PONG_MESSAGE: Final = bytes((PONG,))
SESSION_SEPARATOR: Final = "\0"  # a session-aware provider's address: name \0 session id


def var_string(text: str) -> bytes:
    return p.var_bytes(text.encode("utf-8"))


def read_var_string(buf: bytes, pos: int) -> tuple[str, int]:
    data, pos = p.read_var_bytes(buf, pos)
    try:
        return data.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise ProtocolError("string is not valid UTF-8") from None


def parse_envelope(data: bytes) -> tuple[str, int, int]:
    """A message's address, its type, and where the rest starts."""
    key, pos = read_var_string(data, 0)
    kind, pos = p.read_var_uint(data, pos)
    return key, kind, pos


def authenticated_message(address: bytes, read_only: bool) -> bytes:
    scope = "readonly" if read_only else "read-write"
    return address + bytes((AUTH, AUTH_AUTHENTICATED)) + var_string(scope)


def permission_denied_message(address: bytes, reason: str) -> bytes:
    return address + bytes((AUTH, AUTH_PERMISSION_DENIED)) + var_string(reason)


def close_message(address: bytes, reason: str) -> bytes:
    return address + bytes((CLOSE,)) + var_string(reason)


def sync_status_message(address: bytes, applied: bool) -> bytes:
    return address + bytes((SYNC_STATUS, 1 if applied else 0))


def adds_nothing(state: bytes, update: bytes) -> bool:
    """Whether `update` changes nothing in a document whose state (as an update) is `state`
    (a read-only client's step 2 after a reconnect usually does not). O(document)."""
    if update == p.EMPTY_UPDATE:
        return True
    validate_update(update)
    scratch: Doc[Any] = Doc()
    try:
        apply_update(scratch, state)
        with captured(scratch) as changes:
            apply_update(scratch, update)
    except CollabError:
        raise
    except BaseException as exc:
        raise as_protocol_error(exc, "invalid update") from None
    return not changes
