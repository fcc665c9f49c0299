"""apimachinery.informer against a real federation API server on loopback: initial sync,
watch events into the cache and its indexes, selectors, a relist after 410 Gone with the
right notifications, and recovery after the server restarts on the same port."""

import asyncio
import time

import pytest
from aiohttp import web

from apimachinery.client import APIClient
from apimachinery.errors import Gone
from apimachinery.informer import (APIListWatch, Indexer, Informer, InformerFactory, by_label, by_namespace,
                                   by_owner_uid, object_key, split_key)
from apimachinery.workqueue import WorkQueue, run_workers
from federation.api.apiserver import make_app
from federation.api.registry import Registry, WatchHub
from federation.resources import SERVICES
from federation.storage.store import SQLiteStore

SVC = "/api/v1/namespaces/default/services"
ALL_SVC = "/api/v1/services"


def service(name, namespace="default", labels=None, owner=None, port=80):
    meta = {"name": name, "namespace": namespace, "labels": {"app": name, **(labels or {})}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Deployment", "name": owner, "uid": f"uid-{owner}"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": port}]}}


class Server:
    """The federation API on 127.0.0.1, stoppable and restartable on the same port; the
    registry (and its in-memory store) outlives restarts, as a store file would."""

    def __init__(self, *, watch_window=1000, max_queue=10_000):
        self.registry = Registry(SQLiteStore(":memory:"), WatchHub(max_queue))
        self.watch_window = watch_window
        self.port = 0
        self.runner = None

    async def start(self):
        app = make_app(self.registry, watch_ping=0.1, watch_window=self.watch_window)
        self.runner = web.AppRunner(app, shutdown_timeout=0.05)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self):
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def server():
    s = Server()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def client(server):
    async with APIClient(server.url) as c:
        yield c


class Recorder:
    """A handler that writes down every notification as (kind, key, detail)."""

    def __init__(self, informer):
        self.events = []
        self.informer = informer
        informer.add_handler(self.on_add, self.on_update, self.on_delete)

    def on_add(self, obj):
        assert self.informer.cache.get(object_key(obj)) is obj  # the cache first, then the handlers
        self.events.append(("add", object_key(obj), obj["metadata"].get("labels", {}).get("tier")))

    def on_update(self, old, new):
        self.events.append(("update", object_key(new), new["metadata"].get("labels", {}).get("tier")))

    def on_delete(self, obj):
        assert object_key(obj) not in self.informer.cache
        self.events.append(("delete", object_key(obj), None))

    async def wait_for(self, n, seconds=2.0):
        deadline = time.monotonic() + seconds
        while len(self.events) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert len(self.events) >= n, self.events
        return self.events


def informer_for(client, path=SVC, **kw):
    source = APIListWatch(client, path, watch_timeout=kw.pop("watch_timeout", 30), idle_timeout=2,
                          label_selector=kw.pop("label_selector", None), field_selector=kw.pop("field_selector", None))
    return Informer(source, backoff_initial=0.02, backoff_max=0.1, **kw)


# ------------------------------------------------------------------ the cache alone


def test_keys_and_indexes():
    assert object_key({"metadata": {"name": "web", "namespace": "prod"}}) == "prod/web"
    assert object_key({"metadata": {"name": "c1"}}) == "c1"
    assert split_key("prod/web") == ("prod", "web") and split_key("c1") == ("", "c1")
    with pytest.raises(ValueError):
        object_key({"metadata": {}})

    cache = Indexer()
    a = service("a", labels={"tier": "web"}, owner="d1")
    b = service("b", namespace="prod", labels={"tier": "web"})
    cache.put("default/a", a)
    cache.put("prod/b", b)
    cache.add_index("tier", by_label("tier"))  # added late: indexes what is cached
    cache.add_index("owner", by_owner_uid)
    cache.add_index("ns", by_namespace)
    cache.add_index("broken", lambda obj: obj["no such field"])  # fails on every object: indexes nothing
    assert [o["metadata"]["name"] for o in cache.by_index("tier", "web")] == ["a", "b"]
    assert cache.by_index("owner", "uid-d1") == [a] and cache.by_index("ns", "prod") == [b]
    assert cache.index_values("broken") == []
    a2 = service("a", labels={"tier": "db"})
    assert cache.put("default/a", a2) is a
    assert cache.index_keys("tier", "web") == ["prod/b"] and cache.index_keys("tier", "db") == ["default/a"]
    assert cache.by_index("owner", "uid-d1") == []
    assert cache.remove("prod/b") is b and cache.index_values("tier") == ["db"]
    assert cache.remove("prod/b") is None
    with pytest.raises(KeyError, match="no index named 'nope'"):
        cache.by_index("nope", "x")
    with pytest.raises(ValueError):
        cache.add_index("tier", by_label("tier"))


# ------------------------------------------------------------------ against the API server


async def test_initial_sync_then_watch_events_update_the_cache_indexes_and_handlers(client):
    await client.post(SVC, service("a", labels={"tier": "web"}, owner="d1"))
    await client.post(SVC, service("b", labels={"tier": "db"}))
    informer = informer_for(client)
    informer.add_index("tier", by_label("tier"))
    informer.add_index("owner", by_owner_uid)
    rec = Recorder(informer)
    assert not informer.has_synced
    async with informer:
        assert await informer.wait_for_sync(2)
        assert sorted(rec.events) == [("add", "default/a", "web"), ("add", "default/b", "db")]
        assert sorted(informer.cache.keys()) == ["default/a", "default/b"] and informer.lists == 1
        assert [o["metadata"]["name"] for o in informer.cache.by_index("owner", "uid-d1")] == ["a"]

        await client.post(SVC, service("c", labels={"tier": "web"}, owner="d1"))
        await rec.wait_for(3)
        b = await client.get(f"{SVC}/b")
        b["metadata"]["labels"]["tier"] = "web"
        updated = await client.put(f"{SVC}/b", b)
        await rec.wait_for(4)
        await client.delete(f"{SVC}/a")
        await rec.wait_for(5)
        assert rec.events[2:] == [("add", "default/c", "web"), ("update", "default/b", "web"),
                                  ("delete", "default/a", None)]
        assert sorted(informer.cache.keys()) == ["default/b", "default/c"]
        assert informer.cache.get("default/b")["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
        assert informer.cache.index_keys("tier", "web") == ["default/b", "default/c"]
        assert informer.cache.index_values("tier") == ["web"]
        assert informer.cache.index_keys("owner", "uid-d1") == ["default/c"]
        assert informer.resource_version == updated["metadata"]["resourceVersion"] or \
            int(informer.resource_version) > int(updated["metadata"]["resourceVersion"])
        assert informer.lists == 1  # no relist on the way
    assert not informer.running


async def test_a_label_selector_informer_sees_only_matching_objects_across_namespaces(client):
    await client.post(SVC, service("a", labels={"tier": "web"}))
    await client.post(SVC, service("b", labels={"tier": "db"}))
    await client.post("/api/v1/namespaces/prod/services", service("p", namespace="prod", labels={"tier": "web"}))
    informer = informer_for(client, ALL_SVC, label_selector="tier=web")
    rec = Recorder(informer)
    async with informer:
        assert await informer.wait_for_sync(2)
        assert sorted(informer.cache.keys()) == ["default/a", "prod/p"]
        await client.post(SVC, service("c", labels={"tier": "db"}))  # not selected
        await client.post(SVC, service("d", labels={"tier": "web"}))
        await rec.wait_for(3)
        await client.delete(f"{SVC}/b")  # not selected
        await client.delete("/api/v1/namespaces/prod/services/p")
        await rec.wait_for(4)
        await asyncio.sleep(0.05)
        assert rec.events[2:] == [("add", "default/d", "web"), ("delete", "prod/p", None)]
        assert sorted(informer.cache.keys()) == ["default/a", "default/d"]

    by_field = informer_for(client, ALL_SVC, field_selector="metadata.namespace=default")
    async with by_field:
        assert await by_field.wait_for_sync(2)
        assert sorted(by_field.cache.keys()) == ["default/a", "default/c", "default/d"]


async def test_gone_relists_and_tells_the_differences():
    # Every watcher's queue holds 2 events: a burst of writes overflows the informer's watch,
    # which the server ends with a 410 ERROR event; the informer must list again.
    s = Server(max_queue=2)
    await s.start()
    try:
        async with APIClient(s.url) as client:
            for name in ("a", "b", "c"):
                await client.post(SVC, service(name, labels={"tier": "v1"}))
            informer = informer_for(client)
            informer.add_index("tier", by_label("tier"))
            rec = Recorder(informer)
            async with informer:
                assert await informer.wait_for_sync(2)
                await asyncio.sleep(0.1)  # the watch is open
                reg = s.registry
                b = reg.get(SERVICES, "default", "b")
                b["metadata"]["labels"]["tier"] = "v2"
                # No await between these: they reach the watcher's queue all at once.
                reg.delete(SERVICES, "default", "a")
                reg.replace(SERVICES, "default", "b", b)
                reg.create(SERVICES, "default", service("d", labels={"tier": "v1"}))
                reg.create(SERVICES, "default", service("e", labels={"tier": "v1"}))
                await rec.wait_for(7)
                await asyncio.sleep(0.05)
                assert informer.lists == 2
                assert sorted(rec.events[3:]) == [("add", "default/d", "v1"), ("add", "default/e", "v1"),
                                                  ("delete", "default/a", None), ("update", "default/b", "v2")]
                assert len(rec.events) == 7  # c did not change: no update for it
                assert sorted(informer.cache.keys()) == ["default/b", "default/c", "default/d", "default/e"]
                assert informer.cache.index_keys("tier", "v2") == ["default/b"]
                # ... and it watches again from the new list.
                await client.delete(f"{SVC}/c")
                await rec.wait_for(8)
                assert rec.events[7] == ("delete", "default/c", None)
    finally:
        await s.stop()


async def test_the_source_lists_watches_and_raises_gone_for_a_version_past_the_window():
    s = Server(watch_window=2)
    await s.start()
    try:
        async with APIClient(s.url) as client:
            source = APIListWatch(client, SVC, label_selector="app in (x,y)", watch_timeout=0.5, idle_timeout=2)
            await client.post(SVC, service("w"))  # not selected; the list's version is past 0 ("from now")
            items, rv = await source.list()
            assert items == [] and int(rv) > 0
            await client.post(SVC, service("x"))
            await client.post(SVC, service("z"))  # not selected
            events = []
            async for event in source.watch(rv):
                events.append(event)
            # The server ends the stream after timeoutSeconds=0.5, bookmarks meanwhile.
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"] == [
                ("ADDED", "x")]
            assert any(e["type"] == "BOOKMARK" for e in events)
            await client.post(SVC, service("y"))
            with pytest.raises(Gone):  # 3 events of services follow rv; the window is 2
                async for _ in source.watch(rv):
                    pass
    finally:
        await s.stop()


async def test_recovery_after_the_server_restarts_resumes_or_relists():
    s = Server(watch_window=3)
    await s.start()
    try:
        async with APIClient(s.url, timeout=1) as client:
            for name in ("a", "b"):
                await client.post(SVC, service(name))
            informer = informer_for(client)
            rec = Recorder(informer)
            async with informer:
                assert await informer.wait_for_sync(2)
                await asyncio.sleep(0.1)

                # Down, and two writes meanwhile (within the window of 3): the informer
                # watches again from its last resourceVersion and gets both, no relist.
                await s.stop()
                s.registry.create(SERVICES, "default", service("c"))
                s.registry.delete(SERVICES, "default", "a")
                await asyncio.sleep(0.15)  # it is retrying against a closed port
                await s.start()
                await rec.wait_for(4)
                assert rec.events[2:] == [("add", "default/c", None), ("delete", "default/a", None)]
                assert informer.lists == 1 and informer.watches >= 2

                # Down again, and more writes than the window: the watch is Gone, the
                # informer lists again and tells the differences.
                await s.stop()
                s.registry.delete(SERVICES, "default", "b")
                for name in ("d", "e", "f"):
                    s.registry.create(SERVICES, "default", service(name))
                await asyncio.sleep(0.15)
                await s.start()
                await rec.wait_for(8)
                assert informer.lists == 2
                assert sorted(rec.events[4:]) == [("add", "default/d", None), ("add", "default/e", None),
                                                  ("add", "default/f", None), ("delete", "default/b", None)]
                assert sorted(informer.cache.keys()) == ["default/c", "default/d", "default/e", "default/f"]
                await client.post(SVC, service("g"))  # and watches again
                await rec.wait_for(9)
                assert rec.events[8] == ("add", "default/g", None)
    finally:
        await s.stop()


async def test_an_informer_started_before_its_server_syncs_when_it_comes_up():
    s = Server()
    await s.start()
    await s.stop()  # a port that answers nothing now
    try:
        async with APIClient(s.url, timeout=0.5) as client:
            informer = informer_for(client)
            async with informer:
                assert not await informer.wait_for_sync(0.2)
                s.registry.create(SERVICES, "default", service("a"))
                await s.start()
                assert await informer.wait_for_sync(2)
                assert informer.cache.keys() == ["default/a"]
    finally:
        await s.stop()


async def test_handlers_feed_a_work_queue_late_handlers_catch_up_and_resync_redelivers(client):
    await client.post(SVC, service("a"))
    informer = informer_for(client, resync_period=0.1)
    queue = WorkQueue(base_delay=0.01)
    informer.add_handler(lambda o: queue.add(object_key(o)), lambda old, new: queue.add(object_key(new)),
                         lambda o: queue.add(object_key(o)))
    failing = []
    informer.add_handler(on_add=lambda o: failing.append(1 / 0))  # a broken handler harms no one
    reconciled = []

    async def reconcile(key):
        namespace, name = split_key(key)
        reconciled.append((key, informer.cache.get(key) is not None))

    workers = asyncio.create_task(run_workers(queue, reconcile, 2))
    try:
        async with informer:
            assert await informer.wait_for_sync(2)
            await client.post(SVC, service("b"))
            deadline = time.monotonic() + 2
            while {"default/a", "default/b"} - {k for k, _ in reconciled} and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert {"default/a", "default/b"} <= {k for k, _ in reconciled}

            late = []
            informer.add_handler(on_add=lambda o: late.append(object_key(o)))
            assert sorted(late) == ["default/a", "default/b"]

            resynced = []
            informer.add_handler(on_update=lambda old, new: resynced.append(old is new))
            deadline = time.monotonic() + 1
            while len(resynced) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert len(resynced) >= 4 and all(resynced)  # two objects, twice: old is new on a resync
    finally:
        queue.shutdown()
        await asyncio.wait_for(workers, 1)


async def test_stop_cancels_cleanly_and_the_factory_shares_informers(client):
    factory = InformerFactory(client, watch_timeout=30, idle_timeout=2)
    one = factory.informer(SVC)
    assert factory.informer(SVC) is one
    other = factory.informer(SVC, label_selector="app=x")
    assert other is not one
    before = asyncio.all_tasks()
    factory.start()
    assert await factory.wait_for_sync(2)
    assert one.running and other.running
    await factory.stop()
    assert not one.running and not other.running
    # Nothing left behind: no informer task, and the server's watch handlers end as they
    # see their connections closed (they look every 0.1 s).
    deadline = time.monotonic() + 1
    while asyncio.all_tasks() - before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert asyncio.all_tasks() - before == set()
    one.start()  # and it starts again
    assert await one.wait_for_sync(1)
    await one.stop()
