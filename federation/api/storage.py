"""The federation's registry as the storage of the generic API server (:mod:`apimachinery.server`).

:class:`~federation.api.registry.Registry` already has Kubernetes' write semantics (validation,
defaulting, resourceVersion preconditions, dry run) over a store with a durable event log;
this adapter adds what only the federation's API does:

- Deleting a namespace deletes what lives in it first (as Kubernetes' namespace controller
  does, here in the same request); the well-known namespaces cannot be deleted.
- A delete whose propagation policy is not the default (Background) first records the policy
  on the object itself, so the DELETED event carries it to whoever cascades the deletion to
  the member clusters.
- Watches read the store's history a page at a time off the event loop, and live events
  from the registry's hub.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from apimachinery import errors as st
from apimachinery import watchlimits
from apimachinery.kinds import Kind
from apimachinery.storage import FellBehind
from federation.names import (
    CHANGE_CAUSE_ANNOTATION, DELETION_PROPAGATION_ANNOTATION, KUBERNETES_NAMESPACES, REVISION_ANNOTATION,
    SYSTEM_NAMESPACE,
)
from federation.api.registry import Registry
from federation.resources import (
    ALL, CONTROLLERREVISIONS, DEPLOYMENTS, FEDERATION_NAMESPACES, FEDERATION_REPLICASETS, REVIEWS,
)
from federation.storage.store import Event, HistoryExpired

Object = dict[str, Any]

WELL_KNOWN_NAMESPACES = (*KUBERNETES_NAMESPACES, SYSTEM_NAMESPACE)
SERVED = ALL + [FEDERATION_REPLICASETS] + REVIEWS


class HubSubscription:
    def __init__(self, registry: Registry) -> None:
        self.hub = registry.hub
        self.queue = self.hub.subscribe()

    async def next(self, timeout: float) -> Event | None:
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if event is None:
            raise FellBehind()
        return event

    def close(self) -> None:
        self.hub.unsubscribe(self.queue)


class StoreHistory:
    """The store's revision, history and live events, as :class:`apimachinery.storage.WatchSource`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def revision(self) -> int:
        return self.registry.store.revision

    def oldest(self) -> int:
        return self.registry.store.oldest

    def subscribe(self) -> HubSubscription:
        return HubSubscription(self.registry)

    async def count_events(self, since: int, kind: Kind, limit: int) -> int:
        return await asyncio.to_thread(self.registry.store.count_events, since, kind.key, limit=limit)

    async def events_page(self, after: int, kind: Kind) -> list[Event]:
        try:
            return await asyncio.to_thread(self.registry.store.events_page, after, kind.key,
                                           max_events=watchlimits.PAGE_EVENTS, max_bytes=watchlimits.PAGE_BYTES)
        except HistoryExpired as err:
            raise st.Gone(str(err)) from None


def replicaset_of(revision: Object, deployments: dict[str, Object]) -> Object | None:
    """A federated Deployment's revision as the ReplicaSet kubectl expects (``rollout history``
    lists them by the Deployment's selector and owner; ``rollout undo`` copies one's template
    back), or None if its Deployment is gone."""
    meta = revision["metadata"]
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Deployment"), None)
    deployment = deployments.get(owner.get("uid")) if owner else None
    if deployment is None:
        return None
    template = (revision.get("data") or {}).get("template") or {}
    annotations = {REVISION_ANNOTATION: str(revision.get("revision", 0))}
    cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION)
    if cause:
        annotations[CHANGE_CAUSE_ANNOTATION] = cause
    current = (deployment.get("metadata") or {}).get("annotations", {}).get(REVISION_ANNOTATION) == annotations[
        REVISION_ANNOTATION]
    replicas = int((deployment.get("spec") or {}).get("replicas", 1)) if current else 0
    status = deployment.get("status") or {}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
            "labels": dict(((template.get("metadata") or {}).get("labels")) or {}),
            "annotations": annotations, "ownerReferences": meta.get("ownerReferences"),
        },
        "spec": {"replicas": replicas, "selector": (deployment.get("spec") or {}).get("selector"),
                 "template": template},
        "status": {"replicas": status.get("replicas", 0) if current else 0,
                   "readyReplicas": status.get("readyReplicas", 0) if current else 0,
                   "availableReplicas": status.get("availableReplicas", 0) if current else 0},
    }


class FederationStorage:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.watch = StoreHistory(registry)

    # -------------------------------------------------------------- reads

    def stale_reason(self) -> str | None:
        return self.registry.stale_reason()

    def get(self, kind: Kind, namespace: str, name: str, *, consistent: bool = True) -> Object:
        if kind.key == FEDERATION_REPLICASETS.key:
            found = next((r for r in self.list(kind, namespace, consistent=consistent)[0]
                          if r["metadata"]["name"] == name), None)
            if found is None:
                raise st.not_found(kind.plural, name, kind.group)
            return found
        return self.registry.get(kind, namespace, name, consistent=consistent)

    def find(self, kind: Kind, namespace: str, name: str) -> Object | None:
        try:
            return self.get(kind, namespace, name)
        except st.NotFound:
            return None

    def list(self, kind: Kind, namespace: str | None, *, consistent: bool = True) -> tuple[list[Object], int]:
        if kind.key == FEDERATION_REPLICASETS.key:
            revisions, rv = self.registry.list(CONTROLLERREVISIONS, namespace, consistent=consistent)
            deployments = {d["metadata"]["uid"]: d
                           for d in self.registry.list(DEPLOYMENTS, namespace, consistent=consistent)[0]}
            sets = [rs for r in revisions if (rs := replicaset_of(r, deployments)) is not None]
            return sets, rv
        return self.registry.list(kind, namespace, consistent=consistent)

    async def snapshot(self, kind: Kind, namespace: str | None) -> tuple[list[Object], int]:
        return await asyncio.to_thread(self.list, kind, namespace)

    def ensure_well_known_namespaces(self) -> None:
        for name in WELL_KNOWN_NAMESPACES:
            self.registry.ensure_namespace(name)

    # -------------------------------------------------------------- writes

    def create(self, kind: Kind, namespace: str, body: Object, *, dry_run: bool) -> Object:
        return self.registry.create(kind, namespace, body, dry_run=dry_run)

    def replace(self, kind: Kind, namespace: str, name: str, body: Object, *, subresource: str,
                dry_run: bool) -> Object:
        return self.registry.replace(kind, namespace, name, body, subresource=subresource, dry_run=dry_run)

    def delete(self, kind: Kind, namespace: str, name: str, *, expected_rv: int | None, policy: str,
               dry_run: bool) -> Object:
        if kind.key == FEDERATION_NAMESPACES.key:
            self._check_namespace_deletable(name)
        if dry_run:
            return self.registry.delete(kind, namespace, name, expected_rv=expected_rv, dry_run=True)
        if kind.key == FEDERATION_NAMESPACES.key:
            self._delete_contents(name)
        if policy != "Background":
            # Background is the default (kubectl sends it on every delete) and costs no write.
            current = self.registry.get(kind, namespace, name)
            if expected_rv is not None and int(current["metadata"]["resourceVersion"]) != expected_rv:
                raise st.conflict(kind.plural, name, kind.group)
            marked = json.loads(json.dumps(current))
            marked["metadata"].setdefault("annotations", {})[DELETION_PROPAGATION_ANNOTATION] = policy
            stored = self.registry.put_if_changed(kind, namespace, name, marked)
            expected_rv = int(stored["metadata"]["resourceVersion"])
        return self.registry.delete(kind, namespace, name, expected_rv=expected_rv)

    @staticmethod
    def _check_namespace_deletable(name: str) -> None:
        if name in WELL_KNOWN_NAMESPACES:
            raise st.APIError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                              reason="Forbidden", kind="namespaces", name=name)

    def _delete_contents(self, namespace: str) -> None:
        for res in ALL:
            if not res.namespaced:
                continue
            for obj in self.registry.list(res, namespace)[0]:
                try:
                    self.registry.delete(res, namespace, obj["metadata"]["name"])
                except st.NotFound:
                    pass
