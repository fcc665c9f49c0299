"""The real kubectl against a member cluster's own API (issue 3).

A member runs as ``python -m federation cluster`` (``ubernetes cluster``) joined to a real
federation API server, so the same processes serve both ways of reaching it: ``kubectl
--server <member>`` and ``kubectl --context <member>`` through the kubeconfig ``ubernetes
kubeconfig`` writes. kubectl keeps its discovery cache in a per-test ``--cache-dir``.
Skipped, with the reason, where kubectl is not installed.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from clusters.testing import Process, free_port, http, wait_until

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")

MEMBER = "kcm-member"
ZONES = ("kcm-zone-a", "kcm-zone-b")

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  annotations: {{ubernetes.io/pods: "{pods}"}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports:
{ports}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: app, image: "example/{name}:1", ports: [{{containerPort: 8080}}]}}
"""


def ports_yaml(*numbers: int) -> str:
    return "\n".join(f"  - {{name: p{n}, port: {n}}}" for n in numbers)


def healthy(url: str, proc: Process) -> bool:
    if not proc.alive():
        raise AssertionError(f"{proc.args[3]} exited early:\n{proc.logs()}")
    try:
        return http("GET", url + "/healthz", timeout=1)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def member() -> Iterator[dict[str, str]]:
    """A federation API server (with controllers) and one member cluster joined to it."""
    port, member_port = free_port(), free_port()
    url, member_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{member_port}"
    pool = f"127.79.{member_port % 250}.0/28"
    api = Process([sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}",
                   "--store", ":memory:"])
    cluster = None
    try:
        wait_until(lambda: healthy(url, api), timeout=20, what="the federation API server")
        cluster = Process([sys.executable, "-m", "federation", "cluster", "--name", MEMBER, "--region", "kcm-region",
                           "--zones", ",".join(ZONES), "--provider", "aws", "--listen", f"127.0.0.1:{member_port}",
                           "--lb-pool", pool, "--federation", url, "--pod-ready-delay", "0"])
        wait_until(lambda: healthy(member_url, cluster), timeout=20, what="the member cluster")
        yield {"federation": url, "url": member_url, "lb_prefix": pool.rsplit(".", 1)[0] + "."}
    finally:
        if cluster is not None:
            cluster.close()
        api.close()


@pytest.fixture
def kubectl(member: dict[str, str], tmp_path: Path):
    cache = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, server: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        cmd = [KUBECTL, "--cache-dir", str(cache)] + (["--server", member["url"]] if server else []) + list(args)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """kubectl's table output as (header cells, rows by NAME). Cells are split on 2+ spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], {cells[0]: cells for cells in split[1:]}


def get_json(kubectl, *args: str) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def eventually(check, seconds: float = 20):
    return wait_until(check, timeout=seconds, interval=0.2, what=getattr(check, "__name__", "condition"))


# --- discovery --------------------------------------------------------------------------


def test_api_resources_list_the_members_kinds_with_short_names(kubectl) -> None:
    header, rows = table(kubectl("api-resources").stdout)
    assert header[:2] == ["NAME", "SHORTNAMES"]
    reviews = {"selfsubjectaccessreviews", "selfsubjectreviews"}  # kubectl auth can-i / whoami, as on a real cluster
    assert reviews <= set(rows)
    mcs = {"serviceexports": "svcex", "serviceimports": "svcim", "clusterproperties": "about.k8s.io/v1alpha1"}  # issue 14
    assert {name: rows[name][1] for name in mcs} == mcs  # clusterproperties has no short name: the next cell
    assert rows["secrets"][1] == "v1"  # no short name, as on a real cluster: the next cell is APIVERSION (issue 15)
    assert rows["petsets"][1] == "apps/v1alpha1"  # Kubernetes 1.3's PetSet: no short name (issue 14)
    assert rows["jobs"][1] == "batch/v1"  # neither has jobs one
    shorts = {name: cells[1] for name, cells in rows.items()
              if name not in reviews | set(mcs) | {"secrets", "petsets", "jobs"}}
    assert shorts == {"nodes": "no", "namespaces": "ns", "services": "svc", "endpoints": "ep", "pods": "po",
                      "events": "ev", "deployments": "deploy", "replicasets": "rs", "configmaps": "cm",
                      "cronjobs": "cj", "daemonsets": "ds", "ingresses": "ing",  # issue 15
                      "statefulsets": "sts", "persistentvolumeclaims": "pvc",  # issue 14
                      "persistentvolumes": "pv", "replicationcontrollers": "rc"}  # served empty for kubectl apply --prune (issue 18)


# --- get, as kubectl prints a real cluster ----------------------------------------------


def test_get_svc_and_pods_wide_and_endpoints(kubectl, member, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="shop", pods=2, ports=ports_yaml(80))))

    def ready_pods():
        header, rows = table(kubectl("get", "pods", "-o", "wide", "-l", "ubernetes.io/service=shop").stdout)
        return (header, rows) if len(rows) == 2 and all(r[1] == "1/1" for r in rows.values()) else None

    header, rows = eventually(ready_pods)
    assert header[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert sorted(rows) == ["shop-0", "shop-1"]
    assert {r[2] for r in rows.values()} == {"Running"}
    nodes = {r[6] for r in rows.values()}
    assert nodes == {f"{MEMBER}-{z}-node-0" for z in ZONES}  # spread over both zones
    ips = [r[5] for r in rows.values()]
    assert all(ip.startswith("10.") for ip in ips)

    header, rows = table(kubectl("get", "svc", "shop").stdout)
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    name, stype, cluster_ip, external, ports, _ = rows["shop"]
    assert stype == "LoadBalancer" and cluster_ip.startswith("10.96.")
    assert external.startswith(member["lb_prefix"]) and ports.startswith("80:3") and ports.endswith("/TCP")

    def endpoints():
        _, rows = table(kubectl("get", "ep", "shop").stdout)
        return rows["shop"][1] if "shop" in rows and rows["shop"][1] != "<none>" else None

    assert sorted(eventually(endpoints).split(",")) == sorted(f"{ip}:80" for ip in ips)
    kubectl("delete", "svc", "shop")


def test_get_nodes_show_labels(kubectl) -> None:
    header, rows = table(kubectl("get", "nodes", "--show-labels").stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "LABELS"]
    assert sorted(rows) == [f"{MEMBER}-{z}-node-0" for z in ZONES]
    for zone in ZONES:
        cells = rows[f"{MEMBER}-{zone}-node-0"]
        assert cells[1] == "Ready"
        assert f"topology.kubernetes.io/zone={zone}" in cells[5].split(",")
        assert "topology.kubernetes.io/region=kcm-region" in cells[5].split(",")


def test_get_deploy_and_rs_and_scale_by_patch(kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "d.yaml", DEPLOYMENT.format(name="api", replicas=2)))

    def deployed():
        header, rows = table(kubectl("get", "deploy").stdout)
        return (header, rows["api"]) if "api" in rows and rows["api"][1] == "2/2" else None

    header, row = eventually(deployed)
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] and row[2:4] == ["2", "2"]
    header, rows = table(kubectl("get", "rs", "-o", "wide", "-l", "app=api").stdout)
    assert header == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    (rs,) = rows.values()
    assert rs[0].startswith("api-") and rs[1:4] == ["2", "2", "2"] and rs[6] == "example/api:1"

    # kubectl patch sends a strategic merge patch for a built-in kind
    kubectl("patch", "deploy", "api", "-p", '{"spec":{"replicas":3}}')
    assert eventually(lambda: table(kubectl("get", "deploy", "api").stdout)[1]["api"][1] == "3/3")
    kubectl("delete", "deploy", "api")
    assert eventually(lambda: not table(kubectl("get", "pods", "-l", "app=api").stdout or "NAME\n")[1])


def test_describe_pod(kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="desc", pods=1, ports=ports_yaml(8080))))
    eventually(lambda: "1/1" in kubectl("get", "pod", "desc-0", check=False).stdout)
    out = kubectl("describe", "pod", "desc-0").stdout
    assert "Name:         desc-0" in out and "Namespace:    default" in out
    assert f"Node:         {MEMBER}-{ZONES[0]}-node-0/" in out
    assert "Status:       Running" in out and "State:          Running" in out
    assert "Ready             True" in out and "Events:" in out
    kubectl("delete", "svc", "desc")


# --- apply, re-apply, delete ----------------------------------------------------------------


def test_reapply_removes_a_port_and_delete_waits_until_gone(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE.format(name="reapply", pods=1, ports=ports_yaml(80, 81)))
    assert "service/reapply created" in kubectl("apply", "-f", path).stdout
    assert [p["port"] for p in get_json(kubectl, "svc", "reapply")["spec"]["ports"]] == [80, 81]
    write(tmp_path, "s.yaml", SERVICE.format(name="reapply", pods=1, ports=ports_yaml(81)))
    assert "service/reapply configured" in kubectl("apply", "-f", path).stdout
    obj = get_json(kubectl, "svc", "reapply")
    assert [p["port"] for p in obj["spec"]["ports"]] == [81]
    assert "$patch" not in json.dumps(obj)
    assert 'service "reapply" deleted' in kubectl("delete", "-f", path).stdout
    gone = kubectl("get", "svc", "reapply", check=False)
    assert gone.returncode != 0 and 'services "reapply" not found' in gone.stderr


def test_apply_leaves_validation_to_the_server(kubectl, tmp_path: Path) -> None:
    bad = SERVICE.format(name="strict", pods=1, ports=ports_yaml(80)).replace("type: LoadBalancer", "tpye: LoadBalancer")
    result = kubectl("apply", "-f", write(tmp_path, "bad.yaml", bad), check=False)
    assert result.returncode != 0 and 'unknown field "spec.tpye"' in result.stderr


# --- watch ----------------------------------------------------------------------------------


def test_get_pods_watch_prints_new_pods(kubectl, member, tmp_path: Path) -> None:
    """``get -w`` lists, then watches from the list's resourceVersion: created and deleted
    pods show up as ADDED and DELETED lines (whether they land before or after the list)."""
    cmd = [KUBECTL, "--cache-dir", str(tmp_path / "watch-cache"), "--server", member["url"], "get", "pods", "-w",
           "-l", "ubernetes.io/service=watched", "--output-watch-events"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip()) for line in proc.stdout or []], daemon=True).start()
    seen: list[str] = []

    def wait_for_line(predicate, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not any(predicate(line) for line in seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no such watch line within {seconds} s; got: {seen}")
            try:
                seen.append(lines.get(timeout=remaining))
            except queue.Empty:
                pass

    try:
        kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="watched", pods=2, ports=ports_yaml(80))))
        for pod in ("watched-0", "watched-1"):
            wait_for_line(lambda line, pod=pod: line.split()[:2] == ["ADDED", pod])
        kubectl("delete", "svc", "watched")
        wait_for_line(lambda line: line.split()[:1] == ["DELETED"] and "watched-" in line)
    finally:
        proc.kill()
        proc.wait()


# --- through the kubeconfig ``ubernetes kubeconfig`` writes ------------------------------


def test_member_context_from_ubernetes_kubeconfig(kubectl, member, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    result = subprocess.run(
        [sys.executable, "-m", "federation", "--server", member["federation"], "kubeconfig", "--kubeconfig", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    kubectl("apply", "-f", write(tmp_path, "s.yaml", SERVICE.format(name="ctx", pods=1, ports=ports_yaml(8125))))
    header, rows = table(kubectl("--kubeconfig", str(config), "--context", MEMBER, "get", "svc", server=False).stdout)
    assert header[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    assert rows["ctx"][1] == "LoadBalancer"
    _, nodes = table(kubectl("--kubeconfig", str(config), "--context", MEMBER, "get", "no", server=False).stdout)
    assert sorted(nodes) == [f"{MEMBER}-{z}-node-0" for z in ZONES]
    kubectl("delete", "svc", "ctx")


# --- kubectl apply --prune without an allowlist (issue 18) -------------------------------

PRUNE_SET = """apiVersion: v1
kind: ConfigMap
metadata: {name: prune-keep, labels: {app: prune-demo}}
data: {a: "1"}
---
apiVersion: batch/v1
kind: Job
metadata: {name: prune-job, labels: {app: prune-demo}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["sh", "-c", "echo ok"]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: prune-drop, labels: {app: prune-demo}}
data: {b: "2"}
"""


def test_apply_prune_without_an_allowlist_prunes_what_left_the_manifests(kubectl, tmp_path: Path) -> None:
    # kubectl 1.32 looks up its whole default prune set in discovery (PVCs, PVs,
    # ReplicationControllers, StatefulSets, Jobs, CronJobs, Ingresses, DaemonSets among them)
    # and stops at the first kind it cannot find.
    kubectl("apply", "-f", write(tmp_path, "all.yaml", PRUNE_SET))
    kept = PRUNE_SET.split("---")[0]
    done = kubectl("apply", "--prune", "-l", "app=prune-demo", "-f", write(tmp_path, "kept.yaml", kept))
    assert "configmap/prune-drop pruned" in done.stdout and "job.batch/prune-job pruned" in done.stdout, done.stdout
    names = kubectl("get", "configmaps,jobs", "-l", "app=prune-demo", "-o", "name").stdout.split()
    assert names == ["configmap/prune-keep"]


def test_create_job_and_cronjob_generators_send_protobuf_and_land_as_from_yaml(kubectl, tmp_path: Path) -> None:
    # kubectl's typed client posts batch/v1 as protobuf (issue 18's first item, for the kinds of issue 15)
    kubectl("create", "job", "gen-job", "--image=busybox", "--", "sh", "-c", "echo generated")
    kubectl("create", "cronjob", "gen-cron", "--image=busybox", "--schedule=*/5 * * * *", "--", "sh", "-c", "echo tick")
    yaml_text = kubectl("create", "job", "gen-yaml", "--image=busybox", "--dry-run=client", "-o", "yaml",
                        "--", "sh", "-c", "echo generated").stdout
    kubectl("create", "-f", write(tmp_path, "gen.yaml", yaml_text))

    def spec_of(name: str) -> dict:
        job = get_json(kubectl, "job", name)
        spec = job["spec"]
        spec.pop("selector")
        labels = spec["template"]["metadata"]["labels"]
        return {**spec, "template": {**spec["template"], "metadata": {"labels": sorted(labels)}}}

    generated, from_yaml = spec_of("gen-job"), spec_of("gen-yaml")
    generated["template"]["spec"]["containers"][0]["name"] = "gen-yaml"
    assert generated == from_yaml
    assert get_json(kubectl, "cronjob", "gen-cron")["spec"]["schedule"] == "*/5 * * * *"

    def done():
        return (get_json(kubectl, "job", "gen-job").get("status") or {}).get("succeeded") == 1
    eventually(done)
    assert kubectl("logs", "job/gen-job").stdout.strip() == "generated"
