"""Service propagation: every federated Service exists in every Ready member cluster.

One federated Service at a time (issue 11), keyed ``namespace/name``: for each Ready
cluster, from the member's copy (by the federation label) and endpoints, as informers on
the member keep them (:mod:`federation.controllers.membercopies`), create the copy if it is
missing, replace it if it drifted, delete it if the Service is gone or no longer placed
there (:func:`federation.controllers.membersync.sync_copies`, the path Deployments share);
then read each copy's load-balancer ingress and ready endpoints to build its *shard*. The
shards are written to the federated Service's ``status.shards``, and the healthy shards'
ingresses are aggregated into ``status.loadBalancer.ingress``.

Keys are enqueued, and the clusters read, as :mod:`federation.controllers.keyed` says
(the Service, its copy or its endpoints in a member, a member's sync, a cluster's change, a
slow resync); a member that did not answer fails the key, which backs off alone
(:class:`apimachinery.workqueue.WorkQueue`). Federation v1.7 kept the
shards in the annotation ``federation.kubernetes.io/service-ingresses``; status is the
better home, because a user's replace of the object keeps status, while it would wipe an
annotation and blank the service's DNS records until the next reconcile.

A Service may carry the placement annotation Deployments use
(``federation.kubernetes.io/placement``, :mod:`federation.planners.placement`): then only the clusters
it selects get a copy (issue 8's soak places 1,000 services on two clusters each); a
malformed placement means every cluster, as no placement does.

A copy a member refuses (a 4xx other than 404 and 409: too large, invalid) is not retried on
every pass: each (cluster, service) backs off exponentially, from 1 s to 5 min, until the
federated Service changes or a write succeeds (issue 19; :mod:`apimachinery.backoff`).

A cluster that is not Ready is left alone; its last-known shard stays on the annotation,
marked ``clusterReady: false``, and the DNS planner leaves it out. A cluster that left the
federation loses its shard at once.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from apimachinery.backoff import Backoff
from apimachinery.workqueue import Requeue
from federation.controllers.keyed import ClusterSnapshot, MemberCopyController, NotSynced
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, sync_copies
from apimachinery.meta import covers
from federation.names import FEDERATION_LABEL, LAST_APPLIED_ANNOTATION, OWNER_ANNOTATION
from federation.controllers.ownership import Tombstones, released
from federation.planners.placement import PlacementError, placed_clusters
from federation.api.cache import Reader
from federation.api.registry import Registry
from federation.resources import ENDPOINTS, SERVICES
from federation.settings import Settings
from apimachinery.errors import Conflict, NotFound

log = logging.getLogger("federation.propagation")

# Annotations that belong to the federation object only, never copied to members.
PRIVATE_ANNOTATIONS = (LAST_APPLIED_ANNOTATION,)


def member_copy(fed_service: dict[str, Any], federation: str) -> dict[str, Any]:
    """The object the federation wants in each member for a federated Service."""
    meta = fed_service["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[FEDERATION_LABEL] = federation
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in PRIVATE_ANNOTATIONS}
    annotations[OWNER_ANNOTATION] = f"{meta['namespace']}/{meta['name']}"
    spec = copy.deepcopy(fed_service.get("spec") or {})
    for key in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
        spec.pop(key, None)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def drifted(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    """True when the member's copy differs in anything the federation sets."""
    a_meta, d_meta = actual.get("metadata") or {}, desired["metadata"]
    if (a_meta.get("labels") or {}) != d_meta["labels"]:
        return True
    if any((a_meta.get("annotations") or {}).get(k) != v for k, v in d_meta["annotations"].items()):
        return True
    return not covers(actual.get("spec") or {}, desired["spec"])


def shard_of(cluster: str, copy_: dict[str, Any] | None, endpoints: dict[str, Any] | None) -> dict[str, Any]:
    ingress = ((copy_ or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    ready = 0
    for subset in (endpoints or {}).get("subsets") or []:
        ready += len(subset.get("addresses") or [])
    return {"cluster": cluster, "ingress": ingress, "readyEndpoints": ready}


def _placed(service: dict[str, Any], clusters: list[dict[str, Any]]) -> set[str]:
    try:
        return set(placed_clusters(service, clusters))
    except PlacementError:
        return {c["metadata"]["name"] for c in clusters}


class ServiceCopies:
    """How a member's copy of a federated Service is kept (a :class:`membersync.CopyAdapter`)."""

    kind = SERVICES
    noun = "service"

    def __init__(self, tombstones: Tombstones) -> None:
        self.tombstones = tombstones

    drifted = staticmethod(drifted)

    @staticmethod
    def update_body(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
        update = copy.deepcopy(actual)  # keep what the member owns (clusterIP, nodePorts, status)
        update["metadata"]["labels"] = desired["metadata"]["labels"]
        update["metadata"].setdefault("annotations", {}).update(desired["metadata"]["annotations"])
        update["spec"] = {**(actual.get("spec") or {}), **desired["spec"]}
        return update

    @staticmethod
    def created_event(want: Wanted, cluster: str) -> str:
        meta = want.desired["metadata"]
        return f"created service {meta['namespace']}/{meta['name']} in cluster {cluster}"

    @staticmethod
    def update_event(desired: dict[str, Any], actual: dict[str, Any], cluster: str) -> tuple[str, str]:
        meta = desired["metadata"]
        return "UpdatedInCluster", f"updated service {meta['namespace']}/{meta['name']} in cluster {cluster}"

    @staticmethod
    def collectable(copy_: dict[str, Any]) -> bool:
        return True  # every copy labelled with this federation is ours

    def tombstone(self, key: tuple[str, str], copy_: dict[str, Any]) -> Any:
        return self.tombstones.find(SERVICES.key, key[0], key[1])

    released = staticmethod(released)

    @staticmethod
    def delete_body() -> None:
        return None


NOT_PLACED = None  # a cluster's answer for a Service it is not placed on


class PropagationController(MemberCopyController):
    kind = SERVICES

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        super().__init__(registry, settings, members, reader, name="propagation")
        self.adapter = ServiceCopies(self.tombstones)
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()  # (cluster, namespace, name)
        self.member_view(SERVICES, label_selector=f"{FEDERATION_LABEL}={settings.federation_name}")
        self.endpoints = self.member_view(ENDPOINTS, ours=False)

    def placed(self, obj: dict[str, Any], trusted: list[dict[str, Any]]) -> set[str]:
        return _placed(obj, trusted)

    async def reconcile_key(self, key: str) -> None:
        """Sync one federated Service's copies in every Ready member, then write its shards."""
        snapshot, skey, service = await self.begin(key)
        namespace, name = skey
        placed = _placed(service, snapshot.trusted) if service is not None else set()
        ready = snapshot.ready
        observed: dict[str, dict[str, Any] | None]
        observed, failed = await self.sync_each(self.involved(snapshot, key, placed),
                                                lambda c: self._sync_cluster(c, snapshot, service, skey, placed))
        for cluster in ready:  # Ready, synced, and neither placed nor holding a copy: nothing to do there
            cname = cluster["metadata"]["name"]
            if cname not in observed and cname not in failed and cname not in placed \
                    and self.synced(cname):
                observed[cname] = NOT_PLACED
        self.retry_refused(key, skey, placed, self.backoff)
        if service is None:
            self.tombstones.seen(SERVICES.key, self.released_in(set(observed), key), snapshot.joined, owner=skey)
        elif not self._write_shards(service, snapshot, observed):
            # Our cached Service is older than the store (our previous status write is on its
            # way): try again shortly, as the event of that write enqueues nothing.
            raise Requeue("the cached Service is older than the store's")
        self.requeue_if_failed(failed)

    async def _sync_cluster(self, cluster: dict[str, Any], snapshot: ClusterSnapshot, service: dict[str, Any] | None,
                            skey: tuple[str, str], placed: set[str]) -> dict[str, Any] | None:
        """Sync the Service's copy in one cluster; its shard there (None if not placed there)."""
        cname = cluster["metadata"]["name"]
        client = snapshot.clients.get(cname)
        if client is None:
            return NOT_PLACED
        if not self.synced(cname):
            raise NotSynced(f"the view of {cname}'s services and endpoints is not synced yet")
        key = f"{skey[0]}/{skey[1]}"
        current = self.copies.get(cname, key)
        wanted = {}
        if service is not None and cname in placed:
            wanted[skey] = Wanted(member_copy(service, self.settings.federation_name), service)
        copies = await sync_copies(registry=self.registry, adapter=self.adapter, client=client, cluster=cname,
                                   wanted=wanted, existing={skey: current} if current is not None else {},
                                   backoff=self.backoff, only=skey)
        if skey not in wanted:
            return NOT_PLACED
        return shard_of(cname, copies.get(skey), self.endpoints.get(cname, key))

    def _write_shards(self, service: dict[str, Any], snapshot: ClusterSnapshot,
                      observed: dict[str, dict[str, Any] | None]) -> bool:
        """Write the Service's shards and aggregated ingress; False on a conflict."""
        meta = service["metadata"]
        previous = {
            s["cluster"]: s
            for s in (service.get("status") or {}).get("shards") or []
            if isinstance(s, dict) and "cluster" in s
        }
        shards = []
        for cname in sorted(snapshot.joined):
            if observed.get(cname) is not None:
                shard = dict(observed[cname])
            elif cname in previous and cname not in observed:  # not heard from this time: keep what it said
                shard = dict(previous[cname])
            else:
                continue  # synced but not placed there: gone
            shard["clusterReady"] = cname in snapshot.ready_names
            shard["healthy"] = bool(shard["clusterReady"] and shard.get("ingress") and shard.get("readyEndpoints", 0) > 0)
            shards.append(shard)
        ingress = []
        for shard in shards:
            if shard["healthy"]:
                ingress.extend(shard["ingress"])
        old_status = service.get("status") or {}
        load_balancer = {"ingress": ingress} if ingress else {}
        if old_status.get("shards") == shards and old_status.get("loadBalancer") == load_balancer:
            return True  # the common case once converged: no copy, no store read
        new = copy.deepcopy(service)
        status = new.setdefault("status", {})
        status["loadBalancer"] = load_balancer
        status["shards"] = shards
        try:
            self.registry.put_if_changed(SERVICES, meta["namespace"], meta["name"], new)
        except NotFound:
            pass  # deleted meanwhile: its delete event enqueues it
        except Conflict:
            return False
        return True
