"""Topology-aware answers: which shards are nearest a client, and answers ordered by it.

A DNSRecord for A or AAAA may say where each target lives (``spec.placements``: cluster,
region, zones). Given where a client is, from a map of client networks to region and zone
(``--client-topology FILE``, a YAML list of ``{cidr, region, zone}``; the longest prefix
wins) or from the EDNS Client Subnet option (RFC 7871) looked up in the same map, the
targets are listed nearest first: same zone, then same region, then the rest, as
Consul's prepared-query failover and Route 53 latency routing do. ``--nearest-only``
answers only the nearest non-empty level; the records already hold healthy shards only,
so that is the nearest healthy level.

The orderings are rendered ahead of time too (:mod:`fedns.table`), once per client place
(a (region, zone) pair of the map), and only for answers that carry placements; without a
map nothing is precomputed and the fast path does not look at client addresses at all.
:class:`ClientTopology` does the look-ups, with a bounded cache, because the fast path
calls it per query for the names that have placements.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from fedns.records import RecordSet
from fedns.zone import Resolution

Place = tuple[str, str]  # (region, zone); zone may be ""
CACHE_LIMIT = 65536


@dataclass(frozen=True)
class Network:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    region: str
    zone: str


class ClientTopology:
    """Client networks to (region, zone), longest prefix first."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = sorted(networks, key=lambda n: -n.network.prefixlen)
        self.places: tuple[Place, ...] = tuple(dict.fromkeys((n.region, n.zone) for n in self.networks))
        self._by_ip: dict[str, tuple[Place | None, int]] = {}
        self._by_ecs: dict[bytes, tuple[Place | None, int]] = {}

    @classmethod
    def from_entries(cls, entries: Any, *, source: str = "client topology") -> "ClientTopology":
        if not isinstance(entries, list):
            raise ValueError(f"{source}: must be a list of {{cidr, region, zone}}")
        out = []
        for i, item in enumerate(entries):
            if not isinstance(item, dict) or "cidr" not in item:
                raise ValueError(f"{source}[{i}]: must be a mapping with cidr, region and zone")
            try:
                net = ipaddress.ip_network(str(item["cidr"]), strict=False)
            except ValueError as err:
                raise ValueError(f"{source}[{i}].cidr: {err}") from None
            region, zone = str(item.get("region") or ""), str(item.get("zone") or "")
            if not region and not zone:
                raise ValueError(f"{source}[{i}]: needs a region or a zone")
            out.append(Network(net, region, zone))
        return cls(out)

    @classmethod
    def load(cls, path: str | Path) -> "ClientTopology":
        import yaml

        return cls.from_entries(yaml.safe_load(Path(path).read_text()) or [], source=str(path))

    def _match(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> tuple[Place | None, int]:
        for n in self.networks:
            if n.network.version == addr.version and addr in n.network and n.network.prefixlen <= prefix:
                return (n.region, n.zone), n.network.prefixlen
        return None, 0

    def of_ip(self, ip: str) -> Place | None:
        hit = self._by_ip.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip.split("%")[0])
            except ValueError:
                return None
            if addr.version == 6 and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            hit = self._match(addr, addr.max_prefixlen)
            if len(self._by_ip) >= CACHE_LIMIT:
                self._by_ip.clear()
            self._by_ip[ip] = hit
        return hit[0]

    def of_ecs(self, data: bytes) -> tuple[Place | None, int] | None:
        """(place, scope prefix) for an ECS option's data; None when it is malformed or /0."""
        hit = self._by_ecs.get(data)
        if hit is None:
            if len(data) < 4:
                return None
            family, source = (data[0] << 8) | data[1], data[2]
            if family not in (1, 2) or source == 0:
                return None
            size = 4 if family == 1 else 16
            if source > size * 8 or len(data) - 4 != (source + 7) // 8:
                return None
            raw = data[4:] + bytes(size - (len(data) - 4))
            addr = ipaddress.IPv4Address(raw) if family == 1 else ipaddress.IPv6Address(raw)
            place, prefix = self._match(addr, source)
            hit = (place, prefix if place is not None else source)
            if len(self._by_ecs) >= CACHE_LIMIT:
                self._by_ecs.clear()
            self._by_ecs[data] = hit
        return hit


def distance(placement_region: str, placement_zones: tuple[str, ...], place: Place) -> int:
    region, zone = place
    if zone and zone in placement_zones:
        return 0
    if region and region == placement_region:
        return 1
    return 2


def order(rs: RecordSet, place: Place, *, nearest_only: bool) -> RecordSet:
    """``rs`` with its targets nearest ``place`` first, grouped in tiers for round robin."""
    where = {p.target: p for p in rs.placements}
    tiers: list[list[str]] = [[], [], []]
    for target in rs.rdatas:
        p = where.get(target)
        tiers[distance(p.region, p.zones, place) if p is not None else 2].append(target)
    groups = [t for t in tiers if t]
    if nearest_only:
        groups = groups[:1]
    return replace(rs, rdatas=tuple(t for g in groups for t in g), tiers=tuple(len(g) for g in groups))


def _ordered(rs: RecordSet) -> bool:
    """Weighted record sets are answered by their weights, not by where the client is."""
    return bool(rs.placements) and rs.strategy != "weighted"


def placed(res: Resolution) -> bool:
    """Whether the answer to this resolution depends on where the client is."""
    return any(_ordered(rs) for rs in res.answer + res.additional)


def for_place(res: Resolution, place: Place, *, nearest_only: bool) -> Resolution:
    def fix(sets: tuple[RecordSet, ...]) -> tuple[RecordSet, ...]:
        # Issue 16: strategy nearest answers the nearest level alone, whatever --nearest-only says.
        return tuple(order(rs, place, nearest_only=nearest_only or rs.strategy == "nearest") if _ordered(rs) else rs
                     for rs in sets)

    return replace(res, answer=fix(res.answer), additional=fix(res.additional))
