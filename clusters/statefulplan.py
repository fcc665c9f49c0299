"""The ordering rules of a StatefulSet (PetSet in Kubernetes 1.3), as a pure function.

A StatefulSet's pods have identities, not just a count: ``<set>-<ordinal>`` for the ordinals
``start .. start+replicas-1`` (``spec.ordinals.start``, 0 unless set; the federation sets it
to give each member its own range, docs/workloads.md). With ``podManagementPolicy:
OrderedReady`` (the default, and the only behaviour a 1.3 PetSet had) the controller

- creates the lowest missing ordinal, and only once every lower one is Running and Ready;
- deletes the ordinals outside the range (a scale-down, or a moved range) from the highest
  down, one at a time, and only while every pod it keeps is Ready;
- waits while any pod of the set is terminating, so the next step never overlaps it: the
  identity of a deleted pod is free again only once the old pod is gone;
- replaces a pod that failed (phase Failed) at once, keeping its name;
- rolls a new template (``RollingUpdate``) once every wanted pod is Ready and nothing is
  condemned: the highest outdated ordinal first, one at a time.

With ``Parallel`` it creates every missing ordinal and deletes every condemned one at once,
as the real controller does. What the controller does with the steps (claims first, then
the pod; a grace period before a pod disappears) is :mod:`clusters.statefulsets`; here is
only the decision, so it can be tested exhaustively (tests/unit/test_statefulplan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"


@dataclass(frozen=True)
class PodView:
    """What the planner needs to know of one existing pod of the set."""

    ready: bool = False
    terminating: bool = False
    failed: bool = False
    outdated: bool = False  # runs an old template and the update strategy replaces it now


@dataclass(frozen=True)
class Step:
    action: Literal["create", "delete"]
    ordinal: int


def ordinals(replicas: int, start: int = 0) -> range:
    """The ordinals a set of ``replicas`` pods starting at ``start`` should have."""
    return range(start, start + max(0, replicas))


def plan(*, replicas: int, pods: Mapping[int, PodView], start: int = 0, policy: str = ORDERED_READY) -> list[Step]:
    """The next steps towards exactly the pods ``ordinals(replicas, start)``, all Ready."""
    wanted = ordinals(replicas, start)
    condemned = sorted((o for o in pods if o not in wanted), reverse=True)
    failed = [o for o in sorted(pods) if o in wanted and pods[o].failed and not pods[o].terminating]
    if policy == PARALLEL:
        steps = [Step("delete", o) for o in failed]
        steps += [Step("create", o) for o in wanted if o not in pods]
        steps += [Step("delete", o) for o in condemned if not pods[o].terminating]
        return steps or _roll(pods, wanted)
    if any(p.terminating for p in pods.values()):
        return []
    if failed:
        return [Step("delete", failed[-1])]
    for o in wanted:
        if o not in pods:
            return [Step("create", o)]
        if not pods[o].ready:
            return []
    if condemned:
        return [Step("delete", condemned[0])]
    return _roll(pods, wanted)


def _roll(pods: Mapping[int, PodView], wanted: range) -> list[Step]:
    """One step of a rolling update: the highest outdated pod, once every pod is Ready."""
    if any(o not in pods or not pods[o].ready or pods[o].terminating for o in wanted):
        return []
    outdated = [o for o in wanted if pods[o].outdated]
    return [Step("delete", outdated[-1])] if outdated else []


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    """The ordinal in a pod's name if the pod is ``<set_name>-<ordinal>``, else None."""
    prefix, sep, tail = pod_name.rpartition("-")
    if not sep or prefix != set_name or not tail.isdigit() or (tail != "0" and tail.startswith("0")):
        return None
    return int(tail)


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    """The PersistentVolumeClaim of one ordinal for one ``volumeClaimTemplates`` entry:
    ``<template>-<set>-<ordinal>``, Kubernetes' name, so a pod that comes back finds it."""
    return f"{template_name}-{set_name}-{ordinal}"
