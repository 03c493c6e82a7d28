"""A Server-Sent Events reader for tests, over an httpx streaming response (the framing of the
HTML standard's event-stream: fields until a blank line, `:` starts a comment)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    event: str  # "message" when the stream named none; ":" for a comment line
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def messages(response: httpx.Response, *, comments: bool = False) -> AsyncIterator[Message]:
    """Each dispatched message (and, with `comments`, each comment line) until the stream ends."""
    event, data = "", []
    msg_id: str | None = None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Message(event or "message", "\n".join(data), msg_id)
            event, data, msg_id = "", [], None
            continue
        if line.startswith(":"):
            if comments:
                yield Message(":", line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            msg_id = value


async def take(
    stream: AsyncIterator[Message], count: int, *, event: str | None = None
) -> list[Message]:
    """The next `count` messages (of that event type, when given), skipping others."""
    got: list[Message] = []
    async for message in stream:
        if event is None or message.event == event:
            got.append(message)
            if len(got) == count:
                break
    return got
