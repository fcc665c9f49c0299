"""The zones the responder is authoritative for, and how one question is resolved in them.

Given the apexes (the federation's domain and ``clusterset.local.`` by default), the
zone settings and the record sets from :mod:`fedns.records`, a :class:`Zone` adds what
every authoritative zone has (SOA, NS and the name server's address at each apex, and
``dns-version.clusterset.local. TXT "1.0.0"`` for KEP-1645) and answers
:meth:`Zone.resolve` with a structured :class:`Resolution`: rcode, AA, and the record
sets of each section. It follows the rules of an authoritative server (RFC 1034 4.3.2,
RFC 2308, RFC 6604, RFC 8482):

- a name outside every zone is REFUSED, without AA;
- a name that does not exist is NXDOMAIN with the zone's SOA in authority; a name that
  exists only because deeper names do (an empty non-terminal, ``svc.example.com.``)
  exists, so asking it anything is NODATA (NOERROR, no answer, SOA in authority);
- a CNAME is followed inside our zones in the same answer, and the rcode is that of the
  last name in the chain;
- SRV targets' and NS names' addresses come along in the additional section;
- ANY gets one record set (the CNAME, the SOA at an apex, otherwise the first of A,
  AAAA, SRV, TXT), as RFC 8482 allows.

Names are kept as lower-case wire bytes, the same key the precomputed answer table and
the query parser use, so label boundaries are exact and no text parsing is repeated.
Pure: the SOA serial is an input; :mod:`fedns.view` decides when it rises.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import dns.name

from fedns.records import RecordSet, canonical_name

A, NS, CNAME, SOA, HINFO, TXT, AAAA, SRV, ANY = 1, 2, 5, 6, 13, 16, 28, 33, 255
TYPE_CODES = {"A": A, "NS": NS, "CNAME": CNAME, "SOA": SOA, "HINFO": HINFO, "TXT": TXT, "AAAA": AAAA, "SRV": SRV}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# RFC 8482: the record set ANY gets, in order of preference.
ANY_PREFERENCE = (CNAME, SOA, A, AAAA, SRV, TXT, NS)
MAX_CHAIN = 8
CLUSTERSET = "clusterset.local."


@dataclass(frozen=True)
class ZoneConfig:
    """Settings of the zones; every field is a flag of ``ubernetes dns``."""

    apexes: tuple[str, ...] = ("example.com.", CLUSTERSET)
    ns_address: str = "127.0.0.1"  # glue of ns1.<apex>
    negative_ttl: int = 5  # SOA MINIMUM and SOA TTL: how long NXDOMAIN/NODATA are cached
    ns_ttl: int = 60  # NS, glue and built-in TXT
    refresh: int = 60
    retry: int = 10
    expire: int = 86400

    def __post_init__(self) -> None:
        apexes = tuple(dict.fromkeys(canonical_name(a) for a in self.apexes))
        object.__setattr__(self, "apexes", apexes)
        ipaddress.ip_address(self.ns_address)  # raises ValueError with the address in it


@dataclass(frozen=True)
class Resolution:
    """The structured answer to one (name, type): what goes in each section."""

    rcode: int
    aa: bool
    answer: tuple[RecordSet, ...] = ()
    authority: tuple[RecordSet, ...] = ()
    additional: tuple[RecordSet, ...] = ()


@functools.lru_cache(maxsize=65536)
def to_wire(name: str) -> bytes:
    """Lower-case wire form of an absolute name."""
    return dns.name.from_text(name).canonicalize().to_wire()


def label_offsets(wire: bytes) -> Iterator[int]:
    """Offsets of each suffix of a wire name, longest first, ending with the root."""
    i = 0
    while True:
        yield i
        length = wire[i]
        if length == 0:
            return
        i += length + 1


@dataclass
class Zone:
    """Every name we serve, its record sets, and the resolution rules above."""

    config: ZoneConfig
    serial: int
    nodes: dict[bytes, dict[int, RecordSet]] = field(default_factory=dict)  # {} = empty non-terminal
    apexes: dict[bytes, str] = field(default_factory=dict)
    soas: dict[bytes, RecordSet] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, config: ZoneConfig, recordsets: Iterable[RecordSet], serial: int) -> "Zone":
        zone = cls(config=config, serial=serial)
        builtin: list[RecordSet] = []
        glue_type = "AAAA" if ipaddress.ip_address(config.ns_address).version == 6 else "A"
        for apex in config.apexes:
            zone.apexes[to_wire(apex)] = apex
            ns1 = "ns1." + apex
            soa = RecordSet(
                apex,
                "SOA",
                config.negative_ttl,
                (
                    f"{ns1} hostmaster.{apex} {serial} {config.refresh} {config.retry} "
                    f"{config.expire} {config.negative_ttl}",
                ),
            )
            zone.soas[to_wire(apex)] = soa
            builtin += [soa, RecordSet(apex, "NS", config.ns_ttl, (ns1,))]
            builtin.append(RecordSet(ns1, glue_type, config.ns_ttl, (config.ns_address,)))
            if apex == CLUSTERSET:
                builtin.append(RecordSet("dns-version." + CLUSTERSET, "TXT", config.ns_ttl, ('"1.0.0"',)))
        for rs in builtin:
            zone._add(rs)
        reserved = {(rs.name, rs.type) for rs in builtin}
        for rs in recordsets:
            if (rs.name, rs.type) in reserved:
                zone.problems.append(f"{rs.name} {rs.type}: built into the responder; the DNSRecord is ignored")
                continue
            wire = to_wire(rs.name)
            apex = zone.apex_of(wire)
            if apex is None:
                zone.problems.append(
                    f"{rs.name} {rs.type}: outside every served zone ({', '.join(config.apexes)}); ignored"
                )
                continue
            if rs.type == "CNAME" and wire == apex:
                zone.problems.append(f"{rs.name} CNAME: a zone apex cannot be a CNAME; ignored")
                continue
            zone._add(rs, wire=wire)
        # A CNAME cannot share its name with other data (RFC 1034 3.6.2): keep the data.
        for wire, node in zone.nodes.items():
            if CNAME in node and len(node) > 1:
                dropped = node.pop(CNAME)
                kept = ", ".join(sorted(r.type for r in node.values()))
                zone.problems.append(f"{dropped.name} CNAME: the name also has {kept}; the CNAME is ignored")
        return zone

    def _add(self, rs: RecordSet, *, wire: bytes | None = None) -> None:
        wire = wire if wire is not None else to_wire(rs.name)
        self.nodes.setdefault(wire, {})[TYPE_CODES[rs.type]] = rs
        apex = self.apex_of(wire)
        for i in label_offsets(wire):
            suffix = wire[i:]
            if i:
                self.nodes.setdefault(suffix, {})  # empty non-terminals exist
            if suffix == apex:
                break

    def apex_of(self, wire: bytes) -> bytes | None:
        """The apex of the deepest served zone that contains the name, or None."""
        for i in label_offsets(wire):
            if wire[i:] in self.apexes:
                return wire[i:]
        return None

    def resolve(self, qname: bytes, qtype: int) -> Resolution:
        """The answer to (qname, qtype); qname is lower-case wire bytes."""
        apex = self.apex_of(qname)
        if apex is None:
            return Resolution(REFUSED, False)
        if qtype == ANY:
            node = self.nodes.get(qname)
            if node is None:
                return Resolution(NXDOMAIN, True, authority=(self.soas[apex],))
            for t in ANY_PREFERENCE:
                if t in node:
                    return Resolution(NOERROR, True, answer=(node[t],), additional=self._extras(node[t]))
            if node:
                return Resolution(NOERROR, True, answer=(next(iter(node.values())),))
            return Resolution(NOERROR, True, authority=(self.soas[apex],))
        answer: list[RecordSet] = []
        name, seen = qname, {qname}
        for _ in range(MAX_CHAIN):
            zone_apex = self.apex_of(name)
            if zone_apex is None:  # the chain leaves our zones: the client resolves the rest
                return Resolution(NOERROR, True, answer=tuple(answer))
            node = self.nodes.get(name)
            if node is None:
                return Resolution(NXDOMAIN, True, tuple(answer), (self.soas[zone_apex],))
            rs = node.get(qtype)
            if rs is not None:
                answer.append(rs)
                return Resolution(NOERROR, True, tuple(answer), additional=self._extras(*answer))
            cname = node.get(CNAME)
            if cname is None:
                return Resolution(NOERROR, True, tuple(answer), (self.soas[zone_apex],))
            answer.append(cname)
            name = to_wire(cname.rdatas[0])
            if name in seen:  # a loop: answer what we have, as BIND does
                break
            seen.add(name)
        return Resolution(NOERROR, True, tuple(answer))

    def _extras(self, *rrsets: RecordSet) -> tuple[RecordSet, ...]:
        """Addresses of SRV targets and NS names that we serve, for the additional section."""
        extra: list[RecordSet] = []
        for rs in rrsets:
            if rs.type == "SRV":
                names = [r.split()[3] for r in rs.rdatas]
            elif rs.type == "NS":
                names = list(rs.rdatas)
            else:
                continue
            for target in names:
                node = self.nodes.get(to_wire(target))
                if not node:
                    continue
                for t in (A, AAAA):
                    if t in node and node[t] not in extra:
                        extra.append(node[t])
        return tuple(extra)
