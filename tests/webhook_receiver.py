"""A webhook receiver for tests: a small HTTP/1.1 server on a real port that records every
request and answers as scripted (a status, or "hang": never answer), and can be stopped and
started again on the same port (connection refused while stopped)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup

from tests.conftest import free_port

HANG = "hang"
Answer = int | str  # a status code, or HANG
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the body was in
    wall_ms: int  # time.time() then, in ms (to compare with an event's time_ms)
    status: int | None  # what it was answered (None: hung)

    @property
    def event_id(self) -> str:
        return self.headers["collab-event-id"]

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """`async with Receiver().running():` serves on `self.port` until the block ends."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.default: Answer = 200
        self._scripts: dict[str, list[Answer]] = {}
        self._changed = anyio.Event()
        self._scope: anyio.CancelScope | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *answers: Answer, path: str = "/hook") -> None:
        """The next requests to `path` get these answers, in order; then `self.default`."""
        self._scripts.setdefault(path, []).extend(answers)

    def delivered(self, path: str | None = None) -> list[Received]:
        """The requests answered with a 2xx (to `path`, or to any)."""
        return [
            r
            for r in self.requests
            if r.status is not None and 200 <= r.status < 300 and path in (None, r.path)
        ]

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not check():
                await self._changed.wait()

    async def next_request(self, timeout: float) -> None:
        """Return after the next request comes in, or after `timeout` seconds."""
        with anyio.move_on_after(timeout):
            await self._changed.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        async with anyio.create_task_group() as tg:
            await self.start(tg)
            try:
                yield self
            finally:
                self.stop()

    async def start(self, tg: TaskGroup) -> None:
        assert self._scope is None, "already running"
        listener = await anyio.create_tcp_listener(
            local_host="127.0.0.1", local_port=self.port, reuse_port=False
        )
        scope = self._scope = anyio.CancelScope()

        async def serve() -> None:
            with scope:
                async with listener:
                    await listener.serve(self._connection)

        tg.start_soon(serve)

    def stop(self) -> None:
        """Close the port and every open connection (hung requests too), right now."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await _receive(stream)
                    if not chunk or len(buffer) > MAX_HEAD:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = await _receive(stream)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                answer = self._next_answer(path)
                status = None if answer == HANG else int(answer)
                self._record(
                    Received(path, headers, body, time.monotonic(), int(time.time() * 1000), status)
                )
                if status is None:
                    await anyio.sleep_forever()
                reply = b"ok" if status < 300 else f"scripted {status}".encode()
                if status in (204, 304):
                    reply = b""  # (no body, by HTTP's rules)
                await stream.send(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(reply)}\r\n"
                    "Content-Type: text/plain\r\n\r\n".encode()
                    + reply
                )

    def _next_answer(self, path: str) -> Answer:
        script = self._scripts.get(path)
        return script.pop(0) if script else self.default

    def _record(self, received: Received) -> None:
        self.requests.append(received)
        self._changed.set()
        self._changed = anyio.Event()


async def _receive(stream: SocketStream) -> bytes:
    try:
        return await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return b""
