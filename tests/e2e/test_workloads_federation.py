"""Federated Deployments end to end: real processes, real sockets, the real CLI and DNS.

One federation (API server, DNS responder, three member clusters) serves the module; the
tests run in order, as a story: spread, roll out, stall, lose a member and get it back,
then delete everything and look in every member for leftovers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import dns.asyncquery
import dns.message
import pytest
import pytest_asyncio

from federation.launch.localfed import LocalFederation
from tests.conftest import three_clusters

pytestmark = pytest.mark.asyncio(loop_scope="module")

FED_ARGS = ["--health-period", "0.5", "--failure-threshold", "2", "--offline-records", "remove", "--dns-ttl", "1"]
# Pods take 1 s to be ready, so a rollout lasts longer than `rollout status` takes to start
# and the test sees it in progress (with 0.2 s a fast federation finished it first).
CLUSTER_ARGS = ["--pod-ready-delay", "1.0", "--lease-period", "0.5"]
A, B, C = "aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"
GLOBAL = "web.default.myfed.svc.example.com."
PREFS = json.dumps({"rebalance": True, "clusters": {"*": {"weight": 1}}})
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str = "web", *, replicas: int = 6, image: str = "nginx:1", annotations=None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 30,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8000}]}]},
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8000}]},
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("fed") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store, apiserver_args=FED_ARGS, cluster_args=CLUSTER_ARGS)
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()
        for name, child in federation.children.items():
            if child.proc.returncode not in (0, -9, None):
                print(f"--- {name} exited {child.proc.returncode}\n{federation.logs(name)}")


async def cli(fed, *args: str, timeout: float = 90) -> tuple[int, str, str]:
    """The real ``ubernetes`` CLI in its own process (asynchronously: the children's logs keep flowing)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation", "--server", fed.api_url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def member(fed, cluster: str, path: str, method: str = "GET", body=None):
    from apimachinery.client import APIClient

    async with APIClient(fed.cluster_url(cluster), timeout=3) as client:
        return await client.request(method, path, body=body)


async def status(fed, name: str = "web") -> dict:
    return (await fed.api.get(f"{DEPLOY}/{name}")).get("status") or {}


def by_cluster(st: dict) -> dict[str, dict]:
    return {c["cluster"]: c for c in st.get("clusters") or []}


async def wait(fed, predicate, what: str, timeout: float = 30):
    return await fed.wait_for(predicate, timeout, what, interval=0.2)


async def global_answer(fed) -> set[str]:
    resp = await dns.asyncquery.udp(dns.message.make_query(GLOBAL, "A"), fed.host, port=fed.dns_port, timeout=2)
    return {r.address for rrset in resp.answer for r in rrset}


async def lb_ips(fed) -> dict[str, str]:
    """Each cluster's LB address of the service (waits until all three have one)."""

    async def three():
        svc = await fed.api.get("/api/v1/namespaces/default/services/web")
        found = {s["cluster"]: s["ingress"][0]["ip"] for s in (svc.get("status") or {}).get("shards") or [] if s.get("ingress")}
        return found if len(found) == 3 else None

    return await wait(fed, three, "an LB address in every cluster")


async def test_deployment_spreads_over_every_cluster(fed):
    await fed.api.post("/api/v1/namespaces/default/services", SERVICE)
    await fed.api.post(DEPLOY, deployment(annotations={"federation.kubernetes.io/deployment-preferences": PREFS}))

    async def spread():
        st = await status(fed)
        per = by_cluster(st)
        return st.get("availableReplicas") == 6 and all(per.get(c, {}).get("availableReplicas") == 2 for c in (A, B, C))

    await wait(fed, spread, "6 replicas, 2 in each cluster")
    fed_uid = (await fed.api.get(f"{DEPLOY}/web"))["metadata"]["uid"]
    for cluster in (A, B, C):
        copy_ = await member(fed, cluster, f"{DEPLOY}/web")
        assert copy_["spec"]["replicas"] == 2
        assert copy_["metadata"]["annotations"]["federation.kubernetes.io/owner"] == "default/web"
        assert copy_["metadata"]["annotations"]["federation.kubernetes.io/owner-uid"] == fed_uid
        assert copy_["metadata"]["labels"]["federation.kubernetes.io/federation-name"] == "myfed"
        assert "federation.kubernetes.io/deployment-preferences" not in copy_["metadata"]["annotations"]
    rc, out, err = await cli(fed, "get", "deployments")
    assert rc == 0, err
    header, row = out.splitlines()[0].split(), out.splitlines()[1].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "CLUSTERS", "AGE"]
    assert row[:5] == ["web", "6/6", "6", "6", "3/3"]
    # the DNS name follows the ready endpoints: every cluster's load balancer
    ips = await lb_ips(fed)
    await wait(fed, lambda: _dns_is(fed, set(ips.values())), "all three LB addresses in DNS")


async def _dns_is(fed, wanted: set[str]) -> bool:
    try:
        return await global_answer(fed) == wanted
    except Exception:  # noqa: BLE001
        return False


async def test_set_image_then_rollout_status_succeeds(fed):
    rc, out, err = await cli(fed, "set", "image", "deployment/web", "app=nginx:2", "--record")
    assert (rc, out.strip()) == (0, "deployment.apps/web image updated"), err
    rc, out, err = await cli(fed, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert any(line.startswith("Waiting for rollout to finish:") for line in lines[:-1]), lines
    for cluster in (A, B, C):
        pods = (await member(fed, cluster, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb"))["items"]
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
        assert len(pods) == 2
    rc, out, _ = await cli(fed, "rollout", "history", "deployment/web")
    assert rc == 0
    rows = [line.split(None, 1) for line in out.strip().splitlines()[2:]]
    assert rows == [["1", "<none>"], ["2", "ubernetes set image deployment/web app=nginx:2"]]


async def test_broken_image_makes_rollout_status_time_out(fed):
    rc, _, err = await cli(fed, "set", "image", "deployment/web", "app=nginx:broken")
    assert rc == 0, err
    started = time.monotonic()
    rc, out, err = await cli(fed, "rollout", "status", "deployment/web", "--timeout", "4s")
    assert rc == 1
    assert err.strip() == "error: timed out waiting for the condition"
    assert 4 <= time.monotonic() - started < 20
    assert "Waiting for rollout to finish" in out
    st = await status(fed)
    assert st["availableReplicas"] >= 3  # the old pods keep serving while the new ones cannot pull
    pods = (await member(fed, A, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb"))["items"]
    reasons = {c["state"].get("waiting", {}).get("reason") for p in pods for c in p["status"]["containerStatuses"]}
    assert reasons & {"ErrImagePull", "ImagePullBackOff"}
    rc, out, err = await cli(fed, "rollout", "undo", "deployment/web")
    assert (rc, out.strip()) == (0, "deployment.apps/web rolled back"), err
    rc, out, err = await cli(fed, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert rc == 0, err + out
    template = (await fed.api.get(f"{DEPLOY}/web"))["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "nginx:2"


async def test_killed_member_replicas_move_and_return_with_rebalance(fed):
    ips = await lb_ips(fed)
    await fed.kill_cluster(A)

    async def moved():
        st = await status(fed)
        per = by_cluster(st)
        return (
            per[A]["clusterReady"] is False
            and per[B].get("availableReplicas") == 3 and per[C].get("availableReplicas") == 3
            and st.get("availableReplicas") == 6
        )

    await wait(fed, moved, "A's replicas to move to B and C")
    await wait(fed, lambda: _dns_is(fed, {ips[B], ips[C]}), "DNS without the killed member")
    assert (await member(fed, B, f"{DEPLOY}/web"))["spec"]["replicas"] == 3

    await fed.start_cluster(A)

    async def returned():
        per = by_cluster(await status(fed))
        return all(per[c].get("clusterReady") and per[c].get("availableReplicas") == 2 and per[c].get("desiredReplicas") == 2 for c in (A, B, C))

    await wait(fed, returned, "replicas back in A (rebalance)", timeout=40)
    new_ips = await lb_ips(fed)
    await wait(fed, lambda: _dns_is(fed, set(new_ips.values())), "DNS with the member back")
    assert (await member(fed, B, f"{DEPLOY}/web"))["spec"]["replicas"] == 2


async def test_placement_and_overrides(fed):
    annotations = {
        "federation.kubernetes.io/placement": json.dumps({"clusterSelector": {"matchLabels": {"ubernetes.io/provider": "aws"}}}),
        "federation.kubernetes.io/overrides": json.dumps(
            [{"clusterName": B, "clusterOverrides": [{"path": "/spec/template/spec/containers/0/image", "value": "nginx:b"}]}]
        ),
    }
    await fed.api.post(DEPLOY, deployment("api", replicas=4, annotations=annotations))

    async def placed():
        per = by_cluster(await status(fed, "api"))
        return set(per) == {A, B} and all(per[c].get("availableReplicas") == 2 for c in (A, B))

    await wait(fed, placed, "api on the two aws clusters only")
    b_copy = await member(fed, B, f"{DEPLOY}/api")
    a_copy = await member(fed, A, f"{DEPLOY}/api")
    assert b_copy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:b"
    assert a_copy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    names = [d["metadata"]["name"] for d in (await member(fed, C, DEPLOY))["items"]]
    assert "api" not in names
    rc, out, err = await cli(fed, "scale", "deployment/api", "--replicas", "2")
    assert (rc, out.strip()) == (0, "deployment.apps/api scaled"), err

    async def scaled():
        per = by_cluster(await status(fed, "api"))
        return all(per[c].get("availableReplicas") == 1 and per[c].get("replicas") == 1 for c in (A, B))

    await wait(fed, scaled, "api scaled to 1 + 1")


async def complete(fed, words: str) -> list[str]:
    import os

    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
               _UBERNETES_COMPLETE="bash_complete", UBERNETES_SERVER=fed.api_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from federation.cli import main; main(prog_name='ubernetes')",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return [line.split(",", 1)[1] for line in out.decode().splitlines() if "," in line]


async def test_completion_offers_kinds_and_live_names(fed):
    rc, out, _ = await cli(fed, "completion", "bash")
    assert rc == 0 and "_UBERNETES_COMPLETE=bash_complete" in out
    rc, out, _ = await cli(fed, "completion", "zsh")
    assert rc == 0 and "compdef" in out
    assert "rollout" in await complete(fed, "ubernetes ro")
    assert await complete(fed, "ubernetes get deploy") == ["deploy", "deployment", "deployments"]
    assert await complete(fed, "ubernetes get deployment/") == ["deployment/api", "deployment/web"]
    assert await complete(fed, "ubernetes rollout status deployment/w") == ["deployment/web"]
    assert await complete(fed, "ubernetes describe svc ") == ["web"]


async def test_bad_federation_annotations_are_rejected(fed):
    from apimachinery.errors import APIError

    bad = deployment("bad", annotations={"federation.kubernetes.io/deployment-preferences": '{"clusters": {"a": {"minReplicas": 3, "maxReplicas": 1}}}'})
    with pytest.raises(APIError) as err:
        await fed.api.post(DEPLOY, bad)
    assert err.value.code == 422 and "maxReplicas: 1 is below minReplicas 3" in err.value.message


async def test_deletes_leave_nothing_behind(fed):
    # orphan: the copies stay, released from the federation
    await fed.api.post(DEPLOY, deployment("keep", replicas=3))
    await fed.api.post("/api/v1/namespaces/default/services", {**SERVICE, "metadata": {"name": "keep"}, "spec": {**SERVICE["spec"], "selector": {"app": "keep"}}})
    await wait(fed, lambda: _available(fed, "keep", 3), "keep to run")
    await wait(fed, lambda: _everywhere(fed, "/api/v1/namespaces/default/services/keep"), "service keep in every member")
    rc, out, err = await cli(fed, "delete", "deployment", "keep", "--cascade=orphan")
    assert (rc, out.strip()) == (0, 'deployment.apps "keep" deleted'), err
    rc, out, err = await cli(fed, "delete", "service", "keep", "--cascade=orphan")
    assert (rc, out.strip()) == (0, 'service "keep" deleted'), err
    await asyncio.sleep(2.0)  # a few reconciles: nothing may delete them
    for cluster in (A, B, C):
        for path in (f"{DEPLOY}/keep", "/api/v1/namespaces/default/services/keep"):
            kept = await member(fed, cluster, path)
            assert "federation.kubernetes.io/federation-name" not in (kept["metadata"].get("labels") or {})
            assert "federation.kubernetes.io/owner" not in (kept["metadata"].get("annotations") or {})
            await member(fed, cluster, path, method="DELETE")

    # a member partitioned away while its owners are deleted is cleaned up when it returns
    await member(fed, B, "/chaos", method="POST", body={"partitioned": True})
    await wait(fed, lambda: _offline(fed, B), "B to be Offline")
    for name in ("web", "api"):
        rc, _, err = await cli(fed, "delete", "deployment", name)
        assert rc == 0, err
    rc, _, err = await cli(fed, "delete", "service", "web")
    assert rc == 0, err
    await wait(fed, lambda: _members_clean(fed, (A, C)), "A and C clean")
    await member(fed, B, "/chaos", method="DELETE")
    await wait(fed, lambda: _members_clean(fed, (A, B, C)), "every member clean, B too")
    assert (await fed.api.get("/apis/apps/v1/namespaces/default/controllerrevisions"))["items"] == []


async def _everywhere(fed, path: str) -> bool:
    try:
        for cluster in (A, B, C):
            await member(fed, cluster, path)
    except Exception:  # noqa: BLE001 - not there yet
        return False
    return True


async def _available(fed, name: str, n: int) -> bool:
    return (await status(fed, name)).get("availableReplicas") == n


async def _offline(fed, cluster: str) -> bool:
    found = await fed.clusters()
    conds = {c["type"]: c["status"] for c in (found[cluster].get("status") or {}).get("conditions") or []}
    return conds.get("Offline") == "True"


async def _members_clean(fed, clusters) -> bool:
    for cluster in clusters:
        try:
            deployments = (await member(fed, cluster, "/apis/apps/v1/deployments"))["items"]
            replicasets = (await member(fed, cluster, "/apis/apps/v1/replicasets"))["items"]
            pods = [p for p in (await member(fed, cluster, "/api/v1/pods"))["items"] if p["metadata"].get("generateName")]
            services = (await member(fed, cluster, "/api/v1/services?labelSelector=federation.kubernetes.io%2Ffederation-name"))["items"]
        except Exception:  # noqa: BLE001 - not reachable yet
            return False
        if deployments or replicasets or pods or services:
            return False
    return True
