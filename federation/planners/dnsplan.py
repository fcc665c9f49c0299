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

Per-service strategies and fail-open (issue 16, :mod:`federation.planners.dnsstrategy`):
``failover`` answers the global and clusterset names with the primary's healthy shards alone
while it has any; ``weighted`` writes one weight per address (``RecordSet.weights``) for the
responder to pick the first address by; ``nearest`` marks the record sets for the
responder. When no shard of a service is healthy anywhere, ``fail_open`` answers every
last-known shard (each joined cluster's addresses, whatever the votes) instead of nothing.
Bounded keep: an Offline cluster kept past ``--offline-keep-seconds`` (``keep_expired``)
keeps only the addresses the data-plane probers still vote up (``Shard.reachable``).

SRV records name every named port at every level that has addresses:
``_<port>._<proto>.<level name>`` pointing at that level's name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from apimachinery.meta import check_label_name
from federation.planners import dnsstrategy
from federation.planners.dnsstrategy import Strategy


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    region: str
    zones: tuple[str, ...]
    usable: bool
    # Offline: unreachable from the control plane (usable is then False).
    offline: bool = False
    # Offline for longer than --offline-keep-seconds: kept only where the votes say up.
    keep_expired: bool = False


@dataclass(frozen=True)
class Shard:
    cluster: str
    ips: tuple[str, ...]
    ready_endpoints: int
    # Addresses a majority of data-plane probers calls down.
    unreachable: tuple[str, ...] = ()
    # Addresses a majority of data-plane probers calls up (bounded keep, issue 16).
    reachable: tuple[str, ...] = ()


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
    strategy: Strategy = dnsstrategy.DEFAULT


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
    # Issue 16: the service's strategy when it is not roundRobin, and for weighted one
    # weight per target (same order as targets).
    strategy: str = ""
    weights: tuple[float, ...] = ()

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
        kept = info.offline and offline_records == "keep"
        if not (info.usable or kept):
            continue
        ips = tuple(ip for ip in s.ips if ip not in s.unreachable)
        if kept and info.keep_expired:  # bounded keep: only what the probers still vouch for
            ips = tuple(ip for ip in ips if ip in s.reachable)
        if ips:
            out.append(Shard(s.cluster, ips, s.ready_endpoints, s.unreachable, s.reachable))
    return out


def known_shards(service: ServiceInfo, clusters: dict[str, ClusterInfo]) -> list[Shard]:
    """Fail-open: every last-known shard of a joined cluster, all its addresses, whatever
    health, readiness and the votes say."""
    return [s for s in service.shards if s.cluster in clusters and s.ips]


def failover_shards(strategy: Strategy, shards: list[Shard], clusters: dict[str, ClusterInfo]) -> list[Shard]:
    """The shards of the first primary (in order of preference) that has one; all when none has."""
    ranked: dict[int, list[Shard]] = {}
    for s in shards:
        info = clusters[s.cluster]
        rank = dnsstrategy.in_primary(strategy, info.name, info.region)
        if rank is not None:
            ranked.setdefault(rank, []).append(s)
    return ranked[min(ranked)] if ranked else shards


def plan_records(
    *,
    federation: str,
    domain: str,
    ttl: int,
    clusters: list[ClusterInfo],
    services: list[ServiceInfo],
    clusterset: bool = True,
    offline_records: str = "remove",
    fail_open: bool = False,
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

    def addresses(name: str, shards: list[Shard], strategy: Strategy = dnsstrategy.DEFAULT) -> list[RecordSet]:
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
                kind = "" if strategy.kind == dnsstrategy.ROUND_ROBIN else strategy.kind
                weights = ()
                if strategy.kind == dnsstrategy.WEIGHTED:
                    weights = dnsstrategy.address_weights(strategy, [(p.target, p.cluster, p.region) for p in placements])
                sets.append(RecordSet(name, rtype, ttl, tuple(family), placements, kind, weights))
        return sets

    def srv(name: str, service: ServiceInfo) -> list[RecordSet]:
        return [
            RecordSet(f"_{p.name}._{p.protocol.lower()}.{name}", "SRV", ttl, (f"0 100 {p.port} {name}",))
            for p in service.ports
            if p.name
        ]

    for service in services:
        strategy = service.strategy
        healthy = healthy_shards(service, by_name, offline_records=offline_records)
        failed_open = False
        if not healthy and (fail_open if strategy.fail_open is None else strategy.fail_open):
            healthy, failed_open = known_shards(service, by_name), True
        top = healthy
        if strategy.kind == dnsstrategy.FAILOVER and not failed_open:
            top = failover_shards(strategy, healthy, by_name)
        gname = global_name(service.name, service.namespace, fed, domain)
        global_sets = addresses(gname, top, strategy)
        out += global_sets
        if global_sets:
            out += srv(gname, service)
        if clusterset and global_sets:
            cname = clusterset_name(service.name, service.namespace)
            out += addresses(cname, top, strategy)
            out += srv(cname, service)
        for region, zones in sorted(places.items()):
            rname = region_name(service.name, service.namespace, fed, region, domain)
            in_region = [s for s in healthy if by_name[s.cluster].region == region]
            region_sets = addresses(rname, in_region, strategy)
            if region_sets:
                out += region_sets + srv(rname, service)
            else:
                out.append(RecordSet(rname, "CNAME", ttl, (gname,)))
            for zone in sorted(zones):
                zname = zone_name(service.name, service.namespace, fed, zone, region, domain)
                in_zone = [s for s in in_region if zone in by_name[s.cluster].zones]
                zone_sets = addresses(zname, in_zone, strategy)
                if zone_sets:
                    out += zone_sets + srv(zname, service)
                else:
                    out.append(RecordSet(zname, "CNAME", ttl, (rname,)))
    return sorted(out, key=lambda r: (r.name, r.type))
