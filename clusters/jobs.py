"""Simulated Jobs and CronJobs in one member cluster (issue 15).

Enough of Kubernetes' job and cronjob controllers to make a federated Job observable:

- a Job runs pods of its template until ``spec.completions`` of them have succeeded, at most
  ``spec.parallelism`` at a time (``min(parallelism, completions - succeeded)``, the real
  controller's arithmetic). A pod's containers run for ``--workload job-pod-duration``
  seconds (the pod template's ``ubernetes.io/run-seconds`` annotation wins) and then exit
  with their command's code (``false`` or ``exit 3`` fail, as in :mod:`clusters.workloads`),
  so a pod ends ``Succeeded`` or ``Failed``;
- failed pods are replaced until more than ``spec.backoffLimit`` have failed, then the Job
  fails (``BackoffLimitExceeded``); ``activeDeadlineSeconds`` fails it with ``DeadlineExceeded``;
  ``suspend: true`` deletes its running pods and starts none;
- ``status`` as the real controller writes it: ``startTime``, ``active``, ``ready``,
  ``succeeded``, ``failed``, ``completionTime`` and the ``SuccessCriteriaMet``/``Complete``
  (or ``FailureTarget``/``Failed``) conditions of Kubernetes 1.31 and later;
- the selector is generated on create from the Job's uid (``batch.kubernetes.io/controller-uid``)
  and the template gets that label and ``batch.kubernetes.io/job-name``, as the job strategy
  does; a member's copy of a federated Job therefore never carries the federation's uid;
- a CronJob creates a Job ``<cronjob>-<scheduled time>`` (in minutes since the epoch for
  cron schedules, seconds for ``@every``, which tests use) at each time its schedule
  (:mod:`federation.planners.cronschedule`) fires, honours ``concurrencyPolicy``
  (``Allow``, ``Forbid``, ``Replace``), ``suspend`` and ``startingDeadlineSeconds``, keeps
  ``successfulJobsHistoryLimit`` and ``failedJobsHistoryLimit`` finished Jobs, and reports
  ``active``, ``lastScheduleTime`` and ``lastSuccessfulTime``; several missed runs are one run.

Not simulated: Indexed completion mode, pod failure policies, the back-off delay between
retries (a failed pod is replaced on the next pass), ``OnFailure`` restarts in place (a pod
that fails under ``OnFailure`` fails as under ``Never``), time zones (schedules are UTC).

No I/O, as in :mod:`clusters.workloads`: the member's control loop calls these through
:class:`~clusters.workloads.PodOwner` and sleeps until :meth:`Jobs.deadlines`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

from apimachinery.meta import now_rfc3339, parse_time
from clusters.plainobjects import PlainObjects
from clusters.workloads import Workloads, owner_ref
from federation.names import CRONJOB_SCHEDULED_ANNOTATION, JOB_NAME_LABEL, JOB_UID_LABEL, RUN_SECONDS_ANNOTATION
from federation.planners import cronschedule
from federation.resources import MEMBER_JOBS

Object = dict[str, Any]
Key = tuple[str, str]


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_job(job: Object) -> None:
    """The job strategy's generated selector and template labels, from the Job's own uid."""
    spec = job.get("spec") or {}
    if spec.get("manualSelector"):
        return
    meta = job["metadata"]
    generated = {JOB_UID_LABEL: meta["uid"], JOB_NAME_LABEL: meta["name"],
                 "controller-uid": meta["uid"], "job-name": meta["name"]}
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: meta["uid"]}}
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **generated}


def condition(job: Object, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])


def finished(job: Object) -> bool:
    return condition(job, "Complete") or condition(job, "Failed")


def _phase(pod: Object) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


class Jobs:
    """The job and cronjob controllers over the member's tables (``state.plain.jobs``, ``.cronjobs``)."""

    def __init__(self, workloads: Workloads, plain: PlainObjects, *, wall: Callable[[], float] = time.time) -> None:
        self.workloads = workloads
        self.plain = plain  # its create is the API's: validation, uid, the generated selector
        self.jobs = plain.jobs
        self.cronjobs = plain.cronjobs
        self.wall = wall
        self._failed_reason: dict[Key, tuple[str, str]] = {}

    def create_job(self, namespace: str, body: Object) -> Object:
        return self.plain.create(MEMBER_JOBS, namespace, body)

    def delete_job(self, namespace: str, name: str) -> None:
        self.plain.delete(MEMBER_JOBS, namespace, name)  # its pods: the garbage collector's next pass

    def orphan_jobs(self, cronjob_uid: str) -> None:
        """A CronJob deleted with ``propagationPolicy: Orphan``: its Jobs stay, without the reference."""
        for job in self.jobs.values():
            refs = job["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == cronjob_uid for r in refs):
                job["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != cronjob_uid]
                self.workloads._touch(job)

    # -------------------------------------------------------------- PodOwner

    def uids(self) -> set[str]:
        return {j["metadata"]["uid"] for j in self.jobs.values()}

    def deadlines(self) -> list[float]:
        now_mono, now = self.workloads.clock, self.wall()
        out = []
        for cj in self.cronjobs.values():
            if (cj.get("spec") or {}).get("suspend"):
                continue
            try:
                schedule = cronschedule.parse(cj["spec"]["schedule"])
            except cronschedule.ScheduleError:
                continue
            out.append(now_mono + max(0.0, schedule.next_after(now) - now) + 0.01)
        for job in self.jobs.values():
            deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
            start = (job.get("status") or {}).get("startTime")
            if deadline and start and not finished(job):
                out.append(now_mono + max(0.0, parse_time(start).timestamp() + deadline - now))
        return out

    def sync_pods(self) -> bool:
        changed = self._sync_cronjobs()
        for key in list(self.jobs):
            changed |= self._sync_job(key)
        return changed

    def sync_status(self) -> bool:
        changed = False
        for key in list(self.jobs):
            changed |= self._job_status(key)
        for key in list(self.cronjobs):
            changed |= self._cronjob_status(key)
        return changed

    # -------------------------------------------------------------- Job

    def _pods(self, job: Object) -> list[Object]:
        return self.workloads.pods_of(job)

    def _run_for(self, job: Object) -> float:
        annotations = ((job["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
        try:
            return max(0.0, float(annotations[RUN_SECONDS_ANNOTATION]))
        except (KeyError, TypeError, ValueError):
            return self.workloads.settings.job_pod_duration

    def _remove(self, pods: list[Object]) -> bool:
        for pod in pods:
            self.workloads._remove_pod((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return bool(pods)

    def _sync_job(self, key: Key) -> bool:
        job = self.jobs[key]
        meta, spec = job["metadata"], job["spec"]
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if owner is not None and owner.get("kind") == "CronJob" and \
                owner.get("uid") not in {c["metadata"]["uid"] for c in self.cronjobs.values()}:
            self.delete_job(key[0], key[1])  # its CronJob is gone: the garbage collector takes it
            return True
        pods = self._pods(job)
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        if finished(job):
            return self._remove(active)
        if spec.get("suspend"):
            return self._remove(active)
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        start = (job.get("status") or {}).get("startTime")
        deadline = spec.get("activeDeadlineSeconds")
        if failed > spec.get("backoffLimit", 6):
            self._failed_reason[key] = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            return self._remove(active)
        if deadline and start and self.wall() >= parse_time(start).timestamp() + deadline:
            self._failed_reason[key] = ("DeadlineExceeded", "Job was active longer than specified deadline")
            return self._remove(active)
        completions = spec.get("completions")
        parallelism = spec.get("parallelism", 1)
        if completions is None:  # a work queue: done once one pod succeeded and the rest ended
            want = 0 if succeeded else parallelism
        else:
            want = max(0, min(parallelism, completions - succeeded))
        changed = False
        if len(active) > want:
            newest_first = sorted(active, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
            changed |= self._remove(newest_first[: len(active) - want])
        for _ in range(want - len(active)):
            if self.workloads.create_owned_pod(job, run_for=self._run_for(job)) is None:
                break
            changed = True
        return changed

    def _job_status(self, key: Key) -> bool:
        job = self.jobs.get(key)
        if job is None:
            return False
        spec, old = job["spec"], job.get("status") or {}
        pods = self._pods(job)
        sims = self.workloads.sims
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        ready = sum(1 for p in active if (s := sims.get((p["metadata"]["namespace"], p["metadata"]["name"]))) and s.ready)
        status: Object = {}
        if old.get("startTime") or (not spec.get("suspend") and pods):
            status["startTime"] = old.get("startTime") or now_rfc3339()
        if active:
            status["active"] = len(active)
        status["ready"] = ready
        status["terminating"] = 0
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        status["uncountedTerminatedPods"] = {}
        conditions = [c for c in old.get("conditions") or [] if c.get("type") not in ("Suspended",)]
        stamp = now_rfc3339()
        if not finished(job) and not active:
            completions = spec.get("completions")
            done = succeeded >= completions if completions is not None else succeeded > 0
            if key in self._failed_reason:
                reason, message = self._failed_reason.pop(key)
                conditions += [_condition("FailureTarget", reason, message, stamp), _condition("Failed", reason, message, stamp)]
            elif done and pods or (completions == 0):
                message = "Reached expected number of succeeded pods"
                conditions += [_condition("SuccessCriteriaMet", "CompletionsReached", message, stamp),
                               _condition("Complete", "CompletionsReached", message, stamp)]
        if spec.get("suspend") and not finished(job):
            conditions.append(_condition("Suspended", "JobSuspended", "Job suspended", old_stamp(old, "Suspended", stamp)))
        if conditions:
            status["conditions"] = conditions
        if any(c["type"] == "Complete" for c in conditions):
            status["completionTime"] = old.get("completionTime") or stamp
        if status == old:
            return False
        job["status"] = status
        self.workloads._touch(job)
        return True

    # -------------------------------------------------------------- CronJob

    def owned_jobs(self, cronjob: Object) -> list[Object]:
        uid = cronjob["metadata"]["uid"]
        return [j for j in self.jobs.values()
                if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or [])]

    def _sync_cronjobs(self) -> bool:
        changed = False
        now = self.wall()
        for key in list(self.cronjobs):
            cj = self.cronjobs[key]
            spec = cj["spec"]
            changed |= self._trim_history(cj)
            if spec.get("suspend"):
                continue
            try:
                schedule = cronschedule.parse(spec["schedule"])
            except cronschedule.ScheduleError:
                continue
            last = (cj.get("status") or {}).get("lastScheduleTime") or cj["metadata"]["creationTimestamp"]
            due = schedule.last_at_or_before(now, since=parse_time(last).timestamp())
            if due is None:
                continue
            starting = spec.get("startingDeadlineSeconds")
            if starting is not None and now - due > starting:
                continue
            running = [j for j in self.owned_jobs(cj) if not finished(j)]
            policy = spec.get("concurrencyPolicy", "Allow")
            if running and policy == "Forbid":
                continue  # tried again on the next pass, as the real controller does
            if running and policy == "Replace":
                for job in running:
                    self.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
            suffix = int(due) if schedule.every else int(due // 60)
            template = spec.get("jobTemplate") or {}
            tmeta = template.get("metadata") or {}
            body = {
                "apiVersion": MEMBER_JOBS.api_version, "kind": MEMBER_JOBS.kind,
                "metadata": {"name": f"{cj['metadata']['name']}-{suffix}", "namespace": key[0],
                             "labels": dict(tmeta.get("labels") or {}),
                             "annotations": {**(tmeta.get("annotations") or {}), CRONJOB_SCHEDULED_ANNOTATION: rfc3339(due)},
                             "ownerReferences": [owner_ref(cj)]},
                "spec": template.get("spec") or {},
            }
            try:
                self.create_job(key[0], body)
            except Exception as err:  # noqa: BLE001 - AlreadyExists or invalid: the Event says so
                self.workloads.state.record_event(cj, "Warning", "FailedCreate", f"Error creating job: {err}")
            else:
                self.workloads.state.record_event(cj, "Normal", "SuccessfulCreate", f"Created job {body['metadata']['name']}")
            cj.setdefault("status", {})["lastScheduleTime"] = rfc3339(due)
            self.workloads._touch(cj)
            changed = True
        return changed

    def _trim_history(self, cj: Object) -> bool:
        spec = cj["spec"]
        done = sorted((j for j in self.owned_jobs(cj) if finished(j)), key=lambda j: j["metadata"]["creationTimestamp"])
        changed = False
        for ctype, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)), ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            of_kind = [j for j in done if condition(j, ctype)]
            for job in of_kind[: max(0, len(of_kind) - int(limit))]:
                self.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
                changed = True
        return changed

    def _cronjob_status(self, key: Key) -> bool:
        cj = self.cronjobs[key]
        old = cj.get("status") or {}
        jobs = self.owned_jobs(cj)
        status = {k: v for k, v in old.items() if k == "lastScheduleTime"}
        active = [{"apiVersion": MEMBER_JOBS.api_version, "kind": MEMBER_JOBS.kind, "name": j["metadata"]["name"],
                   "namespace": j["metadata"]["namespace"], "uid": j["metadata"]["uid"]}
                  for j in jobs if not finished(j)]
        if active:
            status["active"] = sorted(active, key=lambda r: r["name"])
        succeeded = [j["status"]["completionTime"] for j in jobs if condition(j, "Complete") and (j.get("status") or {}).get("completionTime")]
        last = max(succeeded + ([old["lastSuccessfulTime"]] if old.get("lastSuccessfulTime") else []), default=None)
        if last:
            status["lastSuccessfulTime"] = last
        if status == old:
            return False
        cj["status"] = status
        self.workloads._touch(cj)
        return True


def _condition(ctype: str, reason: str, message: str, stamp: str) -> Object:
    return {"type": ctype, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def old_stamp(status: Object, ctype: str, default: str) -> str:
    return next((c.get("lastTransitionTime", default) for c in status.get("conditions") or [] if c.get("type") == ctype), default)
