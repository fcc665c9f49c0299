"""DNS records: keep the DNSRecord objects equal to what the planner says.

Reads clusters (their region, zones and readiness) and federated services (their shards),
asks :func:`federation.planners.dnsplan.plan_records` for the record sets, and creates, replaces or
deletes DNSRecord objects until the store matches. The DNS responder watches those objects.
With data-plane checking on, the addresses the probers voted down (kept in memory by
:class:`federation.controllers.dataplane.DataPlaneController`) are left out as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from federation.api import approval

from federation.planners import dnsplan, health
from federation.api.cache import Reader, StoreReader
from federation.api.registry import Registry
from federation.resources import CLUSTERS, DNSRECORDS, SERVICES
from federation.settings import Settings
from apimachinery.errors import APIError, NotFound

log = logging.getLogger("federation.dns")


def cluster_info(cluster: dict[str, Any]) -> dnsplan.ClusterInfo:
    status = cluster.get("status") or {}
    return dnsplan.ClusterInfo(
        name=cluster["metadata"]["name"],
        region=str(status.get("region") or ""),
        zones=tuple(status.get("zones") or ()),
        usable=health.is_ready(cluster),
        offline=health.phase_from_conditions(status.get("conditions")) == health.OFFLINE,
    )


def service_info(service: dict[str, Any], unreachable: frozenset[tuple[str, str]] = frozenset()) -> dnsplan.ServiceInfo:
    """``unreachable``: the (cluster, address) pairs that data-plane probers voted down."""
    shards = []
    for shard in (service.get("status") or {}).get("shards") or []:
        cluster = shard.get("cluster", "")
        ips = tuple(i.get("ip") for i in shard.get("ingress") or [] if isinstance(i, dict) and i.get("ip"))
        down = tuple(ip for ip in ips if (cluster, ip) in unreachable)
        shards.append(dnsplan.Shard(cluster, ips, int(shard.get("readyEndpoints") or 0), down))
    ports = tuple(
        dnsplan.Port(p.get("name") or "", p.get("protocol", "TCP"), int(p.get("port") or 0))
        for p in (service.get("spec") or {}).get("ports") or []
        if isinstance(p, dict)
    )
    meta = service["metadata"]
    return dnsplan.ServiceInfo(meta["name"], meta["namespace"], tuple(shards), ports)


def record_object(record: dnsplan.RecordSet) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": record.name, "type": record.type, "ttl": record.ttl, "targets": list(record.targets)}
    if record.placements:
        spec["placements"] = [
            {"target": p.target, "cluster": p.cluster, "region": p.region, "zones": list(p.zones)}
            for p in record.placements
        ]
    return {
        "apiVersion": DNSRECORDS.api_version,
        "kind": DNSRECORDS.kind,
        "metadata": {"name": record.object_name, "labels": {"federation.kubernetes.io/record-type": record.type}},
        "spec": spec,
    }


class DNSRecordController:
    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        *,
        unreachable: Callable[[], frozenset[tuple[str, str]]] | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.unreachable = unreachable or frozenset
        # The specs this controller knows are stored, by object name. Reading every
        # DNSRecord back from the store on each reconcile cost more than planning (17,000
        # records in the soak); the store is re-read every ``resync`` seconds instead, so
        # a record someone else changed is put right within that time.
        self._known: dict[str, dict[str, Any]] | None = None
        self._known_at = 0.0
        self.resync = 30.0
        self._clusters_planned: tuple[dnsplan.ClusterInfo, ...] | None = None
        self._per_service: dict[dnsplan.ServiceInfo, dict[str, dict[str, Any]]] = {}

    def plan(self, clusters: list[dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The DNSRecord objects wanted for these clusters and services.

        Each service's records depend only on its own :class:`~federation.planners.dnsplan.ServiceInfo`
        and on the clusters, so they are remembered per ServiceInfo and recomputed only for
        services that changed; a change to any cluster's placement or usability recomputes
        all. (A steady cluster's status is rewritten now and then to refresh lastProbeTime:
        that wakes this controller but no longer replans 1,000 services.)
        """
        unreachable = self.unreachable()
        clusters_info = tuple(cluster_info(c) for c in clusters)
        if clusters_info != self._clusters_planned:
            self._per_service = {}
            self._clusters_planned = clusters_info
        per_service: dict[dnsplan.ServiceInfo, dict[str, dict[str, Any]]] = {}
        desired: dict[str, dict[str, Any]] = {}
        for service in services:
            info = service_info(service, unreachable)
            objects = self._per_service.get(info)
            if objects is None:
                records = dnsplan.plan_records(
                    federation=self.settings.federation_name,
                    domain=self.settings.domain,
                    ttl=self.settings.dns_ttl,
                    clusters=list(clusters_info),
                    services=[info],
                    offline_records=self.settings.offline_records,
                )
                objects = {r.object_name: record_object(r) for r in records}
            per_service[info] = objects
            desired.update(objects)
        self._per_service = per_service
        return desired

    async def desired(self) -> dict[str, dict[str, Any]]:
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        services = self.reader.list(SERVICES)
        if len(services) < 50:
            return self.plan(clusters, services)
        # A big federation's plan takes a few hundred milliseconds: plan in a thread so the
        # event loop keeps serving lease renewals and watches meanwhile.
        return await asyncio.to_thread(self.plan, clusters, services)

    async def reconcile(self) -> None:
        desired = await self.desired()
        now = time.monotonic()
        if self._known is None or now - self._known_at >= self.resync:
            stored = self.reader.list(DNSRECORDS)
            self._known = {o["metadata"]["name"]: o.get("spec") for o in stored}
            self._known_at = now
        known = self._known
        writes = 0
        for name, obj in sorted(desired.items()):
            spec = obj["spec"]
            if known.get(name) == spec:
                continue
            current = self.registry.find(DNSRECORDS, "", name)
            if current is None:
                self.registry.create(DNSRECORDS, "", obj)
                log.info("added record %s %s %s", spec["name"], spec["type"], " ".join(spec["targets"]))
            elif current.get("spec") != spec:
                self.registry.put_if_changed(DNSRECORDS, "", name, {**current, "spec": spec})
                log.info("changed record %s %s %s", spec["name"], spec["type"], " ".join(spec["targets"]))
            known[name] = spec
            writes += 1
            if writes % 200 == 0:
                await asyncio.sleep(0)  # let lease renewals and watches through a big change
        # Deletes last: a name that turns from A to CNAME (or back) changes object, and
        # deleting the old one first would let the responder answer NXDOMAIN in between.
        for name in sorted(set(known) - set(desired)):
            try:
                self.registry.delete(DNSRECORDS, "", name)
                log.info("removed record %s", name)
            except APIError as err:
                if not isinstance(err, NotFound):
                    raise
            known.pop(name, None)
            writes += 1
