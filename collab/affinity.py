"""Which `--workers` process holds a document, and this process's place among them.

The supervisor (collab/workers.py) hands each connection to the worker `owner` names for the
document its path names; a worker learns its index and its end of the local bus here before its
app starts (`become_worker`), so the app (collab/app.py) can ask without importing the
supervisor's module: `local_bus` for its cluster bus, `others_documents` for the change events
it leaves to the worker that holds a document."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable, Mapping

from .cluster.local import LocalBus
from .settings import Settings

_bus_socket: socket.socket | None = None  # the local bus's socket, in a worker without another
_index: int | None = None  # this worker's index (the `owner` of its documents), in a worker


def owner(document: str, workers: int) -> int:
    """The worker (index) that holds `document`: the same in every run and process."""
    return zlib.crc32(document.encode("utf-8")) % workers


def become_worker(index: int, bus: socket.socket | None) -> None:
    """This process is worker `index` of a supervisor, its local bus `bus` (None: another bus)."""
    global _bus_socket, _index
    _bus_socket, _index = bus, index


def local_bus() -> LocalBus | None:
    """The bus of a `--workers` process (collab.app.make_bus asks); None anywhere else."""
    global _bus_socket
    sock, _bus_socket = _bus_socket, None
    return LocalBus(sock) if sock is not None else None


def others_documents(
    settings: Settings, rooms: Mapping[str, object]
) -> Callable[[str], bool] | None:
    """In a worker: names a document another worker holds (it is not open here, and `owner`
    gives it to another), whose change events that worker makes cheaper, from its room, where
    this one would rebuild the document from the store. None anywhere else."""
    index, workers = _index, settings.workers
    if index is None or workers < 2:
        return None
    return lambda name: name not in rooms and owner(name, workers) != index
