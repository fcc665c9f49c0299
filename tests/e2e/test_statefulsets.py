"""The real kubectl against a standalone member's StatefulSets and PetSets (issue 14).

examples/statefulsets/web.yaml and petset.yaml are applied with kubectl to a member process
(``python -m federation cluster``); a watch started before the apply records the order the
pods start in (each Running and Ready before the next), then a pod deletion and a
scale-down, and kubectl get/describe/exec show the stable names, claims and DNS names.
Skipped where kubectl is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from clusters.testing import Process, free_port, http, wait_until

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "statefulsets"
# the set's pods (the Service, applied first, has the member's per-service pods until the set exists)
SET_PODS = "app=nginx,statefulset.kubernetes.io/pod-name"


@pytest.fixture(scope="module")
def member() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process([sys.executable, "-m", "federation", "cluster", "--name", "stateful", "--region", "r1",
                    "--zones", "z1,z2", "--listen", f"127.0.0.1:{port}", "--lb-pool", f"127.83.{port % 250}.0/28",
                    "--pod-ready-delay", "0.3"])
    try:
        def up() -> bool:
            assert proc.alive(), proc.logs()
            try:
                return http("GET", url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=20, what="the member cluster")
        yield url
    finally:
        proc.close()


@pytest.fixture(scope="module")
def kubectl(member: str, tmp_path_factory):
    cache = tmp_path_factory.mktemp("kube-cache")

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([KUBECTL, "--cache-dir", str(cache), "--server", member, *args],
                                capture_output=True, text=True, timeout=30, input=input)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    return run


class PodWatch:
    """``kubectl get pods -w -o json`` in the background: every state of every pod, in order."""

    def __init__(self, member: str, selector: str) -> None:
        self.proc = subprocess.Popen([KUBECTL, "--server", member, "get", "pods", "-l", selector, "-w",
                                      "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE, text=True)
        self.events: list[tuple[str, str, bool, bool]] = []  # (type, name, ready, terminating)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # one event per line
            if not line.strip():
                continue
            event = json.loads(line)
            pod = event["object"]
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])
            self.events.append((event["type"], pod["metadata"]["name"], ready, bool(pod["metadata"].get("deletionTimestamp"))))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


def pods(kubectl) -> list[tuple[str, str]]:
    out = kubectl("get", "pods", "-l", SET_PODS, "-o",
                  "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}").stdout
    return sorted(tuple(line.split()) for line in out.splitlines() if line.strip())


def test_ordered_start_stable_identity_and_reverse_scale_down(member: str, kubectl) -> None:
    watch = PodWatch(member, SET_PODS)
    try:
        kubectl("apply", "-f", str(EXAMPLES / "web.yaml"))
        wait_until(lambda: pods(kubectl) == [("web-0", "True"), ("web-1", "True"), ("web-2", "True")],
                   timeout=20, interval=0.2, what="web-0..2 Ready")
        added = [name for kind, name, _, _ in watch.events if kind == "ADDED"]
        assert added == ["web-0", "web-1", "web-2"]
        for i in (1, 2):  # web-<i> appeared only once web-<i-1> was Ready
            first = next(n for n, e in enumerate(watch.events) if e[0] == "ADDED" and e[1] == f"web-{i}")
            assert any(e[1] == f"web-{i - 1}" and e[2] for e in watch.events[:first]), watch.events

        claims = kubectl("get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid} {end}").stdout.split()
        uid_before = kubectl("get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}").stdout
        kubectl("delete", "pod", "web-1")  # returns once the old web-1 is gone
        wait_until(lambda: ("web-1", "True") in pods(kubectl), timeout=20, interval=0.2, what="web-1 back")
        assert kubectl("get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}").stdout != uid_before
        assert kubectl("get", "pod", "web-1", "-o",
                       "jsonpath={.spec.volumes[?(@.name=='www')].persistentVolumeClaim.claimName}").stdout == "www-web-1"
        assert kubectl("get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid} {end}").stdout.split() == claims
        assert kubectl("exec", "web-0", "--", "getent", "hosts", "web-1.nginx").stdout.split()[1] == \
            "web-1.nginx.default.svc.cluster.local"

        mark = len(watch.events)
        kubectl("scale", "statefulset", "web", "--replicas=1")
        wait_until(lambda: pods(kubectl) == [("web-0", "True")], timeout=20, interval=0.2, what="scaled to web-0")
        deleted = [name for kind, name, _, _ in watch.events[mark:] if kind == "DELETED"]
        assert deleted == ["web-2", "web-1"]
        assert len(claims) == 3 and len(kubectl("get", "pvc", "-o", "name").stdout.split()) == 3  # claims stay
    finally:
        watch.close()


def test_get_and_describe_with_kubectl(kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "petset.yaml"))
    wait_until(lambda: kubectl("get", "petset", "pet", "-o", "jsonpath={.status.replicas}").stdout == "2",
               timeout=20, interval=0.2, what="the PetSet's two pods")
    out = kubectl("get", "petsets,statefulsets,pods,pvc").stdout
    for expected in ("petset.apps/pet", "statefulset.apps/web", "pod/pet-0", "pod/pet-1", "pod/web-0",
                     "persistentvolumeclaim/www-pet-0", "persistentvolumeclaim/www-web-2", "Bound"):
        assert expected in out, out
    described = kubectl("describe", "statefulset", "web").stdout
    assert "Replicas:           1 desired | 1 total" in described, described
    assert "create Claim www-web-0 Pod web-0 in StatefulSet web success" in described
    assert "delete Pod web-2 in StatefulSet web successful" in described
    bad = (EXAMPLES / "web.yaml").read_text().split("---\n")[1].replace("name: web\n", "name: bad\n", 1)
    bad = bad.replace("replicas: 3", "replicas: -1")
    refused = kubectl("create", "-f", "-", input=bad, check=False)
    assert refused.returncode == 1 and 'The StatefulSet "bad" is invalid' in refused.stderr, refused.stderr
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in refused.stderr
