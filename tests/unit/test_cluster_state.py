"""Unit tests of the member cluster's pure core: address pools, validation, pods and endpoints."""

from __future__ import annotations

import pytest

from clusters.agent import cluster_object, drifted
from clusters.chaos import Chaos
from clusters.state import AddressPool, ClusterState, Topology, validate_service
from apimachinery.errors import APIError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_state(**kw) -> tuple[ClusterState, Clock]:
    clock = Clock()
    topo = Topology(name="c1", region="r1", zones=["r1a", "r1b"], provider="aws", pod_ready_delay=1.0, **kw)
    return ClusterState(topo, clock=clock), clock


def svc(name: str = "web", **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


# ---- address pool


@pytest.mark.parametrize(
    "cidr, first, size",
    [
        ("127.10.1.0/24", "127.10.1.1", 254),
        ("127.10.1.0/28", "127.10.1.1", 14),
        ("127.10.1.4/30", "127.10.1.5", 2),
        ("127.10.1.8/31", "127.10.1.8", 2),
        ("127.10.1.9/32", "127.10.1.9", 1),
    ],
)
def test_pool_skips_network_and_broadcast(cidr, first, size):
    pool = AddressPool(cidr)
    assert pool.size == size
    assert pool.allocate("a") == first


def test_pool_is_deterministic_idempotent_and_reuses_released():
    pool = AddressPool("127.10.1.0/29")  # 6 usable
    assert [pool.allocate(i) for i in range(3)] == ["127.10.1.1", "127.10.1.2", "127.10.1.3"]
    assert pool.allocate(1) == "127.10.1.2"  # same owner, same address
    assert pool.release(1) == "127.10.1.2"
    assert pool.allocate("new") == "127.10.1.2"  # lowest free first
    assert pool.allocate("x", "127.10.1.6") == "127.10.1.6"
    assert pool.allocate("y", "127.10.1.6") is None  # taken
    assert pool.allocate("y", "10.0.0.1") is None  # outside
    assert pool.allocate("y") == "127.10.1.4"
    assert pool.allocate("z") == "127.10.1.5"
    assert pool.allocate("full") is None


# ---- validation


@pytest.mark.parametrize(
    "spec, field, fragment",
    [
        ({"ports": [{"port": 0}]}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"ports": [{"port": 65536}]}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"ports": [{"port": "80"}]}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"ports": [{"port": True}]}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"ports": [{"port": 80, "protocol": "HTTP"}]}, "spec.ports[0].protocol", "supported values"),
        ({"ports": []}, "spec.ports", "Required value"),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name", "Required value"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "spec.ports[1]", "Duplicate value"),
        ({"ports": [{"port": 80, "targetPort": 70000}]}, "spec.ports[0].targetPort", "between 1 and 65535"),
        ({"ports": [{"port": 80}], "type": "Magic"}, "spec.type", "Unsupported value"),
        ({"ports": [{"port": 80, "nodePort": 80}], "type": "NodePort"}, "spec.ports[0].nodePort", "30000-32767"),
        ({"ports": [{"port": 80}], "clusterIP": "banana"}, "spec.clusterIP", "valid IP"),
        ({"type": "ExternalName"}, "spec.externalName", "DNS-1123 subdomain"),
    ],
)
def test_invalid_specs_name_the_field(spec, field, fragment):
    errors = validate_service({"metadata": {"name": "web"}, "spec": spec})
    assert any(f == field and fragment in m for f, m in errors), errors


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "a" * 64, ""])
def test_invalid_names(name):
    errors = validate_service({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    assert [f for f, _ in errors] == ["metadata.name"]


def test_valid_services():
    assert validate_service(svc()) == []
    assert validate_service(svc(type="LoadBalancer", selector={"app": "web"})) == []
    assert validate_service({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}) == []
    assert validate_service({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}) == []


def test_pods_annotation_validated():
    body = svc()
    body["metadata"]["annotations"] = {"ubernetes.io/pods": "many"}
    assert [f for f, _ in validate_service(body)] == ["metadata.annotations[ubernetes.io/pods]"]


def test_create_rejects_invalid_with_422_listing_every_field():
    state, _ = make_state()
    with pytest.raises(APIError) as err:
        state.create_service("default", {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 70000, "protocol": "XX"}]}})
    assert err.value.code == 422
    assert err.value.message.startswith('Service "x" is invalid: spec.ports[0].port:')
    assert [c["field"] for c in err.value.causes] == ["spec.ports[0].port", "spec.ports[0].protocol"]
    assert state.services == {}


# ---- services, pods, endpoints


def test_create_defaults_and_metadata():
    state, _ = make_state()
    obj = state.create_service("default", svc(type="LoadBalancer"))
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Service"
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"]
    port = obj["spec"]["ports"][0]
    assert port == {"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000}
    assert obj["spec"]["clusterIP"].startswith("10.96.")
    with pytest.raises(APIError) as err:
        state.create_service("default", svc())
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"


def test_pods_spread_over_zones_and_become_ready_after_delay():
    state, clock = make_state(pods_per_service=3)
    state.create_service("default", svc())
    pods = sorted(state.pods.values(), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in pods] == ["web-0", "web-1", "web-2"]
    assert [p["spec"]["nodeName"] for p in pods] == ["c1-r1a-node-0", "c1-r1b-node-0", "c1-r1a-node-0"]
    ep = state.endpoints[("default", "web")]
    assert "addresses" not in ep["subsets"][0] and len(ep["subsets"][0]["notReadyAddresses"]) == 3
    assert state.next_deadline() == pytest.approx(101.0)
    clock.now = 100.5
    assert state.reconcile() is False
    clock.now = 101.0
    assert state.reconcile() is True
    ep = state.endpoints[("default", "web")]
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == [p["status"]["podIP"] for p in pods]
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert all(c["status"] == "True" for c in pods[0]["status"]["conditions"] if c["type"] == "Ready")
    assert state.next_deadline() is None
    assert [p["zone"] for p in state.ready_pods(("default", "web"))] == ["r1a", "r1b", "r1a"]


def test_pods_annotation_scales_and_forced_unready():
    state, clock = make_state()
    body = svc()
    body["metadata"]["annotations"] = {"ubernetes.io/pods": "4"}
    state.create_service("default", body)
    assert len(state.pods) == 4
    clock.now += 2
    state.reconcile()
    state.patch_service("default", "web", {"metadata": {"annotations": {"ubernetes.io/pods": "1"}}})
    assert sorted(n for _, n in state.pods) == ["web-0"]
    assert len(state.endpoints[("default", "web")]["subsets"][0]["addresses"]) == 1
    state.forced_unready = {"default/web": 10**9}
    state.reconcile()
    assert state.ready_pods(("default", "web")) == []
    assert state.endpoints[("default", "web")]["subsets"][0].get("addresses") is None
    state.forced_unready = {}
    state.reconcile()
    assert len(state.ready_pods(("default", "web"))) == 1


def test_replace_conflict_and_generation():
    state, _ = make_state()
    obj = state.create_service("default", svc())
    rv = obj["metadata"]["resourceVersion"]
    new = {**obj, "spec": {**obj["spec"], "ports": [{"port": 8080}]}}
    updated = state.replace_service("default", "web", new)
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["uid"] == obj["metadata"]["uid"]
    assert updated["spec"]["clusterIP"] == obj["spec"]["clusterIP"]
    with pytest.raises(APIError) as err:
        state.replace_service("default", "web", {**new, "metadata": {**new["metadata"], "resourceVersion": rv}})
    assert err.value.code == 409 and err.value.reason == "Conflict"
    # a label-only change keeps the generation
    labelled = state.patch_service("default", "web", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 2 and labelled["metadata"]["labels"] == {"a": "b"}
    # a no-op keeps the resourceVersion
    same = state.patch_service("default", "web", {"metadata": {"labels": {"a": "b"}}})
    assert same["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]
    with pytest.raises(APIError) as err:
        state.replace_service("default", "web", {**new, "metadata": {"name": "other"}})
    assert err.value.code == 400


def test_patch_validates_and_delete_cleans_up():
    state, _ = make_state()
    state.create_service("default", svc())
    with pytest.raises(APIError) as err:
        state.patch_service("default", "web", {"spec": {"ports": [{"port": 0}]}})
    assert err.value.code == 422
    with pytest.raises(APIError) as err:
        state.patch_service("default", "web", {"spec": {"clusterIP": "10.96.99.99"}})
    assert err.value.code == 422 and "immutable" in err.value.message
    deleted = state.delete_service("default", "web")
    assert deleted["metadata"]["name"] == "web"
    assert state.pods == {} and state.endpoints == {}
    with pytest.raises(APIError) as err:
        state.delete_service("default", "web")
    assert err.value.code == 404


def test_nodes_labelled_per_zone():
    state, _ = make_state(nodes_per_zone=2)
    assert sorted(state.nodes) == ["c1-r1a-node-0", "c1-r1a-node-1", "c1-r1b-node-0", "c1-r1b-node-1"]
    labels = state.nodes["c1-r1b-node-1"]["metadata"]["labels"]
    assert labels["topology.kubernetes.io/zone"] == "r1b"
    assert labels["failure-domain.beta.kubernetes.io/zone"] == "r1b"
    assert labels["topology.kubernetes.io/region"] == "r1"
    assert labels["failure-domain.beta.kubernetes.io/region"] == "r1"
    assert labels["kubernetes.io/hostname"] == "c1-r1b-node-1"


# ---- chaos and agent helpers


def test_chaos_apply_validates_atomically():
    chaos = Chaos()
    chaos.apply({"partitioned": True, "unreadyPods": {"default/web": "all"}})
    assert chaos.partitioned and chaos.forced_unready() == {"default/web": 10**9}
    with pytest.raises(APIError) as err:
        chaos.apply({"apiLatency": -1, "partitioned": False})
    assert err.value.code == 422 and chaos.partitioned  # nothing applied
    chaos.apply({"unreadyPods": {"default/web": None}})
    assert chaos.unreadyPods == {}
    chaos.heal()
    assert chaos.to_dict() == Chaos().to_dict()


def test_cluster_object_and_drift():
    desired = cluster_object(name="c1", provider="aws", region="r1", advertise="http://127.0.0.1:1", federation_name="myfed")
    assert desired["spec"]["serverAddressByClientCIDRs"] == [{"clientCIDR": "0.0.0.0/0", "serverAddress": "http://127.0.0.1:1"}]
    current = {**desired, "status": {"conditions": []}}
    assert drifted(current, desired) is None
    moved = {**desired, "spec": {**desired["spec"], "serverAddressByClientCIDRs": []}}
    assert drifted(moved, desired) == {"spec": {"serverAddressByClientCIDRs": desired["spec"]["serverAddressByClientCIDRs"]}}


def test_node_port_conflict_and_type_change_drops_node_ports():
    state, _ = make_state()
    a = state.create_service("default", {"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})
    with pytest.raises(APIError) as err:
        state.create_service("default", {"metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})
    assert err.value.code == 422 and "already allocated" in err.value.message
    assert ("default", "b") not in state.services
    # replacing with its own node port is fine
    state.replace_service("default", "a", a)
    b = state.patch_service("default", "a", {"spec": {"type": "ClusterIP"}})
    assert "nodePort" not in b["spec"]["ports"][0]
    state.create_service("default", {"metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})


# ---- one Service, one verdict: the member validates with the federation's rules


@pytest.mark.parametrize(
    "spec, name",
    [
        ({"ports": [{"port": 80}]}, "web"),
        ({"ports": [{"port": 80}]}, "1web"),  # DNS-1035: must start with a letter, everywhere
        ({"ports": [{"port": 80}], "sessionAffinity": "Sticky"}, "web"),
        ({"ports": [{"port": 80}], "loadBalancerIP": "not-an-ip"}, "web"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "web"),
        ({"ports": [{"port": 80, "targetPort": "a-very-long-port-name"}]}, "web"),
        ({"clusterIP": "None"}, "headless"),
        ({"type": "ExternalName", "externalName": "example.com"}, "ext"),
        ({"type": "ExternalName"}, "ext"),
    ],
)
def test_member_and_federation_agree_on_a_service(spec, name):
    from federation.resources import SERVICES, validate_object

    body = {"metadata": {"name": name}, "spec": spec}
    member = {f for f, _ in validate_service(body)}
    federation = {f for f, _ in validate_object(SERVICES, body)}
    assert member == federation, (member, federation)


def test_node_port_range_is_the_members_own_rule():
    from federation.resources import SERVICES, validate_object

    body = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}}
    assert validate_object(SERVICES, body) == []
    assert [f for f, _ in validate_service(body)] == ["spec.ports[0].nodePort"]
