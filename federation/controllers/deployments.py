"""Federated Deployments: one ``apps/v1`` Deployment spread over the member clusters.

Per reconcile, level-triggered, as the service propagation does:

1. list every Ready member's Deployments that carry this federation's label (one request
   per cluster);
2. per federated Deployment: the clusters its placement selects
   (:mod:`federation.placement`), of those the Ready ones, and the replica split over them
   (:mod:`federation.replicasplit`; the current copies' replicas count only without
   ``rebalance``); then create, update or scale each cluster's copy (overrides applied) and
   delete copies in clusters the placement no longer selects;
3. garbage collection: a copy whose federated owner (by uid) is gone is deleted, or
   released if the owner was deleted with ``propagationPolicy: Orphan``
   (:mod:`federation.ownership`); a cluster that was Offline then is cleaned up when it is
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
from typing import Any

from federation import approval, health
from federation.controllers.members import MemberClients
from federation.events import record_event
from apimachinery.meta import covers
from federation.ownership import (
    FEDERATION_LABEL,
    OWNER_ANNOTATION,
    OWNER_KIND_ANNOTATION,
    OWNER_UID_ANNOTATION,
    Tombstones,
    owner_of,
    released,
)
from federation.placement import (
    FEDERATION_ANNOTATIONS,
    PREFERENCES_ANNOTATION,
    PlacementError,
    apply_overrides,
    parse_overrides,
    placed_clusters,
)
from federation.cache import Reader, StoreReader
from federation.registry import Registry
from federation.replicasplit import PreferenceError, parse_preferences, plan_replicas
from federation.resources import CLUSTERS, CONTROLLERREVISIONS, DEPLOYMENTS
from federation.settings import Settings
from apimachinery.errors import APIError, NotFound

log = logging.getLogger("federation.deployments")

GENERATION_ANNOTATION = "federation.kubernetes.io/generation"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
PRIVATE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION,
                       "federation.kubernetes.io/deletion-propagation") + FEDERATION_ANNOTATIONS
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


class DeploymentController:
    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        self.tombstones = Tombstones(registry)

    async def reconcile(self) -> None:
        await self.tombstones.collect()
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        deployments = self.reader.list(DEPLOYMENTS)
        ready = [c for c in clusters if health.is_ready(c)]
        listed = await asyncio.gather(*(self._list_copies(c) for c in ready), return_exceptions=True)
        observed: dict[str, dict[Key, dict[str, Any]]] = {}
        by_name = {c["metadata"]["name"]: c for c in clusters}
        for cluster, result in zip(ready, listed):
            if isinstance(result, BaseException):
                log.debug("listing deployments in %s failed: %s", cluster["metadata"]["name"], result)
                continue
            observed[cluster["metadata"]["name"]] = result
        unanswered = {c["metadata"]["name"] for c in ready} - set(observed)
        wanted: dict[str, set[Key]] = {name: set() for name in observed}
        for fed in deployments:
            await self._sync_one(fed, clusters, observed, unanswered, wanted, by_name)
            self._sync_revisions(fed)
        await self._collect_garbage(observed, deployments, wanted, by_name)
        self._collect_revisions(deployments)

    async def _list_copies(self, cluster: dict[str, Any]) -> dict[Key, dict[str, Any]]:
        client = self.members.for_cluster(cluster)
        if client is None:
            return {}
        params = {"labelSelector": f"{FEDERATION_LABEL}={self.settings.federation_name}"}
        items = (await client.get(DEPLOYMENTS.path(), params=params)).get("items") or []
        return {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in items}

    async def _sync_one(
        self,
        fed: dict[str, Any],
        clusters: list[dict[str, Any]],
        observed: dict[str, dict[Key, dict[str, Any]]],
        unanswered: set[str],
        wanted: dict[str, set[Key]],
        by_name: dict[str, dict[str, Any]],
    ) -> None:
        meta = fed["metadata"]
        key = (meta["namespace"], meta["name"])
        try:
            placed = placed_clusters(fed, clusters)
            overrides = parse_overrides(fed)
            prefs = parse_preferences((meta.get("annotations") or {}).get(PREFERENCES_ANNOTATION))
        except (PlacementError, PreferenceError) as err:
            log.warning("deployment %s/%s: %s", key[0], key[1], err)
            for cname in observed:  # keep every copy until the annotations make sense again
                wanted[cname].add(key)
            return
        for cname in placed:
            if cname in observed:
                wanted[cname].add(key)
        if any(c in unanswered for c in placed):
            return  # re-plan only with every Ready cluster's answer (see the module docstring)
        ready_placed = [c for c in placed if c in observed]
        copies = {
            c: observed[c][key] for c in ready_placed
            if key in observed[c] and (owner_of(observed[c][key]) or ("", "", ""))[2] == meta["uid"]
        }
        current = {c: _int((copies[c].get("spec") or {}).get("replicas")) for c in copies}
        plan = plan_replicas(_int((fed.get("spec") or {}).get("replicas", 1)), ready_placed, prefs, current=current)
        fed_name = self.settings.federation_name
        for cname in ready_placed:
            try:
                desired = member_copy(fed, federation=fed_name, replicas=plan[cname], overrides=overrides.get(cname, []))
            except PlacementError as err:
                log.warning("deployment %s/%s in %s: %s", key[0], key[1], cname, err)
                continue
            client = self.members.for_cluster(by_name[cname])
            if client is None:
                continue
            actual = observed[cname].get(key)
            path = DEPLOYMENTS.path(namespace=key[0], name=key[1])
            try:
                if actual is None:
                    copies[cname] = await client.post(DEPLOYMENTS.path(namespace=key[0]), desired)
                    log.info("created deployment %s/%s in %s (%d replicas)", key[0], key[1], cname, plan[cname])
                    record_event(self.registry, involved=fed, reason="CreatedInCluster",
                                 message=f"created deployment {key[0]}/{key[1]} in cluster {cname} with {plan[cname]} replicas")
                elif drifted(desired, actual):
                    before = _int((actual.get("spec") or {}).get("replicas"))
                    copies[cname] = await client.put(path, desired)
                    if before != plan[cname] and (actual.get("spec") or {}).get("template") == desired["spec"].get("template"):
                        log.info("scaled deployment %s/%s in %s from %d to %d", key[0], key[1], cname, before, plan[cname])
                        record_event(self.registry, involved=fed, reason="ScaledInCluster",
                                     message=f"scaled deployment {key[0]}/{key[1]} in cluster {cname} from {before} to {plan[cname]}")
                    else:
                        log.info("updated deployment %s/%s in %s", key[0], key[1], cname)
                        record_event(self.registry, involved=fed, reason="UpdatedInCluster",
                                     message=f"updated deployment {key[0]}/{key[1]} in cluster {cname}")
            except APIError as err:
                log.warning("deployment %s/%s in %s: %s", key[0], key[1], cname, err.message)
        ready_names = set(observed)
        now = _now()
        status = aggregate_status(
            fed, placed=placed, ready=ready_names, plan=plan, copies=copies,
            previous=fed.get("status") or {}, now=now,
        )
        self._write_status(fed, status)

    def _write_status(self, fed: dict[str, Any], status: dict[str, Any]) -> None:
        meta = fed["metadata"]
        current = self.registry.find(DEPLOYMENTS, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid"):
            return
        new = copy.deepcopy(current)
        new["status"] = status
        try:
            self.registry.put_if_changed(DEPLOYMENTS, meta["namespace"], meta["name"], new)
        except APIError as err:
            if err.code not in (404, 409):
                raise

    async def _collect_garbage(
        self,
        observed: dict[str, dict[Key, dict[str, Any]]],
        deployments: list[dict[str, Any]],
        wanted: dict[str, set[Key]],
        by_name: dict[str, dict[str, Any]],
    ) -> None:
        alive = {d["metadata"]["uid"] for d in deployments}
        joined = set(by_name)
        for cname, copies in observed.items():
            client = self.members.for_cluster(by_name[cname])
            if client is None:
                continue
            for key, obj in copies.items():
                owner = owner_of(obj)
                if owner is None:
                    continue
                uid = owner[2]
                if uid in alive and key in wanted[cname]:
                    continue
                path = DEPLOYMENTS.path(namespace=key[0], name=key[1])
                tomb = self.tombstones.find(DEPLOYMENTS.key, owner[0], owner[1], uid) if uid not in alive else None
                try:
                    if tomb is not None:
                        await client.put(path, released(obj))
                        log.info("released deployment %s/%s in %s (its owner was deleted with Orphan)", key[0], key[1], cname)
                    else:
                        await client.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
                        why = "its federated owner is gone" if uid not in alive else "the placement no longer selects this cluster"
                        log.info("deleted deployment %s/%s from %s (%s)", key[0], key[1], cname, why)
                except APIError as err:
                    if not isinstance(err, NotFound):
                        log.warning("garbage-collecting deployment %s/%s in %s: %s", key[0], key[1], cname, err.message)
                        continue
            self.tombstones.seen(DEPLOYMENTS.key, cname, joined)

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
            if err.code not in (404, 409):
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
                if err.code not in (404, 409):
                    raise

    def _collect_revisions(self, deployments: list[dict[str, Any]]) -> None:
        alive = {d["metadata"]["uid"] for d in deployments}
        for r in self.reader.list(CONTROLLERREVISIONS):
            refs = r["metadata"].get("ownerReferences") or []
            if refs and not any(o.get("uid") in alive for o in refs):
                try:
                    self.registry.delete(CONTROLLERREVISIONS, r["metadata"]["namespace"], r["metadata"]["name"])
                except APIError:
                    pass


def _now() -> str:
    from apimachinery.meta import now_rfc3339

    return now_rfc3339()
