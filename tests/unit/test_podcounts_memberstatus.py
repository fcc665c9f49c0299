"""The pure planners of federated workloads (issue 15): a Job's pod counts per cluster
(:mod:`federation.planners.podcounts`) and a federated object's status from its copies
(:mod:`federation.planners.memberstatus`), as tables."""

from __future__ import annotations

import json

import pytest

from federation.planners import memberstatus
from federation.planners.podcounts import job_counts, job_patches

ABC = ["a", "b", "c"]


def job(completions, parallelism, preferences=None):
    meta = {"annotations": {"federation.kubernetes.io/deployment-preferences": json.dumps(preferences)}} if preferences else {}
    return {"metadata": meta, "spec": {"completions": completions, "parallelism": parallelism}}


def copy_with(completions):
    return {"spec": {"completions": completions}}


@pytest.mark.parametrize("fed,clusters,current,expected", [
    # 7 over three equal clusters: largest remainders, not KubeFed's round-up 3/3/1
    (job(7, 3), ABC, {}, {"a": (3, 1), "b": (2, 1), "c": (2, 1)}),
    (job(7, 7), ABC, {}, {"a": (3, 3), "b": (2, 2), "c": (2, 2)}),
    # parallelism below the clusters with work: one each, so every part makes progress
    (job(6, 1), ABC, {}, {"a": (2, 1), "b": (2, 1), "c": (2, 1)}),
    # one completion: one cluster works, the others get a copy with nothing to do
    (job(1, 1), ABC, {}, {"a": (1, 1), "b": (0, 0), "c": (0, 0)}),
    # weights from the preferences annotation
    (job(6, 6, {"clusters": {"a": {"weight": 2}, "*": {"weight": 1}}}), ABC, {}, {"a": (3, 3), "b": (2, 2), "c": (1, 1)}),
    # a split the copies have is kept; a cluster that left gives its share to the others
    (job(7, 3), ["a", "b"], {"a": copy_with(3), "b": copy_with(2), "c": copy_with(2)}, {"a": (4, 2), "b": (3, 1)}),
    (job(7, 3), ABC, {"a": copy_with(1), "b": copy_with(3), "c": copy_with(3)}, {"a": (1, 1), "b": (3, 1), "c": (3, 1)}),
    # a work queue (no completions): only the parallelism splits
    ({"spec": {"parallelism": 4}}, ABC, {}, {"a": (None, 2), "b": (None, 1), "c": (None, 1)}),
    (job(5, 2), [], {}, {}),
])
def test_job_counts(fed, clusters, current, expected):
    got = job_counts(fed, clusters, current)
    assert {c: (v["completions"], v["parallelism"]) for c, v in got.items()} == expected


def test_job_patches_are_json_patches_on_the_copy():
    assert job_patches(job(7, 3), ABC, {})["a"] == [{"op": "add", "path": "/spec/completions", "value": 3},
                                                    {"op": "add", "path": "/spec/parallelism", "value": 1}]
    assert job_patches({"spec": {"parallelism": 2}}, ["a"], {})["a"] == [{"op": "add", "path": "/spec/parallelism", "value": 2}]


def complete(succeeded, at="2027-01-01T00:00:05Z"):
    return {"status": {"startTime": "2027-01-01T00:00:01Z", "succeeded": succeeded, "ready": 0, "completionTime": at,
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": at},
                                      {"type": "Complete", "status": "True", "lastTransitionTime": at}]}}


def running(active, succeeded=0):
    return {"status": {"startTime": "2027-01-01T00:00:00Z", "active": active, "ready": active, "succeeded": succeeded}}


def test_job_status_is_complete_only_when_every_cluster_is():
    partial = memberstatus.job_status({"a": complete(3), "b": running(1, 1), "c": None})
    assert partial == {"startTime": "2027-01-01T00:00:00Z", "active": 1, "ready": 1, "succeeded": 4}
    done = memberstatus.job_status({"a": complete(3), "b": complete(2, "2027-01-01T00:00:09Z"), "c": complete(2)})
    assert done["succeeded"] == 7 and done["completionTime"] == "2027-01-01T00:00:09Z"
    assert [c["type"] for c in done["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert done["conditions"][1]["lastTransitionTime"] == "2027-01-01T00:00:09Z"


def test_job_status_fails_when_one_cluster_failed_and_names_it():
    failed = {"status": {"failed": 7, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                                      "message": "Job has reached the specified backoff limit"}]}}
    status = memberstatus.job_status({"a": complete(3), "b": failed})
    assert status["failed"] == 7
    assert status["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert status["conditions"][0]["message"].startswith("b: ")


def test_daemonset_cronjob_ingress_statuses():
    ds = memberstatus.daemonset_status({"a": {"status": {"desiredNumberScheduled": 2, "numberReady": 2}},
                                        "b": {"status": {"desiredNumberScheduled": 3, "numberReady": 1}}, "c": None})
    assert (ds["desiredNumberScheduled"], ds["numberReady"], ds["numberAvailable"]) == (5, 3, 0)
    cj = memberstatus.cronjob_status({"a": {"status": {"lastScheduleTime": "2027-01-01T00:00:02Z", "active": [{"name": "t-1"}]}},
                                      "b": {"status": {"lastScheduleTime": "2027-01-01T00:00:04Z"}}})
    assert cj == {"lastScheduleTime": "2027-01-01T00:00:04Z", "active": [{"name": "t-1"}]}
    ing = memberstatus.ingress_status({"a": {"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}},
                                       "b": {"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}]}}}, "c": None})
    assert ing == {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}}
    assert memberstatus.ingress_status({}) == {"loadBalancer": {}}


def test_with_propagation_puts_the_kind_conditions_first():
    merged = memberstatus.with_propagation({"succeeded": 1, "conditions": [{"type": "Complete"}]},
                                           {"clusters": [], "conditions": [{"type": "Propagation"}], "observedGeneration": 2})
    assert [c["type"] for c in merged["conditions"]] == ["Complete", "Propagation"]
    assert merged["succeeded"] == 1 and merged["observedGeneration"] == 2
