"""Controllers against a real in-memory store: the order of their writes, and what they collect."""

from federation.controllers.dnsrecords import DNSRecordController
from federation.api.registry import Registry, WatchHub
from federation.resources import CLUSTERS, SERVICES
from federation.settings import Settings
from federation.storage.store import SQLiteStore

ZONE = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."


def ready_cluster(name, zone):
    return {
        "metadata": {"name": name},
        "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:1"}]},
        "status": {"region": "us-east-1", "zones": [zone],
                   "conditions": [{"type": "Ready", "status": "True"}, {"type": "Offline", "status": "False"}]},
    }


def shard(cluster, ip, ready):
    return {"cluster": cluster, "ingress": [{"ip": ip}], "readyEndpoints": ready}


async def test_a_name_changing_type_is_never_missing_in_between():
    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    for name, zone in (("a", "us-east-1a"), ("b", "us-east-1b")):
        created = registry.create(CLUSTERS, "", ready_cluster(name, zone))
        registry.replace(CLUSTERS, "", name, {**created, "status": ready_cluster(name, zone)["status"]},
                         subresource="status")
    svc = registry.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    svc = registry.replace(SERVICES, "default", "web",
                           {**svc, "status": {"shards": [shard("a", "127.0.0.1", 1), shard("b", "127.0.0.2", 1)]}},
                           subresource="status")
    controller = DNSRecordController(registry, Settings())
    await controller.reconcile()

    queue = registry.hub.subscribe()
    # Zone a loses its ready endpoints: its A record must give way to a CNAME.
    registry.replace(SERVICES, "default", "web",
                     {**svc, "status": {"shards": [shard("a", "127.0.0.1", 0), shard("b", "127.0.0.2", 1)]}},
                     subresource="status")
    await controller.reconcile()
    events = []
    while not queue.empty():
        ev = queue.get_nowait()
        if ev.resource.startswith("dnsrecords") and ev.object["spec"]["name"] == ZONE:
            events.append((ev.type, ev.object["spec"]["type"]))
    assert events == [("ADDED", "CNAME"), ("DELETED", "A")]


async def test_events_older_than_the_ttl_are_collected():
    from federation.api.events import EventCollector
    from federation.resources import EVENTS

    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    involved = {"kind": "Service", "name": "web"}
    registry.create(EVENTS, "default", {"metadata": {"name": "old"}, "involvedObject": involved,
                                        "lastTimestamp": "2020-01-01T00:00:00Z"})
    registry.create(EVENTS, "default", {"metadata": {"name": "new"}, "involvedObject": involved,
                                        "lastTimestamp": "2999-01-01T00:00:00Z"})
    await EventCollector(registry, ttl=3600).reconcile()
    assert [e["metadata"]["name"] for e in registry.list(EVENTS)[0]] == ["new"]


async def test_tombstones_read_from_the_revision_they_start_at_a_page_at_a_time():
    """Issue 19: a restart read the whole history on the event loop. The cursor starts at the
    store's revision; what follows is read in pages of DELETED events only."""
    from federation.controllers.ownership import DELETION_PROPAGATION_ANNOTATION, TOMBSTONES, Tombstones

    store = SQLiteStore(":memory:")
    registry = Registry(store, WatchHub())
    orphan = {DELETION_PROPAGATION_ANNOTATION: "Orphan"}
    for i in range(300):  # history from before this process: already handled by the one that served it
        registry.create(SERVICES, "default", {"metadata": {"name": f"old{i}", "annotations": orphan},
                                              "spec": {"ports": [{"port": 80}]}})
        registry.delete(SERVICES, "default", f"old{i}")
    tombstones = Tombstones(registry)
    await tombstones.collect()
    assert store.list(TOMBSTONES)[0] == []
    for i in range(250):  # more than two pages of deletions after the start
        registry.create(SERVICES, "default", {"metadata": {"name": f"new{i}", "annotations": orphan},
                                              "spec": {"ports": [{"port": 80}]}})
        registry.delete(SERVICES, "default", f"new{i}")
    await tombstones.collect()
    assert sorted(t["name"] for t in store.list(TOMBSTONES)[0]) == sorted(f"new{i}" for i in range(250))
