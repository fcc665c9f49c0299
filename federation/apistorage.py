"""The federation's registry as the storage of the generic API server (:mod:`apimachinery.server`).

:class:`~federation.registry.Registry` already has Kubernetes' write semantics (validation,
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
from federation.names import DELETION_PROPAGATION_ANNOTATION, KUBERNETES_NAMESPACES, SYSTEM_NAMESPACE
from federation.registry import Registry
from federation.resources import ALL, FEDERATION_NAMESPACES, REVIEWS
from federation.store import Event, HistoryExpired

Object = dict[str, Any]

WELL_KNOWN_NAMESPACES = (*KUBERNETES_NAMESPACES, SYSTEM_NAMESPACE)
SERVED = ALL + REVIEWS


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


class FederationStorage:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.watch = StoreHistory(registry)

    # -------------------------------------------------------------- reads

    def get(self, kind: Kind, namespace: str, name: str) -> Object:
        return self.registry.get(kind, namespace, name)

    def find(self, kind: Kind, namespace: str, name: str) -> Object | None:
        return self.registry.find(kind, namespace, name)

    def list(self, kind: Kind, namespace: str | None) -> tuple[list[Object], int]:
        return self.registry.list(kind, namespace)

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
