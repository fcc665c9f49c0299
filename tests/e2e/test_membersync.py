"""The one sync path of member copies (issue 11), against a real member cluster process.

:func:`sync_copies` with the Service adapter: a missing copy is created, a drifted one
updated, an unwanted one deleted, and a copy the member refuses backs off until the
desired copy changes; each write is an Event on the federated object.
"""

from __future__ import annotations

import pytest

from apimachinery.backoff import Backoff
from apimachinery.client import APIClient
from clusters.testing import ClusterProcess
from federation.controllers.membersync import Wanted, sync_copies
from federation.controllers.propagation import FEDERATION_LABEL, ServiceCopies, member_copy
from federation.controllers.ownership import Tombstones
from federation.api.registry import Registry, WatchHub
from federation.resources import EVENTS, SERVICES
from federation.storage.store import SQLiteStore


@pytest.fixture(scope="module")
def member():
    proc = ClusterProcess(name="aws-sync-1", region="us-east-1", zones="us-east-1a", extra=["--pod-ready-delay", "0"])
    try:
        yield proc.wait_ready()
    finally:
        proc.close()


async def copies_in(client):
    body = await client.get(SERVICES.path(), params={"labelSelector": f"{FEDERATION_LABEL}=myfed"})
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in body["items"]}


async def test_create_update_delete_and_back_off(member):
    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    web = registry.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    bad = registry.create(SERVICES, "default", {"metadata": {"name": "bad"},
                                                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}})
    adapter, backoff = ServiceCopies(Tombstones(registry)), Backoff()

    def wanted(*objs):
        return {(o["metadata"]["namespace"], o["metadata"]["name"]): Wanted(member_copy(o, "myfed"), o) for o in objs}

    async with APIClient(member.url) as client:
        async def sync(*objs):
            return await sync_copies(registry=registry, adapter=adapter, client=client, cluster="c1",
                                     wanted=wanted(*objs), existing=await copies_in(client), backoff=backoff)

        after = await sync(web, bad)
        assert set(after) == {("default", "web")}  # "bad" is refused (422: nodePort outside the range)
        reasons = sorted(e["reason"] for e in registry.list(EVENTS)[0])
        assert reasons == ["CreatedInCluster", "RefusedByCluster"]
        await sync(web, bad)  # within the backoff: no second try
        assert sorted(e["reason"] for e in registry.list(EVENTS)[0]) == reasons
        web = registry.replace(SERVICES, "default", "web", {**web, "spec": {"ports": [{"port": 81}]}})
        after = await sync(web)  # drifted: updated; "bad" unwanted: nothing to delete
        assert after[("default", "web")]["spec"]["ports"][0]["port"] == 81
        assert "UpdatedInCluster" in {e["reason"] for e in registry.list(EVENTS)[0]}
        assert len(backoff) == 0  # a copy no longer wanted forgets its backoff
        assert await sync() == {} and await copies_in(client) == {}  # unwanted: deleted
