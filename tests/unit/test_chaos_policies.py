"""The failover policies as tables: the offline-records policy and data-plane votes in the
DNS planner, and the majority rule (pure, no processes)."""

from __future__ import annotations

import pytest

from federation.planners import dnsplan, health
from federation.settings import Settings

A, B = "127.10.1.1", "127.10.2.1"
GLOBAL = "web.default.myfed.svc.example.com."
ZONE_A = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."


def plan(*, a_usable=True, a_offline=False, unreachable=(), policy="remove", a_ready=2):
    clusters = [
        dnsplan.ClusterInfo("a", "us-east-1", ("us-east-1a",), usable=a_usable, offline=a_offline),
        dnsplan.ClusterInfo("b", "us-east-1", ("us-east-1b",), usable=True),
    ]
    service = dnsplan.ServiceInfo("web", "default", (
        dnsplan.Shard("a", (A,), a_ready, tuple(ip for ip in unreachable if ip == A)),
        dnsplan.Shard("b", (B,), 2, tuple(ip for ip in unreachable if ip == B)),
    ))
    records = dnsplan.plan_records(federation="myfed", domain="example.com", ttl=5, clusters=clusters,
                                   services=[service], offline_records=policy)
    return {(r.name, r.type): r.targets for r in records}


@pytest.mark.parametrize("case, kw, global_targets, zone_a", [
    ("healthy", {}, (A, B), ("A", (A,))),
    ("offline, remove", {"a_usable": False, "a_offline": True}, (B,), ("CNAME", None)),
    ("offline, keep (split brain)", {"a_usable": False, "a_offline": True, "policy": "keep"}, (A, B), ("A", (A,))),
    ("offline, keep, data plane voted down (crash)", {"a_usable": False, "a_offline": True, "policy": "keep", "unreachable": (A,)},
     (B,), ("CNAME", None)),
    ("not ready is never kept", {"a_usable": False, "policy": "keep"}, (B,), ("CNAME", None)),
    ("ready, data plane voted down (blackhole)", {"unreachable": (A,)}, (B,), ("CNAME", None)),
    ("offline, keep, no ready endpoint", {"a_usable": False, "a_offline": True, "policy": "keep", "a_ready": 0}, (B,), ("CNAME", None)),
    ("every shard voted down", {"unreachable": (A, B)}, None, ("CNAME", None)),
])
def test_policies_in_the_planner(case, kw, global_targets, zone_a):
    records = plan(**kw)
    assert records.get((GLOBAL, "A")) == global_targets, case
    kind, targets = zone_a
    assert (ZONE_A, kind) in records, case
    if targets is not None:
        assert records[(ZONE_A, kind)] == targets, case


def test_unknown_offline_policy_is_refused():
    with pytest.raises(ValueError, match="offline_records"):
        plan(policy="maybe")


@pytest.mark.parametrize("votes, down", [
    ({}, False),
    ({"federation": ""}, False),
    ({"federation": "down"}, True),
    ({"federation": "down", "b": "up"}, False),  # a tie keeps the address
    ({"federation": "down", "b": "down", "c": "up"}, True),
    ({"federation": "up", "b": "down", "c": "down", "d": ""}, True),  # no view is no vote
    ({"federation": "up", "b": "up", "c": "down"}, False),
])
def test_majority_of_probers_with_a_view(votes, down):
    assert health.majority_down(votes) is down


def test_one_prober_needs_a_run_of_failures():
    state = health.HealthState()
    seen = []
    for result in (health.OK, health.UNREACHABLE, health.UNREACHABLE, health.OK):
        state = health.observe(state, result, "", failure_threshold=2, success_threshold=1)
        seen.append(health.probe_verdict(state))
    assert seen == ["up", "up", "down", "up"]


def test_defaults_keep_records_and_check_the_data_plane():
    s = Settings()
    assert s.offline_records == "keep" and s.dataplane_checks
    assert (s.health_period, s.failure_threshold, s.dns_ttl) == (1.0, 3, 5)
