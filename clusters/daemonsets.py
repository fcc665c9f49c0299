"""Simulated DaemonSets in one member cluster: one pod per node (issue 15).

The daemonset controller in miniature: every simulated node whose labels match the pod
template's ``nodeSelector`` (taints and tolerations are not simulated) runs one pod of the
DaemonSet, placed on that node (not spread by the scheduler); a pod on a node that no longer
matches, or a second pod on one node, is deleted. A changed template (a new
``metadata.generation``) rolls out under ``RollingUpdate`` by deleting at most
``maxUnavailable`` old pods at a time (they come back from the new template on the next
pass; ``maxSurge`` is not simulated), and not at all under ``OnDelete``. Pods carry the
``pod-template-generation`` label, as the real controller's do.

``status`` has the counts ``kubectl get ds`` prints: ``desiredNumberScheduled``,
``currentNumberScheduled``, ``numberReady``, ``updatedNumberScheduled``, ``numberAvailable``
(ready for ``minReadySeconds``), ``numberUnavailable``, ``numberMisscheduled`` and
``observedGeneration``. No I/O (a :class:`~clusters.workloads.PodOwner`).
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import selector_matches
from clusters.workloads import Workloads, resolve_int_or_percent
from federation.names import DAEMONSET_GENERATION_LABEL

Object = dict[str, Any]
Key = tuple[str, str]


def eligible_nodes(ds: Object, nodes: dict[str, Object]) -> list[str]:
    """The nodes the DaemonSet runs on: those whose labels match its ``nodeSelector``."""
    selector = ((ds["spec"].get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    reqs = [(k, "=", [v]) for k, v in selector.items()]
    return sorted(n for n, node in nodes.items() if selector_matches(reqs, node["metadata"].get("labels") or {}))


class DaemonSets:
    def __init__(self, workloads: Workloads, daemonsets: dict[Key, Object]) -> None:
        self.workloads = workloads
        self.daemonsets = daemonsets

    def uids(self) -> set[str]:
        return {d["metadata"]["uid"] for d in self.daemonsets.values()}

    def deadlines(self) -> list[float]:
        return []

    def _generation(self, pod: Object) -> str:
        return (pod["metadata"].get("labels") or {}).get(DAEMONSET_GENERATION_LABEL, "")

    def _ready(self, pod: Object, min_ready: float = 0.0) -> bool:
        sim = self.workloads.sims.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if sim is None or not sim.ready or sim.ready_at is None:
            return False
        return self.workloads.clock >= sim.ready_at + min_ready

    def sync_pods(self) -> bool:
        changed = False
        for key in list(self.daemonsets):
            changed |= self._sync(self.daemonsets[key])
        return changed

    def _sync(self, ds: Object) -> bool:
        if ds["metadata"].get("deletionTimestamp"):
            return False
        nodes = eligible_nodes(ds, self.workloads.state.nodes)
        generation = str(ds["metadata"].get("generation", 1))
        by_node: dict[str, list[Object]] = {}
        for pod in self.workloads.pods_of(ds):
            by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
        remove = []
        for node, pods in by_node.items():
            pods.sort(key=lambda p: (self._generation(p) != generation, p["metadata"]["creationTimestamp"]))
            remove += pods[1:] if node in nodes else pods
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            kept = [pods[0] for node, pods in by_node.items() if node in nodes]
            budget = resolve_int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                                            len(nodes), round_up=True) or 1
            budget -= sum(1 for p in kept if not self._ready(p)) + sum(1 for n in nodes if n not in by_node)
            for pod in [p for p in kept if self._generation(p) != generation][: max(0, budget)]:
                remove.append(pod)
                by_node.pop(pod["spec"].get("nodeName", ""), None)
        for pod in remove:
            self.workloads._remove_pod((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        template = copy.deepcopy(ds["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[DAEMONSET_GENERATION_LABEL] = generation
        owner = {**ds, "spec": {**ds["spec"], "template": template}}
        created = False
        for node in nodes:
            if not [p for p in by_node.get(node, []) if p not in remove]:
                created |= self.workloads.create_owned_pod(owner, node=node) is not None
        return bool(remove) or created

    def sync_status(self) -> bool:
        changed = False
        for ds in self.daemonsets.values():
            nodes = eligible_nodes(ds, self.workloads.state.nodes)
            generation = str(ds["metadata"].get("generation", 1))
            pods = self.workloads.pods_of(ds)
            on = {p["spec"].get("nodeName") for p in pods}
            min_ready = ds["spec"].get("minReadySeconds", 0)
            available = sum(1 for p in pods if self._ready(p, min_ready))
            status = {
                "currentNumberScheduled": len(on & set(nodes)),
                "desiredNumberScheduled": len(nodes),
                "numberMisscheduled": len(on - set(nodes)),
                "numberReady": sum(1 for p in pods if self._ready(p)),
                "observedGeneration": ds["metadata"].get("generation", 1),
                "updatedNumberScheduled": sum(1 for p in pods if self._generation(p) == generation),
                "numberAvailable": available,
                "numberUnavailable": max(0, len(nodes) - available),
            }
            status = {k: v for k, v in status.items() if v or k in (
                "currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady")}
            if ds.get("status") != status:
                ds["status"] = status
                self.workloads._touch(ds)
                changed = True
        return changed
