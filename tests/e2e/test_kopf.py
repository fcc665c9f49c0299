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

from clusters.testing import http, wait_until
from tests.conftest import one_server
from tests.e2e.test_clients import SVC

KOPF = shutil.which("kopf", path=str(Path(sys.executable).parent)) or shutil.which("kopf")
pytestmark = pytest.mark.skipif(KOPF is None, reason="kopf is not installed")
OPERATOR = Path(__file__).parent / "operators" / "finalizing.py"


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    with one_server(request.param, tmp_path_factory.mktemp("kopf"), "aws-kopf-1") as url:
        yield url


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
        wait_until(lambda: "created kopf-1" in out.read_text(), timeout=30, what="kopf's create handler")
        wait_until(lambda: "example.com/kopf-finalizer" in (
            http("GET", server + SVC + "/kopf-1")[1]["metadata"].get("finalizers") or []), timeout=10, what="kopf's finalizer")
        code, marked, _ = http("DELETE", server + SVC + "/kopf-1")
        assert code == 200 and marked["metadata"].get("deletionTimestamp"), marked  # held by the finalizer
        wait_until(lambda: http("GET", server + SVC + "/kopf-1")[0] == 404, timeout=30, what="the service to go")
        assert "deleted kopf-1" in out.read_text()
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
        log.close()
