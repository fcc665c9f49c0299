"""The generic API server (apimachinery.server), every verb once, on both of its instances.

The federation's API (its registry on an in-memory store) and a member's API (its simulated
state) are started in-process, each on a loopback socket, and driven with the same requests:
every verb, each error class's Status, label and field selectors, dry run on every write
verb, deletecollection, apply with its conflicts, and watch (initial list, replay from a
resourceVersion, a selector transition, 410 for a too-old resourceVersion, a bookmark).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from clusters.api import make_app as member_app
from clusters.chaos import Chaos
from clusters.state import ClusterState, Topology
from federation.api.apiserver import make_app as federation_app
from federation.api.registry import Registry, WatchHub
from federation.storage.stores import open_store

SVC = "/api/v1/namespaces/default/services"


def service(name: str, port: int = 80, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"ports": [{"port": port}]}}


@pytest.fixture(params=["federation", "federation-etcd", "member"])
async def api(request):
    store = None
    if request.param.startswith("federation"):
        # The federation's registry on SQLite in memory, and on etcd (a real process).
        url = request.getfixturevalue("etcd_url") if request.param == "federation-etcd" else ":memory:"
        store = open_store(url, history=200)
        app = federation_app(Registry(store, WatchHub()), watch_ping=0.3, watch_window=5)
    else:
        state = ClusterState(Topology(name="aws-unit-1", region="us-east-1", zones=["us-east-1a"], provider="aws"))
        app = member_app(state=state, chaos=Chaos(), watch_window=5, watch_ping=0.3)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield session
    await server.close()
    if store is not None:
        store.close()


async def call(session, method, path, body=None, ctype="application/json"):
    data = json.dumps(body) if body is not None else None
    async with session.request(method, path, data=data, headers={"Content-Type": ctype}) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith("{") else text)


async def watch_lines(session, path, count, timeout=5.0):
    """The first ``count`` events of a watch (fewer if it ends or ``timeout`` passes)."""
    out = []
    async with session.get(path, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        assert resp.status == 200, await resp.text()
        try:
            async for raw in resp.content:
                if raw.strip():
                    out.append(json.loads(raw))
                if len(out) >= count:
                    break
        except asyncio.TimeoutError:
            pass
    return out


async def test_every_write_verb_and_its_status(api):
    code, created = await call(api, "POST", SVC, service("web"))
    assert code == 201 and created["metadata"]["resourceVersion"]
    code, body = await call(api, "POST", SVC, service("web"))
    assert (code, body["reason"]) == (409, "AlreadyExists")
    code, web = await call(api, "GET", SVC + "/web")
    assert code == 200 and web["spec"]["ports"][0]["port"] == 80
    code, body = await call(api, "GET", SVC + "/nope")
    assert (code, body["reason"], body["details"]["name"]) == (404, "NotFound", "nope")
    replaced = {**web, "spec": {**web["spec"], "ports": [{"port": 81}]}}
    code, body = await call(api, "PUT", SVC + "/web", replaced)
    assert code == 200 and body["spec"]["ports"][0]["port"] == 81
    code, body = await call(api, "PUT", SVC + "/web", replaced)  # the old resourceVersion
    assert (code, body["reason"]) == (409, "Conflict")
    for ctype, patch in (("application/merge-patch+json", {"metadata": {"labels": {"m": "1"}}}),
                         ("application/strategic-merge-patch+json", {"metadata": {"labels": {"s": "1"}}}),
                         ("application/json-patch+json", [{"op": "add", "path": "/metadata/labels/j", "value": "1"}])):
        code, body = await call(api, "PATCH", SVC + "/web", patch, ctype)
        assert code == 200, (ctype, body)
    assert {"m", "s", "j"} <= set(body["metadata"]["labels"])
    code, body = await call(api, "PATCH", SVC + "/web", {}, "text/plain")
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")
    code, body = await call(api, "POST", SVC + "?fieldValidation=Strict", {**service("x"), "bogus": 1})
    assert code == 400 and 'unknown field "bogus"' in body["message"]
    code, body = await call(api, "DELETE", SVC + "/web", {"propagationPolicy": "Sideways"})
    assert (code, body["reason"]) == (422, "Invalid")
    code, body = await call(api, "DELETE", SVC + "/web", {"preconditions": {"resourceVersion": "1"}})
    assert (code, body["reason"]) == (409, "Conflict")
    code, _ = await call(api, "DELETE", SVC + "/web")
    assert code == 200
    assert (await call(api, "GET", SVC + "/web"))[0] == 404


async def test_dry_run_on_every_write_verb_stores_nothing(api):
    assert (await call(api, "POST", SVC, service("web")))[0] == 201
    before = (await call(api, "GET", SVC + "/web"))[1]
    code, body = await call(api, "POST", SVC + "?dryRun=All", service("ghost"))
    assert code == 201 and body["metadata"]["name"] == "ghost"
    code, _ = await call(api, "PUT", SVC + "/web?dryRun=All", {**before, "spec": {"ports": [{"port": 99}]}})
    assert code == 200
    code, _ = await call(api, "PATCH", SVC + "/web?dryRun=All", {"metadata": {"labels": {"d": "1"}}},
                         "application/merge-patch+json")
    assert code == 200
    code, _ = await call(api, "PATCH", SVC + "/ghost2?dryRun=All&fieldManager=t", service("ghost2"),
                         "application/apply-patch+yaml")
    assert code == 201
    code, _ = await call(api, "DELETE", SVC + "/web", {"dryRun": ["All"]})
    assert code == 200
    code, _ = await call(api, "DELETE", SVC + "?dryRun=All")
    assert code == 200
    after = (await call(api, "GET", SVC + "/web"))[1]
    assert after == before
    assert (await call(api, "GET", SVC + "/ghost"))[0] == 404
    assert (await call(api, "GET", SVC + "/ghost2"))[0] == 404


async def test_selectors_and_deletecollection(api):
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        assert (await call(api, "POST", SVC, service(name, labels={"tier": tier})))[0] == 201
    code, body = await call(api, "GET", SVC + "?labelSelector=tier%3Dfront")
    assert [o["metadata"]["name"] for o in body["items"]] == ["a", "c"]
    code, body = await call(api, "GET", SVC + "?fieldSelector=metadata.name%3Db")
    assert [o["metadata"]["name"] for o in body["items"]] == ["b"]
    code, body = await call(api, "GET", SVC + "?fieldSelector=spec.bogus%3D1")
    assert (code, body["reason"]) == (400, "BadRequest")
    code, body = await call(api, "DELETE", SVC + "?labelSelector=tier%3Dfront")
    assert code == 200 and sorted(o["metadata"]["name"] for o in body["items"]) == ["a", "c"]
    body = (await call(api, "GET", SVC))[1]
    assert [o["metadata"]["name"] for o in body["items"]] == ["b"]


async def test_apply_tracks_managers_and_conflicts(api):
    def applied(value):
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "labels": {"tier": value}}, "spec": {"ports": [{"port": 80}]}}

    code, body = await call(api, "PATCH", SVC + "/web?fieldManager=alice", applied("front"), "application/apply-patch+yaml")
    assert code == 201 and {m["manager"] for m in body["metadata"]["managedFields"]} == {"alice"}
    code, body = await call(api, "PATCH", SVC + "/web?fieldManager=bob", applied("back"), "application/apply-patch+yaml")
    assert (code, body["reason"]) == (409, "Conflict") and body["details"]["causes"][0]["field"]
    code, body = await call(api, "PATCH", SVC + "/web?fieldManager=bob&force=true", applied("back"),
                            "application/apply-patch+yaml")
    assert code == 200 and body["metadata"]["labels"]["tier"] == "back"
    code, body = await call(api, "PATCH", SVC + "/web", applied("x"), "application/apply-patch+yaml")
    assert code == 400 and "fieldManager is required" in body["message"]


async def test_watch_lists_replays_follows_selectors_and_refuses_too_old(api):
    assert (await call(api, "POST", SVC, service("a", labels={"tier": "front"})))[0] == 201
    events = await watch_lines(api, SVC + "?watch=true&labelSelector=tier%3Dfront", 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]
    rv = (await call(api, "GET", SVC))[1]["metadata"]["resourceVersion"]

    async def change():
        await asyncio.sleep(0.2)
        await call(api, "PATCH", SVC + "/a", {"metadata": {"labels": {"tier": "back"}}}, "application/merge-patch+json")

    task = asyncio.create_task(change())
    events = await watch_lines(api, SVC + f"?watch=true&labelSelector=tier%3Dfront&resourceVersion={rv}", 1)
    await task
    # The object left the selection: a selector watch hears it as DELETED.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "a")]
    # Replay from a resourceVersion: what happened after it, in order.
    events = await watch_lines(api, SVC + f"?watch=true&resourceVersion={rv}", 1)
    assert [(e["type"], e["object"]["metadata"]["labels"]["tier"]) for e in events] == [("MODIFIED", "back")]
    # A replay through the selector also hears the object leave it.
    events = await watch_lines(api, SVC + f"?watch=true&labelSelector=tier%3Dfront&resourceVersion={rv}", 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "a")]
    # More events of the kind than the watch window (5) since the resourceVersion: 410.
    for i in range(7):
        await call(api, "PATCH", SVC + "/a", {"metadata": {"labels": {"n": str(i)}}}, "application/merge-patch+json")
    code, body = await call(api, "GET", SVC + f"?watch=true&resourceVersion={rv}")
    assert (code, body["reason"]) == (410, "Expired")
    # A quiet watch that asked for bookmarks gets one with how far it has got.
    now = (await call(api, "GET", SVC))[1]["metadata"]["resourceVersion"]
    events = await watch_lines(api, SVC + f"?watch=true&allowWatchBookmarks=true&resourceVersion={now}", 1)
    assert events[0]["type"] == "BOOKMARK" and events[0]["object"]["metadata"]["resourceVersion"] == now


async def test_kinds_without_a_verb_have_no_route(api):
    code, body = await call(api, "DELETE", "/api/v1/namespaces/default/events/x")
    assert body["kind"] == "Status" and code in (404, 405)
    async with api.get("/api/v1/namespaces?watch=true&timeoutSeconds=1") as resp:
        lines = [json.loads(line) for line in (await resp.text()).splitlines() if line.strip()]
    if resp.status != 200:  # the federation derives namespaces and cannot watch them
        assert (resp.status, lines[0]["reason"]) == (405, "MethodNotAllowed")
    else:  # a member's are stored: the watch lists them
        assert {e["object"]["metadata"]["name"] for e in lines} >= {"default", "kube-system"}


async def test_scale_subresource(api):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    path = "/apis/apps/v1/namespaces/default/deployments"
    assert (await call(api, "POST", path, deployment))[0] == 201
    code, scale = await call(api, "GET", path + "/web/scale")
    assert code == 200 and (scale["kind"], scale["apiVersion"], scale["spec"]["replicas"]) == ("Scale", "autoscaling/v1", 2)
    assert scale["status"]["selector"] == "app=web"
    code, scale = await call(api, "PATCH", path + "/web/scale", {"spec": {"replicas": 5}}, "application/merge-patch+json")
    assert code == 200 and scale["spec"]["replicas"] == 5
    assert (await call(api, "GET", path + "/web"))[1]["spec"]["replicas"] == 5
    code, body = await call(api, "PUT", path + "/web/scale", {**scale, "spec": {"replicas": -1}})
    assert (code, body["reason"]) == (422, "Invalid")
    code, body = await call(api, "PUT", path + "/web/scale", {**scale, "spec": {"replicas": 1}})
    assert code == 200 and body["spec"]["replicas"] == 1
    code, body = await call(api, "PUT", path + "/web/scale", {**scale, "spec": {"replicas": 3}})  # stale now
    assert (code, body["reason"]) == (409, "Conflict")


async def test_pages_and_trailing_slashes(api):
    for i in range(5):
        assert (await call(api, "POST", SVC, service(f"s{i}")))[0] == 201
    names, token, pages = [], "", 0
    while True:
        code, body = await call(api, "GET", SVC + "?limit=2" + (f"&continue={token}" if token else ""))
        assert code == 200
        names += [o["metadata"]["name"] for o in body["items"]]
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
        assert body["metadata"]["remainingItemCount"] == 5 - len(names)
    assert (names, pages) == ([f"s{i}" for i in range(5)], 3)
    code, body = await call(api, "GET", SVC + "?limit=2&continue=garbage")
    assert (code, body["reason"]) == (400, "BadRequest")
    for path in ("/version/", "/api/", "/apis/", "/api/v1/"):
        assert (await call(api, "GET", path))[0] == 200, path


async def test_watch_list_ends_its_initial_events_with_a_bookmark(api):
    assert (await call(api, "POST", SVC, service("a")))[0] == 201
    rv = (await call(api, "GET", SVC))[1]["metadata"]["resourceVersion"]
    events = await watch_lines(api, SVC + f"?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                                          f"&resourceVersionMatch=NotOlderThan&resourceVersion={rv}", 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_status_subresource_changes_only_status(api):
    assert (await call(api, "POST", SVC, service("web")))[0] == 201
    ingress = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    code, body = await call(api, "PATCH", SVC + "/web/status", {"status": ingress, "spec": {"ports": [{"port": 9}]}},
                            "application/merge-patch+json")
    assert code == 200 and body["status"]["loadBalancer"] == ingress["loadBalancer"], body
    assert body["spec"]["ports"][0]["port"] == 80  # a status write leaves spec alone
    code, body = await call(api, "GET", SVC + "/web/status")
    assert code == 200 and body["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.7"}]
    created = (await call(api, "POST", SVC, service("fresh")))[1]
    assert created["status"] == {"loadBalancer": {}}


async def test_finalizers_hold_a_delete_until_they_are_gone(api):
    body = service("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    assert (await call(api, "POST", SVC, body))[0] == 201
    code, marked = await call(api, "DELETE", SVC + "/held")
    assert code == 200 and marked["metadata"]["deletionTimestamp"], marked
    code, still = await call(api, "GET", SVC + "/held")
    assert code == 200 and still["metadata"]["finalizers"] == ["example.com/hold"]
    code, body = await call(api, "PATCH", SVC + "/held", {"metadata": {"finalizers": ["example.com/hold", "x/y"]}},
                            "application/merge-patch+json")
    assert (code, body["reason"]) == (422, "Invalid"), body  # none may be added while deleting
    code, _ = await call(api, "PATCH", SVC + "/held", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert code == 200
    assert (await call(api, "GET", SVC + "/held"))[0] == 404


async def test_members_in_one_process_count_their_own_requests():
    """issue 17: ``cluster-host`` runs many members in one process; each one's /metrics is its own."""
    from prometheus_client.parser import text_string_to_metric_families

    def posts(text: str) -> float:
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "apiserver_request_total" and s.labels["verb"] == "POST"
                   and s.labels["resource"] == "services" and s.labels["code"] == "201")

    servers, sessions = [], []
    for name in ("aws-unit-1", "aws-unit-2"):
        state = ClusterState(Topology(name=name, region="us-east-1", zones=["us-east-1a"], provider="aws"))
        server = TestServer(member_app(state=state, chaos=Chaos()), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        sessions.append(aiohttp.ClientSession(base_url=str(server.make_url(""))))
    try:
        for i in range(3):
            assert (await call(sessions[0], "POST", SVC, service(f"s{i}")))[0] == 201
        assert (await call(sessions[1], "POST", SVC, service("only")))[0] == 201
        texts = [(await call(s, "GET", "/metrics"))[1] for s in sessions]
        assert [posts(t) for t in texts] == [3, 1]
    finally:
        for s in sessions:
            await s.close()
        for server in servers:
            await server.close()
