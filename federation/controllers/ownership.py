"""Who owns a member's copy, and what happens to it when its federated owner is deleted.

Every object the federation creates in a member carries the label
``federation.kubernetes.io/federation-name`` and the annotations
``federation.kubernetes.io/owner: <ns>/<name>`` and (for workloads)
``federation.kubernetes.io/owner-uid: <uid>`` and ``.../owner-kind``: a reference to its
federated owner that survives the member's restarts and the federation's. A member's own
``ownerReferences`` cannot hold it: the member's garbage collector would delete an object
whose owner uid it does not know.

Cascading is level-triggered: a controller that finds, in a Ready member, a copy whose
federated owner no longer exists (by uid) deletes it. A cluster that was Offline when its
owner went away is cleaned up when it is Ready again, with no list of pending deletions.

``Orphan`` needs memory, because the owner is gone by the time a member can be reached:
the API server marks the object with ``federation.kubernetes.io/deletion-propagation:
Orphan`` just before deleting it, so its ``DELETED`` event carries the policy. The
controllers turn those events into *tombstones* (stored under an internal key, never
served), and release a copy (strip the label and the owner annotations, leave it running)
instead of deleting it when a tombstone names its owner. A tombstone goes once every
joined cluster has been seen Ready after the deletion.

The controllers read those events from the revision the process started at, not from 0,
and only ``DELETED`` ones, a page at a time in a worker thread: a store with a long
history made a restart unresponsive for 39 s while the first pass read all of it on the
event loop (issue 19). Deletions acknowledged before a restart were read by the process
that served them; the tombstones they made are in the store.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from federation.names import (
    DELETION_PROPAGATION_ANNOTATION,
    FEDERATION_LABEL,
    OWNER_ANNOTATION,
    OWNER_KIND_ANNOTATION,
    OWNER_UID_ANNOTATION,
)
from federation.api.registry import Registry
from federation.storage.store import Event, HistoryExpired

log = logging.getLogger("federation.controllers.ownership")

OWNERSHIP_ANNOTATIONS = (OWNER_ANNOTATION, OWNER_UID_ANNOTATION, OWNER_KIND_ANNOTATION)
TOMBSTONES = "orphantombstones.federation.internal"


def owner_of(obj: dict[str, Any]) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of a copy's federated owner; uid is "" for copies without one."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    owner = annotations.get(OWNER_ANNOTATION)
    if not owner or "/" not in owner:
        return None
    ns, _, name = owner.partition("/")
    return ns, name, annotations.get(OWNER_UID_ANNOTATION, "")


def released(obj: dict[str, Any]) -> dict[str, Any]:
    """The copy with the federation's label and owner annotations taken off."""
    new = copy.deepcopy(obj)
    meta = new.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != FEDERATION_LABEL}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in OWNERSHIP_ANNOTATIONS}
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value:
            meta[key] = value
        else:
            meta.pop(key, None)
    return new


class Tombstones:
    """Orphan tombstones, kept in the store, derived from the store's DELETED events."""

    PAGE = 100  # DELETED events read per page

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._cursor = registry.store.revision

    async def collect(self) -> None:
        """Read new DELETED events; a tombstone for every owner deleted with Orphan."""
        store = self.registry.store
        while True:
            try:
                events = await asyncio.to_thread(store.events_page, self._cursor, types=("DELETED",),
                                                 max_events=self.PAGE)
            except HistoryExpired:
                log.warning("event history compacted past %d; orphan deletions before it are not known", self._cursor)
                self._cursor = store.revision
                return
            if not events:
                return
            self._record(events)

    def _record(self, events: list[Event]) -> None:
        store = self.registry.store
        for event in events:
            self._cursor = max(self._cursor, event.rv)
            if event.resource == TOMBSTONES:
                continue
            meta = event.object.get("metadata") or {}
            if (meta.get("annotations") or {}).get(DELETION_PROPAGATION_ANNOTATION) != "Orphan":
                continue
            uid = meta.get("uid") or f"{event.resource}/{event.namespace}/{meta.get('name')}"
            if store.get(TOMBSTONES, "", uid) is not None:
                continue
            store.create(TOMBSTONES, "", uid, {
                "metadata": {"name": uid},
                "resource": event.resource,
                "namespace": event.namespace,
                "name": meta.get("name"),
                "uid": meta.get("uid", ""),
                "seenIn": [],
            })
            log.info("%s %s/%s deleted with propagationPolicy Orphan: its copies stay in the members",
                     event.resource, event.namespace, meta.get("name"))

    def find(self, resource: str, namespace: str, name: str, uid: str = "") -> dict[str, Any] | None:
        items, _ = self.registry.store.list(TOMBSTONES)
        for t in items:
            if t.get("resource") == resource and t.get("namespace") == namespace and t.get("name") == name:
                if not uid or not t.get("uid") or t.get("uid") == uid:
                    return t
        return None

    def seen(self, resource: str, cluster: str | set[str], joined: set[str], *,
             owner: tuple[str, str] | None = None) -> None:
        """The ``resource``'s controller passed over a Ready cluster (or several); drop
        tombstones every joined cluster has had. ``owner`` (namespace, name): the pass
        covered only that object's copies (a per-key reconcile), so only its tombstone counts."""
        store = self.registry.store
        items, _ = store.list(TOMBSTONES)
        clusters = {cluster} if isinstance(cluster, str) else set(cluster)
        for t in items:
            if t.get("resource") != resource:
                continue
            if owner is not None and (t.get("namespace"), t.get("name")) != owner:
                continue
            seen = set(t.get("seenIn") or []) | clusters
            name = t["metadata"]["name"]
            if joined <= seen:
                try:
                    store.delete(TOMBSTONES, "", name)
                except Exception:  # noqa: BLE001 - gone already
                    pass
            elif seen != set(t.get("seenIn") or []):
                t = dict(t, seenIn=sorted(seen))
                try:
                    store.update(TOMBSTONES, "", name, t, None)
                except Exception:  # noqa: BLE001
                    pass
