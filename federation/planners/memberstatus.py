"""A federated object's status from its member copies' statuses: a pure function (issue 15).

KubeFed collects each member's status beside the federated object (its status collection);
ubernetes keeps the federated object an ordinary one, so it writes what the members report
into that object's own ``status``, in the kind's own shape, the way the federated
Deployment sums its copies' replicas: ``kubectl get jobs`` at the federation then shows
the federation's COMPLETIONS, ``kubectl wait --for=condition=complete`` waits for every
cluster's part, ``kubectl get ds`` shows the pods of every member.

- Job: ``active``, ``ready``, ``succeeded``, ``failed`` summed; ``startTime`` the earliest;
  ``Complete`` (with ``SuccessCriteriaMet``) once every placed cluster's copy is complete,
  ``completionTime`` then the latest; ``Failed`` as soon as one copy failed, its message
  naming the cluster;
- DaemonSet: every count summed (desired is the nodes of all placed members);
- CronJob: ``lastScheduleTime`` and ``lastSuccessfulTime`` the latest, ``active`` every
  member's running Jobs;
- Ingress: ``status.loadBalancer.ingress`` every member's addresses, in cluster order.

``copies`` maps every placed cluster to its copy (None when it has none yet, or did not
answer). The propagation status (:mod:`federation.planners.propagationstatus`) is added by
the sync controller; its ``Propagation`` condition goes after the kind's conditions.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

Object = dict[str, Any]
Copies = Mapping[str, Object | None]

DAEMONSET_COUNTS = ("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady",
                    "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def _statuses(copies: Copies) -> dict[str, Object]:
    return {c: (o.get("status") or {}) for c, o in sorted(copies.items()) if o is not None}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _true(status: Object, ctype: str) -> Object | None:
    return next((c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == ctype
                 and c.get("status") == "True"), None)


def job_status(copies: Copies) -> Object:
    statuses = _statuses(copies)
    out: Object = {}
    starts = [s["startTime"] for s in statuses.values() if s.get("startTime")]
    if starts:
        out["startTime"] = min(starts)
    for key in ("active", "ready", "succeeded", "failed"):
        total = sum(_int(s.get(key)) for s in statuses.values())
        if total or key == "ready":
            out[key] = total
    failed = {c: cond for c, s in statuses.items() if (cond := _true(s, "Failed"))}
    complete = {c: cond for c, s in statuses.items() if (cond := _true(s, "Complete"))}
    conditions = []
    if failed:
        stamp = max(c.get("lastTransitionTime", "") for c in failed.values())
        message = "; ".join(f"{c}: {cond.get('message') or cond.get('reason', '')}" for c, cond in failed.items())
        conditions.append({"type": "Failed", "status": "True", "reason": next(iter(failed.values())).get("reason", ""),
                           "message": message, "lastTransitionTime": stamp})
    elif copies and len(complete) == len(copies):
        stamp = max(c.get("lastTransitionTime", "") for c in complete.values())
        message = f"Reached expected number of succeeded pods in {len(complete)} cluster(s)"
        conditions += [{"type": ctype, "status": "True", "reason": "CompletionsReached", "message": message,
                        "lastTransitionTime": stamp} for ctype in ("SuccessCriteriaMet", "Complete")]
        ends = [s["completionTime"] for s in statuses.values() if s.get("completionTime")]
        if ends:
            out["completionTime"] = max(ends)
    if conditions:
        out["conditions"] = conditions
    return out


def daemonset_status(copies: Copies) -> Object:
    statuses = _statuses(copies)
    return {key: sum(_int(s.get(key)) for s in statuses.values()) for key in DAEMONSET_COUNTS}


def cronjob_status(copies: Copies) -> Object:
    statuses = _statuses(copies)
    out: Object = {}
    for key in ("lastScheduleTime", "lastSuccessfulTime"):
        times = [s[key] for s in statuses.values() if s.get(key)]
        if times:
            out[key] = max(times)
    active = [ref for s in statuses.values() for ref in s.get("active") or []]
    if active:
        out["active"] = active
    return out


def ingress_status(copies: Copies) -> Object:
    found: list[Object] = []
    for status in _statuses(copies).values():
        for point in (status.get("loadBalancer") or {}).get("ingress") or []:
            if isinstance(point, dict) and point not in found:
                found.append(point)
    return {"loadBalancer": {"ingress": found} if found else {}}


AGGREGATORS: dict[str, Callable[[Copies], Object]] = {
    "Job": job_status, "DaemonSet": daemonset_status, "CronJob": cronjob_status, "Ingress": ingress_status,
}


def with_propagation(kind_status: Object, propagation: Object) -> Object:
    """The kind's status and the propagation status in one: the kind's conditions first."""
    conditions = list(kind_status.get("conditions") or []) + list(propagation.get("conditions") or [])
    return {**kind_status, **propagation, "conditions": conditions}
