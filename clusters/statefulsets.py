"""Simulated StatefulSets, PetSets and PersistentVolumeClaims in one member cluster (issue 14).

The shell around :mod:`clusters.statefulplan`: for each set it reads the pods it owns,
asks the planner for the next steps and carries them out, so the ordering rules live in
one pure function and this module only does the bookkeeping a real controller does:

- a pod is ``<set>-<ordinal>``, with ``spec.hostname`` its own name and ``spec.subdomain``
  the set's ``serviceName``, so the governing headless Service's Endpoints carry each pod's
  hostname (``<pod>.<service>.<ns>.svc.cluster.local``, and across the clusterset
  ``<pod>.<cluster>.<service>.<ns>.svc.clusterset.local`` once the Service is exported);
- before a pod, one PersistentVolumeClaim per ``volumeClaimTemplates`` entry,
  ``<template>-<set>-<ordinal>``, Bound at once to a simulated volume. Claims are never
  deleted with their pod or a scale-down (the ``Retain`` policy), so a pod that comes back
  mounts the same claim;
- a pod that is deleted (by the user or a scale-down) is ``Terminating`` for the settings'
  ``termination_grace`` before it is gone, and the planner waits for it: two pods with
  one identity never exist at once in a member;
- ``PetSet`` (``apps/v1alpha1``, Kubernetes 1.3) is the same controller on its own table.

The pods themselves (their kubelet life, placement and readiness) are
:class:`~clusters.workloads.Workloads`' simulation, shared with ReplicaSets. No I/O, no
sleeping: :meth:`StatefulSets.reconcile` makes one pass, :meth:`StatefulSets.next_deadline`
says when the next is due.
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.errors import APIError, already_exists, conflict, invalid, not_found
from apimachinery.meta import now_rfc3339
from clusters import statefulplan
from clusters.statefulplan import PodView
from clusters.validation import validate_metadata
from clusters.workloads import Workloads, WorkloadHost, owner_ref, safe_hash
from federation import statefulapi as api
from federation.resources import PETSETS, STATEFULSETS

Key = tuple[str, str]
Object = dict[str, Any]
WRITABLE_META = ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")
TERMINATION_GRACE = 0.3  # seconds a deleted pod of a set shows Terminating (a kubelet's is 30 s)


class StatefulSets:
    """The member's StatefulSets, PetSets and claims; :class:`~clusters.state.ClusterState` owns one."""

    def __init__(self, host: WorkloadHost, workloads: Workloads) -> None:
        self.host = host
        self.workloads = workloads
        self.sets: dict[Key, Object] = {}  # apps/v1 StatefulSets
        self.petsets: dict[Key, Object] = {}  # apps/v1alpha1 PetSets
        self.claims: dict[Key, Object] = {}  # v1 PersistentVolumeClaims
        self.terminating: dict[Key, float] = {}  # pod -> when it is gone
        self.termination_grace = TERMINATION_GRACE

    # -------------------------------------------------------------- tables

    def table(self, kind: str) -> dict[Key, Object]:
        return self.petsets if kind == api.PETSET_KIND else self.sets

    def all_sets(self) -> list[Object]:
        return list(self.sets.values()) + list(self.petsets.values())

    def uids(self) -> set[str]:
        return {o["metadata"]["uid"] for o in self.all_sets()}

    def templates(self, namespace: str) -> list[Object]:
        return [s["spec"].get("template") or {} for s in self.all_sets() if s["metadata"]["namespace"] == namespace]

    @staticmethod
    def _api_version(kind: str) -> str:
        return api.PETSET_API_VERSION if kind == api.PETSET_KIND else "apps/v1"

    # -------------------------------------------------------------- the sets' API

    def _checked(self, kind: str, namespace: str, body: Any, name: str | None = None) -> Object:
        if not isinstance(body, dict):
            raise APIError(400, f"the request body must be a JSON object (a {kind})")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, kind) or obj.get("apiVersion") not in (None, self._api_version(kind)):
            raise APIError(400, f'the kind of the object ({obj.get("apiVersion")}/{obj.get("kind")}) does not match '
                                f'the endpoint ({self._api_version(kind)}/{kind})')
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        obj["metadata"] = meta
        if name is not None:
            if meta.get("name") not in (None, name):
                raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            meta["name"] = name
        if meta.get("namespace") not in (None, namespace):
            raise APIError(400, "the namespace of the provided object does not match the namespace sent on the request "
                                f"({meta['namespace']} != {namespace})")
        obj["kind"] = kind
        kind_record = PETSETS if kind == api.PETSET_KIND else STATEFULSETS
        kind_record.default(obj)
        errors: list[tuple[str, str]] = []
        validate_metadata(meta, errors)
        errors += kind_record.validate(obj)
        if errors:
            raise invalid(kind, str(meta.get("name") or ""), errors, "apps")
        return obj

    def create(self, kind: str, namespace: str, body: Any) -> Object:
        obj = self._checked(kind, namespace, body)
        name = obj["metadata"]["name"]
        table = self.table(kind)
        if (namespace, name) in table:
            raise already_exists(f"{kind.lower()}s.apps", name)
        stored = {
            "apiVersion": self._api_version(kind), "kind": kind,
            "metadata": {**self.workloads._meta(name, namespace), "generation": 1,
                         **{k: v for k, v in obj["metadata"].items() if k in WRITABLE_META}},
            "spec": obj["spec"], "status": {"replicas": 0, "availableReplicas": 0},
        }
        self.host.ensure_namespace(namespace)
        table[(namespace, name)] = stored
        self.host.on_change()
        return stored

    def replace(self, kind: str, namespace: str, name: str, body: Any) -> Object:
        table = self.table(kind)
        current = table.get((namespace, name))
        if current is None:
            raise not_found(f"{kind.lower()}s", name, "apps")
        obj = self._checked(kind, namespace, body, name)
        rv = obj["metadata"].get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise conflict(f"{kind.lower()}s", name, "apps")
        fixed = api.immutable_changes(current["spec"], obj["spec"])
        if fixed:
            raise invalid(kind, name, [("spec", "Forbidden: updates to statefulset spec for fields other than "
                                        "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden "
                                        f"(changed: {', '.join(fixed)})")], "apps")
        meta = dict(current["metadata"])
        for k in WRITABLE_META:
            if k in obj["metadata"]:
                meta[k] = obj["metadata"][k]
            else:
                meta.pop(k, None)
        if obj["spec"] == current["spec"] and meta == current["metadata"]:
            return current
        if obj["spec"] != current["spec"]:
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        meta["resourceVersion"] = self.host.next_rv()
        updated = {**current, "metadata": meta, "spec": obj["spec"]}
        table[(namespace, name)] = updated
        self.host.on_change()
        return updated

    def delete(self, kind: str, namespace: str, name: str, *, policy: str = "Background") -> Object:
        """Delete a set. Its pods go with it (``Orphan`` keeps them, without the owner); its
        claims stay, as with Kubernetes' default ``whenDeleted: Retain``."""
        table = self.table(kind)
        obj = table.pop((namespace, name), None)
        if obj is None:
            raise not_found(f"{kind.lower()}s", name, "apps")
        for pod in self._pods_of(obj).values():
            key = (namespace, pod["metadata"]["name"])
            if policy == "Orphan":
                pod["metadata"].pop("ownerReferences", None)
                self.workloads.sims[key].rs_uid = ""
                self.workloads._touch(pod)
        # the others go at the garbage collector's next pass (their owner's uid is gone)
        self.host.on_change()
        return obj

    # -------------------------------------------------------------- claims' API

    def create_claim(self, namespace: str, body: Any) -> Object:
        """A PersistentVolumeClaim a user writes (the set's own come from its templates); every
        claim is Bound at once to a simulated volume of the ``standard`` class."""
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object (a PersistentVolumeClaim)")
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        errors: list[tuple[str, str]] = []
        validate_metadata(meta, errors)
        errors += api.validate_claim_spec(body.get("spec"))
        name = str(meta.get("name") or "")
        if errors:
            raise invalid("PersistentVolumeClaim", name, errors)
        if (namespace, name) in self.claims:
            raise already_exists("persistentvolumeclaims", name)
        self.host.ensure_namespace(namespace)
        claim = self._claim(namespace, name, copy.deepcopy(body["spec"]), dict(meta.get("labels") or {}))
        self.host.on_change()
        return claim

    def delete_claim(self, namespace: str, name: str) -> Object:
        claim = self.claims.pop((namespace, name), None)
        if claim is None:
            raise not_found("persistentvolumeclaims", name)
        self.host.on_change()
        return claim

    def _claim(self, namespace: str, name: str, spec: Object, labels: dict[str, str]) -> Object:
        meta = self.workloads._meta(name, namespace)
        spec.setdefault("storageClassName", api.STORAGE_CLASS)
        spec.setdefault("volumeMode", "Filesystem")
        spec["volumeName"] = f"pvc-{meta['uid']}"
        claim = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {**meta, **({"labels": labels} if labels else {}),
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "volume.kubernetes.io/storage-provisioner": "ubernetes.io/simulated"},
                         "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": spec,
            "status": {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                       "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "")}},
        }
        self.claims[(namespace, name)] = claim
        return claim

    # -------------------------------------------------------------- pods

    def owns(self, key: Key) -> Object | None:
        """The set a pod belongs to, if any."""
        sim = self.workloads.sims.get(key)
        if sim is None or not sim.rs_uid:
            return None
        return next((s for s in self.all_sets() if s["metadata"]["uid"] == sim.rs_uid), None)

    def delete_pod(self, key: Key) -> Object:
        """A user's delete of one of a set's pods: Terminating first, then gone, then the
        controller makes it again with the same name and claims."""
        pod = self.host.pods[key]
        self._terminate(key)
        self.host.on_change()
        return pod

    def _terminate(self, key: Key) -> None:
        pod = self.host.pods.get(key)
        if pod is None or key in self.terminating:
            return
        pod["metadata"]["deletionTimestamp"] = now_rfc3339()
        pod["metadata"]["deletionGracePeriodSeconds"] = max(1, round(self.termination_grace))
        sim = self.workloads.sims.get(key)
        if sim is not None:
            sim.ready = False
            self.workloads._render(sim, pod)
        self.workloads._touch(pod)
        self.terminating[key] = self.host.clock() + self.termination_grace

    def _pods_of(self, sset: Object) -> dict[int, Object]:
        uid, name = sset["metadata"]["uid"], sset["metadata"]["name"]
        out: dict[int, Object] = {}
        for sim in self.workloads.sims.values():
            if sim.rs_uid != uid or sim.key not in self.host.pods:
                continue
            ordinal = statefulplan.ordinal_of(name, sim.key[1])
            if ordinal is not None:
                out[ordinal] = self.host.pods[sim.key]
        return out

    def _revision(self, sset: Object) -> str:
        return f"{sset['metadata']['name']}-{safe_hash(sset['spec'].get('template') or {})}"

    def _view(self, sset: Object, pod: Object, revision: str) -> PodView:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        sim = self.workloads.sims[key]
        outdated = (pod["metadata"].get("labels") or {}).get(api.REVISION_LABEL) != revision
        return PodView(ready=sim.ready, terminating=key in self.terminating,
                       failed=(pod.get("status") or {}).get("phase") == "Failed",
                       outdated=outdated and self._rolls(sset, pod))

    @staticmethod
    def _rolls(sset: Object, pod: Object) -> bool:
        """Whether an outdated pod is replaced now (RollingUpdate at or above the partition)."""
        strategy = sset["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return False
        ordinal = int((pod["metadata"].get("labels") or {}).get(api.POD_INDEX_LABEL, "0"))
        return ordinal >= int((strategy.get("rollingUpdate") or {}).get("partition", 0))

    # -------------------------------------------------------------- the pass

    def next_deadline(self) -> float | None:
        return min(self.terminating.values()) if self.terminating else None

    def reconcile(self) -> bool:
        changed = False
        now = self.host.clock()
        for key, until in list(self.terminating.items()):
            if until <= now:
                del self.terminating[key]
                self.workloads._remove_pod(key)
                changed = True
        if changed:
            self.host.on_change()  # watchers see a pod gone before the next one starts going
        for sset in self.all_sets():
            changed |= self._sync(sset)
            changed |= self._status(sset)
        return changed

    def _sync(self, sset: Object) -> bool:
        spec = sset["spec"]
        revision = self._revision(sset)
        pods = self._pods_of(sset)
        views = {o: self._view(sset, p, revision) for o, p in pods.items()}
        start = int((spec.get("ordinals") or {}).get("start", 0))
        steps = statefulplan.plan(replicas=spec.get("replicas", 1), pods=views, start=start,
                                  policy=spec.get("podManagementPolicy", statefulplan.ORDERED_READY))
        for step in steps:
            name = f"{sset['metadata']['name']}-{step.ordinal}"
            key = (sset["metadata"]["namespace"], name)
            if step.action == "create":
                if not self._create_pod(sset, step.ordinal, revision):
                    break
            else:
                self._terminate(key)
                self.host.record_event(sset, "Normal", "SuccessfulDelete",
                                       f"delete Pod {name} in {sset['kind']} {sset['metadata']['name']} successful")
        return bool(steps)

    def _create_pod(self, sset: Object, ordinal: int, revision: str) -> bool:
        ns, set_name = sset["metadata"]["namespace"], sset["metadata"]["name"]
        name = f"{set_name}-{ordinal}"
        template = copy.deepcopy(sset["spec"].get("template") or {})
        pod_spec = template.setdefault("spec", {})
        volumes = [v for v in pod_spec.get("volumes") or []]
        selector = (sset["spec"].get("selector") or {}).get("matchLabels") or {}
        for claim_template in sset["spec"].get("volumeClaimTemplates") or []:
            tname = claim_template["metadata"]["name"]
            claim = statefulplan.claim_name(tname, set_name, ordinal)
            if (ns, claim) not in self.claims:
                labels = {**(claim_template["metadata"].get("labels") or {}), **selector}
                self._claim(ns, claim, copy.deepcopy(claim_template.get("spec") or {}), labels)
                self.host.record_event(sset, "Normal", "SuccessfulCreate",
                                       f"create Claim {claim} Pod {name} in {sset['kind']} {set_name} success")
            volumes = [v for v in volumes if v.get("name") != tname]
            volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": claim}})
        if volumes:
            pod_spec["volumes"] = volumes
        pod_spec["hostname"] = name
        if sset["spec"].get("serviceName"):
            pod_spec["subdomain"] = sset["spec"]["serviceName"]
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), api.POD_NAME_LABEL: name, api.POD_INDEX_LABEL: str(ordinal),
                           api.REVISION_LABEL: revision}
        owner = {"metadata": sset["metadata"], "spec": {"template": template}}
        if not self.workloads._create_pod(owner, name=name, owner=owner_ref(sset)):
            return False
        self.host.record_event(sset, "Normal", "SuccessfulCreate", f"create Pod {name} in {sset['kind']} {set_name} successful")
        return True

    def _status(self, sset: Object) -> bool:
        pods = self._pods_of(sset)
        revision = self._revision(sset)
        live = {o: p for o, p in pods.items() if not p["metadata"].get("deletionTimestamp")}
        ready = [o for o, p in live.items() if self.workloads.sims[(p["metadata"]["namespace"], p["metadata"]["name"])].ready]
        updated = [o for o, p in live.items() if (p["metadata"].get("labels") or {}).get(api.REVISION_LABEL) == revision]
        status: Object = {"observedGeneration": sset["metadata"].get("generation", 1), "replicas": len(live)}
        if sset["kind"] != api.PETSET_KIND:
            status.update(readyReplicas=len(ready), currentReplicas=len(updated), updatedReplicas=len(updated),
                          availableReplicas=len(ready), currentRevision=revision, updateRevision=revision,
                          collisionCount=0)
            status = {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "observedGeneration")}
            status["conditions"] = [self._ordinals_condition(sset, pods)]
        if sset.get("status") == status:
            return False
        sset["status"] = status
        self.workloads._touch(sset)
        return True

    def _ordinals_condition(self, sset: Object, pods: dict[int, Object]) -> Object:
        start = int((sset["spec"].get("ordinals") or {}).get("start", 0))
        wanted = statefulplan.ordinals(sset["spec"].get("replicas", 1), start)
        outside = sorted(o for o in pods if o not in wanted)
        state = ("False", "PodsOutsideRange", "pods at ordinals " + ", ".join(map(str, outside)) + " are being removed") \
            if outside else ("True", "InRange", f"every pod is within ordinals {start}..{wanted.stop - 1}" if wanted else "no pods")
        old = next((c for c in (sset.get("status") or {}).get("conditions") or [] if c.get("type") == api.ORDINALS_CONDITION), {})
        return {"type": api.ORDINALS_CONDITION, "status": state[0], "reason": state[1], "message": state[2],
                "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == state[0] else now_rfc3339()}
