"""Federating any kind (issue 15) end to end: real processes, real sockets, kubectl and the CLI.

One federation (the API server with its controllers, three member clusters: two AWS in
us-east-1, one GCP in europe-west1) serves the module; the tests run in order, as a story.
ConfigMaps are federated at runtime (``ubernetes federate enable``), placed by cluster
label, overridden in one cluster, watched for drift, adopted, orphaned, deleted while a
member is cut off, spread over regions; Secrets propagate without their data reaching a
log or an Event; a federated Namespace cascades.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
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
CLUSTER_ARGS = ["--pod-ready-delay", "0", "--lease-period", "0.5"]
A, B, C = "aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"
AWS = json.dumps({"clusterSelector": {"matchLabels": {"ubernetes.io/provider": "aws"}}})
SECRET_VALUE = "s3cr3t-hunter2-value"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("anykind") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store, apiserver_args=FED_ARGS, cluster_args=CLUSTER_ARGS)
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()


async def ubernetes(fed, *args: str) -> subprocess.CompletedProcess:
    return await run(sys.executable, "-m", "federation", "--server", fed.api_url, *args)


async def apply(fed, tmp: Path, obj: dict) -> None:
    path = tmp / f"{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    await kubectl(fed, "apply", "-f", str(path))


async def member_get(fed, cluster: str, kind: str, name: str, namespace: str = "default") -> dict | None:
    result = await kubectl(fed, "get", kind, name, "-n", namespace, "-o", "json", cluster=cluster, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


async def fed_get(fed, kind: str, name: str, namespace: str = "default") -> dict | None:
    result = await kubectl(fed, "get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


async def eventually(check, seconds: float = 20, interval: float = 0.3):
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


def cluster_status(obj: dict | None) -> dict:
    return {c["name"]: c.get("status", "") for c in ((obj or {}).get("status") or {}).get("clusters") or []}


def configmap(name: str, data: dict, annotations: dict | None = None, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}}, "data": data}


async def copies(fed, kind: str, name: str, namespace: str = "default") -> dict[str, dict | None]:
    return {c: await member_get(fed, c, kind, name, namespace) for c in (A, B, C)}


async def test_enable_at_runtime_place_by_label_override_one_cluster(fed, tmp_path) -> None:
    await fed.wait_clusters_ready([A, B, C])
    overrides = json.dumps([{"clusterName": B, "clusterOverrides": [{"path": "/data/color", "value": "blue"}]}])
    await apply(fed, tmp_path, configmap("app", {"color": "red"}, {
        "federation.kubernetes.io/placement": AWS, "federation.kubernetes.io/overrides": overrides}))
    await asyncio.sleep(1.5)
    assert await member_get(fed, A, "configmap", "app") is None  # not federated yet: it stays on the federation

    result = await ubernetes(fed, "federate", "enable", "configmaps")
    assert result.returncode == 0, result.stderr
    assert "federatedtypeconfig.federation/configmaps created" in result.stdout
    ftc = (await kubectl(fed, "get", "federatedtypeconfigs")).stdout
    assert ftc.split("\n")[0].split() == ["NAME", "KIND", "PROPAGATION", "CONTROLLER", "AGE"]
    assert await eventually(lambda: _ftc_running(fed))

    async def propagated():
        found = await copies(fed, "configmap", "app")
        return found if found[A] and found[B] else None

    found = await eventually(propagated)
    assert found[A]["data"] == {"color": "red"}
    assert found[B]["data"] == {"color": "blue"}  # its override
    assert found[C] is None  # not selected: gcp
    assert found[A]["metadata"]["labels"]["federation.kubernetes.io/federation-name"] == "myfed"
    assert await eventually(lambda: _columns(fed, "configmaps", "app", ["2/2", "True"]))
    status = await fed_get(fed, "configmap", "app")
    assert cluster_status(status) == {A: "", B: ""}
    assert status["status"]["conditions"][0]["type"] == "Propagation"

    bad = await ubernetes(fed, "federate", "enable", "pods")
    assert bad.returncode != 0 and "the members do not serve it" in bad.stderr


async def _ftc_running(fed) -> bool:
    out = (await kubectl(fed, "get", "ftc", "configmaps", "--no-headers")).stdout.split()
    return out[3:4] == ["Running"]


async def _columns(fed, kind: str, name: str, want: list[str], namespace: str = "default") -> bool:
    result = await kubectl(fed, "get", kind, name, "-n", namespace, check=False)
    lines = result.stdout.splitlines()
    if len(lines) < 2:
        return False
    header, row = lines[0].split(), lines[1].split()
    cells = dict(zip(header, row))
    return [cells.get("CLUSTERS"), cells.get("PROPAGATION")] == want


async def events_of(fed, name: str) -> list[dict]:
    out = await kubectl(fed, "get", "events", "-n", "default", "-o", "json",
                        "--field-selector", f"involvedObject.name={name}")
    return json.loads(out.stdout)["items"]


async def test_drift_is_put_back_with_an_event_naming_cluster_and_field(fed) -> None:
    await kubectl(fed, "patch", "configmap", "app", "--type", "merge", "-p", '{"data":{"color":"green"}}', cluster=A)

    async def repaired():
        copy_ = await member_get(fed, A, "configmap", "app")
        return copy_ and copy_["data"] == {"color": "red"}

    assert await eventually(repaired, seconds=10)
    drift = [e for e in await events_of(fed, "app") if e["reason"] == "DriftRepaired"]
    assert drift and A in drift[0]["message"] and "data.color" in drift[0]["message"]

    await kubectl(fed, "delete", "configmap", "app", cluster=B)

    async def recreated():
        copy_ = await member_get(fed, B, "configmap", "app")
        return copy_ and copy_["data"] == {"color": "blue"}

    assert await eventually(recreated, seconds=10)
    again = [e["message"] for e in await events_of(fed, "app") if "re-created" in e["message"]]
    assert any(B in m for m in again), (again, fed.logs("apiserver")[-6000:])


async def test_an_unmanaged_object_is_already_exists_until_adopted(fed, tmp_path) -> None:
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(configmap("legacy", {"owner": "the member"})))
    await kubectl(fed, "create", "-f", str(path), cluster=A)
    await apply(fed, tmp_path, configmap("legacy", {"owner": "the federation"},
                                         {"federation.kubernetes.io/placement": json.dumps({"clusters": [A]})}))

    async def conflicted():
        return cluster_status(await fed_get(fed, "configmap", "legacy")) == {A: "AlreadyExists"}

    assert await eventually(conflicted)
    assert await _columns(fed, "configmaps", "legacy", ["0/1", "CheckClusters"])
    assert (await member_get(fed, A, "configmap", "legacy"))["data"] == {"owner": "the member"}  # not overwritten

    await kubectl(fed, "annotate", "configmap", "legacy", "federation.kubernetes.io/conflict-resolution=adopt")

    async def adopted():
        copy_ = await member_get(fed, A, "configmap", "legacy")
        return copy_["data"] == {"owner": "the federation"} and \
            cluster_status(await fed_get(fed, "configmap", "legacy")) == {A: ""}

    assert await eventually(adopted)
    assert any(e["reason"] == "AdoptedInCluster" for e in await events_of(fed, "legacy"))


async def test_orphan_delete_leaves_unmanaged_copies(fed) -> None:
    await kubectl(fed, "delete", "configmap", "legacy", "--cascade=orphan")

    async def released():
        copy_ = await member_get(fed, A, "configmap", "legacy")
        return copy_ if "federation.kubernetes.io/federation-name" not in (copy_["metadata"].get("labels") or {}) else None

    copy_ = await eventually(released)
    assert copy_ and copy_["data"] == {"owner": "the federation"}
    await asyncio.sleep(1.0)  # a later reconcile must not delete it
    assert await member_get(fed, A, "configmap", "legacy") is not None


async def test_a_member_offline_at_delete_is_cleaned_when_it_returns(fed) -> None:
    assert (await copies(fed, "configmap", "app"))[B] is not None
    await fed.chaos(B, {"partitioned": True})
    try:
        async def not_ready():
            return cluster_status(await fed_get(fed, "configmap", "app")).get(B) == "ClusterNotReady"

        assert await eventually(not_ready)
        assert await _columns(fed, "configmaps", "app", ["1/2", "CheckClusters"])
        await kubectl(fed, "delete", "configmap", "app")
        assert await eventually(lambda: _absent(fed, A, "app"))
    finally:
        await fed.chaos(B, None)
    assert await eventually(lambda: _absent(fed, B, "app"), seconds=20)


async def _absent(fed, cluster: str, name: str) -> bool:
    return await member_get(fed, cluster, "configmap", name) is None


async def test_spread_constraints_pick_one_cluster_per_region_and_re_pick(fed, tmp_path) -> None:
    placement = json.dumps({"spreadConstraints": [{"spreadByField": "region", "minGroups": 2, "maxGroups": 2},
                                                  {"spreadByField": "cluster", "maxGroups": 2}]})
    await apply(fed, tmp_path, configmap("spread", {"k": "v"}, {"federation.kubernetes.io/placement": placement}))

    def placed_on(names):
        async def check():
            return set(cluster_status(await fed_get(fed, "configmap", "spread"))) == names and \
                all([await member_get(fed, c, "configmap", "spread") for c in names])
        return check

    assert await eventually(placed_on({A, C}))
    await fed.chaos(A, {"partitioned": True})
    try:
        assert await eventually(placed_on({B, C}), seconds=20)  # us-east-1 now answers from B
    finally:
        await fed.chaos(A, None)
    assert await eventually(placed_on({A, C}), seconds=20)  # back: the same choice as before
    assert await eventually(lambda: _absent(fed, B, "spread"), seconds=20)
    await kubectl(fed, "delete", "configmap", "spread")


async def test_secrets_propagate_without_their_data_in_logs_or_events(fed, tmp_path) -> None:
    result = await ubernetes(fed, "federate", "enable", "secrets")
    assert result.returncode == 0, result.stderr
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default", "annotations": {
        "federation.kubernetes.io/placement": AWS}}, "stringData": {"password": SECRET_VALUE}}
    await apply(fed, tmp_path, secret)

    async def propagated():
        found = await member_get(fed, B, "secret", "db")
        return found and base64.b64decode(found["data"]["password"]).decode() == SECRET_VALUE

    assert await eventually(propagated)
    await kubectl(fed, "patch", "secret", "db", "--type", "merge",
                  "-p", json.dumps({"data": {"password": base64.b64encode(b"changed-by-hand").decode()}}), cluster=A)
    assert await eventually(lambda: _secret_is(fed, A, SECRET_VALUE), seconds=10)
    events = json.dumps(json.loads((await kubectl(fed, "get", "events", "-A", "-o", "json")).stdout))
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    assert "data.password" in events  # the drift is reported, by field
    for text in [events, *(fed.logs(name) for name in fed.children)]:
        assert SECRET_VALUE not in text and encoded not in text and "changed-by-hand" not in text
    await kubectl(fed, "delete", "secret", "db")


async def _secret_is(fed, cluster: str, value: str) -> bool:
    found = await member_get(fed, cluster, "secret", "db")
    return bool(found) and base64.b64decode(found["data"]["password"]).decode() == value


async def test_a_federated_namespace_cascades(fed, tmp_path) -> None:
    result = await ubernetes(fed, "federate", "enable", "namespaces")
    assert result.returncode == 0, result.stderr
    await kubectl(fed, "create", "namespace", "team-a")

    async def everywhere():
        return all([await _namespace(fed, c, "team-a") for c in (A, B, C)])

    assert await eventually(everywhere)
    await apply(fed, tmp_path, configmap("settings", {"a": "1"}, namespace="team-a"))
    assert await eventually(lambda: _has(fed, C, "settings", "team-a"))
    assert await eventually(lambda: _columns(fed, "namespace", "team-a", ["3/3", "True"], namespace="default"))

    await kubectl(fed, "delete", "namespace", "team-a")

    async def gone_everywhere():
        return not any([await _namespace(fed, c, "team-a") for c in (A, B, C)])

    assert await eventually(gone_everywhere)
    assert not await _has(fed, C, "settings", "team-a")


async def _namespace(fed, cluster: str, name: str) -> bool:
    return (await kubectl(fed, "get", "namespace", name, cluster=cluster, check=False)).returncode == 0


async def _has(fed, cluster: str, name: str, namespace: str) -> bool:
    return await member_get(fed, cluster, "configmap", name, namespace) is not None
