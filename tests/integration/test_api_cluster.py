"""The documents API in cluster mode: two `collab serve` processes on one PostgreSQL database and
a Redis bus (tests/integration/test_cluster.py's fixtures). An update posted to one process, a
patch and a restore all reach a client connected to the other; versions made through one are
listed and read through the other."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Text

from tests.integration import test_cluster as cluster
from tests.integration.api_support import api, path, text_update, write
from tests.integration.test_cluster import cluster_of, until
from tests.ywire import connected

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]
redis = cluster.redis  # fixtures: a redis-server of the test's own,
database = cluster.database  # a PostgreSQL database of its own,
spawn = cluster.spawn  # and server processes


def http_of(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


async def test_api_edits_on_one_process_reach_clients_of_the_other(redis, database, spawn):
    a, b = await cluster_of(spawn, redis, database, 2)
    name = "team/notes"
    async with api(http_of(a)) as on_a, api(http_of(b)) as on_b:
        await write(on_a, name, text_update("first"))
        async with connected(b.url, name) as client:
            text = client.doc.get("codemirror", type=Text)
            await until(lambda: str(text) == "first", 5, lambda: f"b's client has {text!s}")
            version = (await on_a.post(path(name, "versions"), json={"label": "v1"})).json()
            await write(on_a, name, text_update("!"))  # a second client id: appended somewhere
            await until(lambda: len(str(text)) == 6, 5, lambda: f"b's client has {text!s}")
            patched = await on_a.patch(path(name), json={"text": {"codemirror": "patched"}})
            assert patched.status_code == 200, patched.text
            await until(lambda: str(text) == "patched", 5, lambda: f"b's client has {text!s}")
            # the version made through a is listed and read through b (one database)
            listed = (await on_b.get(path(name, "versions"))).json()["versions"]
            assert version["id"] in [v["id"] for v in listed]
            read = (await on_b.get(path(name, "versions", str(version["id"])))).json()
            assert read["content"] == {"codemirror": "first"}
            restored = await on_a.post(path(name, "versions", str(version["id"]), "restore"))
            assert restored.status_code == 200, restored.text
            await until(lambda: str(text) == "first", 5, lambda: f"b's client has {text!s}")
            got = (await on_b.get(path(name, "text", "codemirror"))).text
            assert got == "first"
