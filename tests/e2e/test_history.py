"""The failover history against a real ``ubernetes up``: crash a member through ``ubernetes chaos``,
then ``ubernetes history`` and ``kubectl get failoverrecords`` show its steps in order (issue 17)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from clusters.testing import http, wait_until
from tests.e2e.test_chaos_cli import chaos, fed, phase  # noqa: F401 - the module's real federation

VICTIM = "gcp-europe-west1-b"


def cli(env, *args):
    out = subprocess.run([sys.executable, "-m", "federation", "--server", env["api"], *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def records(env):
    return json.loads(cli(env, "history", "--cluster", VICTIM, "-o", "json"))["items"]


def shards_healthy(env):
    code, body, _ = http("GET", f"{env['api']}/api/v1/namespaces/default/services/web", timeout=2)
    shards = (body.get("status") or {}).get("shards") or [] if code == 200 else []
    return len([s for s in shards if s.get("ingress") and s.get("readyEndpoints")]) == 3


def test_a_crash_is_recorded_step_by_step(fed):  # noqa: F811
    http("POST", f"{fed['api']}/api/v1/namespaces/default/services",
         {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    wait_until(lambda: shards_healthy(fed), timeout=30, what="web's three shards")
    wait_until(lambda: phase(fed, VICTIM) == "Ready", timeout=30, what="the victim Ready")
    chaos(fed, "crash", VICTIM)
    wait_until(lambda: any(r["spec"]["step"] == "Served" for r in records(fed)), timeout=30,
               what="a Served step after the crash")
    wait_until(lambda: phase(fed, VICTIM) == "Offline", timeout=15, what="Offline")
    wait_until(lambda: sum(r["spec"]["step"] == "Verdict" for r in records(fed)) >= 2, timeout=15,
               what="the cluster's verdict too")
    found = records(fed)
    fault = next(r["spec"]["incident"] for r in found if r["spec"]["step"] == "Fault")
    items = [r for r in found if r["spec"]["incident"] == fault]
    steps = [r["spec"]["step"] for r in items]
    assert steps[0] == "Fault" and "ProbeFailed" in steps and "Vote" in steps
    order = ["Fault", "ProbeFailed", "Vote", "Verdict", "RecordsChanged", "Served"]
    firsts = [steps.index(s) for s in order]
    assert firsts == sorted(firsts), steps
    since = [r["spec"]["sinceFault"] for r in items]
    assert since == sorted(since) and since[0] == 0.0
    served = next(r["spec"] for r in items if r["spec"]["step"] == "Served")
    assert isinstance(served["serial"], int) and served["service"] == "default/web"
    assert 0 < served["sinceFault"] < 10, served  # data-plane votes: about a second, not the 40 s of v1
    assert 0 <= served["detectionToDNS"] < 2
    changed = next(r["spec"] for r in items if r["spec"]["step"] == "RecordsChanged")
    assert changed["answers"] and changed["time"].endswith("Z")
    table = cli(fed, "history", "--cluster", VICTIM)
    print(table)
    assert table.splitlines()[0].split()[:4] == ["TIME", "STEP", "+LATENCY", "SINCE-FAULT"]
    assert "Served" in table and "Fault" in table
    chaos(fed, "start", VICTIM)
    wait_until(lambda: any(r["spec"]["step"] == "Recovered" for r in records(fed)), timeout=30, what="Recovered")
    wait_until(lambda: phase(fed, VICTIM) == "Ready", timeout=20, what="Ready again")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_lists_failoverrecords(fed, tmp_path):  # noqa: F811
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "f",
        "clusters": [{"name": "f", "cluster": {"server": fed["api"]}}],
        "contexts": [{"name": "f", "context": {"cluster": "f", "user": "u"}}], "users": [{"name": "u", "user": {}}]}))
    wait_until(lambda: records(fed), timeout=30, what="some records")
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
                          "get", "fr"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["TIME", "STEP", "CLUSTER"] and VICTIM in out.stdout
