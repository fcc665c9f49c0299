"""The sync controller of a federated kind: one instance per enabled FederatedTypeConfig (issue 15).

KubeFed's sync controller, on the machinery Services and Deployments share: keys enqueued
and clusters read as :mod:`federation.controllers.keyed` says, member copies kept by
informers (:mod:`federation.controllers.membercopies`) and written along the one sync path
(:func:`federation.controllers.membersync.sync_copies`). Per federated object:

1. placement: the clusters ``federation.kubernetes.io/placement`` selects (names, label
   selector, spread constraints; :mod:`federation.planners.placement`); a placement that
   does not parse touches nothing and reports ``ComputePlacementFailed``;
2. each Ready placed cluster's copy: the object with the federation's label, the owner
   annotations and that cluster's overrides (JSON patch) applied; created, updated when it
   drifted (the Event names the cluster and the fields, :mod:`federation.planners.drift`),
   or left alone when the member has an object of that name that is not ours, unless the
   federated object asks for adoption (``federation.kubernetes.io/conflict-resolution:
   adopt``); copies in clusters no longer placed are deleted;
3. a deleted federated object: its copies deleted, or released when it was deleted with
   ``propagationPolicy: Orphan`` (``kubectl delete --cascade=orphan``); a cluster that was
   Offline then is cleaned when it is Ready again (its view's sync enqueues the key);
4. status: KubeFed's per-cluster propagation status and ``Propagation`` condition
   (:mod:`federation.planners.propagationstatus`), after the kind's own status summed from
   its copies when the type aggregates one (a Job's succeeded pods, a DaemonSet's counts:
   :mod:`federation.planners.memberstatus`).

A workload type with pod counts (a Job) has them split over the Ready placed clusters by
its planner (:mod:`federation.planners.podcounts`); the split is applied to each copy as
JSON patches before the user's overrides.

Objects in the system namespaces (``federation-system``, ``kube-system``, ``kube-public``) and
the namespaces every member already has are never propagated: the federation keeps its
member credentials (Secrets) in ``federation-system``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

from apimachinery.backoff import Backoff
from apimachinery.errors import Conflict, NotFound
from apimachinery.meta import now_rfc3339
from federation.api.cache import Reader
from federation.api.registry import Registry
from federation.controllers.keyed import ClusterSnapshot, MemberCopyController, NotSynced
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, fingerprint, sync_copies
from federation.controllers.ownership import Tombstones, owner_of, released
from federation.names import (
    CONFLICT_RESOLUTION_ANNOTATION, DELETION_PROPAGATION_ANNOTATION, FEDERATION_LABEL, KUBERNETES_NAMESPACES,
    LAST_APPLIED_ANNOTATION, OWNER_ANNOTATION, OWNER_KIND_ANNOTATION, OWNER_UID_ANNOTATION, SYSTEM_NAMESPACE,
    TEMPLATE_HASH_ANNOTATION,
)
from federation.planners import memberstatus, propagationstatus as reasons
from federation.planners.drift import drift_paths
from federation.planners.placement import FEDERATION_ANNOTATIONS, PlacementError, apply_overrides, parse_overrides, \
    placed_clusters
from federation.settings import Settings
from federation.typeregistry import FederatedType

log = logging.getLogger("federation.sync")

Object = dict[str, Any]
Key = tuple[str, str]

PRIVATE_ANNOTATIONS = (LAST_APPLIED_ANNOTATION, DELETION_PROPAGATION_ANNOTATION, CONFLICT_RESOLUTION_ANNOTATION,
                       *FEDERATION_ANNOTATIONS)
SYSTEM_NAMESPACES = (SYSTEM_NAMESPACE, "kube-system", "kube-public")
EVERY_MEMBER_HAS = (*KUBERNETES_NAMESPACES, SYSTEM_NAMESPACE)  # namespaces, by name
NOT_SYNCED = None  # a cluster's answer when its view of the copies has not synced


def excluded(ftype: FederatedType, obj: Object) -> bool:
    """Objects the federation keeps to itself (see the module docstring)."""
    meta = obj.get("metadata") or {}
    if not ftype.kind.namespaced:
        return ftype.kind.kind == "Namespace" and meta.get("name") in EVERY_MEMBER_HAS
    return meta.get("namespace") in SYSTEM_NAMESPACES


def named(key: Key) -> str:
    return "/".join(part for part in key if part)


def member_copy(ftype: FederatedType, fed: Object, *, federation: str, overrides: list[Object]) -> Object:
    """What the federation wants in one cluster for ``fed`` (overrides applied; raises
    PlacementError when one does not apply)."""
    meta = fed["metadata"]
    labels = {**(meta.get("labels") or {}), FEDERATION_LABEL: federation}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in PRIVATE_ANNOTATIONS}
    annotations.update({OWNER_ANNOTATION: f"{meta.get('namespace') or ''}/{meta['name']}",
                        OWNER_UID_ANNOTATION: meta.get("uid", ""), OWNER_KIND_ANNOTATION: ftype.kind.kind})
    copy_meta: Object = {"name": meta["name"], "labels": labels, "annotations": annotations}
    if ftype.kind.namespaced:
        copy_meta["namespace"] = meta["namespace"]
    body = {k: copy.deepcopy(v) for k, v in fed.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    obj = apply_overrides({"apiVersion": ftype.member_kind.api_version, "kind": ftype.member_kind.kind,
                           "metadata": copy_meta, **body}, overrides)
    obj["metadata"].setdefault("annotations", {})[TEMPLATE_HASH_ANNOTATION] = fingerprint(obj)[:16]
    return obj


def _hash(obj: Object) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION)


class FederatedCopies:
    """How a member's copy of a federated object is kept (a :class:`membersync.CopyAdapter`)."""

    def __init__(self, ftype: FederatedType, tombstones: Tombstones, alive: Callable[[str, str, str], bool]) -> None:
        self.ftype = ftype
        self.kind = ftype.member_kind
        self.noun = ftype.kind.singular
        self.tombstones = tombstones
        self.alive = alive

    @staticmethod
    def drifted(desired: Object, actual: Object) -> bool:
        return bool(drift_paths(desired, actual))

    @staticmethod
    def update_body(desired: Object, actual: Object) -> Object:
        return desired  # the member keeps what it owns (status, uid); no precondition

    def created_event(self, want: Wanted, cluster: str) -> str:
        meta = want.desired["metadata"]
        name = named((meta.get("namespace", ""), meta["name"]))
        before = (want.owner.get("status") or {}).get("clusters") or []
        if any(isinstance(c, dict) and c.get("name") == cluster and not c.get("status") for c in before):
            return f"re-created {self.noun} {name} in cluster {cluster}: it was deleted in the member"
        return f"created {self.noun} {name} in cluster {cluster}"

    def update_event(self, desired: Object, actual: Object, cluster: str) -> tuple[str, str]:
        meta = desired["metadata"]
        name = named((meta.get("namespace", ""), meta["name"]))
        paths = drift_paths(desired, actual)
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        if _hash(actual) == _hash(desired):  # we wrote this very template: the member's copy was changed
            return "DriftRepaired", f"{self.noun} {name} in cluster {cluster} was changed in the member at {shown}; put back"
        return "UpdatedInCluster", f"updated {self.noun} {name} in cluster {cluster} ({shown})"

    @staticmethod
    def collectable(copy_: Object) -> bool:
        return owner_of(copy_) is not None

    def tombstone(self, key: Key, copy_: Object) -> Any:
        owner = owner_of(copy_)
        if owner is None or self.alive(*owner):
            return None  # no longer placed there: delete
        return self.tombstones.find(self.ftype.kind.key, owner[0], owner[1], owner[2])

    released = staticmethod(released)

    @staticmethod
    def delete_body() -> None:
        return None

    def adopts(self, want: Wanted) -> bool:
        annotations = (want.owner.get("metadata") or {}).get("annotations") or {}
        return self.ftype.adopts_by_default or annotations.get(CONFLICT_RESOLUTION_ANNOTATION) == "adopt"


class FederatedKindController(MemberCopyController):
    workers = 4

    def __init__(self, ftype: FederatedType, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        self.kind = ftype.kind
        super().__init__(registry, settings, members, reader, name=f"sync-{ftype.name}")
        self.ftype = ftype
        self.adapter = FederatedCopies(ftype, self.tombstones, self._alive)
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()
        self.member_view(ftype.member_kind, label_selector=f"{FEDERATION_LABEL}={settings.federation_name}")

    def _alive(self, namespace: str, name: str, uid: str) -> bool:
        fed = self.reader.get(self.kind, namespace, name)
        return fed is not None and (not uid or fed["metadata"].get("uid") == uid)

    def placed(self, obj: Object, trusted: list[Object]) -> set[str]:
        if excluded(self.ftype, obj):
            return set()
        try:
            return set(placed_clusters(obj, trusted))
        except PlacementError:
            return set()

    async def reconcile_key(self, key: str) -> None:
        """Sync one federated object's copies in every Ready member, then write its status."""
        snapshot, skey, fed = await self.begin(key)
        if fed is not None and excluded(self.ftype, fed):
            return
        overrides: dict[str, list[Object]] = {}
        if fed is not None:
            try:
                placed = set(placed_clusters(fed, snapshot.trusted))
                overrides = parse_overrides(fed)
                if self.ftype.counts is not None:
                    counts = self.ftype.counts(fed, placed & snapshot.ready_names,
                                               {c: self.copies.get(c, key) for c in placed})
                    overrides = {c: counts.get(c, []) + overrides.get(c, []) for c in placed | set(overrides)}
            except PlacementError as err:
                self._write_status(fed, {}, aggregate_error=reasons.COMPUTE_PLACEMENT_FAILED, message=str(err))
                return  # a typo in the placement removes nothing
        else:
            placed = set()
        answered: dict[str, str]
        answered, failed = await self.sync_each(
            self.involved(snapshot, key, placed),
            lambda c: self._sync_cluster(c, snapshot, fed, skey, placed, overrides))
        answered = {c: r for c, r in answered.items() if r is not None}
        self.retry_refused(key, skey, placed, self.backoff)
        if fed is None:
            seen = {c["metadata"]["name"] for c in snapshot.ready if self.synced(c["metadata"]["name"])} - set(failed)
            self.tombstones.seen(self.kind.key, self.released_in(seen, key), snapshot.joined, owner=skey)
        else:
            previous = {c.get("name"): c.get("status", "") for c in (fed.get("status") or {}).get("clusters") or []
                        if isinstance(c, dict)}
            clusters: dict[str, str] = {}
            for cname in placed | set(answered):
                if cname in answered:
                    if cname in placed or answered[cname] in (reasons.WAITING_FOR_REMOVAL, reasons.DELETION_FAILED):
                        clusters[cname] = answered[cname]
                elif cname not in snapshot.ready_names:
                    clusters[cname] = reasons.CLUSTER_NOT_READY
                elif cname in previous:
                    clusters[cname] = previous[cname]  # not heard from this time: keep what it said
                else:
                    clusters[cname] = reasons.CREATION_FAILED if cname in failed else reasons.OK
            self._write_status(fed, clusters, copies={c: self.copies.get(c, key) for c in placed})
        self.requeue_if_failed(failed)

    async def _sync_cluster(self, cluster: Object, snapshot: ClusterSnapshot, fed: Object | None, skey: Key,
                            placed: set[str], overrides: dict[str, list[Object]]) -> str | None:
        """Sync the object's copy in one cluster; its propagation reason there."""
        cname = cluster["metadata"]["name"]
        client = snapshot.clients.get(cname)
        if client is None:
            return reasons.CLUSTER_NOT_READY
        if not self.synced(cname):
            raise NotSynced(f"the view of {cname}'s {self.ftype.member_kind.plural} is not synced yet")
        key = named(skey)
        current = self.copies.get(cname, key)
        wanted: dict[Key, Wanted] = {}
        if fed is not None and cname in placed:
            try:
                desired = member_copy(self.ftype, fed, federation=self.settings.federation_name,
                                      overrides=overrides.get(cname, []))
            except PlacementError as err:
                log.warning("%s %s in %s: %s", self.adapter.noun, key, cname, err)
                return reasons.APPLY_OVERRIDES_FAILED
            wanted[skey] = Wanted(desired, fed)
        outcomes: dict[Key, str] = {}
        await sync_copies(registry=self.registry, adapter=self.adapter, client=client, cluster=cname, wanted=wanted,
                          existing={skey: current} if current is not None else {}, backoff=self.backoff, only=skey,
                          outcomes=outcomes)
        return outcomes.get(skey, reasons.OK if skey in wanted else None)

    def _write_status(self, fed: Object, clusters: dict[str, str], *, aggregate_error: str = "",
                      message: str = "", copies: dict[str, Object | None] | None = None) -> None:
        meta = fed["metadata"]
        old = fed.get("status") or {}
        status = reasons.propagation_status(clusters=clusters, previous=old, generation=int(meta.get("generation", 1)),
                                            now=now_rfc3339(), aggregate_error=aggregate_error, message=message)
        if self.ftype.aggregate is not None:  # the kind's status, from the copies (kept as it was when not heard)
            kind_status = self.ftype.aggregate(copies) if copies is not None else \
                {k: v for k, v in old.items() if k not in status}
            if copies is None:
                kind_status["conditions"] = [c for c in old.get("conditions") or [] if c.get("type") != reasons.PROPAGATION]
            merged = memberstatus.with_propagation(kind_status, status)
        else:
            merged = {**old, **status}  # a Namespace's phase stays
        if merged == old:
            return
        new = copy.deepcopy(fed)
        new["status"] = merged
        try:
            self.registry.put_if_changed(self.kind, meta.get("namespace", ""), meta["name"], new)
        except (NotFound, Conflict):
            self.queue.add_after(named((meta.get("namespace", ""), meta["name"])), 0.2)  # our cache lagged
