"""The same bad request gets the same Status from the federation and from a member (issue 11).

A real federation API server and a real member cluster are sent the same requests; their
answers must agree on code, reason and message. Both are one server by construction
(apimachinery.server), so this checks the wiring: the same kinds, hooks and storages
answering alike, server-side apply conflicts included.
"""

from __future__ import annotations

import pytest

from clusters.testing import ClusterProcess, http
from tests.conftest import apiserver

SVC = "/api/v1/namespaces/default/services"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    member = ClusterProcess(name="aws-parity-1", region="us-east-1", zones="us-east-1a", extra=["--pod-ready-delay", "0"])
    try:
        with apiserver(tmp_path_factory.mktemp("parity"), "--no-controllers") as url:
            bases = {"federation": url, "member": member.wait_ready().url}
            for base in bases.values():
                assert http("POST", base + SVC, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
            yield bases
    finally:
        member.close()


def stale_replace(base):
    current = http("GET", base + SVC + "/web")[1]
    rv = current["metadata"]["resourceVersion"]
    http("PATCH", base + SVC + "/web", {"metadata": {"labels": {"n": rv}}}, content_type="application/merge-patch+json")
    return http("PUT", base + SVC + "/web", {"metadata": {"name": "web", "resourceVersion": rv},
                                             "spec": {"ports": [{"port": 81}]}})


def apply_conflict(base):
    def apply(manager, value):
        return http("PATCH", base + SVC + f"/web?fieldManager={manager}",
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"tier": value}}},
                    content_type="application/apply-patch+yaml")

    assert apply("alice", "front")[0] == 200
    return apply("bob", "back")


REQUESTS = {
    "apply conflict": apply_conflict,
    "stale resourceVersion": stale_replace,
    "unknown field, Strict": lambda b: http("POST", b + SVC + "?fieldValidation=Strict",
                                            {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}], "bogus": 1}}),
    "bad fieldValidation": lambda b: http("POST", b + SVC + "?fieldValidation=Loud", {"metadata": {"name": "x"}}),
    "unsupported field label": lambda b: http("GET", b + SVC + "?fieldSelector=spec.bogus%3D1"),
    "malformed label selector": lambda b: http("GET", b + SVC + "?labelSelector=a%20in%20(b"),
    "bad dryRun": lambda b: http("POST", b + SVC + "?dryRun=Bogus", {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}),
    "dry-run create of an existing name": lambda b: http("POST", b + SVC + "?dryRun=All",
                                                         {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
    "not-found": lambda b: http("GET", b + SVC + "/nope"),
    "watch from a non-integer resourceVersion": lambda b: http("GET", b + SVC + "?watch=true&resourceVersion=abc"),
}


@pytest.mark.parametrize("what", list(REQUESTS))
def test_the_same_bad_request_gets_the_same_status(servers, what):
    answers = {}
    for side, base in servers.items():
        code, body, _ = REQUESTS[what](base)
        assert isinstance(body, dict) and body.get("kind") == "Status", (side, code, body)
        answers[side] = (code, body["reason"], body["message"])
    assert answers["federation"] == answers["member"], answers
    assert answers["member"][0] >= 400
