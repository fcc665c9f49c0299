"""DNS records: keep the DNSRecord objects equal to what the planner says.

Reads clusters (their region, zones and readiness) and federated services (their shards),
asks :func:`federation.dnsplan.plan_records` for the record sets, and creates, replaces or
deletes DNSRecord objects until the store matches. The DNS responder watches those objects.
"""

from __future__ import annotations

import logging
from typing import Any

from federation import dnsplan, health
from federation.registry import Registry
from federation.resources import CLUSTERS, DNSRECORDS, SERVICES
from federation.settings import Settings
from federation.status import APIError

log = logging.getLogger("federation.dns")


def cluster_info(cluster: dict[str, Any]) -> dnsplan.ClusterInfo:
    status = cluster.get("status") or {}
    return dnsplan.ClusterInfo(
        name=cluster["metadata"]["name"],
        region=str(status.get("region") or ""),
        zones=tuple(status.get("zones") or ()),
        usable=health.is_ready(cluster),
    )


def service_info(service: dict[str, Any]) -> dnsplan.ServiceInfo:
    shards = []
    for shard in (service.get("status") or {}).get("shards") or []:
        ips = tuple(i.get("ip") for i in shard.get("ingress") or [] if isinstance(i, dict) and i.get("ip"))
        shards.append(dnsplan.Shard(shard.get("cluster", ""), ips, int(shard.get("readyEndpoints") or 0)))
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
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    def desired(self) -> dict[str, dict[str, Any]]:
        clusters, _ = self.registry.list(CLUSTERS)
        services, _ = self.registry.list(SERVICES)
        records = dnsplan.plan_records(
            federation=self.settings.federation_name,
            domain=self.settings.domain,
            ttl=self.settings.dns_ttl,
            clusters=[cluster_info(c) for c in clusters],
            services=[service_info(s) for s in services],
        )
        return {r.object_name: record_object(r) for r in records}

    async def reconcile(self) -> None:
        desired = self.desired()
        existing = {o["metadata"]["name"]: o for o in self.registry.list(DNSRECORDS)[0]}
        for name in sorted(set(existing) - set(desired)):
            try:
                self.registry.delete(DNSRECORDS, "", name)
                log.info("removed record %s", name)
            except APIError as err:
                if err.code != 404:
                    raise
        for name, obj in sorted(desired.items()):
            current = existing.get(name)
            if current is None:
                self.registry.create(DNSRECORDS, "", obj)
                log.info("added record %s %s %s", obj["spec"]["name"], obj["spec"]["type"], " ".join(obj["spec"]["targets"]))
            elif current.get("spec") != obj["spec"]:
                new = dict(current)
                new["spec"] = obj["spec"]
                self.registry.put_if_changed(DNSRECORDS, "", name, new)
                log.info("changed record %s %s %s", obj["spec"]["name"], obj["spec"]["type"], " ".join(obj["spec"]["targets"]))
