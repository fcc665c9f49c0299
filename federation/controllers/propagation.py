"""Service propagation: every federated Service exists in every Ready member cluster.

Per Ready cluster and per reconcile: list the member's copies (by the federation label),
create the missing, replace the drifted, delete the ones whose federated Service is gone;
then read each copy's load-balancer ingress and ready endpoints to build its *shard*. The
shards are written to the federated Service's ``status.shards``, and the healthy shards'
ingresses are aggregated into ``status.loadBalancer.ingress``. Federation v1.7 kept the
shards in the annotation ``federation.kubernetes.io/service-ingresses``; status is the
better home, because a user's replace of the object keeps status, while it would wipe an
annotation and blank the service's DNS records until the next reconcile.

A Service may carry the placement annotation Deployments use
(``federation.kubernetes.io/placement``, :mod:`federation.placement`): then only the clusters
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
import hashlib
import json
import logging
from typing import Any

from apimachinery.backoff import Backoff
from federation import approval, health
from federation.controllers.members import MemberClients
from federation.events import record_event
from apimachinery.meta import covers
from federation.ownership import Tombstones, released
from federation.placement import PlacementError, placed_clusters
from federation.cache import Reader, StoreReader
from federation.registry import Registry
from federation.resources import CLUSTERS, ENDPOINTS, SERVICES
from federation.settings import Settings
from apimachinery.errors import APIError, NotFound

log = logging.getLogger("federation.propagation")

FEDERATION_LABEL = "federation.kubernetes.io/federation-name"
OWNER_ANNOTATION = "federation.kubernetes.io/owner"
# Annotations that belong to the federation object only, never copied to members.
PRIVATE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


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


def refused(code: int) -> bool:
    """A member's answer that the same write would get again: back off (404 and 409 are races)."""
    return 400 <= code < 500 and code not in (404, 409)


def fingerprint(desired: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _placed(service: dict[str, Any], clusters: list[dict[str, Any]]) -> set[str]:
    try:
        return set(placed_clusters(service, clusters))
    except PlacementError:
        return {c["metadata"]["name"] for c in clusters}


class PropagationController:
    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        # copies of a Service deleted with propagationPolicy Orphan are released, not deleted (issue 7)
        self.tombstones = Tombstones(registry)
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()  # (cluster, namespace, name)

    async def reconcile(self) -> None:
        await self.tombstones.collect()
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        services = self.reader.list(SERVICES)
        ready = [c for c in clusters if health.is_ready(c)]
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
        fed = self.settings.federation_name
        selector = {"labelSelector": f"{FEDERATION_LABEL}={fed}"}
        copies = (await client.get(SERVICES.path(), params=selector)).get("items") or []
        existing = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in copies}
        wanted = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}
        self.backoff.retain(lambda k: k[0] != cname or (k[1], k[2]) in wanted)
        for key, fed_service in wanted.items():
            desired = member_copy(fed_service, fed)
            path = SERVICES.path(namespace=key[0], name=key[1])
            actual = existing.get(key)
            retry_key, print_ = (cname, key[0], key[1]), fingerprint(desired)
            if not self.backoff.ready(retry_key, print_):
                continue
            try:
                if actual is None:
                    existing[key] = await client.post(SERVICES.path(namespace=key[0]), desired)
                    log.info("created service %s/%s in cluster %s", key[0], key[1], cname)
                    record_event(self.registry, involved=fed_service, reason="CreatedInCluster",
                                 message=f"created service {key[0]}/{key[1]} in cluster {cname}")
                elif drifted(desired, actual):
                    update = copy.deepcopy(actual)
                    update["metadata"]["labels"] = desired["metadata"]["labels"]
                    update["metadata"].setdefault("annotations", {}).update(desired["metadata"]["annotations"])
                    update["spec"] = {**(actual.get("spec") or {}), **desired["spec"]}
                    existing[key] = await client.put(path, update)
                    log.info("updated service %s/%s in cluster %s", key[0], key[1], cname)
                    record_event(self.registry, involved=fed_service, reason="UpdatedInCluster",
                                 message=f"updated service {key[0]}/{key[1]} in cluster {cname}")
                self.backoff.succeeded(retry_key)
            except APIError as err:
                if not refused(err.code):
                    log.warning("service %s/%s in cluster %s: %s", key[0], key[1], cname, err.message)
                    continue
                delay = self.backoff.failed(retry_key, print_)
                log.warning("service %s/%s refused by cluster %s (%d): %s; retrying in %.0f s",
                            key[0], key[1], cname, err.code, err.message, delay)
                record_event(self.registry, involved=fed_service, reason="RefusedByCluster", type_="Warning",
                             message=f"cluster {cname} refused service {key[0]}/{key[1]} ({err.code}): "
                                     f"{err.message[:1000]}; retrying in {delay:.0f} s")
        for key in set(existing) - set(wanted):
            try:
                if self.tombstones.find(SERVICES.key, key[0], key[1]) is not None:
                    await client.put(SERVICES.path(namespace=key[0], name=key[1]), released(existing[key]))
                    log.info("released service %s/%s in cluster %s (deleted with Orphan)", key[0], key[1], cname)
                    existing.pop(key, None)
                    continue
                await client.delete(SERVICES.path(namespace=key[0], name=key[1]))
                log.info("deleted service %s/%s from cluster %s", key[0], key[1], cname)
            except APIError as err:
                if not isinstance(err, NotFound):
                    log.warning("deleting service %s/%s from %s: %s", key[0], key[1], cname, err.message)
            existing.pop(key, None)
        endpoints = (await client.get(ENDPOINTS.path())).get("items") or []
        by_key = {(e["metadata"].get("namespace"), e["metadata"]["name"]): e for e in endpoints}
        return {key: shard_of(cname, existing.get(key), by_key.get(key)) for key in wanted}

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
                if err.code not in (404, 409):
                    raise
