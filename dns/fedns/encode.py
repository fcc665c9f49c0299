"""A resolution's records as wire bytes, by hand: the renderer behind the answer table.

dnspython renders a message in about 200 us here, most of it building and hashing
``dns.name.Name`` objects for compression; the answer table renders several answers per
changed name and every answer of a zone on a whole build, so that cost was most of what a
record change cost (issue 20). The record types the responder serves are few and simple
(A, AAAA, CNAME, NS, SRV, TXT, SOA), so this module writes them itself, with the same
compression as dnspython's renderer: every name is compressed against the longest suffix
already written (the question's suffixes first), and each new suffix at an offset below
0x4000 is remembered; CNAME, NS and SOA names are compressed, SRV targets are not (RFC
2782). tests/unit/test_dns_incremental.py checks the bytes against dnspython's.

Names are the lower-case wire bytes of :func:`fedns.zone.to_wire`; TXT data, the one
type with a presentation format worth parsing, goes through dnspython once per string.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

import dns.exception
import dns.rdata

from fedns.records import RecordSet
from fedns.zone import TYPE_CODES, to_wire

_RR = struct.Struct("!HHIH")
_SRV = struct.Struct("!HHH")
_SOA_TIMES = struct.Struct("!IIIII")
A, NS, CNAME, SOA, TXT, AAAA, SRV = 1, 2, 5, 6, 16, 28, 33


@functools.lru_cache(maxsize=4096)
def _txt(rdata: str) -> bytes:
    return dns.rdata.from_text("IN", "TXT", rdata).to_wire()


def rotated(rs: RecordSet, rotation: int) -> tuple[str, ...]:
    """The record set's rdata in the order of round-robin rotation ``rotation``; with
    nearest-first tiers (fedns.topology), rotated inside each tier."""
    rdatas = rs.rdatas
    if not rotation or rs.type not in ("A", "AAAA"):
        return rdatas
    if rs.tiers:
        out: tuple[str, ...] = ()
        start = 0
        for size in rs.tiers:
            group = rdatas[start : start + size]
            k = rotation % size
            out += group[k:] + group[:k]
            start += size
        return out
    k = rotation % len(rdatas)
    return rdatas[k:] + rdatas[:k]


class Writer:
    """The bytes after a question section, with dnspython's compression."""

    __slots__ = ("out", "base", "table")

    def __init__(self, qname: bytes) -> None:
        self.out = bytearray()
        self.base = 12 + len(qname) + 4  # header, question name, qtype and qclass
        self.table: dict[bytes, int] = {}
        i = 0
        while qname[i]:
            self.table.setdefault(qname[i:], 12 + i)
            i += qname[i] + 1

    def name(self, wire: bytes) -> None:
        out, table = self.out, self.table
        i = 0
        while wire[i]:
            suffix = wire[i:]
            at = table.get(suffix)
            if at is not None:
                out += struct.pack("!H", 0xC000 | at)
                return
            here = self.base + len(out)
            if here <= 0x3FFF:
                table[suffix] = here
            out += wire[i : i + wire[i] + 1]
            i += wire[i] + 1
        out.append(0)

    def rrset(self, rs: RecordSet, rotation: int) -> int:
        """Write every record of ``rs``; returns how many."""
        out = self.out
        rtype = TYPE_CODES[rs.type]
        owner = to_wire(rs.name)
        rdatas = rotated(rs, rotation)
        for rdata in rdatas:
            self.name(owner)
            at = len(out) + 8
            out += _RR.pack(rtype, 1, rs.ttl, 0)
            if rtype == A:
                out += ipaddress.IPv4Address(rdata).packed
            elif rtype == AAAA:
                out += ipaddress.IPv6Address(rdata).packed
            elif rtype in (CNAME, NS):
                self.name(to_wire(rdata))
            elif rtype == SRV:
                priority, weight, port, target = rdata.split()
                out += _SRV.pack(int(priority), int(weight), int(port)) + to_wire(target)
            elif rtype == TXT:
                out += _txt(rdata)
            elif rtype == SOA:
                mname, rname, *times = rdata.split()
                self.name(to_wire(mname))
                self.name(to_wire(rname))
                out += _SOA_TIMES.pack(*(int(t) for t in times))
            else:
                out += dns.rdata.from_text("IN", rs.type, rdata).to_wire()
            struct.pack_into("!H", out, at, len(out) - at - 2)
        return len(rdatas)


def sections(
    qname: bytes, sets: tuple[tuple[RecordSet, ...], ...], rotation: int, *, max_size: int
) -> tuple[tuple[int, ...], bytes]:
    """The record counts of each section and the bytes after the question; raises
    ``dns.exception.TooBig`` when the message would pass ``max_size`` bytes."""
    writer = Writer(qname)
    counts = tuple(sum(writer.rrset(rs, rotation) for rs in section) for section in sets)
    if writer.base + len(writer.out) > max_size:
        raise dns.exception.TooBig
    return counts, bytes(writer.out)
