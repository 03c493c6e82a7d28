"""A Collab server as a real subprocess (`python -m collab serve`), for tests that signal, kill
or measure it, plus the `launch` fixture (in tests/conftest.py) that cleans up after them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
from anyio.abc import Process

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 20.0


class ServerProcess:
    """`python -m collab serve` on a fixed port and SQLite file, started again after each stop."""

    def __init__(
        self, tmp_path: Path, log: IO[bytes], *flags: str, command: list[str] | None = None
    ) -> None:
        """`command` replaces `python -m collab serve ...`: PORT and DATABASE_URL in it are
        replaced, and the same go into COLLAB_PORT and COLLAB_DATABASE_URL."""
        self.command = command
        self.port = free_port()
        self.db = tmp_path / "collab.db"
        self.log_path = tmp_path / "server.log"
        self._log = log
        self.flags = flags
        self.proc: Process | None = None
        self.health_path = "/healthz"  # (an app mounting collab: its /<mount>/healthz)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db}"

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def start(self) -> None:
        assert self.proc is None, "already running"
        command = [
            sys.executable,
            "-m",
            "collab",
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--log-level",
            "info",
            *self.flags,
        ]
        env = None
        if self.command is not None:
            replace = {"PORT": str(self.port), "DATABASE_URL": self.database_url}
            command = [replace.get(part, part) for part in self.command]
            env = {
                **os.environ,
                "COLLAB_PORT": str(self.port),
                "COLLAB_DATABASE_URL": self.database_url,
            }
        self._log.write(f"=== start: {' '.join(command[1:])}\n".encode())
        self._log.flush()
        self.proc = await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
        try:
            await self.wait_ready()
        except BaseException:
            self.proc.kill()  # never leave a server behind a failed start (it may hold a port)
            raise

    async def wait_ready(self) -> None:
        assert self.proc is not None
        async with httpx.AsyncClient(trust_env=False) as http:
            with anyio.fail_after(START_DEADLINE_S):
                while True:
                    if self.proc.returncode is not None:
                        pytest.fail(
                            f"server exited with {self.proc.returncode}:\n{self.log_tail()}"
                        )
                    try:
                        response = await http.get(f"http://127.0.0.1:{self.port}{self.health_path}")
                        if response.status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.05)

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.get(f"http://127.0.0.1:{self.port}/healthz")
            result: dict[str, Any] = response.json()
            return result

    def kill(self) -> None:
        """SIGKILL, right now (no await between the caller's decision and the signal)."""
        assert self.proc is not None
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass  # gone already (a start that failed killed it), not reaped yet

    def kill_tree(self) -> None:
        """SIGKILL to the process's children (a supervisor's workers, hypercorn's worker),
        then to it: killed alone, a parent leaves its children running, orphaned."""
        assert self.proc is not None
        for pid in [*children(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone already (killed by the test, not reaped yet)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end; returns its status (negative: killed by that signal)."""
        assert self.proc is not None
        with anyio.fail_after(timeout):
            status = await self.proc.wait()
        await self.proc.aclose()
        self.proc = None
        self._log.write(f"=== exited with {status}\n".encode())
        return status

    async def stop(self) -> None:
        """SIGTERM, and the clean exit that must follow."""
        self.terminate()
        status = await self.wait_exit(15)
        assert status == 0, f"SIGTERM ended the server with {status}:\n{self.log_tail()}"


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command's name (state, parent, ...); None when
    the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, whose parent has yet to reap it, does not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"
