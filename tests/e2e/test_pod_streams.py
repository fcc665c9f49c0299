"""The real kubectl's ``logs`` and ``exec`` against a standalone member process (issue 14).

The member runs as ``python -m federation cluster`` with ``--seccomp-profile-root`` pointing at
examples/pods/seccomp-profiles; examples/pods/exec-and-logs.yaml is applied with kubectl,
then kubectl reads init and main container logs and execs simulated commands over the
WebSocket protocol (``v5.channel.k8s.io``), exit codes carried back. The official Python
client's ``stream`` (``v4.channel.k8s.io``) runs one exec too. Skipped where kubectl is not
installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from clusters.testing import Process, free_port, http, wait_until

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pods"


@pytest.fixture(scope="module")
def member() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process([sys.executable, "-m", "federation", "cluster", "--name", "podexec", "--region", "r1",
                    "--zones", "z1", "--listen", f"127.0.0.1:{port}", "--lb-pool", f"127.81.{port % 250}.0/28",
                    "--pod-ready-delay", "0", "--seccomp-profile-root", str(EXAMPLES / "seccomp-profiles")])
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

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([KUBECTL, "--cache-dir", str(cache), "--server", member, *args],
                                capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="module")
def pod(kubectl) -> str:
    kubectl("apply", "-f", str(EXAMPLES / "exec-and-logs.yaml"))

    def running() -> str | None:
        out = kubectl("get", "pods", "-l", "app=toolbox", "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}").stdout.split()
        return out[0] if len(out) == 2 and out[1] == "Running" else None

    return wait_until(running, timeout=20, interval=0.2, what="the toolbox pod running")


def test_logs_of_init_and_main_containers(kubectl, pod: str) -> None:
    assert kubectl("logs", pod, "-c", "download").stdout.splitlines() == [
        "downloading https://example.com/index.html to /work-dir", "download complete"]
    check = kubectl("logs", pod, "-c", "check").stdout.splitlines()
    assert "hostname" in check and check[-1] == pod
    assert kubectl("logs", pod, "-c", "download", "--tail", "1").stdout == "download complete\n"
    stamped = kubectl("logs", pod, "-c", "download", "--timestamps").stdout.splitlines()
    assert all(line.split(" ", 1)[0].endswith("Z") and line.split(" ", 1)[0][:2] == "20" for line in stamped)
    assert kubectl("logs", pod).stdout == "nginx: simulated server started, listening on port 80\n"


def test_logs_errors_are_statuses(kubectl, pod: str) -> None:
    unknown = kubectl("logs", pod, "-c", "nope", check=False)
    assert unknown.returncode == 1 and f"container nope is not valid for pod {pod}" in unknown.stderr
    previous = kubectl("logs", pod, "-c", "download", "--previous", check=False)
    assert previous.returncode == 1 and 'previous terminated container "download"' in previous.stderr


def test_logs_follow_holds_the_stream_open_for_a_running_container(member: str, pod: str) -> None:
    proc = subprocess.Popen([KUBECTL, "--server", member, "logs", "-f", pod], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("nginx: simulated server started")
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_exec_runs_simulated_commands_with_exit_codes(kubectl, pod: str) -> None:
    assert kubectl("exec", pod, "--", "hostname").stdout == pod + "\n"
    assert kubectl("exec", pod, "--", "echo", "hello", "world").stdout == "hello world\n"
    assert kubectl("exec", pod, "--", "cat", "/etc/hostname").stdout == pod + "\n"
    assert "hostname" in kubectl("exec", pod, "--", "ls", "/etc").stdout.split()
    assert "GREETING=hello" in kubectl("exec", pod, "--", "env").stdout.splitlines()
    assert 'GitVersion:"v1.3.0"' in kubectl("exec", pod, "--", "kubectl", "version").stdout
    chmod = kubectl("exec", pod, "--", "chmod", "777", "/etc/hostname", check=False)
    assert chmod.returncode == 1, chmod
    assert "chmod: changing permissions of '/etc/hostname': Operation not permitted" in chmod.stderr
    unknown = kubectl("exec", pod, "--", "frobnicate", check=False)
    assert unknown.returncode == 127, unknown
    assert 'exec: "frobnicate": executable file not found in $PATH' in unknown.stderr
    script = kubectl("exec", pod, "--", "sh", "-c", "echo one && exit 3", check=False)
    assert (script.returncode, script.stdout) == (3, "one\n")


def test_exec_into_an_unknown_container_and_spdy_are_refused(kubectl, member: str, pod: str) -> None:
    wrong = kubectl("exec", pod, "-c", "nope", "--", "true", check=False)
    assert wrong.returncode == 1 and f"container nope is not valid for pod {pod}" in wrong.stderr
    req = urllib.request.Request(f"{member}/api/v1/namespaces/default/pods/{pod}/exec?command=true&stdout=true",
                                 method="POST", headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400 and b"SPDY/3.1 is not supported" in err.value.read()


def test_python_client_stream_exec(member: str, pod: str) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import stream

    config = kubernetes.client.Configuration(host=member)
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
    resp = stream(api.connect_get_namespaced_pod_exec, pod, "default", command=["sh", "-c", "echo hi; exit 4"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=5)
    assert resp.read_stdout() == "hi\n"
    assert resp.returncode == 4


def test_the_seccomp_pair_of_the_post(kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "seccomp-chmod.yaml"))

    def finished() -> dict[str, str] | None:
        out = kubectl("get", "pods", "chmod-unconfined", "chmod-prevented", "-o",
                      "jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}").stdout.split()
        phases = dict(item.split("=", 1) for item in out)
        return phases if set(phases.values()) <= {"Succeeded", "Failed"} and len(phases) == 2 else None

    assert wait_until(finished, timeout=20, interval=0.2, what="both chmod pods finished") == {
        "chmod-unconfined": "Succeeded", "chmod-prevented": "Failed"}
    state = kubectl("get", "pod", "chmod-prevented", "-o",
                    "jsonpath={.status.containerStatuses[0].state.terminated.exitCode} "
                    "{.status.containerStatuses[0].state.terminated.reason}").stdout
    assert state == "1 Error"
    assert kubectl("logs", "chmod-unconfined").stdout == ""
    assert kubectl("logs", "chmod-prevented").stdout == (
        "chmod: changing permissions of '/etc/hostname': Operation not permitted\n")
    rows = kubectl("get", "pods", "chmod-unconfined", "chmod-prevented").stdout
    assert "Completed" in rows and "Error" in rows
    described = kubectl("describe", "pod", "chmod-prevented").stdout
    assert "Exit Code:    1" in described and "Started container chmod-prevented" in described
    kubectl("delete", "-f", str(EXAMPLES / "seccomp-chmod.yaml"))
