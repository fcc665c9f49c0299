"""The failover history as data: the steps of a change of standing and the records they make (issue 17).

A change of a cluster's or a shard's standing (healthy, voted down, Offline, back) is told as
an *incident*: a run of steps that share one id, from the fault (when ``ubernetes chaos``
caused it) through the first failed probe, the probers' votes and the verdict to the DNS
records that changed and the responder serving them. Each step is one ``FailoverRecord``
object (``federation/v1beta1``, cluster-scoped); this module builds them, names them so
that names sort by time, and says which DNS answers a change of records touched. Pure:
the controllers (``federation/controllers/history.py``) and the launcher do the I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FAULT = "Fault"
PROBE_FAILED = "ProbeFailed"
VOTE = "Vote"
VERDICT = "Verdict"
RECORDS_CHANGED = "RecordsChanged"
SERVED = "Served"
RECOVERED = "Recovered"
STEPS = (FAULT, PROBE_FAILED, VOTE, VERDICT, RECORDS_CHANGED, SERVED, RECOVERED)

DOWN = "down"
UP = "up"

API_VERSION = "federation/v1beta1"
KIND = "FailoverRecord"
INCIDENT_LABEL = "federation.kubernetes.io/incident"
STEP_LABEL = "federation.kubernetes.io/step"


def rfc3339_micro(when: datetime) -> str:
    """``2026-12-05T07:15:02.123456Z``: microseconds, UTC."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def incident_id(cluster: str, direction: str, started: datetime) -> str:
    """An incident's id: the cluster, which way its standing went, and when it started."""
    return f"{cluster}.{direction}.{started.astimezone(timezone.utc).strftime('%Y%m%dt%H%M%S%f')}"


@dataclass(frozen=True)
class Step:
    time: datetime
    step: str
    message: str
    cluster: str | None = None
    service: str | None = None
    serial: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # more spec fields: votes, lease, answers...


def record_name(step: Step, suffix: str | None = None) -> str:
    """Sorts by time: ``20261205-071502-123456-verdict-3f2a``."""
    stamp = step.time.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return f"{stamp}-{step.step.lower()}-{suffix or secrets.token_hex(2)}"


def record_object(step: Step, *, incident: str, since_fault: float, suffix: str | None = None) -> dict[str, Any]:
    """The FailoverRecord of ``step`` in ``incident``, ``since_fault`` seconds after its first step."""
    spec: dict[str, Any] = {**step.details, "time": rfc3339_micro(step.time), "step": step.step,
                            "incident": incident, "message": step.message, "sinceFault": round(since_fault, 6)}
    if step.cluster:
        spec["cluster"] = step.cluster
    if step.service:
        spec["service"] = step.service
    if step.serial is not None:
        spec["serial"] = step.serial
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": record_name(step, suffix),
                         "labels": {STEP_LABEL: step.step.lower(), INCIDENT_LABEL: incident[:63].strip(".-")}},
            "spec": spec}


@dataclass
class Incident:
    """One change of standing of one cluster (its shards included), as it unfolds."""

    id: str
    cluster: str
    direction: str
    started: datetime
    verdict_time: datetime | None = None
    verdict: str = ""  # the label of the latest verdict: Offline, NotReady, ShardUnreachable, Ready, ShardReachable
    addresses: frozenset[str] = frozenset()  # the shard IPs whose answers it changes


def continues(incident: Incident | None, *, direction: str, now: datetime, window: float) -> bool:
    """Does a step going ``direction`` at ``now`` belong to ``incident``?"""
    return (incident is not None and incident.direction == direction
            and (now - incident.started).total_seconds() <= window)


# ---------------------------------------------------------------- which answers changed


@dataclass(frozen=True)
class AnswerChange:
    name: str
    old_type: str | None
    old_targets: tuple[str, ...]
    new_type: str | None
    new_targets: tuple[str, ...]

    def text(self) -> str:
        def side(rtype: str | None, targets: tuple[str, ...]) -> str:
            return f"{rtype} {','.join(targets)}" if rtype else "no record"
        return f"{self.name} {side(self.old_type, self.old_targets)} -> {side(self.new_type, self.new_targets)}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": {"type": self.old_type, "targets": list(self.old_targets)},
                "after": {"type": self.new_type, "targets": list(self.new_targets)}}


def answer_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[AnswerChange]:
    """DNSRecord specs by object name, before and after a write: the DNS names whose answer
    changed (an A record turned CNAME is one change of one name, though two objects)."""
    def by_name(specs: dict[str, dict[str, Any]]) -> dict[str, tuple[str, tuple[str, ...]]]:
        out = {}
        for spec in specs.values():
            if isinstance(spec, dict) and spec.get("name"):
                out[str(spec["name"])] = (str(spec.get("type")), tuple(sorted(map(str, spec.get("targets") or []))))
        return out

    old, new = by_name(before), by_name(after)
    changes = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        if o == n:
            continue
        changes.append(AnswerChange(name, o[0] if o else None, o[1] if o else (), n[0] if n else None, n[1] if n else ()))
    return changes


def touches(change: AnswerChange, addresses: frozenset[str]) -> bool:
    """Did ``change`` add or drop one of ``addresses``, or turn a name that answered one into
    something else (a CNAME one level up, no record)?"""
    old, new = set(change.old_targets), set(change.new_targets)
    return bool(addresses & (old ^ new)) or (change.old_type != change.new_type and bool(addresses & (old | new)))


def vote_tally(votes: dict[str, str]) -> str:
    """``federation: down, aws-us-east-1a: down, gcp-europe-west1-b: no view``."""
    return ", ".join(f"{k}: {v or 'no view'}" for k, v in sorted(votes.items()))


def vote_changes(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    """(prober, new view) of each prober whose view of an address flipped between up and down
    (a first view, as probers start, is no change of standing)."""
    return [(voter, view) for voter, view in sorted(new.items())
            if view in (UP, DOWN) and old.get(voter) in (UP, DOWN) and old.get(voter) != view]


# ---------------------------------------------------------------- reading records back


def record_time(record: dict[str, Any]) -> datetime | None:
    value = (record.get("spec") or {}).get("time")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def in_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(records, key=lambda r: (record_time(r) or epoch, (r.get("metadata") or {}).get("name", "")))


def oldest_beyond(records: list[dict[str, Any]], limit: int) -> list[str]:
    """The names of the records to drop so that the newest ``limit`` stay."""
    ordered = in_order(records)
    return [(r.get("metadata") or {}).get("name", "") for r in ordered[:max(0, len(ordered) - limit)]]


def validate(obj: dict[str, Any]) -> list[tuple[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs = []
    if spec.get("step") not in STEPS:
        errs.append(("spec.step", f"Unsupported value: {spec.get('step')!r}: supported values: {', '.join(STEPS)}"))
    if record_time(obj) is None:
        errs.append(("spec.time", f"Invalid value: {spec.get('time')!r}: must be an RFC 3339 time"))
    if not isinstance(spec.get("incident"), str) or not spec.get("incident"):
        errs.append(("spec.incident", "Required value"))
    if not isinstance(spec.get("message"), str):
        errs.append(("spec.message", "Required value"))
    return errs
