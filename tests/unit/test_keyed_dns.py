"""The DNS record controller, one service at a time (issue 11), against a real in-memory store.

The registry, its informers (InformerReader) and the controller's work queue are the real
ones; the store only counts the lists it serves. A change to one service reconciles that
key alone and lists nothing; a cluster change fans out to every service, a cluster's
status refresh to none; a service whose records the API refuses backs off alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from federation.api.cache import InformerReader
from federation.controllers import run_keyed
from federation.controllers.dnsrecords import DNSRecordController
from federation.api.registry import Registry, WatchHub
from federation.resources import CLUSTERS, DNSRECORDS, SERVICES
from federation.settings import Settings
from federation.storage.store import SQLiteStore


class CountingStore(SQLiteStore):
    """The real in-memory store, counting the whole-kind lists it serves."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.lists: collections.Counter[str] = collections.Counter()

    def list(self, resource, namespace=None, *args, **kwargs):
        self.lists[resource] += 1
        return super().list(resource, namespace, *args, **kwargs)


def cluster_status(zone, region="us-east-1", probe="t0"):
    return {"region": region, "zones": [zone],
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": probe},
                           {"type": "Offline", "status": "False", "lastProbeTime": probe}]}


def shard(cluster, ip, ready):
    return {"cluster": cluster, "ingress": [{"ip": ip}], "readyEndpoints": ready}


def add_cluster(registry, name, zone, region="us-east-1"):
    created = registry.create(CLUSTERS, "", {"metadata": {"name": name}, "spec": {
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:1"}]}})
    registry.replace(CLUSTERS, "", name, {**created, "status": cluster_status(zone, region)}, subresource="status")


def add_service(registry, name, namespace="default", ready=(1, 1)):
    svc = registry.create(SERVICES, namespace, {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    return set_shards(registry, svc, ready)


def set_shards(registry, svc, ready):
    meta = svc["metadata"]
    shards = [shard("a", "127.0.0.1", ready[0]), shard("b", "127.0.0.2", ready[1])]
    return registry.replace(SERVICES, meta["namespace"], meta["name"], {**svc, "status": {"shards": shards}},
                            subresource="status")


def records(registry):
    """The stored records, read past the count (the test's reads are not the controller's)."""
    items, _ = SQLiteStore.list(registry.store, DNSRECORDS.key)
    return {o["spec"]["name"]: (o["spec"]["type"], o["spec"]["targets"]) for o in items}


async def settle(controller, predicate=lambda: True, timeout=5.0):
    """Wait until ``predicate`` holds and the controller's queue is idle (events delivered)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    idle_since = None
    while loop.time() < deadline:
        q = controller.queue
        idle = predicate() and len(q) == 0 and q.processing() == 0 and q.waiting() == 0
        if idle:
            idle_since = idle_since or loop.time()
            if loop.time() - idle_since >= 0.1:
                return True
        else:
            idle_since = None
        await asyncio.sleep(0.01)
    return False


@contextlib.asynccontextmanager
async def running(services=("web", "api", "db")):
    store = CountingStore()
    registry = Registry(store, WatchHub())
    add_cluster(registry, "a", "us-east-1a")
    add_cluster(registry, "b", "us-east-1b")
    for name in services:
        add_service(registry, name)
    reader = InformerReader(registry, [CLUSTERS, SERVICES, DNSRECORDS])
    assert await reader.start(timeout=5)
    controller = DNSRecordController(registry, Settings(), reader=reader)
    controller.attach()
    task = asyncio.create_task(run_keyed(controller, resync_period=3600))
    try:
        assert await settle(controller, lambda: len(records(registry)) > 0)
        yield registry, store, controller
    finally:
        controller.queue.shutdown(drain=False)
        await asyncio.wait_for(task, 5)
        await reader.stop()


def global_name(svc):
    return f"{svc}.default.myfed.svc.example.com."


def zone_name(svc, zone="us-east-1a"):
    return f"{svc}.default.myfed.svc.{zone}.us-east-1.example.com."


async def test_a_change_to_one_service_reconciles_that_key_only():
    async with running() as (registry, store, controller):
        before = records(registry)
        assert before[global_name("api")] == ("A", ["127.0.0.1", "127.0.0.2"])
        reconciles, passes, lists = controller.reconciles, controller.passes, dict(store.lists)
        events = registry.hub.subscribe()
        # web's shard in zone a loses its ready endpoints: its zone name turns from A to CNAME.
        set_shards(registry, registry.get(SERVICES, "default", "web"), (0, 1))
        assert await settle(controller, lambda: records(registry)[zone_name("web")][0] == "CNAME")
        assert controller.reconciles - reconciles == 1 and controller.passes == passes
        assert dict(store.lists) == lists  # nothing listed: the key read from the caches
        written = []
        while not events.empty():
            ev = events.get_nowait()
            if ev.resource == DNSRECORDS.key:
                written.append((ev.type, ev.object["spec"]["type"], ev.object["spec"]["name"]))
        assert {zone_name("web"), global_name("web")} <= {name for _, _, name in written}
        assert all(name.startswith("web.default.") for _, _, name in written), written  # web's records only
        zone_events = [(t, rtype) for t, rtype, name in written if name == zone_name("web")]
        assert zone_events == [("ADDED", "CNAME"), ("DELETED", "A")]  # the new record before the old one goes
        after = records(registry)
        assert {k: v for k, v in after.items() if not k.startswith("web.")} == \
               {k: v for k, v in before.items() if not k.startswith("web.")}


async def test_a_deleted_service_loses_its_records_and_no_other():
    async with running() as (registry, store, controller):
        registry.delete(SERVICES, "default", "db")
        assert await settle(controller, lambda: not any(n.startswith("db.") for n in records(registry)))
        assert global_name("web") in records(registry) and global_name("api") in records(registry)


async def test_a_cluster_change_fans_out_and_a_status_refresh_does_not():
    async with running() as (registry, store, controller):
        reconciles, passes = controller.reconciles, controller.passes
        # The health controller's refresh of lastProbeTime changes nothing DNS depends on.
        current = registry.get(CLUSTERS, "", "a")
        registry.replace(CLUSTERS, "", "a", {**current, "status": cluster_status("us-east-1a", probe="t1")},
                         subresource="status")
        assert await settle(controller)
        assert controller.reconciles == reconciles
        # Cluster a moves to another zone: every service gets that zone's name.
        current = registry.get(CLUSTERS, "", "a")
        registry.replace(CLUSTERS, "", "a", {**current, "status": cluster_status("us-east-1c")},
                         subresource="status")
        assert await settle(controller, lambda: all(zone_name(s, "us-east-1c") in records(registry)
                                                    for s in ("web", "api", "db")))
        assert controller.reconciles - reconciles == 3 and controller.passes == passes
        assert not any(zone_name(s) in records(registry) for s in ("web", "api", "db"))


async def test_a_failing_key_backs_off_while_the_others_proceed():
    long = "x" * 63
    async with running() as (registry, store, controller):
        # A third cluster with long zone and region names: a service with a long name in a
        # long namespace gets names longer than DNS allows there, which the API refuses (422).
        add_cluster(registry, "c", "z" * 60, region="r" * 60)
        registry.create(SERVICES, long, {"metadata": {"name": long}, "spec": {"ports": [{"port": 80}]}})
        registry.create(SERVICES, "default", {"metadata": {"name": "late"}, "spec": {"ports": [{"port": 80}]}})
        set_shards(registry, registry.get(SERVICES, long, long), (1, 1))
        set_shards(registry, registry.get(SERVICES, "default", "late"), (1, 1))
        key = f"{long}/{long}"
        for _ in range(300):
            if controller.queue.num_requeues(key) >= 3:
                break
            await asyncio.sleep(0.01)
        assert controller.queue.num_requeues(key) >= 3  # retried, each time after a longer wait
        assert records(registry)[global_name("late")] == ("A", ["127.0.0.1", "127.0.0.2"])
        # Its neighbours still follow their changes meanwhile.
        set_shards(registry, registry.get(SERVICES, "default", "api"), (0, 1))
        for _ in range(300):
            if records(registry)[global_name("api")] == ("A", ["127.0.0.2"]):
                break
            await asyncio.sleep(0.01)
        assert records(registry)[global_name("api")] == ("A", ["127.0.0.2"])
        # Deleted, the failing service is forgotten: its next attempt succeeds (nothing to
        # write) and ends its backoff.
        registry.delete(SERVICES, long, long)
        assert await settle(controller, lambda: controller.queue.num_requeues(key) == 0, timeout=10)
