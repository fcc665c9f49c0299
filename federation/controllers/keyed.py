"""What the controllers that keep member copies share, one federated object at a time (issue 11).

Service propagation and federated Deployments keep copies of one federated kind in the
Ready members. Both reconcile one object at a time, as client-go's controllers do: the
informers' handlers put the key (``namespace/name``) of what changed in the controller's
:class:`apimachinery.workqueue.WorkQueue`, and :func:`federation.controllers.run_keyed`'s
workers call the subclass's ``reconcile_key(key)``. What enqueues a key, the same for both:

- the federated object added, changed or deleted (a change of its status alone does not:
  the controller writes it);
- an object of one of the member informers (:class:`MemberCopies`: the copies, label
  selected, and for Services the endpoints) added, changed or deleted;
- a member's view syncing: the objects placed on it and every copy it holds;
- a Cluster whose approval, readiness, labels or spec changed: every key, once per burst of
  such events (the change's cost); a status refresh (lastProbeTime) enqueues nothing;
- the slow resync (``settings.resync_period``): every key.

The clusters are read once per change of them (:class:`ClusterSnapshot`: the trusted ones,
the Ready ones and a client for each), not once per key. ``reconcile()``, the whole pass
that tests call, reconciles every key in turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from apimachinery.backoff import Backoff
from apimachinery.client import APIClient
from apimachinery.informer import object_key, split_key
from apimachinery.kinds import Kind
from apimachinery.workqueue import Requeue, WorkQueue
from federation.api import approval
from federation.planners import health
from federation.api.cache import InformerReader, Reader, StoreReader
from federation.controllers import Coalesced
from federation.controllers.membercopies import MemberCopies
from federation.controllers.members import MemberClients
from federation.names import FEDERATION_LABEL
from federation.controllers.ownership import Tombstones
from federation.api.registry import Registry
from federation.resources import CLUSTERS
from federation.settings import Settings

log = logging.getLogger("federation.controllers")

Object = dict[str, Any]


def cluster_view(cluster: Object) -> tuple[Any, ...]:
    """What of a Cluster the copies depend on: approval, readiness, labels (placement) and
    spec (address, credential); a change of anything else (a status refresh) enqueues nothing."""
    meta = cluster.get("metadata") or {}
    return (approval.is_approved(cluster), health.is_ready(cluster), meta.get("labels") or {},
            cluster.get("spec") or {})


def without_status(obj: Object) -> tuple[Any, ...]:
    """An object as a change of it matters to the controller that writes its status."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    return meta, {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class NotSynced(Exception):
    """Our view of a member's objects is not complete yet."""


class ClusterSnapshot:
    """The trusted clusters, the Ready ones and their clients, as of the last cluster change."""

    def __init__(self, clusters: list[Object], members: MemberClients) -> None:
        self.trusted = approval.trusted(clusters)  # issue 19: approved members only
        self.ready = [c for c in self.trusted if health.is_ready(c)]
        self.by_name = {c["metadata"]["name"]: c for c in self.trusted}
        self.joined = set(self.by_name)
        self.ready_names = {c["metadata"]["name"] for c in self.ready}
        self.clients: dict[str, APIClient | None] = {c["metadata"]["name"]: members.for_cluster(c) for c in self.ready}


class MemberCopyController:
    """The queue, the handlers and the cluster snapshot of a per-key member-copy controller.

    A subclass sets :attr:`kind`, makes its member informers with :meth:`member_view`, and
    implements :meth:`placed` and ``reconcile_key``."""

    kind: Kind  # the federated kind
    workers = 16  # keys in flight at once: each waits on member round trips

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients, reader: Reader | None,
                 *, name: str) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        self.queue: WorkQueue[str] = WorkQueue(name=name)
        # copies of an object deleted with propagationPolicy Orphan are released, not deleted (issue 7)
        self.tombstones = Tombstones(registry)
        self.views: list[MemberCopies] = []  # the member informers, the copies first
        self._snapshot: ClusterSnapshot | None = None  # kept only while handlers keep it current
        self._attached = False
        self._fan_out = Coalesced(self.resync)
        self.reconciles = 0  # keys reconciled

    def member_view(self, kind: Kind, *, label_selector: str | None = None, ours: bool = True) -> MemberCopies:
        """A member informer per Ready member whose events enqueue the object's key. ``ours``:
        every object it holds is one of our copies (else only objects whose federated
        object exists enqueue: a member's own endpoints are none of our business)."""
        view = MemberCopies(self.members, kind, label_selector=label_selector,
                            on_object=self._copy_changed if ours else self._related_changed,
                            on_synced=self.resync_cluster)
        self.views.append(view)
        return view

    @property
    def copies(self) -> MemberCopies:
        return self.views[0]

    def placed(self, obj: Object, trusted: list[Object]) -> set[str]:
        """The names of the clusters the object should have a copy in."""
        raise NotImplementedError

    async def close(self) -> None:
        self.queue.shutdown(drain=False)
        for view in self.views:
            await view.close()

    # -------------------------------------------------------------- events

    def attach(self) -> None:
        """Enqueue keys on the informers' events (the reader must be an InformerReader)."""
        if not isinstance(self.reader, InformerReader):
            raise TypeError(f"the per-key {self.queue.name} controller needs an InformerReader")
        self.reader.informer(self.kind).add_handler(on_add=self._enqueue, on_update=self._object_updated,
                                                    on_delete=self.object_deleted)
        self.reader.informer(CLUSTERS).add_handler(on_add=lambda c: self._clusters_changed(),
                                                   on_update=self._cluster_updated,
                                                   on_delete=lambda c: self._clusters_changed())
        self._attached = True

    def _enqueue(self, obj: Object) -> None:
        self.queue.add(object_key(obj))

    def object_deleted(self, obj: Object) -> None:
        self.queue.add(object_key(obj))

    def _object_updated(self, old: Object, new: Object) -> None:
        if without_status(old) != without_status(new):
            self.queue.add(object_key(new))

    def _cluster_updated(self, old: Object, new: Object) -> None:
        if cluster_view(old) != cluster_view(new):
            self._clusters_changed()

    def _clusters_changed(self) -> None:
        self._snapshot = None
        self._fan_out()  # every key, once for a burst of cluster events

    def _copy_changed(self, cluster: str, obj: Object) -> None:
        self.queue.add(object_key(obj))

    def _related_changed(self, cluster: str, obj: Object) -> None:
        key = object_key(obj)
        namespace, name = split_key(key)
        if self.reader.get(self.kind, namespace, name) is not None:
            self.queue.add(key)

    def keys(self) -> set[str]:
        """Every key this controller answers for: the federated objects, and the copies the
        Ready members hold (a copy whose federated object is gone goes on its key's reconcile)."""
        keys = {object_key(o) for o in self.reader.list(self.kind)}
        for cluster in self.clusters().ready:
            keys.update(self.copies.keys(cluster["metadata"]["name"]))
        return keys

    def resync(self) -> None:
        """Enqueue every key (the slow periodic resync; it re-reads the clusters)."""
        self._snapshot = None
        for key in sorted(self.keys()):
            self.queue.add(key)

    def resync_cluster(self, cluster: str) -> None:
        """A member's view synced: enqueue the objects placed on it and every copy it holds."""
        trusted = self.clusters().trusted
        keys = set(self.copies.keys(cluster))
        keys.update(object_key(o) for o in self.reader.list(self.kind) if cluster in self.placed(o, trusted))
        for key in sorted(keys):
            self.queue.add(key)

    # -------------------------------------------------------------- reading

    def clusters(self) -> ClusterSnapshot:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = ClusterSnapshot(self.reader.list(CLUSTERS), self.members)
            for view in self.views:
                view.track(snapshot.ready)
            if self._attached:
                self._snapshot = snapshot
        return snapshot

    def synced(self, cluster: str) -> bool:
        """Every member informer of ``cluster`` has synced."""
        return all(view.synced(cluster) for view in self.views)

    async def begin(self, key: str) -> tuple[ClusterSnapshot, tuple[str, str], Object | None]:
        """Where a key's reconcile starts: the clusters, ``(namespace, name)`` and the federated
        object (None: deleted, and then the tombstones of Orphan deletions are read first)."""
        self.reconciles += 1
        snapshot = self.clusters()
        namespace, name = split_key(key)
        obj = self.reader.get(self.kind, namespace, name)
        if obj is None:
            await self.tombstones.collect()
        return snapshot, (namespace, name), obj

    def released_in(self, clusters: set[str], key: str) -> set[str]:
        """The clusters whose cached view holds no copy of ours under ``key`` any more. A
        deleted object's tombstone counts only those as seen: a cluster whose release was
        just sent still shows the copy, and dropping the tombstone then would let the next
        reconcile, reading a cache that lags, delete what it should release."""
        label = self.settings.federation_name
        out = set()
        for cluster in clusters:
            copy_ = self.copies.get(cluster, key)
            if copy_ is None or ((copy_.get("metadata") or {}).get("labels") or {}).get(FEDERATION_LABEL) != label:
                out.add(cluster)
        return out

    def involved(self, snapshot: ClusterSnapshot, key: str, placed: set[str]) -> list[Object]:
        """The Ready clusters a key's reconcile writes to: placed there, or holding a copy."""
        return [c for c in snapshot.ready if c["metadata"]["name"] in placed
                or self.copies.get(c["metadata"]["name"], key) is not None]

    @staticmethod
    async def sync_each(clusters: list[Object], sync: Callable[[Object], Awaitable[Any]]
                        ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        """``sync`` in every cluster at once: (answers, failures) by cluster name; a cluster
        whose view is not synced (:class:`NotSynced`) is in neither (its sync enqueues the key)."""
        results = await asyncio.gather(*(sync(c) for c in clusters), return_exceptions=True)
        answers: dict[str, Any] = {}
        failed: dict[str, BaseException] = {}
        for cluster, result in zip(clusters, results):
            if isinstance(result, NotSynced):
                continue
            if isinstance(result, BaseException):
                failed[cluster["metadata"]["name"]] = result
            else:
                answers[cluster["metadata"]["name"]] = result
        return answers, failed

    def retry_refused(self, key: str, skey: tuple[str, str], placed: set[str],
                      backoff: Backoff[tuple[str, str, str]]) -> None:
        """A copy a member refused: try the key again when its backoff is over."""
        for cname in placed:
            wait = backoff.wait((cname, skey[0], skey[1]))
            if wait is not None:
                self.queue.add_after(key, wait + 0.01)

    @staticmethod
    def requeue_if_failed(failed: dict[str, BaseException]) -> None:
        """Members that did not answer fail the key: it is retried after its backoff."""
        if failed:
            raise Requeue("; ".join(f"cluster {c}: {type(e).__name__}: {e}" for c, e in sorted(failed.items())))

    async def reconcile_key(self, key: str) -> None:
        raise NotImplementedError

    async def reconcile(self) -> None:
        """The whole pass: every key in turn (what tests call; the running server enqueues)."""
        self._snapshot = None
        self._snapshot = self.clusters()  # one view of the clusters for the whole pass
        try:
            for key in sorted(self.keys()):
                try:
                    await self.reconcile_key(key)
                except Exception as err:  # noqa: BLE001 - the next pass retries
                    log.debug("%s of %s failed: %s", self.queue.name, key, err)
        finally:
            if not self._attached:
                self._snapshot = None
