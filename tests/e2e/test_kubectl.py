"""The real kubectl against a real federation API server (and a real member cluster).

The server runs as ``python -m federation federation-apiserver`` with its controllers; one
member cluster joins it, so tables show a Ready cluster and a service's shards. kubectl
runs as a subprocess with ``--server`` and its own ``--cache-dir`` (discovery is cached on
disk). Skipped, with the reason, where kubectl is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from federation.launch.localfed import free_port
from tests.conftest import stop_process, wait_healthy

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")

MEMBER = "kc-member"

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports:
{ports}
"""


def ports_yaml(*numbers: int) -> str:
    return "\n".join(f"  - {{name: p{n}, port: {n}}}" for n in numbers)





@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A federation API server with controllers and one joined member cluster."""
    work = tmp_path_factory.mktemp("kubectl")
    port, member_port = free_port(), free_port()
    url, member_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{member_port}"
    api_log, member_log = work / "apiserver.log", work / "member.log"
    api = subprocess.Popen(
        [sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}",
         "--store", ":memory:"],
        stdout=api_log.open("w"), stderr=subprocess.STDOUT,
    )
    member = None
    try:
        wait_healthy(url, api, api_log, "federation-apiserver")
        member = subprocess.Popen(
            [sys.executable, "-m", "federation", "cluster", "--name", MEMBER, "--region", "kc-region",
             "--zones", "kc-zone-a", "--provider", "aws", "--listen", f"127.0.0.1:{member_port}",
             "--lb-pool", f"127.78.{member_port % 250}.0/24", "--federation", url, "--pod-ready-delay", "0"],
            stdout=member_log.open("w"), stderr=subprocess.STDOUT,
        )
        wait_healthy(member_url, member, member_log, "member cluster")
        yield {"url": url, "member": member_url, "work": str(work), "lb_prefix": f"127.78.{member_port % 250}."}
    finally:
        if member is not None:
            stop_process(member)
        stop_process(api)


@pytest.fixture
def kubectl(federation: dict[str, str], tmp_path: Path):
    cache = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, timeout: float = 30, server: bool = True) -> subprocess.CompletedProcess:
        cmd = [KUBECTL, "--cache-dir", str(cache)]
        if server:
            cmd += ["--server", federation["url"]]
        result = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def api_get(federation: dict[str, str], path: str) -> dict:
    with urllib.request.urlopen(federation["url"] + path, timeout=5) as resp:
        return json.loads(resp.read())


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def eventually(check, seconds: float = 30, interval: float = 0.3):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- discovery and explain ---------------------------------------------------------------


def test_api_resources_show_kinds_short_names_and_groups(kubectl) -> None:
    out = kubectl("api-resources").stdout
    table = {r[0]: r for r in rows(out)[1:]}
    assert table["clusters"][1:] == ["cl", "federation/v1beta1", "false", "Cluster"]
    assert table["services"][1:] == ["svc", "v1", "true", "Service"]
    assert "dnsrecords" in table and "leases" in table and "events" in table


def test_explain_cluster_spec_prints_its_fields(kubectl) -> None:
    out = kubectl("explain", "cluster.spec").stdout
    assert "KIND:       Cluster" in out and "VERSION:    v1beta1" in out
    assert "serverAddressByClientCIDRs" in out and "-required-" in out
    assert "provider" in out
    deeper = kubectl("explain", "cluster.spec.serverAddressByClientCIDRs").stdout
    assert "clientCIDR" in deeper and "serverAddress" in deeper


# --- tables -------------------------------------------------------------------------------


def test_get_clusters_and_a_federated_services_shards(kubectl, federation, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="shardy", ports=ports_yaml(8123))))

    def ready():
        cluster = rows(kubectl("get", "clusters").stdout)
        service = rows(kubectl("get", "svc", "shardy").stdout)
        member_row = next((r for r in cluster[1:] if r[0] == MEMBER), None)
        if member_row and member_row[1] == "True" and len(service) > 1 and service[1][5] == "1/1":
            return cluster, service
        return None

    found = eventually(ready)
    assert found, kubectl("get", "clusters,svc").stdout
    cluster, service = found
    assert cluster[0] == ["NAME", "READY", "OFFLINE", "PROVIDER", "REGION", "ZONES", "AGE"]
    member_row = next(r for r in cluster[1:] if r[0] == MEMBER)
    assert member_row[1:6] == ["True", "False", "aws", "kc-region", "kc-zone-a"]
    assert service[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE"]
    assert service[1][:2] == ["shardy", "LoadBalancer"]
    assert service[1][3].startswith(federation["lb_prefix"]) and service[1][4] == "8123/TCP"

    wide = rows(kubectl("get", "svc", "shardy", "-o", "wide").stdout)
    assert wide[0][-1] == "SELECTOR" and wide[1][-1] == "app=shardy"
    every = rows(kubectl("get", "svc", "-A").stdout)
    assert every[0][0] == "NAMESPACE" and ["default", "shardy"] == every[1][:2]


def test_label_annotate_selectors_show_labels_and_jsonpath(kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="labelled", ports=ports_yaml(80))))
    assert "service/labelled labeled" in kubectl("label", "svc", "labelled", "tier=front").stdout
    assert "annotated" in kubectl("annotate", "svc", "labelled", "owner=team-a").stdout
    assert "cluster.federation/" + MEMBER + " labeled" in kubectl("label", "cluster", MEMBER, "env=test").stdout

    selected = rows(kubectl("get", "svc", "-l", "tier=front").stdout)
    assert [r[0] for r in selected[1:]] == ["labelled"]
    assert "No resources found" in kubectl("get", "svc", "-l", "tier=nothing").stderr
    shown = rows(kubectl("get", "svc", "labelled", "--show-labels").stdout)
    assert shown[0][-1] == "LABELS" and shown[1][-1] == "app=labelled,tier=front"
    assert kubectl("get", "svc", "labelled", "-o", "jsonpath={.metadata.annotations.owner}").stdout == "team-a"
    assert kubectl("get", "cl", "-l", "env=test", "-o", "jsonpath={.items[*].metadata.name}").stdout == MEMBER
    as_yaml = kubectl("get", "svc", "labelled", "-o", "yaml").stdout
    assert "kind: Service" in as_yaml and "tier: front" in as_yaml


def test_get_watch_prints_a_line_per_change(kubectl, federation, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="watched", ports=ports_yaml(80))))
    watcher = subprocess.Popen(
        [KUBECTL, "--cache-dir", str(tmp_path / "watch-cache"), "--server", federation["url"],
         "get", "svc", "watched", "-w", "--show-labels"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    guard = threading.Timer(25, watcher.kill)  # a missing line fails the test, never hangs it
    guard.start()
    try:
        header = watcher.stdout.readline().split()
        first = watcher.stdout.readline().split()
        assert header[0] == "NAME" and first[0] == "watched"
        kubectl("label", "svc", "watched", "phase=two")
        # The controllers may modify the service too (its shards); read until the label shows.
        seen = []
        while not any("phase=two" in line for line in seen):
            line = watcher.stdout.readline()
            if not line:
                break
            seen.append(line)
        assert seen and seen[-1].split()[0] == "watched" and "phase=two" in seen[-1].split()[-1], seen
    finally:
        guard.cancel()
        watcher.kill()
        watcher.wait()


# --- apply, patch, delete ------------------------------------------------------------


def test_reapply_removes_a_port_instead_of_leaving_a_patch_directive(kubectl, federation, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE.format(name="reapplied", ports=ports_yaml(80, 8080)))
    assert "service/reapplied created" in kubectl("apply", "-f", path).stdout
    write(tmp_path, "s.yaml", SERVICE.format(name="reapplied", ports=ports_yaml(80, 9090)))
    assert "service/reapplied configured" in kubectl("apply", "-f", path).stdout
    stored = api_get(federation, "/api/v1/namespaces/default/services/reapplied")
    assert [p["port"] for p in stored["spec"]["ports"]] == [80, 9090]
    write(tmp_path, "s.yaml", SERVICE.format(name="reapplied", ports=ports_yaml(80)))
    kubectl("apply", "-f", path)
    stored = api_get(federation, "/api/v1/namespaces/default/services/reapplied")
    assert stored["spec"]["ports"] == [{"name": "p80", "port": 80, "protocol": "TCP", "targetPort": 80}]
    assert "$patch" not in json.dumps(stored)
    assert "service/reapplied unchanged" in kubectl("apply", "-f", path).stdout


def test_apply_hands_validation_to_the_server(kubectl, tmp_path: Path) -> None:
    bad = SERVICE.format(name="strict", ports=ports_yaml(80)) + "  bogus: 1\n"
    result = kubectl("apply", "-f", write(tmp_path, "bad.yaml", bad), check=False)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogus"' in result.stderr
    invalid = kubectl("apply", "-f", write(tmp_path, "inv.yaml", SERVICE.format(name="inv", ports=ports_yaml(70000))),
                      check=False)
    assert invalid.returncode != 0 and "spec.ports[0].port" in invalid.stderr


def test_server_side_apply_owns_fields_and_reports_conflicts(kubectl, federation, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE.format(name="ssa", ports=ports_yaml(80, 81)))
    assert "service/ssa serverside-applied" in kubectl("apply", "--server-side", "-f", path).stdout
    stored = api_get(federation, "/api/v1/namespaces/default/services/ssa")
    managers = {(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    write(tmp_path, "s.yaml", SERVICE.format(name="ssa", ports=ports_yaml(80)))
    kubectl("apply", "--server-side", "-f", path)
    stored = api_get(federation, "/api/v1/namespaces/default/services/ssa")
    assert [p["port"] for p in stored["spec"]["ports"]] == [80]

    other = SERVICE.format(name="ssa", ports=ports_yaml(80)).replace("type: LoadBalancer", "type: NodePort")
    other_path = write(tmp_path, "o.yaml", other)
    conflict = kubectl("apply", "--server-side", "--field-manager", "someone-else", "-f", other_path, check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower() and ".spec.type" in conflict.stderr
    kubectl("apply", "--server-side", "--field-manager", "someone-else", "--force-conflicts", "-f", other_path)
    assert api_get(federation, "/api/v1/namespaces/default/services/ssa")["spec"]["type"] == "NodePort"


def test_server_side_apply_of_a_cluster(kubectl, federation, tmp_path: Path) -> None:
    cluster = """\
apiVersion: federation/v1beta1
kind: Cluster
metadata: {name: ssa-cluster}
spec:
  provider: gcp
  serverAddressByClientCIDRs:
  - {clientCIDR: 0.0.0.0/0, serverAddress: "http://127.0.0.1:9"}
"""
    path = write(tmp_path, "c.yaml", cluster)
    assert "cluster.federation/ssa-cluster serverside-applied" in kubectl("apply", "--server-side", "-f", path).stdout
    write(tmp_path, "c.yaml", cluster.replace("provider: gcp", "provider: azure"))
    kubectl("apply", "--server-side", "-f", path)
    assert api_get(federation, "/apis/federation/v1beta1/clusters/ssa-cluster")["spec"]["provider"] == "azure"
    assert "deleted" in kubectl("delete", "cluster", "ssa-cluster").stdout


def test_delete_waits_until_gone_and_get_says_not_found(kubectl, federation, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="doomed", ports=ports_yaml(80))))
    assert 'service "doomed" deleted' in kubectl("delete", "svc", "doomed").stdout
    with pytest.raises(urllib.error.HTTPError) as err:
        api_get(federation, "/api/v1/namespaces/default/services/doomed")
    assert err.value.code == 404
    missing = kubectl("get", "svc", "doomed", check=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): services "doomed" not found' in missing.stderr


def test_delete_with_orphan_propagation_is_recorded(kubectl, federation, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="orphaned", ports=ports_yaml(80))))
    watch = urllib.request.urlopen(
        federation["url"] + "/api/v1/namespaces/default/services?watch=true&fieldSelector=metadata.name%3Dorphaned",
        timeout=10,
    )
    try:
        assert json.loads(watch.readline())["type"] == "ADDED"
        kubectl("delete", "svc", "orphaned", "--cascade=orphan")
        deleted = None
        while deleted is None:
            event = json.loads(watch.readline())
            if event["type"] == "DELETED":
                deleted = event["object"]
    finally:
        watch.close()
    assert deleted["metadata"]["annotations"]["federation.kubernetes.io/deletion-propagation"] == "Orphan"


# --- describe and events -------------------------------------------------------------


def test_describe_cluster_shows_its_events(kubectl) -> None:
    def described():
        out = kubectl("describe", "cluster", MEMBER).stdout
        return out if "ClusterReady" in out else None

    out = eventually(described)
    assert out, kubectl("describe", "cluster", MEMBER).stdout
    assert f"Name:         {MEMBER}" in out
    assert "Events:" in out and "federation-controller-manager" in out


def test_describe_service_shows_propagation_events(kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="described", ports=ports_yaml(80))))

    def described():
        out = kubectl("describe", "svc", "described").stdout
        return out if "CreatedInCluster" in out else None

    out = eventually(described)
    assert out, kubectl("describe", "svc", "described").stdout
    # kubectl aligns the values to the longest key shown, and "LoadBalancer Ingress:" appears
    # once a member has given the service an address: compare the words, not the padding.
    lines = {" ".join(line.split()) for line in out.splitlines()}
    assert "Name: described" in lines and "Selector: app=described" in lines, out


# --- kubeconfig ---------------------------------------------------------------------------


def test_kubeconfig_has_contexts_for_the_federation_and_each_member(kubectl, federation, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    result = subprocess.run(
        [sys.executable, "-m", "federation", "--server", federation["url"], "kubeconfig", "--kubeconfig", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "myfed" in result.stdout and MEMBER in result.stdout
    contexts = kubectl("--kubeconfig", str(config), "config", "get-contexts", "-o", "name", server=False).stdout.split()
    assert "myfed" in contexts and MEMBER in contexts
    clusters = kubectl("--kubeconfig", str(config), "--context", "myfed", "get", "clusters", server=False).stdout
    assert MEMBER in clusters
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="ctx-web", ports=ports_yaml(8124))))

    # The member context reaches the member's own API (``get --raw`` needs no discovery, so
    # this holds whatever kinds the member serves to kubectl).
    def in_member():
        out = kubectl("--kubeconfig", str(config), "--context", MEMBER, "get", "--raw",
                      "/api/v1/namespaces/default/services", server=False, check=False)
        return out.returncode == 0 and '"ctx-web"' in out.stdout

    assert eventually(in_member, seconds=20)


# --- kubectl apply --prune without an allowlist (issue 18) -------------------------------


def test_apply_prune_without_an_allowlist_at_the_federation(kubectl, tmp_path: Path) -> None:
    # Every kind of kubectl 1.32's default prune set is in the federation's discovery (those
    # it does not keep, such as pods and persistent volumes, list nothing), so the prune runs.
    manifests = "\n---\n".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{app: fed-prune}}}}\ndata: {{k: v}}"
        for name in ("keep", "drop"))
    kubectl("apply", "-f", write(tmp_path, "both.yaml", manifests))
    done = kubectl("apply", "--prune", "-l", "app=fed-prune", "-f", write(tmp_path, "one.yaml", manifests.split("---")[0]))
    assert "configmap/drop pruned" in done.stdout, done.stdout + done.stderr
    assert kubectl("get", "configmaps", "-l", "app=fed-prune", "-o", "name").stdout.split() == ["configmap/keep"]
    assert "No resources found" in kubectl("get", "pods,pvc,statefulsets").stderr
