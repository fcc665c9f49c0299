"""Federated StatefulSets: one ``apps/v1`` StatefulSet whose ordinals are split over the members.

Like the federated Deployments (:mod:`federation.controllers.deployments`, whose copy
machinery this reuses: member informers, :func:`federation.controllers.membersync.
sync_copies`, ownership and Orphan deletes), one key at a time, level-triggered. What
differs is the split: not a count per cluster but a range of pod identities per cluster,
which each member runs with ``spec.ordinals.start`` and ``spec.replicas``
(:mod:`federation.planners.ordinalsplit` states the rule and why it never puts one
identity in two clusters). Per key:

1. the views: a Ready member's copy gives its range, what it may still hold (the
   :data:`~federation.planners.ordinalsplit.HELD_ANNOTATION` on the copy) and whether it
   has settled (``observedGeneration`` and the member's ``OrdinalsInRange`` condition); a
   joined member that is not Ready, or has not answered, holds what the federated object's
   ``status.clusters`` last recorded for it (the federation's store is what survives);
2. the counts from the replica split over the Ready placed clusters, the ranges from the
   planner; a Ready member that the placement no longer selects is shrunk to nothing first
   and its copy deleted once it has let go;
3. status: per cluster its range, target and held ordinals, totals over the Ready
   members, and the ``OrdinalsHeld`` condition naming the ordinals an unreachable member
   keeps (they run nowhere else until it comes back or is unjoined).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from apimachinery.meta import now_rfc3339
from federation.api.cache import Reader
from federation.api.registry import Registry
from federation.controllers.deployments import DeploymentCopies, WorkloadController, drifted, write_status
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, sync_copies
from federation.controllers.ownership import owner_of
from federation.names import FEDERATION_LABEL, OWNER_ANNOTATION, OWNER_KIND_ANNOTATION, OWNER_UID_ANNOTATION
from federation.planners.ordinalsplit import HELD_ANNOTATION, ClusterView, Range, assign, held_elsewhere
from federation.planners.placement import PREFERENCES_ANNOTATION, PlacementError, placed_clusters
from federation.planners.replicasplit import PreferenceError, parse_preferences, plan_replicas
from federation.resources import STATEFULSETS
from federation.settings import Settings
from federation.statefulapi import ORDINALS_CONDITION

log = logging.getLogger("federation.statefulsets")

GENERATION_ANNOTATION = "federation.kubernetes.io/generation"
Key = tuple[str, str]
HELD_CONDITION = "OrdinalsHeld"


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def member_copy(fed: dict[str, Any], *, federation: str, ordinals: Range, held: Range) -> dict[str, Any]:
    """What the federation wants in one cluster: the set with that cluster's range."""
    meta = fed["metadata"]
    labels = {**(meta.get("labels") or {}), FEDERATION_LABEL: federation}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith("federation.kubernetes.io/") and k != "kubectl.kubernetes.io/last-applied-configuration"}
    annotations.update({OWNER_ANNOTATION: f"{meta['namespace']}/{meta['name']}", OWNER_UID_ANNOTATION: meta["uid"],
                        OWNER_KIND_ANNOTATION: "StatefulSet", GENERATION_ANNOTATION: str(meta.get("generation", 1)),
                        HELD_ANNOTATION: held.text()})
    spec = copy.deepcopy(fed.get("spec") or {})
    spec["replicas"] = ordinals.size
    spec["ordinals"] = {"start": ordinals.start}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels, "annotations": annotations},
            "spec": spec}


def copy_view(copy_: dict[str, Any]) -> ClusterView:
    """A Ready member's copy as the planner sees it."""
    spec, status, meta = copy_.get("spec") or {}, copy_.get("status") or {}, copy_.get("metadata") or {}
    start = _int((spec.get("ordinals") or {}).get("start"))
    in_range = any(c.get("type") == ORDINALS_CONDITION and c.get("status") == "True" for c in status.get("conditions") or [])
    settled = in_range and _int(status.get("observedGeneration")) >= _int(meta.get("generation", 1))
    return ClusterView(ready=True, current=Range(start, start + _int(spec.get("replicas"))),
                       held_before=Range.parse((meta.get("annotations") or {}).get(HELD_ANNOTATION)), settled=settled)


def recorded_view(entry: dict[str, Any]) -> ClusterView:
    """A member that is not Ready (or has not answered): what status last recorded for it."""
    return ClusterView(ready=False, current=Range.parse(entry.get("ordinals")), held_before=Range.parse(entry.get("held")),
                       settled=False)


class StatefulSetCopies(DeploymentCopies):
    """How a member's copy of a federated StatefulSet is kept (a membersync.CopyAdapter)."""

    kind = STATEFULSETS
    noun = "statefulset"
    drifted = staticmethod(drifted)

    @staticmethod
    def created_event(want: Wanted, cluster: str) -> str:
        meta, spec = want.desired["metadata"], want.desired["spec"]
        r = Range(spec["ordinals"]["start"], spec["ordinals"]["start"] + spec["replicas"])
        return f"created statefulset {meta['namespace']}/{meta['name']} in cluster {cluster} with ordinals {r.text()}"

    @staticmethod
    def update_event(desired: dict[str, Any], actual: dict[str, Any], cluster: str) -> tuple[str, str]:
        meta, spec = desired["metadata"], desired["spec"]
        r = Range(spec["ordinals"]["start"], spec["ordinals"]["start"] + spec["replicas"])
        return "UpdatedInCluster", f"statefulset {meta['namespace']}/{meta['name']} in cluster {cluster} runs ordinals {r.text()}"

    def tombstone(self, key: Key, copy_: dict[str, Any]) -> Any:
        owner = owner_of(copy_)
        if owner is None or self.alive(*owner):
            return None
        return self.tombstones.find(STATEFULSETS.key, owner[0], owner[1], owner[2])


class StatefulSetController(WorkloadController):
    kind = STATEFULSETS
    workers = 4

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients, reader: Reader | None = None) -> None:
        super().__init__(registry, settings, members, reader, name="statefulsets", copies=StatefulSetCopies)

    async def reconcile_key(self, key: str) -> None:
        snapshot, skey, fed = await self.begin(key)
        observed: dict[str, dict[Key, dict[str, Any]]] = {}
        for cname in sorted(snapshot.ready_names):
            if self.synced(cname):
                copy_ = self.copies.get(cname, key)
                observed[cname] = {skey: copy_} if copy_ is not None else {}
        wanted: dict[str, dict[Key, Wanted]] = {cname: {} for cname in observed}
        status = self._plan(fed, snapshot, observed, wanted) if fed is not None else None
        involved = [c for c in observed if wanted[c] or observed[c]]
        answers, failed = await self.sync_each(
            [snapshot.by_name[c] for c in involved],
            lambda cluster: self._sync_cluster(cluster, wanted[cluster["metadata"]["name"]],
                                               observed[cluster["metadata"]["name"]], skey))
        if fed is None:
            self.tombstones.seen(STATEFULSETS.key, self.released_in(set(observed) - set(failed), key),
                                 snapshot.joined, owner=skey)
        elif status is not None:
            for entry in status["clusters"]:  # the totals from what the members answered
                after = (answers.get(entry["cluster"]) or {}).get(skey)
                if after is not None:
                    entry["readyReplicas"] = _int((after.get("status") or {}).get("readyReplicas"))
            status["readyReplicas"] = sum(e.get("readyReplicas", 0) for e in status["clusters"])
            status["availableReplicas"] = status["readyReplicas"]
            self._write_status(fed, status)
        self.requeue_if_failed(failed)

    async def _sync_cluster(self, cluster: dict[str, Any], wanted: dict[Key, Wanted],
                            existing: dict[Key, dict[str, Any]], key: Key) -> dict[Key, dict[str, Any]]:
        client = self.clusters().clients.get(cluster["metadata"]["name"])
        if client is None:
            return dict(existing)
        return await sync_copies(registry=self.registry, adapter=self.adapter, client=client,
                                 cluster=cluster["metadata"]["name"], wanted=wanted, existing=existing,
                                 backoff=self.backoff, only=key)

    def _plan(self, fed: dict[str, Any], snapshot: Any, observed: dict[str, dict[Key, dict[str, Any]]],
              wanted: dict[str, dict[Key, Wanted]]) -> dict[str, Any] | None:
        meta = fed["metadata"]
        key = (meta["namespace"], meta["name"])
        try:
            placed = placed_clusters(fed, snapshot.trusted)
            prefs = parse_preferences((meta.get("annotations") or {}).get(PREFERENCES_ANNOTATION))
        except (PlacementError, PreferenceError) as err:
            log.warning("statefulset %s/%s: %s", key[0], key[1], err)
            for cname in observed:  # keep every copy as it is until the annotations make sense
                if key in observed[cname]:
                    wanted[cname][key] = Wanted(observed[cname][key], fed)
            return None
        recorded = {e.get("cluster"): e for e in (fed.get("status") or {}).get("clusters") or [] if isinstance(e, dict)}
        views: dict[str, ClusterView] = {}
        for cname in snapshot.joined:  # an unjoined cluster holds nothing: the operator said it is gone
            copy_ = observed.get(cname, {}).get(key)
            if cname in observed:
                if copy_ is not None and (owner_of(copy_) or ("", "", ""))[2] == meta["uid"]:
                    views[cname] = copy_view(copy_)
                elif cname in placed:
                    views[cname] = ClusterView(ready=True)
            elif cname in recorded:
                views[cname] = recorded_view(recorded[cname])
        ready_placed = [c for c in placed if c in observed]
        counts = plan_replicas(_int((fed.get("spec") or {}).get("replicas", 1)), ready_placed, prefs)
        plan = assign(counts={c: counts.get(c, 0) for c in views if views[c].ready}, clusters=views)
        entries = []
        for cname, a in sorted(plan.items()):
            if cname not in placed and a.held.size == 0:
                continue  # let go of everything: the copy is deleted (not wanted)
            wanted[cname][key] = Wanted(member_copy(fed, federation=self.settings.federation_name,
                                                    ordinals=a.range, held=a.held), fed)
            entries.append({"cluster": cname, "clusterReady": True, "ordinals": a.range.text(), "target": a.target.text(),
                            "held": a.held.text(), "replicas": a.range.size})
        away = held_elsewhere(views)
        for cname, held in away.items():
            entry = recorded.get(cname) or {}
            entries.append({"cluster": cname, "clusterReady": False, "ordinals": entry.get("ordinals", held.text()),
                            "target": "none", "held": held.text(), "replicas": 0})
        previous = {c.get("type"): c for c in (fed.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
        if away:
            cond = ("True", "ClusterUnreachable", "; ".join(
                f"ordinals {h.text()} stay with cluster {c}, which is not Ready: they run nowhere else until it "
                f"answers and lets go of them, or is unjoined" for c, h in away.items()))
        else:
            cond = ("False", "AllClustersReady", "every ordinal is where the split puts it, or on its way there")
        old = previous.get(HELD_CONDITION) or {}
        condition = {"type": HELD_CONDITION, "status": cond[0], "reason": cond[1], "message": cond[2],
                     "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == cond[0] else now_rfc3339()}
        return {"observedGeneration": meta.get("generation", 1),
                "replicas": sum(e["replicas"] for e in entries if e["clusterReady"]),
                "clusters": sorted(entries, key=lambda e: e["cluster"]), "conditions": [condition]}

    def _write_status(self, fed: dict[str, Any], status: dict[str, Any]) -> None:
        write_status(self.registry, STATEFULSETS, fed, status)
