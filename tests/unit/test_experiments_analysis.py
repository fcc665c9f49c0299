"""The pure parts of the experiments: scenario files, their fast and compared forms, the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.experiments import analysis
from federation.experiments.scenario import (
    PROFILES, ScenarioError, fast_form, parse_scenario, profile_form, scale_settings,
)

ROOT = Path(__file__).resolve().parents[2]
CRASH = (ROOT / "experiments" / "cluster-crash.yaml").read_text()


def test_every_shipped_scenario_parses_with_expectations_and_a_fast_form():
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        s = parse_scenario(path.read_text(), source=path.name)
        assert s.expect and s.description and s.faults, path.name
        fast = fast_form(s)
        assert fast.duration <= s.duration and fast.duration <= 25, path.name


def test_crash_scenario_names_and_fast_form():
    s = parse_scenario(CRASH)
    assert s.dns.names == (
        "web.default.myfed.svc.example.com.",
        "web.default.myfed.svc.us-east-1.example.com.",
        "web.default.myfed.svc.us-east-1a.us-east-1.example.com.",
    )
    assert s.clients is not None and s.clients.port == 8000
    fast = fast_form(s)
    assert fast.faults[0].at == 3.0 and fast.faults[0].heal == 9.6 and fast.duration == 18.0
    assert fast.ttl == 2 and "--dns-ttl" in fast.apiserver_args()


def test_profiles_carry_the_settings_of_each_system():
    s = parse_scenario(CRASH)
    v1 = profile_form(s, "federation-v1")
    assert v1.effective_settings()["healthPeriod"] == 40 and v1.ttl == 180
    assert v1.effective_settings()["failureThreshold"] == 1 and v1.effective_settings()["offlineRecords"] == "remove"
    kf = profile_form(s, "kubefed")
    assert (kf.effective_settings()["healthPeriod"], kf.effective_settings()["failureThreshold"],
            kf.effective_settings()["healthTimeout"], kf.ttl) == (10, 3, 3, 180)
    assert "--no-dataplane-checks" in kf.apiserver_args()
    assert v1.duration == 260 and v1.faults[0].heal == 240  # the compare timeline
    fast = profile_form(s, "federation-v1", time_scale=0.05)
    assert fast.effective_settings()["healthPeriod"] == 2.0 and fast.ttl == 9 and fast.duration == 13.0
    assert set(PROFILES) == {"federation-v1", "kubefed", "ubernetes"}


def test_scaling_keeps_settings_the_machine_can_honour():
    assert scale_settings({"dnsTtl": 5, "healthPeriod": 1.0, "failureThreshold": 3}, 0.01) == {
        "dnsTtl": 1, "healthPeriod": 0.5, "failureThreshold": 3}


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d["timeline"]["faults"][0].update(fault="meteor"), "timeline.faults[0].fault"),
    (lambda d: d["timeline"]["faults"][0].update(cluster="nowhere"), "is not a cluster of the topology"),
    (lambda d: d["timeline"]["faults"][0].update(heal=2), "timeline.faults[0].heal"),
    (lambda d: d["timeline"].update(duration=0), "timeline.duration"),
    (lambda d: d.update(expect=["fast"]), "expect"),
    (lambda d: d.update(settings={"dnsTTL": 3}), "settings.dnsTTL: unknown setting"),
    (lambda d: d.update(settings={"offlineRecords": "maybe"}), "must be keep or remove"),
    (lambda d: d["probes"]["dns"].update(names=["zone:mars"]), "probes"),
])
def test_scenario_errors_name_the_field(mutate, problem):
    import yaml

    doc = yaml.safe_load(CRASH)
    mutate(doc)
    with pytest.raises(ScenarioError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(yaml.safe_dump(doc))


# ------------------------------------------------------------------ figures from synthetic events

A, B, C = "127.9.0.1", "127.9.1.1", "127.9.2.1"
G = "web.default.myfed.svc.example.com."


def dns(t, *addrs, rcode="NOERROR", name=G):
    return {"t": t, "kind": "dns", "name": name, "rcode": rcode, "addrs": sorted(addrs), "ok": rcode == "NOERROR"}


def client(t, ok, answer=(A, B, C), cached=True):
    return {"t": t, "kind": "client", "client": 0, "ok": ok, "answer": list(answer), "cached": cached,
            "cluster": "x" if ok else None}


def run(*body, faults=(("crash", 10.0, 30.0, [A], ["a"]),), expect=("converges", "no-stale-after-ttl",
        "no-false-failover", "clients-recover", "recovers", "detects", "dns-always-answers"), ttl=5):
    events = [{"t": 0.0, "kind": "meta", "ttl": ttl, "clientTimeout": 1.0, "expect": list(expect), "scenario": "t"}]
    for fid, at, heal, addrs, clusters in faults:
        events.append({"t": at, "kind": "fault", "id": fid, "fault": "crash", "what": fid, "addresses": addrs, "clusters": clusters})
        if heal is not None:
            events.append({"t": heal, "kind": "heal", "id": fid, "fault": "crash", "what": fid, "addresses": addrs, "clusters": clusters})
    events += body
    events.append({"t": 40.0, "kind": "end"})
    return analysis.analyse(sorted(events, key=lambda e: e["t"]))


def test_a_clean_crash_has_every_figure():
    s = run(
        dns(9, A, B, C), dns(11, A, B, C), dns(12.5, B, C), dns(13, B, C), dns(31, A, B, C),
        {"t": 12.0, "kind": "condition", "cluster": "a", "phase": "Offline"},
        client(10.5, False), client(14, False), client(20, True, (B, C), cached=False),
    )
    f = s["faults"][0]
    assert (f["detection"], f["convergenceFirst"], f["convergenceLast"]) == (2.0, 2.5, 1.0)
    assert (f["clientOutage"], f["clientFailures"], f["stale"], f["lateClientFailures"], f["recovery"]) == (4.0, 2, 0, 0, 1.0)
    assert f["clientRecovery"] == 10.0  # the first good request (t 20) after the last failed one (t 14)
    assert s["falseFailovers"] == 0
    assert all(v["ok"] for v in s["expectations"].values()), s["expectations"]


def test_stale_answers_and_late_failures_after_convergence_plus_ttl():
    s = run(dns(9, A, B), dns(11, A, B), dns(12, B), client(17.3, False, (A, B)), client(17.0, True, (A, B)))
    f = s["faults"][0]
    assert f["convergenceLast"] == 1.0  # horizon: 10 + 1 + 5 (+0.2 slack) = 16.2
    assert f["stale"] == 2 and f["lateClientFailures"] == 1
    assert not s["expectations"]["no-stale-after-ttl"]["ok"] and not s["expectations"]["clients-recover"]["ok"]


def test_a_dead_address_still_answered_at_the_heal_never_converged():
    s = run(dns(9, A, B), dns(20, A, B), dns(29, A, B), dns(31, A, B))
    f = s["faults"][0]
    assert f["converged"] is False and f["convergenceLast"] is None and f["stale"] is None
    assert not s["expectations"]["converges"]["ok"] and not s["expectations"]["detects"]["ok"]


def test_removing_a_healthy_shard_is_a_false_failover_but_the_dead_one_is_excused():
    s = run(dns(9, A, B, C), dns(11, C), dns(12, C), dns(13, B, C), dns(31, B, C), dns(33, A, B, C))
    assert s["falseFailoverDetail"] == [{"name": G, "address": B, "from": 11, "to": 13}]
    assert s["falseFailovers"] == 1 and not s["expectations"]["no-false-failover"]["ok"]


def test_a_partition_kills_no_data_plane_so_any_removal_is_false():
    s = run(dns(4, A, B), dns(6, B), dns(8, A, B), faults=(("partition", 5.0, 20.0, [], ["a"]),),
            expect=("no-false-failover",))
    assert s["falseFailovers"] == 1 and s["faults"][0]["converged"] is None


def test_failed_queries_break_dns_always_answers():
    s = run(dns(9, A, B), dns(11, rcode="TIMEOUT"), dns(12, B), expect=("dns-always-answers",))
    assert s["dns"] == {"queries": 3, "failures": 1, "nxdomain": 0}
    assert not s["expectations"]["dns-always-answers"]["ok"]


def test_repeat_aggregates_median_and_spread():
    runs = [run(dns(9, A, B), dns(10 + d, A, B), dns(10.1 + d, B), dns(31, A, B)) for d in (0.5, 1.0, 3.0)]
    agg = analysis.aggregate(runs)
    conv = agg["faults"][0]["convergenceLast"]
    assert (conv["median"], conv["min"], conv["max"], conv["never"], conv["runs"]) == (1.0, 0.5, 3.0, 0, 3)
    assert analysis.targets(agg, {"convergenceMedian": 3}) == {"convergenceMedian": {"limit": 3, "value": 1.0, "met": True}}
