"""``ubernetes chaos`` against a real ``ubernetes up``: member switches and launcher faults.

One ``ubernetes up`` (API server, DNS responder, three member clusters, the launcher's
fault API) on free ports serves the module; each CLI call is a real subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from clusters.testing import free_port, http, wait_until
from federation.planners.health import phase_from_conditions
from tests.conftest import random_pool

CLUSTERS = ("aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b")


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chaos")
    topo = tmp / "topology.yaml"
    topo.write_text(yaml.safe_dump({"clusters": [
        {"name": n, "provider": n.split("-")[0], "region": "europe-west1" if n.startswith("gcp") else "us-east-1",
         "zones": [n.split("-", 1)[1] if n.startswith("gcp") else n[4:]], "lbPool": random_pool(i)}
        for i, n in enumerate(CLUSTERS)
    ]}))
    api, dns, control = free_port(), free_port(), free_port()
    base = free_port()  # the members take base, base+1, base+2: free in practice on a quiet loopback
    log = (tmp / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation", "up", "-f", str(topo), "--api-port", str(api), "--dns-port", str(dns),
         "--cluster-base-port", str(base), "--control-listen", f"127.0.0.1:{control}", "--no-color",
         "--store", str(tmp / "fed.db"), "--no-auth", "--kubeconfig", ""],  # tokens: tests/e2e/test_up_auth.py
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    env = {"api": f"http://127.0.0.1:{api}", "launcher": f"http://127.0.0.1:{control}", "proc": proc, "log": tmp / "up.log"}
    try:
        wait_until(lambda: _status(env, "/faults") == 200, timeout=40, what="the launcher's fault API")
        wait_until(lambda: all(phase(env, n) == "Ready" for n in CLUSTERS), timeout=30, what="three Ready clusters")
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _status(env, path):
    try:
        return http("GET", env["launcher"] + path, timeout=2)[0]
    except OSError:
        return None


def phase(env, name):
    try:
        code, body, _ = http("GET", f"{env['api']}/apis/federation/v1beta1/clusters/{name}", timeout=2)
    except OSError:
        return None
    return phase_from_conditions((body.get("status") or {}).get("conditions")) if code == 200 else None


def chaos(env, *args):
    out = subprocess.run(
        [sys.executable, "-m", "federation", "--server", env["api"], "chaos", "--launcher", env["launcher"], *args],
        capture_output=True, text=True, timeout=40,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def test_partition_is_a_member_switch_and_heals(fed):
    assert chaos(fed, "partition", "aws-us-east-1b")["partitioned"] is True
    wait_until(lambda: phase(fed, "aws-us-east-1b") == "Offline", timeout=15, what="Offline after the partition")
    healed = chaos(fed, "heal", "aws-us-east-1b")
    assert healed["partitioned"] is False
    wait_until(lambda: phase(fed, "aws-us-east-1b") == "Ready", timeout=15, what="Ready after the heal")


def test_degrade_and_latency_switches(fed):
    assert chaos(fed, "degrade", "aws-us-east-1a", "default/web", "--pods", "1")["unreadyPods"] == {"default/web": 1}
    assert chaos(fed, "latency", "aws-us-east-1a", "0.2")["apiLatency"] == 0.2
    assert chaos(fed, "drop-probes", "aws-us-east-1a", "0.5")["probeDropFraction"] == 0.5
    shown = chaos(fed, "heal", "aws-us-east-1a")
    assert shown["unreadyPods"] == {} and shown["apiLatency"] == 0 and shown["probeDropFraction"] == 0


def test_the_launcher_says_app_mode_and_packet_verbs_say_what_they_need(fed):
    assert chaos(fed, "show")["mode"] == "app"
    assert chaos(fed, "latency", "aws-us-east-1a", "200ms")["apiLatency"] == 0.2  # units, or bare seconds as before
    assert chaos(fed, "latency", "aws-us-east-1a", "0")["apiLatency"] == 0
    for args in (["loss", "aws-us-east-1a", "10"], ["link-down", "--zone", "us-east-1a"], ["slow-dns", "100ms"],
                 ["partition", "aws-us-east-1a", "--direction", "in"], ["latency", "aws-us-east-1a", "1s", "10ms"]):
        out = subprocess.run([sys.executable, "-m", "federation", "--server", fed["api"], "chaos", "--launcher",
                              fed["launcher"], *args], capture_output=True, text=True, timeout=40)
        assert out.returncode == 1 and "ubernetes up --netns" in out.stderr, (args, out.stderr)


def test_crash_and_start_go_through_the_launcher(fed):
    state = chaos(fed, "crash", "gcp-europe-west1-b")
    assert state["clusters"]["gcp-europe-west1-b"] == "stopped"
    wait_until(lambda: phase(fed, "gcp-europe-west1-b") == "Offline", timeout=15, what="Offline after the crash")
    assert chaos(fed, "start", "gcp-europe-west1-b")["clusters"]["gcp-europe-west1-b"] == "running"
    wait_until(lambda: phase(fed, "gcp-europe-west1-b") == "Ready", timeout=20, what="Ready after the restart")


def test_zone_down_stop_api_and_heal_everything(fed):
    state = chaos(fed, "zone-down", "us-east-1a")
    assert state["clusters"]["aws-us-east-1a"] == "stopped" and state["clusters"]["aws-us-east-1b"] == "running"
    assert chaos(fed, "stop-api")["apiserver"] == "stopped"
    assert phase(fed, "aws-us-east-1b") is None  # the API is gone
    state = chaos(fed, "heal")
    assert state["apiserver"] == "running" and set(state["clusters"].values()) == {"running"}
    wait_until(lambda: all(phase(fed, n) == "Ready" for n in CLUSTERS), timeout=30, what="everything Ready again")


def test_unknown_cluster_is_a_clear_error(fed):
    out = subprocess.run(
        [sys.executable, "-m", "federation", "chaos", "--launcher", fed["launcher"], "crash", "nowhere"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode != 0 and "no such cluster(s): nowhere" in out.stderr
