"""Federated Deployments: one ``apps/v1`` Deployment spread over the member clusters.

One federated Deployment at a time (issue 11), level-triggered, as the service propagation
does; keys are enqueued as :mod:`federation.controllers.keyed` says (the Deployment, its
copies in a member, a member's sync, a cluster's change, a slow resync):

1. the Deployment's copy in every Ready member, as informers on the members keep them
   (:mod:`federation.controllers.membercopies`, this federation's label; a member whose
   view has not synced counts as one that did not answer);
2. the Deployment: the clusters its placement selects
   (:mod:`federation.planners.placement`), of those the Ready ones, and the replica split over them
   (:mod:`federation.planners.replicasplit`; the current copies' replicas count only without
   ``rebalance``); then create, update or scale each cluster's copy (overrides applied) and
   delete copies in clusters the placement no longer selects, along the one sync path of
   member copies (:func:`federation.controllers.membersync.sync_copies`);
3. garbage collection: a copy whose federated owner (by uid) is gone is deleted, or
   released if the owner was deleted with ``propagationPolicy: Orphan``
   (:mod:`federation.controllers.ownership`); a cluster that was Offline then is cleaned up when it is
   Ready again;
4. status: the copies' counts summed over the Ready clusters, a per-cluster breakdown in
   ``status.clusters``, ``observedGeneration`` moved only when every Ready placed cluster
   runs the current template, and the ``Progressing`` condition
   ``ProgressDeadlineExceeded`` when any cluster's rollout stalled;
5. revision history: one ``ControllerRevision`` per pod template (``rollout history`` and
   ``rollout undo`` read them), numbered as the deployment controller numbers ReplicaSets.

A cluster that is Ready but did not answer this pass is left out of nothing: the
Deployments placed on it are not re-planned until it answers or turns Offline, so a slow
answer never moves replicas.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import zlib
from typing import Any, Callable

from apimachinery.backoff import Backoff
from apimachinery.informer import object_key
from federation.controllers.keyed import MemberCopyController
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, sync_copies
from apimachinery.meta import covers
from federation.names import (
    CHANGE_CAUSE_ANNOTATION,
    DELETION_PROPAGATION_ANNOTATION,
    FEDERATION_LABEL,
    LAST_APPLIED_ANNOTATION,
    OWNER_ANNOTATION,
    OWNER_KIND_ANNOTATION,
    OWNER_UID_ANNOTATION,
    REVISION_ANNOTATION,
)
from federation.controllers.ownership import Tombstones, owner_of, released
from federation.planners.placement import (
    FEDERATION_ANNOTATIONS,
    PREFERENCES_ANNOTATION,
    PlacementError,
    apply_overrides,
    parse_overrides,
    placed_clusters,
)
from federation.api.cache import Reader
from federation.api.registry import Registry
from federation.planners.replicasplit import PreferenceError, parse_preferences, plan_replicas
from federation.resources import CONTROLLERREVISIONS, DEPLOYMENTS
from federation.settings import Settings
from apimachinery.errors import APIError, Conflict, NotFound

log = logging.getLogger("federation.deployments")

GENERATION_ANNOTATION = "federation.kubernetes.io/generation"
PRIVATE_ANNOTATIONS = (LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION,
                       DELETION_PROPAGATION_ANNOTATION) + FEDERATION_ANNOTATIONS
Key = tuple[str, str]


def member_copy(fed: dict[str, Any], *, federation: str, replicas: int, overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """What the federation wants in one cluster for a federated Deployment."""
    meta = fed["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[FEDERATION_LABEL] = federation
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in PRIVATE_ANNOTATIONS}
    annotations[OWNER_ANNOTATION] = f"{meta['namespace']}/{meta['name']}"
    annotations[OWNER_UID_ANNOTATION] = meta["uid"]
    annotations[OWNER_KIND_ANNOTATION] = "Deployment"
    annotations[GENERATION_ANNOTATION] = str(meta.get("generation", 1))
    spec = copy.deepcopy(fed.get("spec") or {})
    spec["replicas"] = replicas
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels, "annotations": annotations},
        "spec": spec,
    }
    return apply_overrides(obj, overrides)


def drifted(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    a_meta, d_meta = actual.get("metadata") or {}, desired["metadata"]
    if (a_meta.get("labels") or {}) != d_meta["labels"]:
        return True
    actual_annotations = {k: v for k, v in (a_meta.get("annotations") or {}).items() if k != REVISION_ANNOTATION}
    if actual_annotations != d_meta["annotations"]:
        return True
    return not covers(actual.get("spec") or {}, desired["spec"])


def template_hash(template: Any) -> str:
    return format(zlib.crc32(json.dumps(template, sort_keys=True).encode()), "08x")


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def max_unavailable(fed: dict[str, Any]) -> int:
    spec = fed.get("spec") or {}
    desired = _int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return desired
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(value[:-1]) * desired // 100
    return _int(value)


def aggregate_status(
    fed: dict[str, Any],
    *,
    placed: list[str],
    ready: set[str],
    plan: dict[str, int],
    copies: dict[str, dict[str, Any]],
    previous: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """The federated Deployment's status from its copies (pure)."""
    generation = fed["metadata"].get("generation", 1)
    desired = _int((fed.get("spec") or {}).get("replicas", 1))
    totals = dict.fromkeys(("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), 0)
    per_cluster = []
    observed_all = True
    stalled = []
    for cname in placed:
        entry: dict[str, Any] = {"cluster": cname, "clusterReady": cname in ready, "desiredReplicas": plan.get(cname, 0)}
        c = copies.get(cname)
        if cname in ready:
            current = False
            if c is not None:
                cst = c.get("status") or {}
                current = (
                    (c["metadata"].get("annotations") or {}).get(GENERATION_ANNOTATION) == str(generation)
                    and _int(cst.get("observedGeneration")) >= _int(c["metadata"].get("generation", 1))
                )
                for k in totals:
                    value = _int(cst.get(k))
                    if k == "updatedReplicas" and not current:
                        value = 0
                    entry[k] = value
                    totals[k] += value
                for cond in cst.get("conditions") or []:
                    if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                        stalled.append(f"{cname}: {cond.get('message', '')}")
            if not current:
                observed_all = False
        per_cluster.append(entry)
    status: dict[str, Any] = {
        "observedGeneration": generation if observed_all else _int(previous.get("observedGeneration")),
        **totals,
        "unavailableReplicas": max(0, desired - totals["availableReplicas"]),
        "clusters": per_cluster,
    }
    old = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, dict)}
    available_ok = totals["availableReplicas"] >= desired - max_unavailable(fed)
    wanted = {
        "Available": ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        if available_ok else ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
        "Progressing": ("False", "ProgressDeadlineExceeded", "rollout stalled in " + "; ".join(stalled))
        if stalled else ("True", "NewReplicaSetAvailable", "every cluster has rolled out")
        if observed_all and totals["updatedReplicas"] == desired == totals["availableReplicas"] == totals["replicas"]
        else ("True", "ReplicaSetUpdated", "rollout in progress across the clusters"),
    }
    conditions = []
    for ctype, (cstatus, reason, message) in wanted.items():
        prev = old.get(ctype) or {}
        conditions.append({
            "type": ctype, "status": cstatus, "reason": reason, "message": message,
            "lastUpdateTime": prev.get("lastUpdateTime", now) if prev.get("reason") == reason and prev.get("message") == message else now,
            "lastTransitionTime": prev.get("lastTransitionTime", now) if prev.get("status") == cstatus else now,
        })
    status["conditions"] = conditions
    return status


def write_status(registry: Registry, kind: Any, fed: dict[str, Any], status: dict[str, Any]) -> None:
    """Write a federated object's status if it is still the object planned for (same uid);
    a race with a delete or another write is left to the next pass."""
    meta = fed["metadata"]
    current = registry.find(kind, meta["namespace"], meta["name"])
    if current is None or current["metadata"].get("uid") != meta.get("uid"):
        return
    new = copy.deepcopy(current)
    new["status"] = status
    try:
        registry.put_if_changed(kind, meta["namespace"], meta["name"], new)
    except APIError as err:
        if not isinstance(err, (NotFound, Conflict)):
            raise


DELETE_BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}


class DeploymentCopies:
    """How a member's copy of a federated Deployment is kept (a :class:`membersync.CopyAdapter`)."""

    kind = DEPLOYMENTS
    noun = "deployment"

    def __init__(self, tombstones: Tombstones, alive: Callable[[str, str, str], bool]) -> None:
        self.tombstones = tombstones
        self.alive = alive  # (namespace, name, uid): does that federated Deployment exist?

    drifted = staticmethod(drifted)

    @staticmethod
    def update_body(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
        return desired

    @staticmethod
    def created_event(want: Wanted, cluster: str) -> str:
        meta, replicas = want.desired["metadata"], _int(want.desired["spec"].get("replicas"))
        return f"created deployment {meta['namespace']}/{meta['name']} in cluster {cluster} with {replicas} replicas"

    @staticmethod
    def update_event(desired: dict[str, Any], actual: dict[str, Any], cluster: str) -> tuple[str, str]:
        meta = desired["metadata"]
        before, after = _int((actual.get("spec") or {}).get("replicas")), _int(desired["spec"].get("replicas"))
        if before != after and (actual.get("spec") or {}).get("template") == desired["spec"].get("template"):
            return ("ScaledInCluster",
                    f"scaled deployment {meta['namespace']}/{meta['name']} in cluster {cluster} from {before} to {after}")
        return "UpdatedInCluster", f"updated deployment {meta['namespace']}/{meta['name']} in cluster {cluster}"

    @staticmethod
    def collectable(copy_: dict[str, Any]) -> bool:
        return owner_of(copy_) is not None  # a member's own Deployment is never ours to remove

    def tombstone(self, key: Key, copy_: dict[str, Any]) -> Any:
        owner = owner_of(copy_)
        if owner is None or self.alive(*owner):
            return None  # the placement no longer selects this cluster: delete
        return self.tombstones.find(DEPLOYMENTS.key, owner[0], owner[1], owner[2])

    released = staticmethod(released)

    @staticmethod
    def delete_body() -> dict[str, Any]:
        return DELETE_BACKGROUND


class WorkloadController(MemberCopyController):
    """Member copies of a workload kind (Deployments, StatefulSets): the members' copies
    watched by our label, placed by the object's placement annotations (everywhere trusted
    when they do not parse), the copy of a gone or recreated object not kept alive."""

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients, reader: Reader | None,
                 *, name: str, copies: Callable[..., Any]) -> None:
        super().__init__(registry, settings, members, reader, name=name)
        self.adapter = copies(self.tombstones, self._alive)
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()
        self.member_view(self.kind, label_selector=f"{FEDERATION_LABEL}={settings.federation_name}")

    def _alive(self, namespace: str, name: str, uid: str) -> bool:
        fed = self.reader.get(self.kind, namespace, name)
        return fed is not None and fed["metadata"].get("uid") == uid

    def placed(self, obj: dict[str, Any], trusted: list[dict[str, Any]]) -> set[str]:
        try:
            return set(placed_clusters(obj, trusted))
        except PlacementError:
            return {c["metadata"]["name"] for c in trusted}


class DeploymentController(WorkloadController):
    kind = DEPLOYMENTS
    workers = 8

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        super().__init__(registry, settings, members, reader, name="deployments", copies=DeploymentCopies)
        self._gone: dict[str, str] = {}  # key -> uid of a deleted federated Deployment whose revisions go

    def object_deleted(self, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self._gone[object_key(obj)] = uid
        super().object_deleted(obj)

    def resync(self) -> None:
        super().resync()
        self._collect_revisions(self.reader.list(DEPLOYMENTS))

    async def reconcile(self) -> None:
        await super().reconcile()
        self._collect_revisions(self.reader.list(DEPLOYMENTS))

    async def reconcile_key(self, key: str) -> None:
        """Plan one federated Deployment's copies, sync them in every Ready member, write its
        status and revisions (a deleted one: its copies deleted or released, its revisions gone)."""
        snapshot, skey, fed = await self.begin(key)
        observed: dict[str, dict[Key, dict[str, Any]]] = {}
        for cname in sorted(snapshot.ready_names):
            if self.synced(cname):
                copy_ = self.copies.get(cname, key)
                observed[cname] = {skey: copy_} if copy_ is not None else {}
        unanswered = snapshot.ready_names - set(observed)
        wanted: dict[str, dict[Key, Wanted]] = {cname: {} for cname in observed}
        plan = self._plan(fed, snapshot.trusted, observed, unanswered, wanted) if fed is not None else None
        involved = [cname for cname in observed if wanted[cname] or observed[cname]]
        results = await asyncio.gather(*(self._sync_cluster(snapshot.by_name[c], wanted[c], observed[c], skey)
                                         for c in involved), return_exceptions=True)
        after: dict[str, dict[Key, dict[str, Any]]] = {}
        failed: dict[str, BaseException] = {}
        for cname, result in zip(involved, results):
            if isinstance(result, BaseException):
                failed[cname] = result
            else:
                after[cname] = result
        if fed is None:
            self.tombstones.seen(DEPLOYMENTS.key, self.released_in(set(observed) - set(failed), key),
                                 snapshot.joined, owner=skey)
            uid = self._gone.pop(key, None)
            if uid is not None:
                self._delete_revisions(self.reader.owned_by(CONTROLLERREVISIONS, uid))
        else:
            if plan is not None:
                placed, replicas = plan
                copies = {c: after[c][skey] for c in placed if c in after and skey in after[c]}
                self._write_status(fed, aggregate_status(fed, placed=placed, ready=set(observed), plan=replicas,
                                                         copies=copies, previous=fed.get("status") or {}, now=_now()))
            self._sync_revisions(fed)
        self.requeue_if_failed(failed)

    async def _sync_cluster(self, cluster: dict[str, Any], wanted: dict[Key, Wanted],
                            existing: dict[Key, dict[str, Any]], key: Key) -> dict[Key, dict[str, Any]]:
        cname = cluster["metadata"]["name"]
        client = self.clusters().clients.get(cname)
        if client is None:
            return dict(existing)
        return await sync_copies(registry=self.registry, adapter=self.adapter, client=client, cluster=cname,
                                 wanted=wanted, existing=existing, backoff=self.backoff, only=key)

    def _plan(
        self,
        fed: dict[str, Any],
        clusters: list[dict[str, Any]],
        observed: dict[str, dict[Key, dict[str, Any]]],
        unanswered: set[str],
        wanted: dict[str, dict[Key, Wanted]],
    ) -> tuple[list[str], dict[str, int]] | None:
        """Fill ``wanted`` with this Deployment's copies; (placed clusters, replica plan), or
        None when the copies are only kept as they are (no status written this pass)."""
        meta = fed["metadata"]
        key = (meta["namespace"], meta["name"])

        def keep(names: Any) -> None:
            for cname in names:
                if cname in observed and key in observed[cname]:
                    wanted[cname][key] = Wanted(observed[cname][key], fed)

        try:
            placed = placed_clusters(fed, clusters)
            overrides = parse_overrides(fed)
            prefs = parse_preferences((meta.get("annotations") or {}).get(PREFERENCES_ANNOTATION))
        except (PlacementError, PreferenceError) as err:
            log.warning("deployment %s/%s: %s", key[0], key[1], err)
            keep(observed)  # keep every copy until the annotations make sense again
            return None
        if any(c in unanswered for c in placed):
            keep(placed)  # re-plan only with every Ready cluster's answer (see the module docstring)
            return None
        ready_placed = [c for c in placed if c in observed]
        owned = {
            c: observed[c][key] for c in ready_placed
            if key in observed[c] and (owner_of(observed[c][key]) or ("", "", ""))[2] == meta["uid"]
        }
        current = {c: _int((owned[c].get("spec") or {}).get("replicas")) for c in owned}
        plan = plan_replicas(_int((fed.get("spec") or {}).get("replicas", 1)), ready_placed, prefs, current=current)
        for cname in ready_placed:
            try:
                desired = member_copy(fed, federation=self.settings.federation_name, replicas=plan[cname],
                                      overrides=overrides.get(cname, []))
            except PlacementError as err:
                log.warning("deployment %s/%s in %s: %s", key[0], key[1], cname, err)
                keep([cname])
                continue
            wanted[cname][key] = Wanted(desired, fed)
        return placed, plan

    def _write_status(self, fed: dict[str, Any], status: dict[str, Any]) -> None:
        write_status(self.registry, DEPLOYMENTS, fed, status)

    # ---- revision history

    def _revisions_of(self, fed: dict[str, Any]) -> list[dict[str, Any]]:
        return self.reader.owned_by(CONTROLLERREVISIONS, fed["metadata"]["uid"])

    def _sync_revisions(self, fed: dict[str, Any]) -> None:
        meta = fed["metadata"]
        ns = meta["namespace"]
        template = (fed.get("spec") or {}).get("template")
        revisions = self._revisions_of(fed)
        top = max((_int(r.get("revision")) for r in revisions), default=0)
        mine = next((r for r in revisions if (r.get("data") or {}).get("template") == template), None)
        cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION)
        try:
            if mine is None:
                mine = self.registry.create(CONTROLLERREVISIONS, ns, {
                    "metadata": {
                        "name": f"{meta['name']}-{template_hash(template)}",
                        "labels": {"federation.kubernetes.io/deployment": meta["name"]},
                        "annotations": {CHANGE_CAUSE_ANNOTATION: cause} if cause else {},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                             "uid": meta["uid"], "controller": True}],
                    },
                    "revision": top + 1,
                    "data": {"template": template},
                })
            elif _int(mine.get("revision")) < top or (cause and (mine["metadata"].get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION) != cause):
                new = copy.deepcopy(mine)
                if _int(mine.get("revision")) < top:
                    new["revision"] = top + 1  # a rollback: the old template becomes the newest revision
                if cause:
                    new["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = cause
                mine = self.registry.put_if_changed(CONTROLLERREVISIONS, ns, mine["metadata"]["name"], new)
        except APIError as err:
            if not isinstance(err, (NotFound, Conflict)):
                raise
            return
        limit = _int((fed.get("spec") or {}).get("revisionHistoryLimit", 10))
        others = sorted((r for r in self._revisions_of(fed) if r["metadata"]["name"] != mine["metadata"]["name"]),
                        key=lambda r: _int(r.get("revision")))
        for old in others[: max(0, len(others) - limit)]:
            try:
                self.registry.delete(CONTROLLERREVISIONS, ns, old["metadata"]["name"])
            except APIError:
                pass
        revision = str(_int(mine.get("revision")))
        if (meta.get("annotations") or {}).get(REVISION_ANNOTATION) != revision:
            current = self.registry.find(DEPLOYMENTS, ns, meta["name"])
            if current is None or current["metadata"].get("uid") != meta["uid"]:
                return
            new = copy.deepcopy(current)
            new["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
            try:
                self.registry.put_if_changed(DEPLOYMENTS, ns, meta["name"], new)
            except APIError as err:
                if not isinstance(err, (NotFound, Conflict)):
                    raise

    def _collect_revisions(self, deployments: list[dict[str, Any]]) -> None:
        """Revisions whose owner is gone (the resync's sweep; a delete event does it at once)."""
        alive = {d["metadata"]["uid"] for d in deployments}
        self._delete_revisions([r for r in self.reader.list(CONTROLLERREVISIONS)
                                if (refs := r["metadata"].get("ownerReferences") or [])
                                and not any(o.get("uid") in alive for o in refs)])

    def _delete_revisions(self, revisions: list[dict[str, Any]]) -> None:
        for r in revisions:
            try:
                self.registry.delete(CONTROLLERREVISIONS, r["metadata"]["namespace"], r["metadata"]["name"])
            except APIError:
                pass


def _now() -> str:
    from apimachinery.meta import now_rfc3339

    return now_rfc3339()
