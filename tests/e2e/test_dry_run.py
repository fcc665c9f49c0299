"""Server-side dry run, diff and delete --all with the real kubectl (issue 11), against a real
federation API server and a real member cluster: the same answers from both.

``dryRun=All`` runs the whole write and stores nothing: ``kubectl apply --dry-run=server``
creates nothing, ``kubectl diff`` shows what an apply would change (exit 1) or nothing
(exit 0), ``kubectl delete --dry-run=server`` deletes nothing, ``kubectl delete --all``
deletes everything; a dry run that would fail fails the same way (409 AlreadyExists).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clusters.testing import http
from tests.conftest import one_server

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: %d}]
"""


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    with one_server(request.param, tmp_path_factory.mktemp("dry-run"), "aws-dry-1") as url:
        yield url


def kubectl(server: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--server", server, "--cache-dir", str(tmp / "cache"), *args],
                          capture_output=True, text=True, timeout=60)


def services(server: str) -> list[str]:
    return [o["metadata"]["name"] for o in http("GET", server + "/api/v1/namespaces/default/services")[1]["items"]]


def test_dry_run_diff_and_delete_all(server, tmp_path):
    v80, v81 = tmp_path / "v80.yaml", tmp_path / "v81.yaml"
    v80.write_text(SERVICE % 80)
    v81.write_text(SERVICE % 81)
    done = kubectl(server, tmp_path, "apply", "--dry-run=server", "-f", str(v80))
    assert done.returncode == 0 and "created (server dry run)" in done.stdout, done.stderr
    assert services(server) == []  # nothing stored
    assert kubectl(server, tmp_path, "apply", "-f", str(v80)).returncode == 0
    assert kubectl(server, tmp_path, "diff", "-f", str(v80)).returncode == 0  # no change
    diff = kubectl(server, tmp_path, "diff", "-f", str(v81))
    assert diff.returncode == 1 and "-  - port: 80" in diff.stdout and "+  - port: 81" in diff.stdout, diff
    port = http("GET", server + "/api/v1/namespaces/default/services/web")[1]["spec"]["ports"][0]["port"]
    assert port == 80  # the diff's dry-run patch changed nothing
    done = kubectl(server, tmp_path, "delete", "--dry-run=server", "service", "web")
    assert done.returncode == 0 and "(server dry run)" in done.stdout, done.stderr
    assert services(server) == ["web"]
    # a dry run that would fail fails as the real write would, with the same Status
    code, body, _ = http("POST", server + "/api/v1/namespaces/default/services?dryRun=All",
                         {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    assert (code, body["reason"]) == (409, "AlreadyExists"), body
    code, body, _ = http("POST", server + "/api/v1/namespaces/default/services?dryRun=Bogus",
                         {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 80}]}})
    assert code == 400 and "dry run" in body["message"] and services(server) == ["web"]
    (tmp_path / "two.yaml").write_text((SERVICE % 82).replace("name: web", "name: api"))
    assert kubectl(server, tmp_path, "apply", "-f", str(tmp_path / "two.yaml")).returncode == 0
    done = kubectl(server, tmp_path, "delete", "services", "--all")
    assert done.returncode == 0, done.stderr
    assert services(server) == []
