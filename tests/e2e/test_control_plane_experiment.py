"""The control-plane experiment (issue 13) on real federations: experiments/leader-failover.yaml
compared on one SQLite API server and on etcd-HA (three real etcd members, three API servers).

One ``ubernetes experiment compare --control-plane sqlite --control-plane etcd-ha`` process
runs both side by side (``--jobs 2``). In each, the leader is SIGKILLed while the write
prober writes through the API, and a member crashes half a second later. The tests read the
comparison's summary.json and report.md: on etcd-HA a standby leads within the lease
duration plus a retry period and the crash is failed over long before the killed server is
back; on SQLite nothing leads, writes are refused and the crash waits for the restart; on
both, every acknowledged write is stored and DNS answers throughout.

experiments/etcd-member-loss.yaml runs too (``experiment run --fast``): one etcd member of
three and one API server of three down at once, and writes go on through the others.

Skipped, with the package to install, when etcd is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from federation.launch.etcdserver import PACKAGE_HINT, etcd_binary

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "experiments" / "leader-failover.yaml"
MEMBER_LOSS = ROOT / "experiments" / "etcd-member-loss.yaml"
LEASE_DURATION, RETRY = 4.0, 1.0  # the defaults (federation/settings.py)
KILLED_FOR = 6.0  # the scenario kills the leader at 5 s and starts it again at 11 s

pytestmark = [pytest.mark.skipif(etcd_binary() is None, reason=PACKAGE_HINT), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("leader-failover") / "compare"
    proc = subprocess.run([sys.executable, "-m", "federation", "experiment", "compare", str(SCENARIO),
                           "--control-plane", "sqlite", "--control-plane", "etcd-ha", "--jobs", "2",
                           "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    return json.loads((out / "summary.json").read_text()), (out / "report.md").read_text()


def faults(summary: dict, plane: str) -> dict[str, dict]:
    return {f["id"]: f for f in summary[plane]["runs"][0]["faults"]}


def test_etcd_ha_meets_every_expectation_of_the_scenario(compared):
    summary, _ = compared
    failed = {k: v for k, v in summary["etcd-ha"]["aggregate"]["expectations"].items() if not v["ok"]}
    assert not failed, failed


def test_a_standby_leads_within_the_lease_and_the_crash_is_failed_over_before_the_restart(compared):
    summary, _ = compared
    ha = faults(summary, "etcd-ha")
    assert ha["kill-leader"]["noLeader"] <= LEASE_DURATION + RETRY + 1.0, ha["kill-leader"]
    assert ha["crash"]["converged"] and ha["crash"]["convergenceLast"] < KILLED_FOR, ha["crash"]


def test_a_single_sqlite_server_leaves_the_federation_leaderless_until_it_is_back(compared):
    summary, _ = compared
    single, ha = faults(summary, "sqlite"), faults(summary, "etcd-ha")
    assert single["kill-leader"]["noLeader"] >= KILLED_FOR - 0.5, single["kill-leader"]
    assert single["kill-leader"]["writesRefused"] >= 20 > ha["kill-leader"]["writesRefused"], (single, ha)
    # the crash (at 5.5 s) waits for the restarted server's controllers (at 11 s); on etcd-HA
    # test_a_standby_leads_... saw it out of DNS within 6 s
    crashed_for = KILLED_FOR - 0.5
    assert single["crash"]["convergenceLast"] >= crashed_for, single["crash"]


def test_no_acknowledged_write_is_lost_and_dns_answers_on_either_control_plane(compared):
    summary, _ = compared
    for plane in ("sqlite", "etcd-ha"):
        run = summary[plane]["runs"][0]
        assert run["writes"]["lost"] == 0 and run["writes"]["storedTwice"] == 0, (plane, run["writes"])
        # 10 writes/s for 24 s at most; a loaded machine made etcd-HA's as slow as 2/s once
        assert run["writes"]["acknowledged"] >= 20, (plane, run["writes"])
        assert run["dns"]["failures"] == 0 and run["dns"]["queries"] > 100, (plane, run["dns"])


def test_the_report_puts_both_control_planes_side_by_side(compared):
    _, report = compared
    assert "| figure | sqlite | etcd-ha |" in report
    assert "| controlPlane | sqlite | etcd-ha |" in report
    assert "time without a leader" in report and "lost (acknowledged, not stored at the end)" in report


@pytest.fixture(scope="module")
def member_loss(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("etcd-member-loss")
    proc = subprocess.run([sys.executable, "-m", "federation", "experiment", "run", str(MEMBER_LOSS), "--fast",
                           "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    print(proc.stdout)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    assert summary is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return summary, events


def test_one_etcd_member_and_one_api_server_down_writes_go_on_and_dns_never_notices(member_loss):
    summary, events = member_loss
    failed = {k: v for k, v in summary["aggregate"]["expectations"].items() if not v["ok"]}
    assert not failed, failed
    faults = {e["id"]: e for e in events if e["kind"] == "fault"}
    assert faults["etcd-0-down"]["etcdMember"] == 0 and faults["apiserver-2-down"]["apiserver"] == 2
    both_down = [e for e in events if e["kind"] == "write" and 7.0 <= e["t"] < 11.0]
    assert len([e for e in both_down if e.get("ok")]) >= 10, both_down
