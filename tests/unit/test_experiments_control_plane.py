"""The control plane's part of the experiments (issue 13), pure: control-plane faults in
scenario files, time without a leader from the Lease's renewals, refused and lost writes,
and the side-by-side report of ``experiment compare --control-plane``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from federation.experiments import analysis, report
from federation.experiments.scenario import ScenarioError, control_plane_form, fast_form, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
LEADER = (ROOT / "experiments" / "leader-failover.yaml").read_text()


def test_the_leader_failover_scenario_runs_on_etcd_ha_with_writes_and_compares_on_sqlite():
    s = parse_scenario(LEADER)
    assert (s.control_plane, s.api_replicas, s.etcd_members) == ("etcd-ha", 3, 3)
    assert s.writes is not None and s.writes.rate == 10
    assert [f.kind for f in s.faults] == ["kill-leader", "crash"]
    assert {"no-lost-writes", "leads-again"} <= set(s.expect)
    single = control_plane_form(fast_form(s), "sqlite")
    assert (single.control_plane, single.api_replicas, single.etcd_members) == ("sqlite", 1, 0)
    assert single.faults == fast_form(s).faults and single.name.endswith("[sqlite]")


@pytest.mark.parametrize("fault, plane, problem", [
    ({"fault": "kill-etcd", "index": 0}, "sqlite", "a kill-etcd fault needs controlPlane etcd-ha"),
    ({"fault": "kill-etcd", "index": 3}, "etcd-ha", r"timeline.faults\[0\].index: 3: must be an etcd member index from 0 to 2"),
    ({"fault": "kill-apiserver", "index": 1}, "sqlite", r"must be an API server index from 0 to 0 \(controlPlane sqlite\)"),
    ({"fault": "kill-apiserver"}, "etcd-ha", "a kill-apiserver fault needs 'index'"),
    ({"fault": "kill-leader"}, "raft", "controlPlane: 'raft': must be one of sqlite, etcd-ha"),
])
def test_control_plane_faults_are_checked_against_the_control_plane(fault, plane, problem):
    doc = yaml.safe_load(LEADER)
    doc["controlPlane"] = plane
    doc["timeline"]["faults"] = [{"id": "f", "at": 5, **fault}]
    with pytest.raises(ScenarioError, match=problem):
        parse_scenario(yaml.safe_dump(doc))


def test_a_sqlite_comparison_of_an_etcd_fault_is_refused_by_name():
    doc = yaml.safe_load(LEADER)
    doc["timeline"]["faults"] = [{"id": "etcd", "at": 5, "fault": "kill-etcd", "index": 0, "heal": 9}]
    with pytest.raises(ScenarioError, match="needs controlPlane etcd-ha"):
        control_plane_form(parse_scenario(yaml.safe_dump(doc)), "sqlite")


# ------------------------------------------------------------------ time without a leader

def test_a_gap_in_the_renewals_after_the_fault_is_time_without_a_leader():
    renewed = [1.0, 2.0, 3.0, 4.0, 5.2, 9.3, 10.3, 11.3]
    assert analysis.leaderless(renewed, 5.5, 11.0) == pytest.approx(3.8)  # from the kill to the new leader
    assert analysis.leaderless(renewed, 2.5, 4.5) == 0.0  # renewals every second: nobody stopped leading
    assert analysis.leaderless(renewed, 12.0, 20.0) is None  # no renewal after the fault: never led again


def test_a_gap_that_began_before_the_fault_counts_from_the_fault_and_runs_past_the_heal():
    renewed = [1.0, 2.0, 2.1, 14.0]  # a single server down from ~2 s, started again at 11, answering at 14
    assert analysis.leaderless(renewed, 5.0, 11.0) == pytest.approx(9.0)
    assert analysis.leaderless(renewed, 1.5, 11.0) == pytest.approx(11.9)


def leader(t, renewed, holder="a"):
    return {"t": t, "kind": "leader", "holder": holder, "renewed": renewed}


def write(t, n, ok, status=None):
    e = {"t": t, "kind": "write", "name": f"write-{n}", "ok": ok}
    if status:
        e["status"] = status
    return e


def run(*body, kind="kill-leader", at=5.0, heal=11.0, expect=("no-lost-writes", "leads-again"), plane="etcd-ha"):
    events = [{"t": 0.0, "kind": "meta", "ttl": 5, "clientTimeout": 1.0, "expect": list(expect), "scenario": "t",
               "controlPlane": plane, "settings": {"dnsTtl": 5}},
              {"t": at, "kind": "fault", "id": "f", "fault": kind, "what": kind, "addresses": [], "clusters": []},
              {"t": heal, "kind": "heal", "id": "f", "fault": kind, "what": kind, "addresses": [], "clusters": []},
              *body, {"t": 24.0, "kind": "end"}]
    return analysis.analyse(sorted(events, key=lambda e: e["t"]))


def test_refused_writes_count_from_the_fault_until_one_is_acknowledged_after_the_heal():
    s = run(leader(4.4, 4.0), leader(4.9, 4.9), leader(9.5, 9.4, holder="b"),
            write(4.0, 0, True), write(5.1, 1, False, 503), write(7.0, 2, False), write(11.2, 3, False),
            write(11.8, 4, True), write(12.0, 5, False, 409),
            {"t": 24.5, "kind": "writes-check", "stored": ["write-0", "write-4", "write-1"]})
    f = s["faults"][0]
    assert (f["noLeader"], f["leaderBack"], f["writesRefused"]) == (pytest.approx(4.4), pytest.approx(4.4), 3)
    w = s["writes"]
    assert (w["attempted"], w["acknowledged"], w["refused"], w["lost"], w["appliedThoughRefused"]) == (6, 2, 4, 0, 1)
    assert s["expectations"] == {"no-lost-writes": {"ok": True, "detail": "met"},
                                 "leads-again": {"ok": True, "detail": "met"}}


def test_an_acknowledged_write_missing_at_the_end_is_lost():
    s = run(leader(4.0, 4.0), leader(12, 12.0), write(4.0, 0, True), write(6.0, 1, True),
            {"t": 24.5, "kind": "writes-check", "stored": ["write-0"]})
    assert s["writes"]["lost"] == 1 and s["writes"]["lostNames"] == ["write-1"]
    assert s["expectations"]["no-lost-writes"] == {"ok": False, "detail": "1 acknowledged write(s) not stored: write-1"}


def test_no_writes_check_or_no_leader_afterwards_fails_the_expectations():
    s = run(leader(4.0, 4.0), write(4.0, 0, True), {"t": 24.5, "kind": "writes-check", "stored": None, "error": "503"})
    assert s["writes"]["lost"] is None and not s["expectations"]["no-lost-writes"]["ok"]
    assert "could not be listed" in s["expectations"]["no-lost-writes"]["detail"]
    assert s["faults"][0]["noLeader"] is None
    assert s["expectations"]["leads-again"] == {"ok": False, "detail": "f: no renewal of the controllers' Lease after the fault"}


def test_a_data_plane_fault_has_no_leader_figure():
    s = run(leader(4.0, 4.0), leader(5.0, 5.0), leader(6.0, 6.0), kind="crash", expect=())
    assert s["faults"][0]["noLeader"] is None and s["faults"][0]["leaderBack"] == pytest.approx(1.0)


def test_the_control_plane_comparison_puts_leader_and_write_figures_side_by_side():
    def result(plane, no_leader, refused, lost):
        body = [leader(4.0, 4.0), leader(5 + no_leader, 5 + no_leader), write(4.0, 0, True),
                *(write(5 + i * 0.1, i + 1, False, 503) for i in range(refused)),
                {"t": 24.5, "kind": "writes-check", "stored": [] if lost else ["write-0"]}]
        s = run(*body, plane=plane)
        return {"aggregate": analysis.aggregate([s]), "runs": [s]}

    text = report.render_compare(parse_scenario(LEADER), {"sqlite": result("sqlite", 10.6, 53, False),
                                                          "etcd-ha": result("etcd-ha", 4.1, 0, False)}, None, 1.0)
    assert "| controlPlane | sqlite | etcd-ha |" in text
    assert "| time without a leader (gaps in the Lease's renewals) | 10.6 s | 4.1 s |" in text
    assert "| writes refused (fault until one is acknowledged after the heal) | 53 | 0 |" in text
    assert "| lost (acknowledged, not stored at the end) | 0 | 0 |" in text
