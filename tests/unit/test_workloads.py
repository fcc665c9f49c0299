"""The member cluster's simulated Deployments, ReplicaSets and Pods, with a stepped clock.

No sockets: :class:`clusters.state.ClusterState` with an injected clock, driven pass by
pass as the cluster's control loop drives it.
"""

from __future__ import annotations

import copy

import pytest

from clusters.state import ClusterState, Topology
from clusters.workloads import WorkloadSettings, pod_display_status
from apimachinery.errors import APIError

NS = "default"


class Sim:
    def __init__(self, *, ready_delay: float = 0.3, zones=("z1", "z2")) -> None:
        self.now = 0.0
        self.state = ClusterState(
            Topology(name="c1", region="r1", zones=list(zones), provider="aws", pod_ready_delay=ready_delay),
            clock=lambda: self.now,
        )
        self.w = self.state.workloads

    def step(self, dt: float = 0.05, n: int = 1) -> None:
        for _ in range(n):
            self.state.reconcile()
            self.now += dt
        self.state.reconcile()

    def run_until(self, predicate, *, limit: float = 30.0, dt: float = 0.05):
        start = self.now
        while self.now - start < limit:
            self.state.reconcile()
            value = predicate()
            if value:
                return value
            self.now += dt
        raise AssertionError(f"not reached within {limit}s of simulated time")

    def pods(self) -> list[dict]:
        return sorted((p for p in self.state.pods.values() if p["metadata"].get("generateName")), key=lambda p: p["metadata"]["name"])

    def statuses(self) -> list[str]:
        return sorted(pod_display_status(p) for p in self.pods())

    def deployment(self, name: str = "web") -> dict:
        return self.w.get_deployment(NS, name)


def deployment(name: str = "web", *, replicas: int = 3, image: str = "nginx:1", init=None, annotations=None, strategy=None) -> dict:
    pod_spec: dict = {"containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8000}]}]}
    if init:
        pod_spec["initContainers"] = init
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}, **({"annotations": annotations} if annotations else {})}, "spec": pod_spec},
    }
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def set_image(sim: Sim, image: str, name: str = "web") -> None:
    d = copy.deepcopy(sim.deployment(name))
    d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    sim.w.replace_deployment(NS, name, d)


def available(sim: Sim, name: str = "web") -> int:
    return sim.deployment(name)["status"].get("availableReplicas", 0)


# ------------------------------------------------------------------ pods


def test_init_containers_run_in_order_then_readiness_delay():
    sim = Sim()
    init = [{"name": "migrate", "image": "busybox"}, {"name": "warm", "image": "busybox"}]
    sim.w.create_deployment(NS, deployment(replicas=1, init=init))
    seen = []
    for _ in range(30):
        sim.step(0.05)
        status = sim.statuses()[0] if sim.pods() else None
        if status and (not seen or seen[-1] != status):
            seen.append(status)
    assert seen == ["Init:0/2", "Init:1/2", "PodInitializing", "Running"]
    pod = sim.pods()[0]
    assert [c["state"] for c in pod["status"]["initContainerStatuses"]] == [
        {"terminated": {"exitCode": 0, "reason": "Completed"}}
    ] * 2
    assert pod["status"]["containerStatuses"][0]["ready"] is True
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"


def test_running_is_not_ready_until_the_delay_passes():
    sim = Sim(ready_delay=1.0)
    sim.w.create_deployment(NS, deployment(replicas=1))
    sim.run_until(lambda: sim.statuses() == ["Running"])
    assert available(sim) == 0
    sim.run_until(lambda: available(sim) == 1)


def test_failing_init_container_crash_loops_with_growing_backoff():
    sim = Sim()
    sim.w.settings = WorkloadSettings(backoff=0.2, backoff_max=0.8)
    init = [{"name": "ok", "image": "busybox"}, {"name": "check", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]
    sim.w.create_deployment(NS, deployment(replicas=1, init=init))
    seen, restarts, error_at = [], [], []
    for _ in range(120):
        sim.step(0.025)
        status = sim.statuses()[0]
        if not seen or seen[-1] != status:
            seen.append(status)
            if status == "Init:Error":
                error_at.append(sim.now)
        restarts.append(sim.pods()[0]["status"]["initContainerStatuses"][1]["restartCount"])
    assert seen[:5] == ["Init:0/2", "Init:1/2", "Init:Error", "Init:CrashLoopBackOff", "Init:1/2"]
    assert "Running" not in seen and "PodInitializing" not in seen
    assert restarts == sorted(restarts) and restarts[-1] >= 3
    gaps = [b - a for a, b in zip(error_at, error_at[1:])]
    assert gaps[1] > gaps[0] * 1.5, gaps  # back-off doubles
    last = sim.pods()[0]["status"]["initContainerStatuses"][1]
    assert last["lastState"] == {"terminated": {"exitCode": 3, "reason": "Error"}}
    assert available(sim) == 0


def test_broken_image_fails_to_pull():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=1, image="nginx:broken"))
    seen = []
    for _ in range(80):
        sim.state.reconcile()
        sim.now += 0.025
        s = sim.statuses()[0]
        if not seen or seen[-1] != s:
            seen.append(s)
    assert seen[:3] == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    assert seen.count("ErrImagePull") >= 2
    waiting = sim.pods()[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "nginx:broken" in waiting["message"]


def test_broken_init_image_shows_init_prefix():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=1, init=[{"name": "fetch", "image": "tools:broken"}]))
    sim.run_until(lambda: "Init:ImagePullBackOff" in sim.statuses())


@pytest.mark.parametrize(
    "annotations,outcome",
    [
        ({"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}, "Running"),
        ({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}, "Running"),
        ({"seccomp.security.alpha.kubernetes.io/pod": "localhost/audit.json"}, "Running"),
        ({"container.seccomp.security.alpha.kubernetes.io/app": "localhost/missing.json"}, "CreateContainerError"),
        ({"seccomp.security.alpha.kubernetes.io/pod": "localhost/nope.json"}, "CreateContainerError"),
    ],
)
def test_seccomp_profiles(annotations, outcome):
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=1, annotations=annotations))
    sim.step(0.05, 10)
    assert sim.statuses() == [outcome]
    if outcome == "CreateContainerError":
        message = sim.pods()[0]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        assert "cannot load seccomp profile" in message and "audit.json" in message
        assert any(e["reason"] == "Failed" and "seccomp" in e["message"] for e in sim.state.events.values())


def test_invalid_seccomp_value_is_rejected():
    sim = Sim()
    with pytest.raises(APIError) as err:
        sim.w.create_deployment(NS, deployment(annotations={"seccomp.security.alpha.kubernetes.io/pod": "maybe"}))
    assert err.value.code == 422
    assert "seccomp.security.alpha.kubernetes.io/pod" in err.value.message


@pytest.mark.parametrize(
    "mutate,path",
    [
        (lambda d: d["spec"].update(replicas=-1), "spec.replicas"),
        (lambda d: d["spec"].pop("selector"), "spec.selector"),
        (lambda d: d["spec"]["template"]["metadata"].update(labels={"app": "other"}), "spec.template.metadata.labels"),
        (lambda d: d["spec"]["template"]["spec"].update(containers=[]), "spec.template.spec.containers"),
        (lambda d: d["spec"].update(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}), "maxUnavailable"),
    ],
)
def test_deployment_validation(mutate, path):
    sim = Sim()
    d = deployment()
    mutate(d)
    with pytest.raises(APIError) as err:
        sim.w.create_deployment(NS, d)
    assert err.value.code == 422 and path in err.value.message


# ------------------------------------------------------------------ rollouts


@pytest.mark.parametrize("surge,unavailable", [(1, 0), (0, 1), ("50%", "25%"), (2, 2)])
def test_rolling_update_honours_surge_and_unavailable(surge, unavailable):
    sim = Sim()
    desired = 4
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    sim.w.create_deployment(NS, deployment(replicas=desired, strategy=strategy))
    sim.run_until(lambda: available(sim) == desired)
    set_image(sim, "nginx:2")
    max_surge = {1: 1, 0: 0, "50%": 2, 2: 2}[surge]
    max_unavail = {0: 0, 1: 1, "25%": 1, 2: 2}[unavailable]

    def check():
        replicasets = sim.w.replicasets_of(sim.deployment())
        assert sum(rs["spec"]["replicas"] for rs in replicasets) <= desired + max_surge
        assert sum(sim.w._available(rs) for rs in replicasets) >= desired - max_unavail
        d = sim.deployment()
        s = d["status"]
        return s.get("updatedReplicas") == desired and s.get("replicas") == desired and s.get("availableReplicas") == desired

    sim.run_until(check)
    images = {p["spec"]["containers"][0]["image"] for p in sim.pods()}
    assert images == {"nginx:2"}


def test_revisions_rollback_and_history_limit():
    sim = Sim()
    d = deployment(replicas=2)
    d["spec"]["revisionHistoryLimit"] = 2
    sim.w.create_deployment(NS, d)
    for image in ("nginx:2", "nginx:3", "nginx:4"):
        sim.run_until(lambda: available(sim) == 2 and sim.deployment()["status"].get("updatedReplicas") == 2)
        set_image(sim, image)
    sim.run_until(lambda: {p["spec"]["containers"][0]["image"] for p in sim.pods()} == {"nginx:4"} and available(sim) == 2)
    sim.step(0.05, 2)
    revs = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            for rs in sim.w.replicasets_of(sim.deployment())}
    assert revs == {"nginx:2": "2", "nginx:3": "3", "nginx:4": "4"}  # revision 1 pruned by the limit
    set_image(sim, "nginx:2")  # a rollback reuses the old ReplicaSet as the newest revision
    sim.run_until(lambda: {p["spec"]["containers"][0]["image"] for p in sim.pods()} == {"nginx:2"} and available(sim) == 2)
    revs = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            for rs in sim.w.replicasets_of(sim.deployment())}
    assert revs == {"nginx:2": "5", "nginx:3": "3", "nginx:4": "4"}


def test_recreate_stops_old_pods_before_new_ones():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=3, strategy={"type": "Recreate"}))
    sim.run_until(lambda: available(sim) == 3)
    set_image(sim, "nginx:2")
    while True:
        sim.step(0.05)
        images = {p["spec"]["containers"][0]["image"] for p in sim.pods()}
        assert len(images) <= 1
        if images == {"nginx:2"} and available(sim) == 3:
            break
        assert sim.now < 30


def test_stalled_rollout_exceeds_its_progress_deadline():
    sim = Sim()
    d = deployment(replicas=2)
    d["spec"]["progressDeadlineSeconds"] = 2
    sim.w.create_deployment(NS, d)
    sim.run_until(lambda: available(sim) == 2)
    set_image(sim, "nginx:broken")

    def exceeded():
        conds = {c["type"]: c for c in sim.deployment()["status"]["conditions"]}
        return conds["Progressing"]["reason"] == "ProgressDeadlineExceeded"

    sim.run_until(exceeded, limit=5)
    assert sim.now >= 2
    assert available(sim) >= 1  # the old pods keep serving


# ------------------------------------------------------------------ deletion


def _owned_everything(sim: Sim) -> tuple[int, int]:
    return len(sim.w.replicasets), len(sim.pods())


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_delete_cascades(policy):
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=3))
    sim.run_until(lambda: available(sim) == 3)
    gone = sim.w.delete_deployment(NS, "web", policy=policy)
    if policy == "Foreground":
        assert gone["metadata"]["deletionTimestamp"] and "foregroundDeletion" in gone["metadata"]["finalizers"]
        assert ("default", "web") in sim.w.deployments  # still there until its dependents are gone
    sim.step(0.05, 2)
    assert ("default", "web") not in sim.w.deployments
    assert _owned_everything(sim) == (0, 0)


def test_delete_orphan_leaves_replicasets_and_pods():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=2))
    sim.run_until(lambda: available(sim) == 2)
    sim.w.delete_deployment(NS, "web", policy="Orphan")
    sim.step(0.05, 5)
    assert _owned_everything(sim) == (1, 2)
    rs = next(iter(sim.w.replicasets.values()))
    assert "ownerReferences" not in rs["metadata"]
    sim.w.delete_replicaset(NS, rs["metadata"]["name"])
    sim.step(0.05, 2)
    assert _owned_everything(sim) == (0, 0)


def test_deleting_a_pod_makes_the_replicaset_replace_it():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=2))
    sim.run_until(lambda: available(sim) == 2)
    victim = sim.pods()[0]["metadata"]["name"]
    sim.w.delete_pod(NS, victim)
    sim.step(0.05)
    names = [p["metadata"]["name"] for p in sim.pods()]
    assert len(names) == 2 and victim not in names


# ------------------------------------------------------------------ services


def ready_ips(sim: Sim, name: str = "web") -> list[str]:
    subsets = sim.state.endpoints[(NS, name)]["subsets"]
    return sorted(a["ip"] for s in subsets for a in s.get("addresses") or [])


def test_endpoints_follow_ready_workload_pods():
    sim = Sim()
    sim.state.create_service(NS, {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})
    sim.step()
    assert len(sim.state.pods) == 2  # no workload yet: the per-service simulation
    sim.w.create_deployment(NS, deployment(replicas=3))
    sim.step()
    assert all(p["metadata"].get("generateName") for p in sim.state.pods.values())  # simulated pods gone
    assert ready_ips(sim) == []
    sim.run_until(lambda: len(ready_ips(sim)) == 3)
    assert ready_ips(sim) == sorted(p["status"]["podIP"] for p in sim.pods())
    assert sim.state.endpoints[(NS, "web")]["subsets"][0]["ports"][0]["port"] == 8000  # named targetPort
    assert {p["name"] for p in sim.state.ready_pods((NS, "web"))} == {p["metadata"]["name"] for p in sim.pods()}
    scaled = copy.deepcopy(sim.deployment())
    scaled["spec"]["replicas"] = 0
    sim.w.replace_deployment(NS, "web", scaled)
    sim.step(0.05, 2)
    assert ready_ips(sim) == [] and sim.pods() == []  # zero replicas: no endpoints, no simulated pods
    sim.state.forced_unready = {}
    sim.w.delete_deployment(NS, "web")
    sim.step(0.05, 2)
    assert len(sim.state.pods) == 2  # the service's own simulation is back


def test_services_not_matching_workloads_keep_their_simulated_pods():
    sim = Sim()
    sim.w.create_deployment(NS, deployment(replicas=1))
    sim.state.create_service(NS, {"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}})
    sim.run_until(lambda: len(ready_ips(sim, "db")) == 2)
    assert sorted(p["metadata"]["name"] for p in sim.state.pods.values() if not p["metadata"].get("generateName")) == ["db-0", "db-1"]
