"""Service propagation: every federated Service exists in every Ready member cluster.

Per Ready cluster and per reconcile: from the member's copies (by the federation label) and
endpoints, as informers on the member keep them (:mod:`federation.controllers.membercopies`),
create the missing, replace the drifted, delete the ones whose federated Service is gone
(:func:`federation.controllers.membersync.sync_copies`, the path Deployments share); then
read each copy's load-balancer ingress and ready endpoints to build its *shard*. The
shards are written to the federated Service's ``status.shards``, and the healthy shards'
ingresses are aggregated into ``status.loadBalancer.ingress``. Federation v1.7 kept the
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

import asyncio
import copy
import logging
from typing import Any

from apimachinery.backoff import Backoff
from federation.api import approval
from federation.planners import health
from federation.controllers.membercopies import MemberCopies
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, sync_copies
from apimachinery.meta import covers
from federation.names import FEDERATION_LABEL, LAST_APPLIED_ANNOTATION, OWNER_ANNOTATION
from federation.controllers.ownership import Tombstones, released
from federation.planners.placement import PlacementError, placed_clusters
from federation.api.cache import Reader, StoreReader
from federation.api.registry import Registry
from federation.resources import CLUSTERS, ENDPOINTS, SERVICES
from federation.settings import Settings
from apimachinery.errors import APIError, Conflict, NotFound

log = logging.getLogger("federation.propagation")

# What the controller's loop also waits for: a change its member informers saw.
MEMBER_SERVICES_CHANGED = "members/services"
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


class NotSynced(Exception):
    """Our view of a member's objects is not complete yet."""


class PropagationController:
    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        # copies of a Service deleted with propagationPolicy Orphan are released, not deleted (issue 7)
        self.tombstones = Tombstones(registry)
        self.adapter = ServiceCopies(self.tombstones)
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()  # (cluster, namespace, name)
        poke = lambda: registry.hub.notify(MEMBER_SERVICES_CHANGED)  # noqa: E731
        selector = f"{FEDERATION_LABEL}={settings.federation_name}"
        self.copies = MemberCopies(members, SERVICES, label_selector=selector, on_change=poke)
        self.endpoints = MemberCopies(members, ENDPOINTS, on_change=poke)

    async def close(self) -> None:
        await self.copies.close()
        await self.endpoints.close()

    async def reconcile(self) -> None:
        await self.tombstones.collect()
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        services = self.reader.list(SERVICES)
        ready = [c for c in clusters if health.is_ready(c)]
        self.copies.track(ready)
        self.endpoints.track(ready)
        placed = {id(s): _placed(s, clusters) for s in services}
        results = await asyncio.gather(
            *(self._sync_cluster(c, [s for s in services if c["metadata"]["name"] in placed[id(s)]]) for c in ready),
            return_exceptions=True,
        )
        observed: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for cluster, result in zip(ready, results):
            name = cluster["metadata"]["name"]
            if isinstance(result, BaseException):
                log.debug("propagation to %s failed: %s", name, result)
                continue
            observed[name] = result
            self.tombstones.seen(SERVICES.key, name, {c["metadata"]["name"] for c in clusters})
        self._write_shards(clusters, observed)

    async def _sync_cluster(
        self, cluster: dict[str, Any], services: list[dict[str, Any]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        cname = cluster["metadata"]["name"]
        client = self.members.for_cluster(cluster)
        if client is None:
            return {}
        existing, endpoints = self.copies.items(cname), self.endpoints.items(cname)
        if existing is None or endpoints is None:
            raise NotSynced(f"the view of {cname}'s services and endpoints is not synced yet")
        fed = self.settings.federation_name
        wanted = {(s["metadata"]["namespace"], s["metadata"]["name"]): Wanted(member_copy(s, fed), s) for s in services}
        copies = await sync_copies(registry=self.registry, adapter=self.adapter, client=client, cluster=cname,
                                   wanted=wanted, existing=existing, backoff=self.backoff)
        return {key: shard_of(cname, copies.get(key), endpoints.get(key)) for key in wanted}

    def _write_shards(self, clusters: list[dict[str, Any]], observed: dict[str, dict[tuple[str, str], dict]]) -> None:
        ready_names = {c["metadata"]["name"] for c in clusters if health.is_ready(c)}
        joined = {c["metadata"]["name"] for c in clusters}
        for service in self.reader.list(SERVICES):
            meta = service["metadata"]
            key = (meta["namespace"], meta["name"])
            previous = {
                s["cluster"]: s
                for s in (service.get("status") or {}).get("shards") or []
                if isinstance(s, dict) and "cluster" in s
            }
            shards = []
            for cname in sorted(joined):
                if cname in observed and key in observed[cname]:
                    shard = dict(observed[cname][key])
                elif cname in previous and cname not in observed:  # synced but not placed there: gone
                    shard = dict(previous[cname])
                else:
                    continue
                shard["clusterReady"] = cname in ready_names
                shard["healthy"] = bool(shard["clusterReady"] and shard.get("ingress") and shard.get("readyEndpoints", 0) > 0)
                shards.append(shard)
            ingress = []
            for shard in shards:
                if shard["healthy"]:
                    ingress.extend(shard["ingress"])
            old_status = service.get("status") or {}
            load_balancer = {"ingress": ingress} if ingress else {}
            if old_status.get("shards") == shards and old_status.get("loadBalancer") == load_balancer:
                continue  # the common case once converged: no copy, no store read
            new = copy.deepcopy(service)
            status = new.setdefault("status", {})
            status["loadBalancer"] = load_balancer
            status["shards"] = shards
            try:
                self.registry.put_if_changed(SERVICES, meta["namespace"], meta["name"], new)
            except APIError as err:
                if not isinstance(err, (NotFound, Conflict)):
                    raise
