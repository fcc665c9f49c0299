"""The controllers' read side (issue 11): informers over the in-process registry.

A real registry on an in-memory store; writes go through it and the InformerReader's
caches follow, by namespace and by owner, in the store's order, and a reader that falls
behind the hub relists instead of missing events.
"""

from __future__ import annotations

import asyncio

from federation.api.cache import InformerReader, StoreReader
from federation.api.registry import Registry, WatchHub
from federation.resources import CONTROLLERREVISIONS, SERVICES
from federation.storage.store import SQLiteStore


def service(name, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": 80}]}}


async def settle(predicate, timeout=2.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def test_the_caches_follow_the_registry():
    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    registry.create(SERVICES, "default", service("b"))
    registry.create(SERVICES, "prod", service("a", "prod"))
    reader = InformerReader(registry, [SERVICES, CONTROLLERREVISIONS])
    assert await reader.start(timeout=5)
    try:
        store = StoreReader(registry)
        assert [o["metadata"]["name"] for o in reader.list(SERVICES)] == ["b", "a"]  # by namespace, then name
        assert reader.list(SERVICES) == store.list(SERVICES)
        registry.create(SERVICES, "default", service("a"))
        registry.delete(SERVICES, "prod", "a")
        assert await settle(lambda: [o["metadata"]["name"] for o in reader.list(SERVICES)] == ["a", "b"])
        assert reader.list(SERVICES, "prod") == [] and reader.get(SERVICES, "default", "a") is not None
        owner = registry.get(SERVICES, "default", "a")["metadata"]["uid"]
        registry.create(CONTROLLERREVISIONS, "default", {
            "metadata": {"name": "r1", "ownerReferences": [{"uid": owner, "kind": "Deployment", "name": "a"}]},
            "revision": 1, "data": {}})
        assert await settle(lambda: [r["metadata"]["name"] for r in reader.owned_by(CONTROLLERREVISIONS, owner)] == ["r1"])
        assert store.owned_by(CONTROLLERREVISIONS, owner) == reader.owned_by(CONTROLLERREVISIONS, owner)
    finally:
        await reader.stop()
    assert not registry.hub._queues  # noqa: SLF001 - every subscription given back


async def test_a_reader_that_falls_behind_relists():
    registry = Registry(SQLiteStore(":memory:"), WatchHub(max_queue=5))
    reader = InformerReader(registry, [SERVICES])
    assert await reader.start(timeout=5)
    try:
        for i in range(20):  # no await in between: the hub's queue of 5 overflows
            registry.create(SERVICES, "default", service(f"s{i:02d}"))
        assert await settle(lambda: len(reader.list(SERVICES)) == 20, timeout=5)
        assert reader.informer(SERVICES).lists >= 2
    finally:
        await reader.stop()
