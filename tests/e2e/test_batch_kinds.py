"""Federated Jobs, DaemonSets, CronJobs and Ingresses (issue 15) end to end: real processes,
real sockets, the real kubectl.

One federation (the API server with its controllers, three member clusters: two AWS in
us-east-1, one GCP in europe-west1, two simulated nodes each) serves the module. The kinds
are federated at runtime (``ubernetes federate enable``); a Job of 7 completions splits
3/2/2 over the members and the federation's copy reports 7 succeeded and Complete; a
DaemonSet runs one pod on every node of every member and the federation reports the sum;
a CronJob fires in every member; an Ingress reports every member's address.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio

from federation.launch.localfed import LocalFederation
from tests.conftest import three_clusters
from tests.kubectlrun import kubectl, run

pytestmark = pytest.mark.asyncio(loop_scope="module")

FED_ARGS = ["--health-period", "0.5", "--failure-threshold", "2", "--success-threshold", "1"]
CLUSTER_ARGS = ["--pod-ready-delay", "0", "--lease-period", "0.5", "--nodes-per-zone", "2"]
A, B, C = "aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"
KINDS = ("jobs", "daemonsets", "cronjobs", "ingresses")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("batchkinds") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store, apiserver_args=FED_ARGS, cluster_args=CLUSTER_ARGS)
    try:
        await federation.start(timeout=40)
        await federation.wait_clusters_ready([A, B, C])
        yield federation
    finally:
        await federation.stop()


async def get(fed, kind: str, name: str, cluster: str | None = None) -> dict | None:
    result = await kubectl(fed, "get", kind, name, "-o", "json", cluster=cluster, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


async def eventually(check, seconds: float = 30, interval: float = 0.3):
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


async def apply(fed, tmp: Path, obj: dict) -> None:
    path = tmp / f"{obj['kind']}-{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    await kubectl(fed, "apply", "-f", str(path))


def table(stdout: str) -> list[dict[str, str]]:
    """kubectl's table as rows of {column: cell} (columns split on runs of 2+ spaces)."""
    import re

    lines = [line for line in stdout.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[1:]]


POD = {"containers": [{"name": "work", "image": "busybox:1.36", "command": ["sh", "-c", "echo done"]}]}


async def test_enable_the_kinds_at_runtime(fed) -> None:
    for kind in KINDS:
        result = await run(sys.executable, "-m", "federation", "--server", fed.api_url, "federate", "enable", kind)
        assert result.returncode == 0, result.stderr

    async def running():
        rows = table((await kubectl(fed, "get", "ftc")).stdout)
        return {r["NAME"]: r["CONTROLLER"] for r in rows if r["NAME"].split(".")[0] in KINDS}

    assert await eventually(lambda: _all_running(running))
    rows = {r["NAME"]: r["KIND"] for r in table((await kubectl(fed, "get", "ftc")).stdout)}
    assert rows["jobs.batch"] == "Job.batch" and rows["ingresses.networking.k8s.io"] == "Ingress.networking.k8s.io"


async def _all_running(running) -> bool:
    found = await running()
    return len(found) == len(KINDS) and set(found.values()) == {"Running"}


async def test_a_job_of_7_completions_splits_3_2_2_and_succeeds_7(fed, tmp_path) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "crunch", "namespace": "default"},
           "spec": {"completions": 7, "parallelism": 3,
                    "template": {"metadata": {"annotations": {"ubernetes.io/run-seconds": "0.3"}},
                                 "spec": {"restartPolicy": "Never", **POD}}}}
    await apply(fed, tmp_path, job)

    async def split():
        found = {c: await get(fed, "job", "crunch", cluster=c) for c in (A, B, C)}
        return found if all(found.values()) else None

    copies = await eventually(split)
    assert copies, "the Job never reached every member"
    shares = {c: (o["spec"]["completions"], o["spec"]["parallelism"]) for c, o in copies.items()}
    assert sorted(s[0] for s in shares.values()) == [2, 2, 3] and sum(s[1] for s in shares.values()) == 3
    assert all(o["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == o["metadata"]["uid"]
               for o in copies.values())  # each member generated its own

    async def succeeded():
        fed_job = await get(fed, "job", "crunch")
        status = (fed_job or {}).get("status") or {}
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions") or [])
        return fed_job if done else None

    fed_job = await eventually(succeeded, seconds=40)
    assert fed_job, "the federated Job never completed"
    status = fed_job["status"]
    assert status["succeeded"] == 7 and "active" not in status
    assert {c["name"] for c in status["clusters"]} == {A, B, C}
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete", "Propagation"]
    for cluster, (completions, _) in shares.items():
        member = await get(fed, "job", "crunch", cluster=cluster)
        assert member["status"]["succeeded"] == completions
        pods = json.loads((await kubectl(fed, "get", "pods", "-l", "batch.kubernetes.io/job-name=crunch", "-o", "json",
                                         cluster=cluster)).stdout)["items"]
        assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * completions

    rows = table((await kubectl(fed, "get", "jobs")).stdout)
    row = next(r for r in rows if r["NAME"] == "crunch")
    assert (row["STATUS"], row["COMPLETIONS"], row["CLUSTERS"], row["PROPAGATION"]) == ("Complete", "7/7", "3/3", "True")
    waited = await kubectl(fed, "wait", "--for=condition=complete", "job/crunch", "--timeout=5s")
    assert "condition met" in waited.stdout
    print(f"\n$ kubectl get jobs  # at the federation\n{(await kubectl(fed, 'get', 'jobs')).stdout}")
    print(f"$ kubectl get jobs  # in {A}\n{(await kubectl(fed, 'get', 'jobs', cluster=A)).stdout}")


async def test_a_daemonset_runs_on_every_node_of_every_member(fed, tmp_path) -> None:
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-agent", "namespace": "default"},
          "spec": {"selector": {"matchLabels": {"app": "node-agent"}},
                   "template": {"metadata": {"labels": {"app": "node-agent"}},
                                "spec": {"containers": [{"name": "agent", "image": "fluent-bit:3.0"}]}}}}
    await apply(fed, tmp_path, ds)

    async def ready():
        status = ((await get(fed, "daemonset", "node-agent")) or {}).get("status") or {}
        return status if status.get("numberReady") == 6 and status.get("desiredNumberScheduled") == 6 else None

    status = await eventually(ready)
    assert status, "the federated DaemonSet never reported 6 ready pods"
    assert status["numberAvailable"] == 6 and status["updatedNumberScheduled"] == 6
    for cluster in (A, B, C):
        pods = json.loads((await kubectl(fed, "get", "pods", "-l", "app=node-agent", "-o", "json",
                                         cluster=cluster)).stdout)["items"]
        nodes = json.loads((await kubectl(fed, "get", "nodes", "-o", "json", cluster=cluster)).stdout)["items"]
        assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(n["metadata"]["name"] for n in nodes)
    row = next(r for r in table((await kubectl(fed, "get", "ds")).stdout) if r["NAME"] == "node-agent")
    assert (row["DESIRED"], row["READY"], row["CLUSTERS"]) == ("6", "6", "3/3")
    print(f"\n$ kubectl get daemonsets  # at the federation\n{(await kubectl(fed, 'get', 'daemonsets')).stdout}")


async def test_a_cronjob_fires_in_every_member_and_an_ingress_reports_every_address(fed, tmp_path) -> None:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"},
          "spec": {"schedule": "@every 2s", "jobTemplate": {"spec": {"template": {
              "metadata": {"annotations": {"ubernetes.io/run-seconds": "0.2"}},
              "spec": {"restartPolicy": "OnFailure", **POD}}}}}}
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    await apply(fed, tmp_path, cj)
    await apply(fed, tmp_path, ing)

    async def fired():
        counts = {}
        for cluster in (A, B, C):
            jobs = json.loads((await kubectl(fed, "get", "jobs", "-o", "json", cluster=cluster)).stdout)["items"]
            counts[cluster] = sum(1 for j in jobs if j["metadata"]["name"].startswith("tick-"))
        return counts if all(counts.values()) else None

    assert await eventually(fired, seconds=20), "the CronJob did not fire in every member"
    status = await eventually(lambda: _fed_status(fed, "cronjob", "tick", "lastScheduleTime"))
    assert status

    async def addresses():
        status = await _fed_status(fed, "ingress", "web", "loadBalancer")
        found = (status or {}).get("loadBalancer", {}).get("ingress") or []
        return found if len(found) == 3 else None

    points = await eventually(addresses)
    assert points and len({p["ip"] for p in points}) == 3
    listed = (await kubectl(fed, "get", "jobs,cronjobs,daemonsets,ingresses")).stdout
    for name in ("job.batch/crunch", "cronjob.batch/tick", "daemonset.apps/node-agent", "ingress.networking.k8s.io/web"):
        assert name in listed
    print(f"\n$ kubectl get jobs,cronjobs,daemonsets,ingresses  # at the federation\n{listed}")


async def _fed_status(fed, kind: str, name: str, field: str) -> dict | None:
    status = ((await get(fed, kind, name)) or {}).get("status") or {}
    return status if status.get(field) else None
