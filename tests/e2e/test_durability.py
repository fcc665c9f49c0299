"""SIGKILL the federation API in the middle of a stream of writes; nothing acknowledged is lost.

A writer keeps creating and patching objects with several requests in flight; the API
server process is killed without warning while they run. After a restart on the same
SQLite file, every write that got a 2xx is there, resourceVersions keep rising from where
they were, and a watch from an old resourceVersion replays what happened since.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from federation.launch.localfed import LocalFederation
from federation.launch.topology import Topology

SVC = "/api/v1/namespaces/default/services"


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]}}


async def writer(url: str, acked: dict[str, int], worker: int, stop: asyncio.Event) -> None:
    """Create services until the server dies; remember the resourceVersion of each 2xx."""
    i = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            name = f"w{worker}-{i}"
            try:
                async with session.post(url + SVC, json=service(name), timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 201:
                        acked[name] = int((await r.json())["metadata"]["resourceVersion"])
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
                return
            i += 1


@pytest.mark.parametrize("round_", range(2))
async def test_sigkill_during_writes_loses_nothing_acknowledged(tmp_path, round_):
    store = str(tmp_path / "federation.db")
    fed = LocalFederation(Topology(), store=store, apiserver_args=["--no-controllers"])
    try:
        await fed.start_api()
        # A watch that will resume later, from the revision before the stream of writes.
        before = await fed.api.post(SVC, service("before"))
        start_rv = int(before["metadata"]["resourceVersion"])
        acked: dict[str, int] = {}
        stop = asyncio.Event()
        writers = [asyncio.create_task(writer(fed.api_url, acked, w, stop)) for w in range(8)]
        await fed.wait_for(lambda: len(acked) >= 150, 30, "150 acknowledged writes")
        await fed.stop_child("apiserver", kill=True)
        stop.set()
        await asyncio.gather(*writers)
        assert len(acked) >= 150

        await fed.start_api()
        listed = await fed.api.get(SVC)
        present = {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in listed["items"]}
        missing = sorted(set(acked) - set(present))
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        assert all(present[n] == rv for n, rv in acked.items())
        list_rv = int(listed["metadata"]["resourceVersion"])
        assert list_rv >= max(acked.values())

        created = await fed.api.post(SVC, service("after-restart"))
        assert int(created["metadata"]["resourceVersion"]) > list_rv

        # The watch resumes from before the crash: every acknowledged write is replayed, in order.
        seen = []
        async for event in fed.api.watch(SVC, resource_version=str(start_rv), timeout=10):
            seen.append((event["type"], event["object"]["metadata"]["name"],
                         int(event["object"]["metadata"]["resourceVersion"])))
            if event["object"]["metadata"]["name"] == "after-restart":
                break
        names = {name for _, name, _ in seen}
        assert set(acked) <= names and "before" not in names
        rvs = [rv for _, _, rv in seen]
        assert rvs == sorted(rvs)
    finally:
        await fed.stop()
