"""A federated StatefulSet over three real member processes (issue 14, docs/workloads.md).

The federation splits ``web``'s ordinals over the members in name order
(federation/planners/ordinalsplit.py); each member runs its range with
``spec.ordinals.start``, so every pod name is unique across the clusterset. Then one member
is partitioned away: its ordinals are held (status ``OrdinalsHeld``), and no other member
starts a pod with one of them; when it returns, nothing is duplicated either. Finally a
scale-down moves the ranges and the union of the members' pods is again exactly the set.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from pathlib import Path

import yaml

import pytest
import pytest_asyncio

from federation.launch.localfed import LocalFederation
from tests.conftest import three_clusters

pytestmark = pytest.mark.asyncio(loop_scope="module")

FED_ARGS = ["--health-period", "0.5", "--failure-threshold", "2", "--dns-ttl", "1"]
CLUSTER_ARGS = ["--pod-ready-delay", "0.2", "--lease-period", "0.5"]
A, B, C = "aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"
SETS = "/apis/apps/v1/namespaces/default/statefulsets"
PODS = "/api/v1/namespaces/default/pods"

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "statefulsets" / "federated-web.yaml"
WEB = yaml.safe_load(EXAMPLE.read_text())
KUBECTL = shutil.which("kubectl")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("fed") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store, apiserver_args=FED_ARGS, cluster_args=CLUSTER_ARGS)
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()


async def member(fed, cluster: str, path: str, method: str = "GET", body=None):
    from apimachinery.client import APIClient

    async with APIClient(fed.cluster_url(cluster), timeout=3) as client:
        return await client.request(method, path, body=body)


async def pods_by_cluster(fed, clusters=(A, B, C)) -> dict[str, list[str]]:
    out = {}
    for c in clusters:
        items = (await member(fed, c, PODS + "?labelSelector=app%3Dnginx"))["items"]
        out[c] = sorted(p["metadata"]["name"] for p in items)
    return out


def ordinals(names: list[str]) -> list[int]:
    return sorted(int(n.rsplit("-", 1)[1]) for n in names)


async def test_ordinals_are_split_over_the_members_and_unique(fed, tmp_path) -> None:
    if KUBECTL is not None:  # the example as a user applies it
        proc = await asyncio.create_subprocess_exec(KUBECTL, "--cache-dir", str(tmp_path), "--server", fed.api_url,
                                                    "apply", "-f", str(EXAMPLE), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0 and out.decode() == "statefulset.apps/web created\n", err.decode()
    else:
        await fed.api.post(SETS, WEB)

    async def spread():
        by = await pods_by_cluster(fed)
        return by if sorted(sum((ordinals(v) for v in by.values()), [])) == [0, 1, 2, 3, 4] else None

    by = await fed.wait_for(spread, 40, "web-0..4 over the members", interval=0.3)
    assert by == {A: ["web-0", "web-1"], B: ["web-2", "web-3"], C: ["web-4"]}
    copy_b = await member(fed, B, SETS + "/web")
    assert copy_b["spec"]["ordinals"] == {"start": 2} and copy_b["spec"]["replicas"] == 2
    claims = (await member(fed, B, "/api/v1/namespaces/default/persistentvolumeclaims"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["www-web-2", "www-web-3"]

    async def totals():
        st = (await fed.api.get(SETS + "/web")).get("status") or {}
        return st if st.get("readyReplicas") == 5 else None

    st = await fed.wait_for(totals, 30, "the federated status", interval=0.3)
    assert {c["cluster"]: c["ordinals"] for c in st["clusters"]} == {A: "0-1", B: "2-3", C: "4"}


async def test_an_unreachable_member_keeps_its_ordinals_and_nobody_else_starts_them(fed) -> None:
    await member(fed, B, "/chaos", method="POST", body={"partitioned": True})
    try:
        async def held():
            st = (await fed.api.get(SETS + "/web")).get("status") or {}
            cond = {c["type"]: c for c in st.get("conditions") or []}.get("OrdinalsHeld") or {}
            return st if cond.get("status") == "True" else None

        st = await fed.wait_for(held, 30, "OrdinalsHeld", interval=0.3)
        cond = {c["type"]: c for c in st["conditions"]}["OrdinalsHeld"]
        assert cond["reason"] == "ClusterUnreachable" and f"ordinals 2-3 stay with cluster {B}" in cond["message"]
        for _ in range(10):  # a few seconds of reconciles: A and C never start web-2 or web-3
            by = await pods_by_cluster(fed, (A, C))
            assert not {2, 3} & set(ordinals(by[A]) + ordinals(by[C])), by
            await asyncio.sleep(0.4)
    finally:
        await member(fed, B, "/chaos", method="DELETE")

    async def back():
        st = (await fed.api.get(SETS + "/web")).get("status") or {}
        cond = {c["type"]: c for c in st.get("conditions") or []}.get("OrdinalsHeld") or {}
        return st if cond.get("status") == "False" and st.get("readyReplicas") == 5 else None

    await fed.wait_for(back, 40, "the member back and the set whole", interval=0.3)
    by = await pods_by_cluster(fed)
    every = sum((ordinals(v) for v in by.values()), [])
    assert sorted(every) == [0, 1, 2, 3, 4], by


async def test_a_scale_down_moves_ranges_without_a_duplicate(fed) -> None:
    current = await fed.api.get(SETS + "/web")
    new = copy.deepcopy(current)
    new["spec"]["replicas"] = 3
    await fed.api.put(SETS + "/web", new)
    seen_twice = []

    async def settled():
        by = await pods_by_cluster(fed)
        every = sum((ordinals(v) for v in by.values()), [])
        if len(every) != len(set(every)):
            seen_twice.append(by)
        return by if sorted(every) == [0, 1, 2] else None

    by = await fed.wait_for(settled, 40, "web-0..2", interval=0.2)
    assert not seen_twice, seen_twice
    assert by == {A: ["web-0"], B: ["web-1"], C: ["web-2"]}
