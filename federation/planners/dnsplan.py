"""The DNS record planner: pure, from (clusters, services, shards) to record sets.

Names follow Federation v1 (zone.region form):

    zone    <svc>.<ns>.<fed>.svc.<zone>.<region>.<domain>
    region  <svc>.<ns>.<fed>.svc.<region>.<domain>
    global  <svc>.<ns>.<fed>.svc.<domain>

and the multi-cluster services alias (KEP-1645) ``<svc>.<ns>.svc.clusterset.local``.

Each level answers A (and AAAA) records for the healthy shards inside it. A zone with none
answers a CNAME to its region name, a region with none a CNAME to the global name, and the
global name with none has no record at all. Unlike Federation v1, every zone of a
multi-zone cluster gets its zone name, and a record exists only while a joined cluster
makes it meaningful: a deleted service or an unjoined cluster leaves nothing behind.

Two failover policies shape "healthy" (issue 5, docs/failover.md). ``offline_records``
says what an Offline cluster's shards do: ``remove`` drops them like any unusable cluster's,
``keep`` serves their last-known addresses (the cluster may be cut off from the control
plane only). Data-plane votes then take out, one by one, the addresses that a majority of
probers found dead (``Shard.unreachable``), whatever the control plane thinks.

SRV records name every named port at every level that has addresses:
``_<port>._<proto>.<level name>`` pointing at that level's name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from apimachinery.meta import check_label_name


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    region: str
    zones: tuple[str, ...]
    usable: bool
    # Offline: unreachable from the control plane (usable is then False).
    offline: bool = False


@dataclass(frozen=True)
class Shard:
    cluster: str
    ips: tuple[str, ...]
    ready_endpoints: int
    # Addresses a majority of data-plane probers calls down.
    unreachable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    namespace: str
    shards: tuple[Shard, ...]
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True)
class Placement:
    """Where an address lives, so the responder can order answers by the client's topology."""

    target: str
    cluster: str
    region: str
    zones: tuple[str, ...]


@dataclass(frozen=True)
class RecordSet:
    name: str  # absolute, lower case
    type: str
    ttl: int
    targets: tuple[str, ...] = field(default_factory=tuple)
    # For A and AAAA: the placement of every target (same order as targets).
    placements: tuple[Placement, ...] = ()

    @property
    def object_name(self) -> str:
        """The DNSRecord object's name: ``<type>.<fqdn without the final dot>``.

        Object names must be DNS-1123 subdomains, which SRV owners (``_http._tcp...``) and
        very long names are not: those drop what is not allowed and get a short digest of
        the full name, so two record sets never share an object.
        """
        plain = f"{self.type.lower()}.{self.name.rstrip('.')}"
        if len(plain) <= 253 and check_label_name(plain) is None:
            return plain
        digest = hashlib.sha1(plain.encode()).hexdigest()[:10]
        labels = [re.sub(r"[^a-z0-9-]", "", label).strip("-") for label in plain.split(".")]
        cleaned = ".".join(label for label in labels if label)[: 253 - 11].rstrip(".-")
        return f"{cleaned}-{digest}"


CLUSTERSET = "clusterset.local."


def zone_name(svc: str, ns: str, fed: str, zone: str, region: str, domain: str) -> str:
    return f"{svc}.{ns}.{fed}.svc.{zone}.{region}.{domain}".lower()


def region_name(svc: str, ns: str, fed: str, region: str, domain: str) -> str:
    return f"{svc}.{ns}.{fed}.svc.{region}.{domain}".lower()


def global_name(svc: str, ns: str, fed: str, domain: str) -> str:
    return f"{svc}.{ns}.{fed}.svc.{domain}".lower()


def clusterset_name(svc: str, ns: str) -> str:
    return f"{svc}.{ns}.svc.{CLUSTERSET}".lower()


def _split_families(ips: list[str]) -> tuple[list[str], list[str]]:
    v4, v6 = [], []
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        (v4 if addr.version == 4 else v6).append(str(addr))
    return sorted(set(v4), key=_ip_key), sorted(set(v6), key=_ip_key)


def _ip_key(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def where_of(where: dict[str, Placement], ip: str) -> Placement:
    """The placement of ``ip``, whichever spelling (``::1`` or ``0::1``) the shard used."""
    if ip in where:
        return where[ip]
    for raw, placement in where.items():
        if ipaddress.ip_address(raw) == ipaddress.ip_address(ip):
            return placement
    raise KeyError(ip)


OFFLINE_POLICIES = ("keep", "remove")


def healthy_shards(service: ServiceInfo, clusters: dict[str, ClusterInfo], *, offline_records: str = "remove") -> list[Shard]:
    """The shards DNS should answer, each with only its reachable addresses.

    A shard counts when its cluster is usable (or Offline under ``offline_records="keep"``),
    it has a ready endpoint, and at least one of its addresses is not voted unreachable.
    """
    if offline_records not in OFFLINE_POLICIES:
        raise ValueError(f"offline_records: {offline_records!r}: must be one of {', '.join(OFFLINE_POLICIES)}")
    out = []
    for s in service.shards:
        info = clusters.get(s.cluster)
        if info is None or s.ready_endpoints <= 0:
            continue
        if not (info.usable or (info.offline and offline_records == "keep")):
            continue
        ips = tuple(ip for ip in s.ips if ip not in s.unreachable)
        if ips:
            out.append(Shard(s.cluster, ips, s.ready_endpoints, s.unreachable))
    return out


def plan_records(
    *,
    federation: str,
    domain: str,
    ttl: int,
    clusters: list[ClusterInfo],
    services: list[ServiceInfo],
    clusterset: bool = True,
    offline_records: str = "remove",
) -> list[RecordSet]:
    """Every record set the federation should serve, sorted by (name, type)."""
    domain = domain.strip(".").lower() + "."
    fed = federation.lower()
    by_name = {c.name: c for c in clusters}
    # Every (region, zone) where some joined cluster lives, usable or not.
    places: dict[str, set[str]] = {}
    for c in clusters:
        if c.region:
            places.setdefault(c.region, set()).update(c.zones)
    out: list[RecordSet] = []

    def addresses(name: str, shards: list[Shard]) -> list[RecordSet]:
        where: dict[str, Placement] = {}
        for shard in shards:
            info = by_name[shard.cluster]
            for ip in shard.ips:
                where.setdefault(ip, Placement(ip, info.name, info.region, info.zones))
        v4, v6 = _split_families(list(where))
        sets = []
        for rtype, family in (("A", v4), ("AAAA", v6)):
            if family:
                placements = tuple(Placement(str(ip), where_of(where, ip).cluster, where_of(where, ip).region,
                                             where_of(where, ip).zones) for ip in family)
                sets.append(RecordSet(name, rtype, ttl, tuple(family), placements))
        return sets

    def srv(name: str, service: ServiceInfo) -> list[RecordSet]:
        return [
            RecordSet(f"_{p.name}._{p.protocol.lower()}.{name}", "SRV", ttl, (f"0 100 {p.port} {name}",))
            for p in service.ports
            if p.name
        ]

    for service in services:
        healthy = healthy_shards(service, by_name, offline_records=offline_records)
        gname = global_name(service.name, service.namespace, fed, domain)
        global_sets = addresses(gname, healthy)
        out += global_sets
        if global_sets:
            out += srv(gname, service)
        if clusterset and global_sets:
            cname = clusterset_name(service.name, service.namespace)
            out += addresses(cname, healthy)
            out += srv(cname, service)
        for region, zones in sorted(places.items()):
            rname = region_name(service.name, service.namespace, fed, region, domain)
            in_region = [s for s in healthy if by_name[s.cluster].region == region]
            region_sets = addresses(rname, in_region)
            if region_sets:
                out += region_sets + srv(rname, service)
            else:
                out.append(RecordSet(rname, "CNAME", ttl, (gname,)))
            for zone in sorted(zones):
                zname = zone_name(service.name, service.namespace, fed, zone, region, domain)
                in_zone = [s for s in in_region if zone in by_name[s.cluster].zones]
                zone_sets = addresses(zname, in_zone)
                if zone_sets:
                    out += zone_sets + srv(zname, service)
                else:
                    out.append(RecordSet(zname, "CNAME", ttl, (rname,)))
    return sorted(out, key=lambda r: (r.name, r.type))
