"""Table-driven tests of the pure parts behind kubectl support: strategic merge patch,
server-side apply, discovery, tables, OpenAPI and field validation."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from apimachinery import discovery, openapi
from federation import tables
from federation.resources import ALL, CLUSTERS, SERVICES
from apimachinery.strategic import ApplyConflict, server_side_apply, strategic_merge

SVC_NODE = openapi.root_node(SERVICES, ALL)
CLUSTER_NODE = openapi.root_node(CLUSTERS, ALL)


def svc(*ports: int, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports], **spec}}


@pytest.mark.parametrize(
    "original,patch,expected",
    [
        # ports merge by port: a new one is appended, a changed one merged in place
        (svc(80), {"spec": {"ports": [{"port": 81, "name": "p81"}]}}, [80, 81]),
        (svc(80, 81), {"spec": {"ports": [{"port": 80, "name": "web"}]}}, [80, 81]),
        # $patch: delete removes by key; $setElementOrder orders the result
        (svc(80, 8080), {"spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"$patch": "delete", "port": 8080}]}}, [80]),
        (svc(80, 81), {"spec": {"$setElementOrder/ports": [{"port": 81}, {"port": 80}]}}, [81, 80]),
        # $patch: replace in a list replaces it whole
        (svc(80, 81), {"spec": {"ports": [{"$patch": "replace"}, {"port": 90, "name": "p90"}]}}, [90]),
    ],
)
def test_strategic_merge_lists_by_key(original, patch, expected) -> None:
    merged = strategic_merge(original, patch, SVC_NODE)
    assert [p["port"] for p in merged["spec"]["ports"]] == expected
    assert "$patch" not in str(merged) and "$setElementOrder" not in str(merged)


def test_strategic_merge_map_directives_and_nulls() -> None:
    base = svc(80, selector={"app": "web", "tier": "x"}, type="LoadBalancer")
    assert strategic_merge(base, {"spec": {"selector": {"$patch": "replace", "app": "v2"}}}, SVC_NODE)["spec"]["selector"] == {"app": "v2"}
    assert "selector" not in strategic_merge(base, {"spec": {"selector": {"$patch": "delete"}}}, SVC_NODE)["spec"]
    assert strategic_merge(base, {"spec": {"selector": {"tier": None}}}, SVC_NODE)["spec"]["selector"] == {"app": "web"}
    retained = strategic_merge(base, {"spec": {"$retainKeys": ["ports", "type"], "type": "NodePort"}}, SVC_NODE)
    assert set(retained["spec"]) == {"ports", "type"} and retained["spec"]["type"] == "NodePort"


def test_strategic_merge_finalizers_are_a_set_and_cluster_addresses_merge_by_cidr() -> None:
    obj = {"metadata": {"finalizers": ["a"]}, "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "x"}]}}
    merged = strategic_merge(obj, {"metadata": {"finalizers": ["b", "a"], "$deleteFromPrimitiveList/finalizers": ["a"]},
                                   "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "10.0.0.0/8", "serverAddress": "y"}]}},
                             CLUSTER_NODE)
    assert merged["metadata"]["finalizers"] == ["b"]
    assert [a["clientCIDR"] for a in merged["spec"]["serverAddressByClientCIDRs"]] == ["0.0.0.0/0", "10.0.0.0/8"]


def test_server_side_apply_removes_what_a_manager_stops_applying_and_sees_conflicts() -> None:
    first = server_side_apply(None, svc(80, 81, type="LoadBalancer"), SVC_NODE, manager="a", force=False)
    assert first["metadata"]["managedFields"][0]["manager"] == "a"
    second = server_side_apply(first, svc(80, type="LoadBalancer"), SVC_NODE, manager="a", force=False)
    assert [p["port"] for p in second["spec"]["ports"]] == [80]
    with pytest.raises(ApplyConflict) as err:
        server_side_apply(second, svc(80, type="NodePort"), SVC_NODE, manager="b", force=False)
    assert ("a", ".spec.type") in err.value.conflicts
    forced = server_side_apply(second, svc(80, type="NodePort"), SVC_NODE, manager="b", force=True)
    assert forced["spec"]["type"] == "NodePort"
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:type" not in owners["a"]["f:spec"] and "f:type" in owners["b"]["f:spec"]


def test_discovery_documents() -> None:
    groups = discovery.api_group_list(ALL)
    assert {"federation", "coordination.k8s.io"} <= {g["name"] for g in groups["groups"]}
    core = discovery.api_resource_list(ALL, "", "v1")
    svc_entry = next(r for r in core["resources"] if r["name"] == "services")
    assert svc_entry["shortNames"] == ["svc"] and "watch" in svc_entry["verbs"] and svc_entry["categories"] == ["all"]
    assert any(r["name"] == "services/status" for r in core["resources"])
    agg = discovery.aggregated_discovery(ALL, core=False)
    fed = next(i for i in agg["items"] if i["metadata"]["name"] == "federation")
    clusters = next(r for r in fed["versions"][0]["resources"] if r["resource"] == "clusters")
    assert clusters["scope"] == "Cluster" and clusters["shortNames"] == ["cl"]
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    assert discovery.negotiate_aggregated(accept) == discovery.AGGREGATED_V2
    assert discovery.negotiate_aggregated("application/json") is None


def test_tables_reuse_the_cli_columns_with_wide_ones_at_priority_one() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    obj = svc(80, type="LoadBalancer", selector={"app": "web"})
    obj["metadata"]["creationTimestamp"] = "2025-12-31T23:59:00Z"
    obj["status"] = {"shards": [{"cluster": "a", "ingress": [{"ip": "1.2.3.4"}], "readyEndpoints": 1, "healthy": True},
                                {"cluster": "b", "ingress": [], "readyEndpoints": 0, "healthy": False}]}
    table = tables.to_table("services", [obj], now=now)
    names = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert names[0] == ("NAME", 0) and ("SHARDS", 0) in names and names[-1] == ("SELECTOR", 1)
    assert table["rows"][0]["cells"][:6] == ["web", "LoadBalancer", "<none>", "<pending>", "80/TCP", "1/2"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not tables.wants_table("application/json")
    unknown = tables.to_table("widgets", [obj], now=now)
    assert [c["name"] for c in unknown["columnDefinitions"]] == ["NAME", "AGE"]


def test_openapi_index_documents_and_unknown_fields() -> None:
    index = openapi.index(ALL)
    assert {"api/v1", "apis/federation/v1beta1", "apis/coordination.k8s.io/v1"} <= set(index["paths"])
    doc = openapi.document(ALL, "federation", "v1beta1")
    patch = doc["paths"]["/apis/federation/v1beta1/clusters/{name}"]["patch"]
    assert {"name": "fieldValidation"}.items() <= next(p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    bad = svc(80)
    bad["spec"]["bogus"] = 1
    bad["spec"]["ports"][0]["wat"] = 2
    bad["metadata"]["labels"] = {"any": "label"}
    assert list(openapi.unknown_fields(SVC_NODE, bad)) == ["spec.ports[0].wat", "spec.bogus"]
