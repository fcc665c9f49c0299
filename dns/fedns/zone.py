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


@functools.lru_cache(maxsize=16384)
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
    """Every name we serve, its record sets, and the resolution rules above.

    Built whole (:meth:`build`) or changed one record set at a time (:meth:`put`,
    :meth:`remove`, :meth:`set_serial`): each change returns the names whose contents or
    existence it changed, so the answer table re-renders those and what reads them. Both
    ways give the same zone for the same record sets: every rule here depends on what the
    record sets are, never on the order they came in.

    A CNAME beside other data at its name (RFC 1034 3.6.2 forbids it) is the transient
    state of a record set changing type while the federation writes the new one before it
    deletes the old: the other data wins and the CNAME waits in :attr:`shadowed`, served
    as soon as the data is gone. :attr:`shadow_events` counts how often that happened.
    """

    config: ZoneConfig
    serial: int
    nodes: dict[bytes, dict[int, RecordSet]] = field(default_factory=dict)  # {} = empty non-terminal
    apexes: dict[bytes, str] = field(default_factory=dict)
    soas: dict[bytes, RecordSet] = field(default_factory=dict)
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)  # record sets not served, and why
    shadowed: dict[bytes, RecordSet] = field(default_factory=dict)  # CNAMEs hidden by other data
    shadow_events: int = 0
    children: dict[bytes, int] = field(default_factory=dict)  # names existing directly below a node
    reserved: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def build(cls, config: ZoneConfig, recordsets: Iterable[RecordSet], serial: int) -> "Zone":
        zone = cls.empty(config, serial)
        for rs in recordsets:
            zone.put(rs)
        return zone

    @classmethod
    def empty(cls, config: ZoneConfig, serial: int) -> "Zone":
        """The zones with their built-in records only."""
        zone = cls(config=config, serial=serial)
        builtin: list[RecordSet] = []
        glue_type = "AAAA" if ipaddress.ip_address(config.ns_address).version == 6 else "A"
        for apex in config.apexes:
            wire = to_wire(apex)
            zone.apexes[wire] = apex
            zone.nodes[wire] = {}
            soa = zone.soa_of(apex, serial)
            zone.soas[wire] = soa
            ns1 = "ns1." + apex
            builtin += [soa, RecordSet(apex, "NS", config.ns_ttl, (ns1,))]
            builtin.append(RecordSet(ns1, glue_type, config.ns_ttl, (config.ns_address,)))
            if apex == CLUSTERSET:
                builtin.append(RecordSet("dns-version." + CLUSTERSET, "TXT", config.ns_ttl, ('"1.0.0"',)))
        for rs in builtin:
            zone._place(rs, to_wire(rs.name))
        zone.reserved = frozenset((rs.name, rs.type) for rs in builtin)
        return zone

    def soa_of(self, apex: str, serial: int) -> RecordSet:
        c = self.config
        rdata = f"ns1.{apex} hostmaster.{apex} {serial} {c.refresh} {c.retry} {c.expire} {c.negative_ttl}"
        return RecordSet(apex, "SOA", c.negative_ttl, (rdata,))

    @property
    def problems(self) -> list[str]:
        """Why record sets are not served, and each CNAME hidden by other data."""
        shadows = [
            f"{rs.name} CNAME: the name also has {', '.join(sorted(r.type for r in self.nodes[w].values()))}; "
            "the CNAME is ignored"
            for w, rs in self.shadowed.items()
        ]
        return [*self.rejected.values(), *shadows]

    def record_sets(self) -> int:
        return sum(len(node) for node in self.nodes.values())

    # -- changing ----------------------------------------------------------------------

    def put(self, rs: RecordSet) -> set[bytes]:
        """Add or replace one record set; the names whose contents or existence changed."""
        key = (rs.name, rs.type)
        if key in self.reserved:
            self.rejected[key] = f"{rs.name} {rs.type}: built into the responder; the DNSRecord is ignored"
            return set()
        wire = to_wire(rs.name)
        apex = self.apex_of(wire)
        if apex is None:
            self.rejected[key] = f"{rs.name} {rs.type}: outside every served zone ({', '.join(self.config.apexes)}); ignored"
            return set()
        if rs.type == "CNAME" and wire == apex:
            self.rejected[key] = f"{rs.name} CNAME: a zone apex cannot be a CNAME; ignored"
            return set()
        return self._place(rs, wire)

    def remove(self, name: str, rtype: str) -> set[bytes]:
        """Remove one record set (absent: nothing); the names whose contents or existence changed."""
        if self.rejected.pop((name, rtype), None) is not None:
            return set()
        wire = to_wire(name)
        t = TYPE_CODES[rtype]
        if t == CNAME and self.shadowed.pop(wire, None) is not None:
            return set()
        node = self.nodes.get(wire)
        if node is None or node.pop(t, None) is None:
            return set()
        touched = {wire}
        if not node:
            hidden = self.shadowed.pop(wire, None)
            if hidden is not None:  # the data is gone: the CNAME it hid is served now
                node[CNAME] = hidden
            else:
                touched |= self._prune(wire)
        return touched

    def set_serial(self, serial: int) -> None:
        """A new SOA serial at every apex (the answers holding an SOA read it from :attr:`soas`)."""
        self.serial = serial
        for wire, apex in self.apexes.items():
            soa = self.soa_of(apex, serial)
            self.soas[wire] = soa
            self.nodes[wire][SOA] = soa

    def _place(self, rs: RecordSet, wire: bytes) -> set[bytes]:
        t = TYPE_CODES[rs.type]
        touched: set[bytes] = set()
        node = self.nodes.get(wire)
        if node is None:
            node = self._create(wire, touched)
        if t == CNAME:
            if any(k != CNAME for k in node):  # other data wins; the CNAME waits
                if wire not in self.shadowed:
                    self.shadow_events += 1
                self.shadowed[wire] = rs
                return touched
        elif CNAME in node:
            self.shadowed[wire] = node.pop(CNAME)
            self.shadow_events += 1
        node[t] = rs
        touched.add(wire)
        return touched

    def _create(self, wire: bytes, touched: set[bytes]) -> dict[int, RecordSet]:
        """A new node and the empty non-terminals above it, up to its apex."""
        node: dict[int, RecordSet] = {}
        self.nodes[wire] = node
        touched.add(wire)
        while wire not in self.apexes:
            parent = wire[wire[0] + 1 :]
            self.children[parent] = self.children.get(parent, 0) + 1
            if parent in self.nodes:
                break
            self.nodes[parent] = {}
            touched.add(parent)
            wire = parent
        return node

    def _prune(self, wire: bytes) -> set[bytes]:
        """Remove an empty node without names below it, and the empty non-terminals it leaves."""
        gone: set[bytes] = set()
        while wire not in self.apexes and not self.nodes.get(wire) and not self.children.get(wire):
            del self.nodes[wire]
            self.children.pop(wire, None)
            gone.add(wire)
            parent = wire[wire[0] + 1 :]
            left = self.children[parent] - 1
            if left:
                self.children[parent] = left
            else:
                del self.children[parent]
            wire = parent
        return gone

    def apex_of(self, wire: bytes) -> bytes | None:
        """The apex of the deepest served zone that contains the name, or None."""
        for i in label_offsets(wire):
            if wire[i:] in self.apexes:
                return wire[i:]
        return None

    def resolve(self, qname: bytes, qtype: int, reads: set[bytes] | None = None) -> Resolution:
        """The answer to (qname, qtype); qname is lower-case wire bytes. ``reads``, when
        given, gets every name whose node the answer depends on (CNAME chain links, SRV and
        NS targets), so the answer table knows what to re-render when a name changes."""
        if reads is not None:
            reads.add(qname)
        apex = self.apex_of(qname)
        if apex is None:
            return Resolution(REFUSED, False)
        if qtype == ANY:
            node = self.nodes.get(qname)
            if node is None:
                return Resolution(NXDOMAIN, True, authority=(self.soas[apex],))
            for t in ANY_PREFERENCE:
                if t in node:
                    return Resolution(NOERROR, True, answer=(node[t],), additional=self._extras(node[t], reads=reads))
            if node:
                return Resolution(NOERROR, True, answer=(next(iter(node.values())),))
            return Resolution(NOERROR, True, authority=(self.soas[apex],))
        answer: list[RecordSet] = []
        name, seen = qname, {qname}
        for _ in range(MAX_CHAIN):
            zone_apex = self.apex_of(name)
            if zone_apex is None:  # the chain leaves our zones: the client resolves the rest
                return Resolution(NOERROR, True, answer=tuple(answer))
            if reads is not None:
                reads.add(name)
            node = self.nodes.get(name)
            if node is None:
                return Resolution(NXDOMAIN, True, tuple(answer), (self.soas[zone_apex],))
            rs = node.get(qtype)
            if rs is not None:
                answer.append(rs)
                return Resolution(NOERROR, True, tuple(answer), additional=self._extras(*answer, reads=reads))
            cname = node.get(CNAME)
            if cname is None:
                return Resolution(NOERROR, True, tuple(answer), (self.soas[zone_apex],))
            answer.append(cname)
            name = to_wire(cname.rdatas[0])
            if name in seen:  # a loop: answer what we have, as BIND does
                break
            seen.add(name)
        return Resolution(NOERROR, True, tuple(answer))

    def _extras(self, *rrsets: RecordSet, reads: set[bytes] | None = None) -> tuple[RecordSet, ...]:
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
                wire = to_wire(target)
                if reads is not None:
                    reads.add(wire)
                node = self.nodes.get(wire)
                if not node:
                    continue
                for t in (A, AAAA):
                    if t in node and node[t] not in extra:
                        extra.append(node[t])
        return tuple(extra)
