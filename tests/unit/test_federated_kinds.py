"""The pure parts of federating any kind (issue 15): spread constraints, drift paths,
KubeFed's propagation status, the type registry, a member copy's shape."""

from __future__ import annotations

import json

import pytest

from federation import typeregistry
from federation.controllers.sync import excluded, member_copy
from federation.planners.drift import drift_paths
from federation.planners.placement import PlacementError, placed_clusters
from federation.planners.propagationstatus import propagation_status, summary
from federation.planners.spread import SpreadError, parse_constraints, spread
from federation.resources import CONFIGMAPS, validate_configmap


def cluster(name, region, provider="aws", ready=True, zones=()):
    return {"metadata": {"name": name, "labels": {"topology.kubernetes.io/region": region,
                                                  "ubernetes.io/provider": provider}},
            "status": {"zones": list(zones), "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "Offline", "status": "False" if ready else "True"}]}}


EAST_A, EAST_B, EU = cluster("east-a", "us-east-1"), cluster("east-b", "us-east-1"), cluster("eu", "eu-west1", "gcp")
TWO_REGIONS = [{"spreadByField": "region", "minGroups": 2, "maxGroups": 2}, {"spreadByField": "cluster", "maxGroups": 2}]


@pytest.mark.parametrize("constraints,clusters,want", [
    (TWO_REGIONS, [EAST_A, EAST_B, EU], ["east-a", "eu"]),  # one cluster per region
    (TWO_REGIONS, [cluster("east-a", "us-east-1", ready=False), EAST_B, EU], ["east-b", "eu"]),  # re-picked
    ([{"spreadByField": "region", "maxGroups": 1}], [EAST_A, EAST_B, EU], ["east-a", "east-b"]),  # the bigger group
    ([{"spreadByField": "provider", "maxGroups": 2}], [EAST_A, EU], ["east-a", "eu"]),
    ([{"spreadByField": "cluster", "maxGroups": 1}], [EAST_B, EAST_A], ["east-a"]),
    ([{"spreadByField": "zone", "maxGroups": 1}], [cluster("z1", "r", zones=("r-b",)), cluster("z2", "r", zones=("r-a",))],
     ["z2"]),  # ties by zone name: r-a first
])
def test_spread_chooses(constraints, clusters, want):
    assert spread(parse_constraints(constraints, path="p"), [c for c in clusters if c["status"]["conditions"][0]["status"] == "True"]) == want


@pytest.mark.parametrize("constraints,problem", [
    ([{"spreadByField": "galaxy"}], "Unsupported value"),
    ([{"spreadByField": "region"}, {"spreadByField": "region"}], "Duplicate value"),
    ([{"spreadByField": "region"}, {"spreadByField": "zone"}], "at most one"),
    ([{"spreadByField": "cluster", "minGroups": 3, "maxGroups": 2}], "must not be greater"),
    ([{"spreadByField": "cluster", "maxGroups": 0}], "positive integer"),
    ("region", "must be a list"),
])
def test_spread_constraints_are_validated(constraints, problem):
    with pytest.raises(SpreadError, match=problem):
        parse_constraints(constraints, path="p")


def test_spread_fails_below_min_groups_and_placement_says_where():
    obj = {"metadata": {"annotations": {"federation.kubernetes.io/placement": json.dumps({"spreadConstraints": TWO_REGIONS})}}}
    assert placed_clusters(obj, [EAST_A, EAST_B, EU]) == ["east-a", "eu"]
    with pytest.raises(PlacementError, match="spreadConstraints: spreadByField region: 1 group"):
        placed_clusters(obj, [EAST_A, EAST_B, cluster("eu", "eu-west1", ready=False)])


DESIRED = {"metadata": {"labels": {"fed": "myfed"}, "annotations": {"owner": "default/app"}},
           "data": {"color": "red"}, "spec": {"a": 1}}


@pytest.mark.parametrize("actual,want", [
    ({**DESIRED, "metadata": {**DESIRED["metadata"], "uid": "u"}, "spec": {"a": 1, "defaulted": True}}, []),
    ({**DESIRED, "data": {"color": "green"}}, ["data.color"]),
    ({**DESIRED, "data": {"color": "red", "extra": "x"}}, ["data.extra"]),  # a key added by hand
    ({**DESIRED, "data": {}}, ["data.color"]),
    ({**DESIRED, "metadata": {"labels": {}, "annotations": {"owner": "default/app"}}}, ["metadata.labels[fed]"]),
    ({**DESIRED, "spec": {"a": 2}}, ["spec.a"]),
    ({k: v for k, v in DESIRED.items() if k != "spec"}, ["spec"]),
])
def test_drift_paths(actual, want):
    assert drift_paths(DESIRED, actual) == want


def test_drift_paths_name_keys_never_values():
    paths = drift_paths({"metadata": {}, "data": {"password": "czNjcjN0"}}, {"metadata": {}, "data": {"password": "b3RoZXI="}})
    assert paths == ["data.password"]


def test_propagation_status_as_kubefed_reports_it():
    ok = propagation_status(clusters={"a": "", "b": ""}, previous=None, generation=3, now="T1")
    assert ok["clusters"] == [{"name": "a"}, {"name": "b"}]
    assert ok["conditions"] == [{"type": "Propagation", "status": "True", "lastTransitionTime": "T1", "lastUpdateTime": "T1"}]
    assert ok["observedGeneration"] == 3 and summary(ok) == ("2/2", "True")
    bad = propagation_status(clusters={"a": "", "b": "AlreadyExists"}, previous=ok, generation=3, now="T2")
    assert bad["clusters"][1] == {"name": "b", "status": "AlreadyExists"}
    assert bad["conditions"][0]["status"] == "False" and bad["conditions"][0]["reason"] == "CheckClusters"
    assert bad["conditions"][0]["message"] == "b: AlreadyExists" and bad["conditions"][0]["lastTransitionTime"] == "T2"
    assert summary(bad) == ("1/2", "CheckClusters")
    again = propagation_status(clusters={"a": "", "b": "AlreadyExists"}, previous=bad, generation=3, now="T3")
    assert again == bad  # nothing changed: nothing to write
    failed = propagation_status(clusters={}, previous=bad, generation=4, now="T4",
                                aggregate_error="ComputePlacementFailed", message="bad selector")
    assert failed["conditions"][0]["reason"] == "ComputePlacementFailed"
    assert summary(None) == ("<none>", "<none>")


def test_type_registry_names_and_configs():
    assert typeregistry.find("cm").name == "configmaps"
    assert typeregistry.find("Secret") is not None and typeregistry.find("pods") is None
    ftc = typeregistry.type_config(typeregistry.find("ns"))
    assert ftc["metadata"]["name"] == "namespaces" and ftc["spec"]["targetType"]["scope"] == "Cluster"
    disabled = typeregistry.type_config(typeregistry.find("configmaps"), propagation="Disabled")
    assert set(typeregistry.enabled([ftc, disabled, {"metadata": {"name": "pods"}, "spec": {}}])) == {"namespaces"}


def test_member_copy_carries_owner_marks_and_overrides_but_not_federation_annotations():
    ftype = typeregistry.FEDERATABLE["configmaps"]
    fed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "app", "namespace": "default", "uid": "u1", "labels": {"app": "x"}, "annotations": {
            "federation.kubernetes.io/placement": "{}", "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "team": "blue"}}, "data": {"color": "red"}, "status": {"clusters": []}}
    copy_ = member_copy(ftype, fed, federation="myfed", overrides=[{"op": "replace", "path": "/data/color", "value": "blue"}])
    meta = copy_["metadata"]
    assert copy_["data"] == {"color": "blue"} and "status" not in copy_
    assert meta["labels"] == {"app": "x", "federation.kubernetes.io/federation-name": "myfed"}
    assert meta["annotations"]["federation.kubernetes.io/owner"] == "default/app"
    assert meta["annotations"]["team"] == "blue" and "federation.kubernetes.io/placement" not in meta["annotations"]
    assert len(meta["annotations"]["federation.kubernetes.io/template-hash"]) == 16


@pytest.mark.parametrize("kind,obj,want", [
    ("configmaps", {"metadata": {"name": "c", "namespace": "federation-system"}}, True),
    ("secrets", {"metadata": {"name": "s", "namespace": "kube-system"}}, True),
    ("secrets", {"metadata": {"name": "s", "namespace": "default"}}, False),
    ("namespaces", {"metadata": {"name": "default"}}, True),
    ("namespaces", {"metadata": {"name": "team-a"}}, False),
])
def test_system_objects_are_never_propagated(kind, obj, want):
    assert excluded(typeregistry.FEDERATABLE[kind], obj) is want


@pytest.mark.parametrize("obj,errors", [
    ({"data": {"a": "1"}, "binaryData": {"b": "AA=="}}, []),
    ({"data": {"a": 1}}, ["data[a]"]),
    ({"data": {"a b": "1"}}, ["data[a b]"]),
    ({"data": {"a": "1"}, "binaryData": {"a": "AA=="}}, ["binaryData[a]"]),
    ({"data": "x"}, ["data"]),
])
def test_configmap_validation(obj, errors):
    assert [path for path, _ in validate_configmap(obj)] == errors
    assert CONFIGMAPS.short_names == ("cm",)
