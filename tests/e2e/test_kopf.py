"""kopf, unmodified, runs a delete handler against the federation and against a member (issue 18).

kopf puts its finalizer on every Service it handles and removes it when the delete handler
has run; a server that deletes at once (ignoring finalizers) never lets the handler run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clusters.testing import ClusterProcess, http
from tests.conftest import apiserver
from tests.e2e.test_clients import SVC

KOPF = shutil.which("kopf", path=str(Path(sys.executable).parent)) or shutil.which("kopf")
pytestmark = pytest.mark.skipif(KOPF is None, reason="kopf is not installed")
OPERATOR = Path(__file__).parent / "operators" / "finalizing.py"


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    if request.param == "member":
        proc = ClusterProcess(name="aws-kopf-1", region="us-east-1", zones="us-east-1a", extra=["--pod-ready-delay", "0"])
        try:
            yield proc.wait_ready().url
        finally:
            proc.close()
        return
    with apiserver(tmp_path_factory.mktemp("kopf"), "--no-controllers") as url:
        yield url


def wait_for(predicate, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kopfs_delete_handler_runs_before_the_service_goes(server, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: s, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: s, user: {}}]\n"
        "contexts: [{name: s, context: {cluster: s, user: s, namespace: default}}]\n"
        "current-context: s\n")
    out = tmp_path / "handled.txt"
    out.write_text("")
    log = (tmp_path / "kopf.log").open("w")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KOPF_OUT=str(out))
    operator = subprocess.Popen([KOPF, "run", "--standalone", "-n", "default", str(OPERATOR)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        assert http("POST", server + SVC, {"metadata": {"name": "kopf-1"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
        wait_for(lambda: "created kopf-1" in out.read_text(), 30, "kopf's create handler")
        wait_for(lambda: "example.com/kopf-finalizer" in (
            http("GET", server + SVC + "/kopf-1")[1]["metadata"].get("finalizers") or []), 10, "kopf's finalizer")
        code, marked, _ = http("DELETE", server + SVC + "/kopf-1")
        assert code == 200 and marked["metadata"].get("deletionTimestamp"), marked  # held by the finalizer
        wait_for(lambda: http("GET", server + SVC + "/kopf-1")[0] == 404, 30, "the service to go")
        assert "deleted kopf-1" in out.read_text()
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
        log.close()
