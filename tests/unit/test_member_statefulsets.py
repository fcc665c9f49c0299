"""A member's StatefulSets and PetSets over its simulated state (clusters/statefulsets.py), clock stepped.

Ordered start, stable names and claims across a pod deletion, reverse scale-down, a range
that starts elsewhere (``spec.ordinals.start``), the governing Service's hostnames, a
PetSet beside a StatefulSet, and Status errors for bad input.
"""

from __future__ import annotations

import copy

import pytest

from apimachinery.errors import APIError
from clusters.state import ClusterState, Topology

SET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
    "spec": {"serviceName": "nginx", "replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
             "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
             "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
}


class Cluster:
    def __init__(self) -> None:
        self.now = 0.0
        self.state = ClusterState(Topology("c1", "r1", ["z1", "z2"], "sim", pod_ready_delay=0.1), clock=lambda: self.now)
        self.state.create_service("default", {"metadata": {"name": "nginx"}, "spec": {
            "clusterIP": "None", "selector": {"app": "nginx"}, "ports": [{"port": 80, "name": "web"}]}})

    def run(self, seconds: float, *, watch: list | None = None) -> None:
        end = self.now + seconds
        while self.now < end:
            self.state.reconcile()
            if watch is not None:
                seen = {k[1]: (self.ready(k[1]), bool(p["metadata"].get("deletionTimestamp"))) for k, p in self.state.pods.items()}
                if not watch or watch[-1] != seen:
                    watch.append(seen)
            self.now += 0.02

    def ready(self, name: str) -> bool:
        sim = self.state.workloads.sims.get(("default", name))
        return bool(sim and sim.ready)

    def pods(self) -> list[str]:
        return sorted(k[1] for k in self.state.pods)


def test_pods_start_in_order_each_ready_before_the_next() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    history: list[dict] = []
    c.run(2, watch=history)
    assert c.pods() == ["web-0", "web-1", "web-2"] and all(c.ready(p) for p in c.pods())
    for seen in history:
        for i in range(1, 3):
            if f"web-{i}" in seen:
                assert seen[f"web-{i - 1}"][0], f"web-{i} existed before web-{i - 1} was Ready: {seen}"
    assert sorted(k[1] for k in c.state.stateful.claims) == ["www-web-0", "www-web-1", "www-web-2"]
    pod = c.state.pods[("default", "web-1")]
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}} in pod["spec"]["volumes"]
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    addresses = c.state.endpoints[("default", "nginx")]["subsets"][0]["addresses"]
    assert sorted(a["hostname"] for a in addresses) == ["web-0", "web-1", "web-2"]
    status = c.state.stateful.sets[("default", "web")]["status"]
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)


def test_a_deleted_pod_comes_back_with_its_name_and_claim_after_the_old_one_is_gone() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    c.run(2)
    claim_uid = c.state.stateful.claims[("default", "www-web-1")]["metadata"]["uid"]
    old_uid = c.state.pods[("default", "web-1")]["metadata"]["uid"]
    c.state.workloads.delete_pod("default", "web-1")
    history: list[dict] = []
    c.run(2, watch=history)
    new = c.state.pods[("default", "web-1")]
    assert new["metadata"]["uid"] != old_uid and c.ready("web-1")
    assert c.state.stateful.claims[("default", "www-web-1")]["metadata"]["uid"] == claim_uid
    assert any(seen.get("web-1") == (False, True) for seen in history)  # Terminating first, never two at once


def test_scale_down_in_reverse_and_claims_stay() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", {**SET, "spec": {**SET["spec"], "replicas": 4}})
    c.run(3)
    current = c.state.stateful.sets[("default", "web")]
    c.state.stateful.replace("StatefulSet", "default", "web", {**current, "spec": {**current["spec"], "replicas": 1}})
    gone: list[str] = []
    before = set(c.pods())
    for _ in range(200):
        c.run(0.02)
        now = set(c.pods())
        gone += sorted(before - now)
        before = now
    assert gone == ["web-3", "web-2", "web-1"] and c.pods() == ["web-0"]
    assert len(c.state.stateful.claims) == 4


def test_an_ordinal_range_that_starts_elsewhere() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", {**SET, "spec": {**SET["spec"], "replicas": 2, "ordinals": {"start": 3}}})
    c.run(2)
    assert c.pods() == ["web-3", "web-4"]


def test_a_petset_from_kubernetes_1_3_beside_a_statefulset() -> None:
    c = Cluster()
    pet = copy.deepcopy(SET)
    pet.update(apiVersion="apps/v1alpha1", kind="PetSet")
    pet["metadata"]["name"] = "cassandra"
    del pet["spec"]["selector"]  # 1.3 defaulted it from the template's labels
    stored = c.state.stateful.create("PetSet", "default", pet)
    assert stored["spec"]["selector"] == {"matchLabels": {"app": "nginx"}} and "podManagementPolicy" not in stored["spec"]
    c.run(2)
    assert c.pods() == ["cassandra-0", "cassandra-1", "cassandra-2"]
    assert c.state.stateful.petsets[("default", "cassandra")]["status"]["replicas"] == 3


def test_bad_input_is_a_status_with_kubernetes_field_paths() -> None:
    c = Cluster()
    bad = copy.deepcopy(SET)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    bad["spec"]["replicas"] = -1
    with pytest.raises(APIError) as err:
        c.state.stateful.create("StatefulSet", "default", bad)
    causes = {c["field"] for c in err.value.causes}
    assert causes == {"spec.replicas", "spec.template.metadata.labels"}
    stored = c.state.stateful.create("StatefulSet", "default", SET)
    with pytest.raises(APIError) as err:
        c.state.stateful.replace("StatefulSet", "default", "web", {**stored, "spec": {**stored["spec"], "serviceName": "x"}})
    assert err.value.code == 422 and "serviceName" in err.value.message


def test_deleting_the_set_removes_its_pods_and_keeps_its_claims() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    c.run(2)
    c.state.stateful.delete("StatefulSet", "default", "web")
    c.run(0.1)
    assert [p for p in c.pods() if p.startswith("web-")] == [] and len(c.state.stateful.claims) == 3


def test_each_pod_has_its_own_cluster_dns_name_through_the_governing_service() -> None:
    from clusters import clusterdns, simshell
    from clusters.podstreams import machine

    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    c.run(2)
    ip = {n: c.state.pods[("default", n)]["status"]["podIP"] for n in c.pods()}

    def resolve(name: str, ns: str):
        return clusterdns.lookup(name, namespace=ns, services=c.state.services, endpoints=c.state.endpoints)

    assert resolve("web-1.nginx", "default") == ("web-1.nginx.default.svc.cluster.local", [ip["web-1"]])
    assert resolve("web-2.nginx.default.svc.cluster.local", "other") == ("web-2.nginx.default.svc.cluster.local", [ip["web-2"]])
    assert sorted(resolve("nginx", "default")[1]) == sorted(ip.values())  # headless: every ready pod
    assert resolve("web-7.nginx", "default")[1] == []
    pod = c.state.pods[("default", "web-0")]
    box = machine(pod, pod["spec"]["containers"][0], None, resolve)
    assert simshell.run(["hostname", "-f"], box).stdout == "web-0.nginx.default.svc.cluster.local\n"
    assert simshell.run(["getent", "hosts", "web-1.nginx"], box).stdout.split() == [ip["web-1"], "web-1.nginx.default.svc.cluster.local"]
    assert simshell.run(["nslookup", "nope"], box).code == 1


def test_a_pod_made_again_under_its_name_is_deleted_then_added_in_the_watch() -> None:
    from clusters.watch import ChangeFeed

    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    c.run(2)
    feed = ChangeFeed({"pods": lambda: c.state.pods.values()}, next_rv=c.state.next_rv)
    start = int(c.state.resource_version)
    c.state.workloads.delete_pod("default", "web-1")
    c.run(0.5)  # gone and made again between two looks of the feed
    feed.sync()
    kinds = [(e.type, e.object["metadata"]["name"]) for e in feed.since(start) if e.object["metadata"]["name"] == "web-1"]
    assert ("DELETED", "web-1") in kinds and kinds.index(("DELETED", "web-1")) < kinds.index(("ADDED", "web-1"))


def test_a_new_template_rolls_from_the_highest_ordinal_down() -> None:
    c = Cluster()
    c.state.stateful.create("StatefulSet", "default", SET)
    c.run(2)
    current = c.state.stateful.sets[("default", "web")]
    spec = copy.deepcopy(current["spec"])
    spec["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    c.state.stateful.replace("StatefulSet", "default", "web", {**current, "spec": spec})
    replaced: list[str] = []
    before = {n: c.state.pods[("default", n)]["metadata"]["uid"] for n in c.pods()}
    for _ in range(300):
        c.run(0.02)
        for n in c.pods():
            uid = c.state.pods[("default", n)]["metadata"]["uid"]
            if before.get(n) not in (None, uid) and n not in replaced:
                replaced.append(n)
    assert replaced == ["web-2", "web-1", "web-0"]
    assert {c.state.pods[("default", n)]["spec"]["containers"][0]["image"] for n in c.pods()} == {"nginx:2"}
