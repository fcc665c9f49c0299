"""The member's simulated Jobs, CronJobs, DaemonSets and Ingresses (issue 15), with a stepped
clock (and a stepped wall clock for CronJob schedules); the cron parser as a table.

No sockets: :class:`clusters.state.ClusterState` driven pass by pass, as its control loop does.
"""

from __future__ import annotations

import calendar
import copy

import pytest

from apimachinery.errors import APIError
from clusters.state import ClusterState, Topology
from federation.planners import cronschedule
from federation.resources import MEMBER_CRONJOBS, MEMBER_DAEMONSETS, MEMBER_INGRESSES, MEMBER_JOBS

NS = "default"
POD = {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo ok"]}]}


class Sim:
    def __init__(self, *, nodes_per_zone: int = 1) -> None:
        self.now = 0.0
        self.wall = 1_800_000_000.0
        self.state = ClusterState(Topology(name="c1", region="r1", zones=["z1", "z2"], provider="aws",
                                           nodes_per_zone=nodes_per_zone, pod_ready_delay=0.1),
                                  clock=lambda: self.now)
        self.state.jobs.wall = lambda: self.wall

    def create(self, kind, body):
        body = copy.deepcopy(body)
        kind.default(body)
        return self.state.plain.create(kind, NS, body)

    def step(self, seconds: float, dt: float = 0.05) -> None:
        for _ in range(int(seconds / dt)):
            self.state.reconcile()
            self.now += dt
            self.wall += dt
        self.state.reconcile()


def job(name="work", *, completions=5, parallelism=2, policy="Never", pod=POD, **spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": completions, "parallelism": parallelism, **spec,
                     "template": {"spec": {"restartPolicy": policy, **copy.deepcopy(pod)}}}}


def test_job_runs_completions_with_at_most_parallelism_pods_at_once():
    sim = Sim()
    created = sim.create(MEMBER_JOBS, job())
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    most = 0
    for _ in range(80):
        sim.step(0.05)
        running = [p for p in sim.state.pods.values() if p["status"]["phase"] not in ("Succeeded", "Failed")]
        most = max(most, len(running))
    status = sim.state.plain.jobs[(NS, "work")]["status"]
    assert most == 2
    assert status["succeeded"] == 5 and "active" not in status
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert status["completionTime"]
    assert all(p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "work" for p in sim.state.pods.values())


def test_a_failing_job_fails_after_its_backoff_limit():
    sim = Sim()
    sim.create(MEMBER_JOBS, job(completions=1, parallelism=1, backoffLimit=2,
                                pod={"containers": [{"name": "c", "image": "busybox", "command": ["false"]}]}))
    sim.step(6)
    status = sim.state.plain.jobs[(NS, "work")]["status"]
    assert status["failed"] == 3
    assert next(c for c in status["conditions"] if c["type"] == "Failed")["reason"] == "BackoffLimitExceeded"


def test_job_refuses_restart_policy_always_and_its_own_selector():
    sim = Sim()
    with pytest.raises(APIError) as err:
        sim.create(MEMBER_JOBS, job(policy="Always", selector={"matchLabels": {"a": "b"}}))
    assert "spec.template.spec.restartPolicy" in str(err.value.message)
    assert "spec.selector" in str(err.value.message)


def test_deleting_a_job_collects_its_pods():
    sim = Sim()
    sim.create(MEMBER_JOBS, job(completions=2))
    sim.step(0.2)
    assert sim.state.pods
    sim.state.plain.delete(MEMBER_JOBS, NS, "work")
    sim.step(0.1)
    assert not sim.state.pods


def test_daemonset_runs_one_pod_per_matching_node_and_rolls_a_new_template():
    sim = Sim(nodes_per_zone=2)
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}}
    sim.create(MEMBER_DAEMONSETS, ds)
    sim.step(0.5)
    pods = list(sim.state.pods.values())
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(sim.state.nodes)
    status = sim.state.plain.daemonsets[(NS, "agent")]["status"]
    assert (status["desiredNumberScheduled"], status["numberReady"], status["numberAvailable"]) == (4, 4, 4)
    new = copy.deepcopy(sim.state.plain.daemonsets[(NS, "agent")])
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    sim.state.plain.replace(MEMBER_DAEMONSETS, NS, "agent", new)
    sim.step(3)
    assert {p["spec"]["containers"][0]["image"] for p in sim.state.pods.values()} == {"agent:2"}
    assert sim.state.plain.daemonsets[(NS, "agent")]["status"]["updatedNumberScheduled"] == 4

    zone_only = copy.deepcopy(sim.state.plain.daemonsets[(NS, "agent")])
    zone_only["spec"]["template"]["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": "z1"}
    sim.state.plain.replace(MEMBER_DAEMONSETS, NS, "agent", zone_only)
    sim.step(3)
    assert len(sim.state.pods) == 2
    assert sim.state.plain.daemonsets[(NS, "agent")]["status"]["desiredNumberScheduled"] == 2


def test_cronjob_creates_jobs_on_its_schedule_and_keeps_its_history():
    sim = Sim()
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
          "spec": {"schedule": "@every 2s", "successfulJobsHistoryLimit": 2,
                   "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", **POD}}}}}}
    created = sim.create(MEMBER_CRONJOBS, cj)
    created["metadata"]["creationTimestamp"] = "2027-01-15T08:00:00Z"  # the stepped wall clock's day
    sim.wall = calendar.timegm((2027, 1, 15, 8, 0, 0))
    sim.step(9)
    names = sorted(n for (_, n) in sim.state.plain.jobs)
    assert len(names) == 2 and all(n.startswith("tick-") for n in names)
    status = sim.state.plain.cronjobs[(NS, "tick")]["status"]
    assert status["lastScheduleTime"] and status["lastSuccessfulTime"]


def test_ingress_gets_the_member_address():
    sim = Sim()
    sim.create(MEMBER_INGRESSES, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                                  "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    sim.step(0.1)
    ingress = sim.state.plain.ingresses[(NS, "web")]["status"]["loadBalancer"]["ingress"]
    assert ingress[0]["ip"].startswith(sim.state.topology.pod_cidr.split(".0.0")[0])


T0 = calendar.timegm((2027, 1, 15, 8, 0, 30))  # a Friday


@pytest.mark.parametrize("schedule,after,expected", [
    ("*/15 * * * *", T0, calendar.timegm((2027, 1, 15, 8, 15, 0))),
    ("0 9 * * *", T0, calendar.timegm((2027, 1, 15, 9, 0, 0))),
    ("@hourly", T0, calendar.timegm((2027, 1, 15, 9, 0, 0))),
    ("30 6 * * mon", T0, calendar.timegm((2027, 1, 18, 6, 30, 0))),
    ("0 0 1 feb *", T0, calendar.timegm((2027, 2, 1, 0, 0, 0))),
    ("@every 10s", T0, T0 + 10),
])
def test_cron_next_time(schedule, after, expected):
    assert cronschedule.parse(schedule).next_after(after) == expected


@pytest.mark.parametrize("schedule,problem", [
    ("* * * *", "expected exactly 5 fields"),
    ("61 * * * *", "minute: 61 is outside 0-59"),
    ("@every soon", "is not a duration"),
    ("TZ=Europe/Paris * * * * *", "time zones"),
    ("@fortnightly", "unrecognized descriptor"),
])
def test_cron_refuses(schedule, problem):
    assert problem in (cronschedule.problem(schedule) or "")
