"""Client libraries beside kubectl and the official Python client (issue 18), unmodified.

lightkube, kr8s and @kubernetes/client-node each against a real federation API server and
a real member cluster: create, the ``scale`` subresource (lightkube's ``Deployment.Scale``,
kr8s's ``scale()``, client-node's ``readNamespacedDeploymentScale``), list, watch, patch,
server-side apply, label, delete, discovery (kr8s starts from ``/version/`` and the
resource lists; client-node's ``VersionApi``), and a 404 read back as a ``Status``.
client-node runs under the machine's Node.js (20 or newer), installed by npm into
``tests/e2e/node`` at the version its package.json pins; without Node.js or npm the test
says so and skips.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import kr8s
import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec, ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from tests.conftest import one_server

NODE_DIR = Path(__file__).with_name("node")


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    with one_server(request.param, tmp_path_factory.mktemp("libraries"), "aws-libraries-1") as url:
        yield url


def deployment_spec(app: str, replicas: int = 1) -> DeploymentSpec:
    return DeploymentSpec(
        replicas=replicas, selector={"matchLabels": {"app": app}},
        template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": app}),
                                 spec=PodSpec(containers=[Container(name="web", image="nginx")])))


def lightkube_client(server: str) -> Client:
    """lightkube's client from a kubeconfig as a user would have it (no credentials)."""
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
              "clusters": [{"name": "x", "cluster": {"server": server}}],
              "users": [{"name": "x", "user": {}}],
              "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}
    return Client(config=KubeConfig.from_dict(config), namespace="default", field_manager="lightkube")


def test_lightkube_scales_lists_watches_applies_and_reads_a_404(server):
    client = lightkube_client(server)
    client.create(Deployment(metadata=ObjectMeta(name="lk-web"), spec=deployment_spec("lk-web")))
    scale = client.get(Deployment.Scale, "lk-web")
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=lk-web")
    scale.spec.replicas = 3
    client.replace(scale)
    assert client.get(Deployment, "lk-web").spec.replicas == 3
    assert "lk-web" in [d.metadata.name for d in client.list(Deployment)]
    client.patch(Deployment, "lk-web", {"metadata": {"labels": {"team": "a"}}})
    event, obj = next(itertools.islice(client.watch(Deployment, labels={"team": "a"}), 1))
    assert (event, obj.metadata.name) == ("ADDED", "lk-web")
    client.apply(Service(metadata=ObjectMeta(name="lk-svc"), spec=ServiceSpec(ports=[ServicePort(port=80)])))
    applied = client.get(Service, "lk-svc")
    assert applied.spec.ports[0].port == 80
    assert "lightkube" in [m.manager for m in applied.metadata.managedFields]
    client.delete(Deployment, "lk-web")
    with pytest.raises(ApiError) as missing:
        client.get(Deployment, "lk-web")
    assert (missing.value.status.code, missing.value.status.reason) == (404, "NotFound")
    assert missing.value.status.details.name == "lk-web"


def test_kr8s_starts_from_discovery_and_scales_labels_and_deletes(server):
    api = kr8s.api(url=server)
    assert api.version()["gitVersion"].startswith("v1.32")
    kinds = {r["name"] for r in api.api_resources()}
    assert {"services", "deployments", "namespaces"} <= kinds
    deployment = kr8s.objects.Deployment({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kr8s-web", "namespace": "default"},
        "spec": deployment_spec("kr8s-web").to_dict()}, api=api)
    deployment.create()
    deployment.scale(2)
    deployment.refresh()
    assert deployment.replicas == 2
    deployment.label(team="b")
    found = list(api.get("deployments", namespace="default", label_selector="team=b"))
    assert [d.name for d in found] == ["kr8s-web"]
    deployment.delete()
    assert not deployment.exists()


def node_client() -> Path:
    """tests/e2e/node with client-node installed, or a skip that says what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed (client-node needs Node.js 20 or newer)")
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.lstrip("v").split(".")[0])
    if major < 20:
        pytest.skip(f"client-node 1.x needs Node.js 20 or newer; this machine has {major}")
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["@kubernetes/client-node"]
    installed = NODE_DIR / "node_modules" / "@kubernetes" / "client-node" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock"],
                              cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm could not install @kubernetes/client-node {pinned}: {done.stderr[-400:]}")
    return NODE_DIR / "client.mjs"


def test_client_node_scales_lists_watches_and_reads_a_404(server):
    script = node_client()
    done = subprocess.run(["node", str(script), server], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    steps = {line["step"]: line["value"] for line in map(json.loads, done.stdout.splitlines())}
    assert "node-svc" in steps.pop("services")
    assert steps == {
        "version": "v1.32.0-ubernetes",
        "scale": {"replicas": 1, "selector": "app=node-web"},
        "replicas": 3,
        "missing": {"code": 404, "reason": "NotFound"},
        "watched": "DELETED",
    }
