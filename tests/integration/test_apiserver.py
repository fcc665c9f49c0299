"""The federation API over real HTTP: verbs, conflicts, watch, and a Status for every error."""

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from federation.api.apiserver import make_app
from federation.api.registry import Registry, WatchHub
from federation.storage.store import SQLiteStore
from federation.storage.stores import open_store

SVC = "/api/v1/namespaces/default/services"
CLUSTERS = "/apis/federation/v1beta1/clusters"


def service(name="web", port=80, **spec):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": port}], **spec},
    }


def cluster(name="c1"):
    return {
        "apiVersion": "federation/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "http://127.0.0.1:1"}],
                 "provider": "aws"},
    }


@pytest.fixture(params=["memory", "etcd"])
async def api(request):
    # The same API over both kinds of store: SQLite in memory, and etcd (a real process).
    url = request.getfixturevalue("etcd_url") if request.param == "etcd" else ":memory:"
    store = open_store(url, history=50)
    server = TestServer(make_app(Registry(store, WatchHub())), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield session
    await server.close()
    store.close()


async def call(session, method, path, body=None, ctype="application/json", raw=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    async with session.request(method, path, data=data, headers={"Content-Type": ctype}) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith(("{", "[")) else text)


async def test_crud_and_conflict(api):
    code, created = await call(api, "POST", SVC, service())
    assert code == 201 and created["metadata"]["namespace"] == "default"
    assert created["spec"]["ports"][0]["protocol"] == "TCP"
    code, body = await call(api, "POST", SVC, service())
    assert code == 409 and body["reason"] == "AlreadyExists" and body["kind"] == "Status"
    stale = dict(created)
    code, replaced = await call(api, "PUT", f"{SVC}/web", {**created, "spec": {**created["spec"], "ports": [{"name": "http", "port": 81}]}})
    assert code == 200 and replaced["metadata"]["generation"] == 2
    code, body = await call(api, "PUT", f"{SVC}/web", stale)
    assert code == 409 and body["reason"] == "Conflict" and 'services "web"' in body["message"]
    code, patched = await call(api, "PATCH", f"{SVC}/web", {"metadata": {"labels": {"tier": "front"}}},
                               ctype="application/merge-patch+json")
    assert code == 200 and patched["metadata"]["labels"] == {"app": "web", "tier": "front"}
    code, patched = await call(api, "PATCH", f"{SVC}/web", [{"op": "replace", "path": "/spec/ports/0/port", "value": 82}],
                               ctype="application/json-patch+json")
    assert code == 200 and patched["spec"]["ports"][0]["port"] == 82
    code, listed = await call(api, "GET", "/api/v1/services?labelSelector=tier%3Dfront")
    assert code == 200 and [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    code, listed = await call(api, "GET", "/api/v1/services?labelSelector=tier%3Dback")
    assert listed["items"] == []
    code, deleted = await call(api, "DELETE", f"{SVC}/web")
    assert code == 200 and deleted["kind"] == "Service" and deleted["metadata"]["name"] == "web"
    code, body = await call(api, "GET", f"{SVC}/web")
    assert code == 404 and body["message"] == 'services "web" not found'


async def test_status_subresource_only_changes_status(api):
    await call(api, "POST", CLUSTERS, cluster())
    code, current = await call(api, "GET", f"{CLUSTERS}/c1")
    current["status"] = {"region": "us-east-1"}
    current["spec"]["provider"] = "gcp"
    code, updated = await call(api, "PUT", f"{CLUSTERS}/c1/status", current)
    assert code == 200 and updated["status"]["region"] == "us-east-1" and updated["spec"]["provider"] == "aws"
    # ...and the main resource keeps status.
    updated["status"] = {}
    code, again = await call(api, "PUT", f"{CLUSTERS}/c1", updated)
    assert again["status"]["region"] == "us-east-1"


@pytest.mark.parametrize(
    "path,raw,ctype,code,needle",
    [
        (SVC, "{not json", "application/json", 400, "not valid JSON"),
        (SVC, "a: [b", "application/yaml", 400, "not valid YAML"),
        (SVC, json.dumps(service(name="Bad_Name")), "application/json", 422, "metadata.name"),
        (SVC, json.dumps(service(port=70000)), "application/json", 422, "spec.ports[0].port"),
        (SVC, json.dumps(service(port=0)), "application/json", 422, "spec.ports[0].port"),
        (SVC, json.dumps({**service(), "kind": "Deployment"}), "application/json", 400, "Deployment"),
        (SVC, json.dumps([1, 2]), "application/json", 400, "must be a JSON object (a Service object)"),
        (CLUSTERS, json.dumps({"metadata": {"name": "c"}, "spec": {}}), "application/json", 422,
         "spec.serverAddressByClientCIDRs"),
        ("/apis/federation/v1beta1/widgets", "{}", "application/json", 404, "could not find"),
    ],
)
async def test_bad_input_gets_a_status_and_stores_nothing(api, path, raw, ctype, code, needle):
    got, body = await call(api, "POST", path, raw=raw, ctype=ctype)
    assert got == code, body
    assert body["kind"] == "Status" and needle in body["message"]
    _, listed = await call(api, "GET", "/api/v1/services")
    assert listed["items"] == []


async def test_every_bad_field_is_listed(api):
    bad = service(port=0)
    bad["spec"]["type"] = "Weird"
    code, body = await call(api, "POST", SVC, bad)
    assert code == 422
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"spec.type", "spec.ports[0].port"}


async def test_watch_streams_and_resumes(api):
    await call(api, "POST", SVC, service("a"))
    _, listed = await call(api, "GET", SVC)
    rv = listed["metadata"]["resourceVersion"]
    events = []

    async def watch():
        async with api.get(f"{SVC}?watch=true&resourceVersion={rv}&timeoutSeconds=5") as resp:
            async for line in resp.content:
                events.append(json.loads(line))
                if len(events) == 3:
                    return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.1)
    await call(api, "POST", SVC, service("b"))
    await call(api, "PATCH", f"{SVC}/b", {"metadata": {"labels": {"x": "y"}}}, ctype="application/merge-patch+json")
    await call(api, "DELETE", f"{SVC}/a")
    await asyncio.wait_for(task, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    # Resuming from the list's resourceVersion replays the same events.
    async with api.get(f"{SVC}?watch=true&resourceVersion={rv}&timeoutSeconds=0.3") as resp:
        replay = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [e["type"] for e in replay] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_from_a_compacted_version_is_gone(api):
    for i in range(1100):  # history=50, compaction every 1000 writes
        await call(api, "POST", "/api/v1/namespaces/default/events",
                   {"metadata": {"name": f"e{i}"}, "involvedObject": {"kind": "Service", "name": "x"}})
    code, body = await call(api, "GET", f"{SVC}?watch=true&resourceVersion=3")
    assert code == 410 and body["reason"] == "Expired"


async def test_an_idle_watch_gets_bookmarks_when_it_asks():
    store = SQLiteStore(":memory:")
    server = TestServer(make_app(Registry(store, WatchHub()), watch_ping=0.2), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
            rv = (await call(session, "POST", SVC, service("a")))[1]["metadata"]["resourceVersion"]

            async def other_kinds_keep_changing():
                # Events of other kinds flow all the time (leases renew every second): they
                # must not keep the services watch from sending its bookmarks.
                for i in range(100):
                    await call(session, "POST", "/api/v1/namespaces/default/events",
                               {"metadata": {"name": f"e{i}"}, "involvedObject": {"kind": "Service", "name": "a"}})
                    await asyncio.sleep(0.02)

            churn = asyncio.create_task(other_kinds_keep_changing())
            async with session.get(f"{SVC}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1") as r:
                lines = [json.loads(x) for x in (await r.text()).splitlines()]
            churn.cancel()
            async with session.get(f"{SVC}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as r:
                plain = (await r.text()).splitlines()
    finally:
        await server.close()
    bookmarks = [e for e in lines if e["type"] == "BOOKMARK"]
    rvs = [int(b["object"]["metadata"]["resourceVersion"]) for b in bookmarks]
    assert len(bookmarks) >= 3 and rvs == sorted(rvs) and rvs[0] >= 1
    assert plain == []  # no bookmarks unless asked for
