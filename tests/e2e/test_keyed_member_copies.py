"""Member copies one federated object at a time (issue 11), against a real member cluster process.

The federation side is in this process (a registry on an in-memory store, its informers, the
controllers' work queues and workers, as ``federation-apiserver`` wires them); the member is
a real ``ubernetes cluster``. Services: a change to one writes that Service's copy and
status only; a copy the member refuses is tried again after its backoff (no whole pass
wakes it) while the others proceed; a cluster's change reaches every Service.
Deployments: scaling one scales its copy only; deleting one deletes its copy and its
revisions at once, not at the next resync.
"""

from __future__ import annotations

import asyncio

import pytest

from clusters.testing import ClusterProcess, http
from federation.api.cache import InformerReader
from federation.controllers import run_keyed
from federation.controllers.deployments import DeploymentController
from federation.controllers.members import MemberClients
from federation.controllers.propagation import PropagationController
from federation.api.registry import Registry, WatchHub
from federation.resources import CLUSTERS, CONTROLLERREVISIONS, DEPLOYMENTS, EVENTS, SERVICES
from federation.settings import Settings
from federation.storage.store import SQLiteStore

SVC = "/api/v1/namespaces/default/services"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture(scope="module")
def member():
    proc = ClusterProcess(name="aws-keyed-1", region="us-east-1", zones="us-east-1a", extra=["--pod-ready-delay", "0"])
    try:
        yield proc.wait_ready()
    finally:
        proc.close()


def conditions(ready):
    return {"conditions": [{"type": "Ready", "status": "True" if ready else "False"},
                           {"type": "Offline", "status": "False"}]}


async def until(predicate, timeout=15.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def member_copy(member, name):
    code, body, _ = http("GET", f"{member.url}{SVC}/{name}")
    return body if code == 200 else None


def events(registry, reason):
    return [e for e in registry.list(EVENTS)[0] if e.get("reason") == reason]


def federation_with(member):
    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    cluster = registry.create(CLUSTERS, "", {"metadata": {"name": "m1"}, "spec": {
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": member.url}]}})
    registry.replace(CLUSTERS, "", "m1", {**cluster, "status": conditions(True)}, subresource="status")
    return registry


async def test_one_service_at_a_time(member):
    registry = federation_with(member)
    for name in ("web", "api"):
        registry.create(SERVICES, "default", {"metadata": {"name": name},
                                              "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    # nodePort 80 is outside every member's node-port range: the member answers 422 each time.
    registry.create(SERVICES, "default", {"metadata": {"name": "refused"},
                                          "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}})
    reader = InformerReader(registry, [CLUSTERS, SERVICES])
    assert await reader.start(timeout=5)
    members = MemberClients(timeout=2.0)
    controller = PropagationController(registry, Settings(), members, reader=reader)
    controller.attach()
    task = asyncio.create_task(run_keyed(controller, resync_period=3600))  # no resync during the test

    def shards(name):
        return (registry.get(SERVICES, "default", name).get("status") or {}).get("shards") or []

    try:
        assert await until(lambda: all(s and s[0].get("healthy") for s in (shards("web"), shards("api"))))
        # The refused copy is tried again after 1 s, then 2 s: its key's delayed requeue, not a pass.
        assert await until(lambda: len(events(registry, "RefusedByCluster")) >= 2, timeout=10)
        assert member_copy(member, "refused") is None

        api_rv = registry.get(SERVICES, "default", "api")["metadata"]["resourceVersion"]
        api_copy_rv = member_copy(member, "api")["metadata"]["resourceVersion"]
        web = registry.get(SERVICES, "default", "web")
        registry.replace(SERVICES, "default", "web", {**web, "spec": {**web["spec"], "ports": [{"port": 81}]}})
        assert await until(lambda: (member_copy(member, "web") or {}).get("spec", {}).get("ports", [{}])[0].get("port") == 81)
        assert await until(lambda: len(events(registry, "UpdatedInCluster")) == 1)
        await asyncio.sleep(0.5)  # what else the change might have set off
        assert [e["involvedObject"]["name"] for e in events(registry, "UpdatedInCluster")] == ["web"]
        assert registry.get(SERVICES, "default", "api")["metadata"]["resourceVersion"] == api_rv
        assert member_copy(member, "api")["metadata"]["resourceVersion"] == api_copy_rv

        # The cluster turns NotReady: every Service's shard there says so.
        cluster = registry.get(CLUSTERS, "", "m1")
        registry.replace(CLUSTERS, "", "m1", {**cluster, "status": conditions(False)}, subresource="status")
        assert await until(lambda: all(s and s[0]["clusterReady"] is False for s in (shards("web"), shards("api"))))
    finally:
        controller.queue.shutdown(drain=False)
        await asyncio.wait_for(task, 5)
        await controller.close()
        await members.close()
        await reader.stop()
        for name in ("web", "api", "refused"):
            http("DELETE", f"{member.url}{SVC}/{name}")


def deployment(name, replicas=2):
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}}


def member_deployment(member, name):
    code, body, _ = http("GET", f"{member.url}{DEPLOY}/{name}")
    return body if code == 200 else None


async def test_one_deployment_at_a_time(member):
    registry = federation_with(member)
    for name in ("front", "back"):
        registry.create(DEPLOYMENTS, "default", deployment(name))
    reader = InformerReader(registry, [CLUSTERS, DEPLOYMENTS, CONTROLLERREVISIONS])
    assert await reader.start(timeout=5)
    members = MemberClients(timeout=2.0)
    controller = DeploymentController(registry, Settings(), members, reader=reader)
    controller.attach()
    task = asyncio.create_task(run_keyed(controller, resync_period=3600))  # no resync during the test

    def revisions(name):
        return [r for r in registry.list(CONTROLLERREVISIONS)[0]
                if (r["metadata"].get("labels") or {}).get("federation.kubernetes.io/deployment") == name]

    try:
        assert await until(lambda: all(member_deployment(member, n) for n in ("front", "back")))
        assert await until(lambda: revisions("front") and revisions("back"))
        back_generation = member_deployment(member, "back")["metadata"]["generation"]  # (its status moves on its own)
        front = registry.get(DEPLOYMENTS, "default", "front")
        registry.replace(DEPLOYMENTS, "default", "front", {**front, "spec": {**front["spec"], "replicas": 3}})
        assert await until(lambda: member_deployment(member, "front")["spec"]["replicas"] == 3)
        await asyncio.sleep(0.5)  # what else the change might have set off
        assert [e["involvedObject"]["name"] for e in events(registry, "ScaledInCluster")] == ["front"]
        assert not events(registry, "UpdatedInCluster")
        assert member_deployment(member, "back")["metadata"]["generation"] == back_generation

        registry.delete(DEPLOYMENTS, "default", "back")
        assert await until(lambda: member_deployment(member, "back") is None and not revisions("back"))
        assert member_deployment(member, "front") is not None and revisions("front")
    finally:
        controller.queue.shutdown(drain=False)
        await asyncio.wait_for(task, 5)
        await controller.close()
        await members.close()
        await reader.stop()
        for name in ("front", "back"):
            http("DELETE", f"{member.url}{DEPLOY}/{name}")
