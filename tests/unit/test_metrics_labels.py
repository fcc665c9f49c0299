"""kube-apiserver's request labels from a matched route, table by table (apimachinery/metrics.py),
and the reconcile and health bookkeeping behind the controllers' families (issue 17)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from apimachinery.metrics import reconciling, route_labels
from federation.planners import health
from federation import metrics as fedmetrics

NSD = "/api/v1/namespaces/{namespace}"
CLUSTERS = "/apis/federation/v1beta1/clusters"

# (method, route template, query, content type) -> (verb, group, version, resource, subresource, scope)
TABLE = [
    ("GET", f"{NSD}/services/{{name}}", {}, "", ("GET", "", "v1", "services", "", "resource")),
    ("GET", f"{NSD}/services", {}, "", ("LIST", "", "v1", "services", "", "namespace")),
    ("GET", "/api/v1/services", {}, "", ("LIST", "", "v1", "services", "", "cluster")),
    ("GET", f"{NSD}/services", {"watch": "true"}, "", ("WATCH", "", "v1", "services", "", "namespace")),
    ("GET", f"{NSD}/services", {"watch": "1"}, "", ("WATCH", "", "v1", "services", "", "namespace")),
    ("POST", f"{NSD}/services", {}, "application/json", ("POST", "", "v1", "services", "", "namespace")),
    ("PUT", f"{CLUSTERS}/{{name}}/status", {}, "application/json",
     ("PUT", "federation", "v1beta1", "clusters", "status", "resource")),
    ("PATCH", f"{NSD}/services/{{name}}", {}, "application/merge-patch+json",
     ("PATCH", "", "v1", "services", "", "resource")),
    ("PATCH", f"{NSD}/services/{{name}}", {}, "application/apply-patch+yaml",
     ("APPLY", "", "v1", "services", "", "resource")),
    ("DELETE", f"{NSD}/services/{{name}}", {}, "", ("DELETE", "", "v1", "services", "", "resource")),
    ("DELETE", f"{NSD}/services", {}, "", ("DELETECOLLECTION", "", "v1", "services", "", "namespace")),
    ("GET", "/api/v1/namespaces/{name}", {}, "", ("GET", "", "v1", "namespaces", "", "resource")),
    ("GET", "/api/v1/namespaces", {}, "", ("LIST", "", "v1", "namespaces", "", "cluster")),
    ("GET", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", {}, "",
     ("GET", "apps", "v1", "deployments", "scale", "resource")),
    ("POST", f"{CLUSTERS}/{{name}}/credential", {}, "", ("POST", "federation", "v1beta1", "clusters", "credential",
                                                         "resource")),
    # non-resource paths, and a request no route matched (its path never becomes a label)
    ("GET", "/metrics", {}, "", ("GET", "", "", "", "", "")),
    ("GET", "/apis", {}, "", ("GET", "", "", "", "", "")),
    ("GET", "/apis/federation/v1beta1", {}, "", ("GET", "", "", "", "", "")),
    ("GET", "", {}, "", ("GET", "", "", "", "", "")),
]


@pytest.mark.parametrize("method,template,query,ctype,want", TABLE)
def test_route_labels(method, template, query, ctype, want):
    labels = route_labels(method, template, query, ctype)
    got = tuple(labels[k] for k in ("verb", "group", "version", "resource", "subresource", "scope"))
    assert got == want
    assert labels["component"] == "apiserver" and labels["dry_run"] == ""


def test_dry_run_label():
    assert route_labels("POST", f"{NSD}/services", {"dryRun": "All"}, "")["dry_run"] == "All"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_reconciling_counts_successes_and_errors_but_not_cancellations():
    import asyncio

    c = "unit-reconciler"
    with reconciling(c):
        pass
    with pytest.raises(ValueError):
        with reconciling(c):
            raise ValueError("boom")
    with pytest.raises(asyncio.CancelledError):
        with reconciling(c):
            raise asyncio.CancelledError
    assert sample("controller_runtime_reconcile_total", controller=c, result="success") == 1
    assert sample("controller_runtime_reconcile_total", controller=c, result="error") == 1
    assert sample("controller_runtime_reconcile_errors_total", controller=c) == 1
    assert sample("controller_runtime_reconcile_time_seconds_count", controller=c) == 2


def test_fault_to_detection_runs_from_the_last_good_probe_to_the_verdict():
    name = "unit-c1"
    before = sample("ubernetes_fault_to_detection_seconds_count", verdict=health.OFFLINE)
    before_sum = sample("ubernetes_fault_to_detection_seconds_sum", verdict=health.OFFLINE)
    fedmetrics.cluster_observed(name, result=health.OK, before=health.UNKNOWN, after=health.READY, now=100.0)
    fedmetrics.cluster_observed(name, result=health.OK, before=health.READY, after=health.READY, now=101.0)
    fedmetrics.cluster_observed(name, result=health.UNREACHABLE, before=health.READY, after=health.READY, now=102.0)
    assert sample("cluster_ready_state", member_cluster=name) == 1
    fedmetrics.cluster_observed(name, result=health.UNREACHABLE, before=health.READY, after=health.OFFLINE, now=103.5)
    assert sample("ubernetes_fault_to_detection_seconds_count", verdict=health.OFFLINE) == before + 1
    # from the last good probe (101.0), not the first failed one (102.0)
    assert sample("ubernetes_fault_to_detection_seconds_sum", verdict=health.OFFLINE) - before_sum == pytest.approx(2.5)
    assert sample("cluster_ready_state", member_cluster=name) == 0
    assert sample("ubernetes_cluster_health_state", cluster=name, state=health.OFFLINE) == 1
    assert sample("ubernetes_cluster_health_transitions_total", cluster=name, to=health.OFFLINE) == 1
    assert sample("ubernetes_cluster_probes_total", cluster=name, result=health.UNREACHABLE) == 2
    fedmetrics.cluster_removed(name)
    assert REGISTRY.get_sample_value("cluster_ready_state", {"member_cluster": name}) is None
