"""Precomputed wire-format answers, so a query costs a dictionary look-up, not a render.

Rendering one answer with dnspython costs about 100 us; looking up stored bytes about
1 us (../shared/notes/dns-fast-path.md). So every answer a client can get for a name we
serve is rendered when the records change, not when queries arrive, and stored as the
bytes that follow the question section, keyed by (lower-case question name wire bytes,
qtype). The stored bytes were rendered after a lower-case copy of the question, so their
compression pointers point into the question; the reply copies the client's own question
bytes there (same length whatever the case), which keeps randomised case ("0x20") intact.

Three kinds of answer are not stored per name:

- NXDOMAIN and NODATA carry only the zone's SOA, written as a pointer to where the apex
  starts inside the client's question name plus fixed bytes: built per query for a few
  hundred nanoseconds, so unknown names cost no memory;
- REFUSED has no records at all;
- an unusual qtype at a CNAME (MX at a CNAME, say) is resolved and rendered on demand and
  kept in a small cache.

A and AAAA record sets with several targets rotate between answers (round robin), so
clients spread over the shards: each answer keeps up to :data:`MAX_ROTATIONS` rendered
rotations and a cursor. Rebuilding after a change reuses every rendered answer whose
:class:`~fedns.zone.Resolution` did not change, so a change to one name costs one render.
"""

from __future__ import annotations

import functools
import struct
from typing import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rrset

from fedns.records import RecordSet
from fedns.zone import (
    AAAA,
    ANY,
    CNAME,
    NOERROR,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    SRV,
    TXT,
    A,
    Resolution,
    Zone,
    ZoneConfig,
    label_offsets,
)

FLAG_AA = 0x0400
MAX_ROTATIONS = 16
MAX_RENDER = 65000  # leaves room for the OPT record under TCP's 65535
EXTRA_CACHE = 4096

# (an, ns, ar, body, an_short, ns_short, ar_short, body_short): "short" is the same
# answer without its additional section, used over UDP when the whole one does not fit
# (RFC 2181 9: leaving out additional data does not set TC).
Variant = tuple[int, int, int, bytes, int, int, int, bytes]
EMPTY: Variant = (0, 0, 0, b"", 0, 0, 0, b"")


class Prepared:
    """One answer's header bits and its rendered rotations, with a round-robin cursor."""

    __slots__ = ("flags", "variants", "cursor")

    def __init__(self, flags: int, variants: list[Variant]) -> None:
        self.flags = flags
        self.variants = variants
        self.cursor = 0

    def pick(self) -> Variant:
        variants = self.variants
        if len(variants) == 1:
            return variants[0]
        i = self.cursor
        self.cursor = i + 1 if i + 1 < len(variants) else 0
        return variants[i]


@functools.lru_cache(maxsize=16384)
def _rrset(rs: RecordSet, rotation: int) -> dns.rrset.RRset:
    rdatas = rs.rdatas
    if rotation and rs.type in ("A", "AAAA"):
        if rs.tiers:  # nearest-first groups (fedns.topology): rotate inside each group
            out: tuple[str, ...] = ()
            start = 0
            for size in rs.tiers:
                group = rdatas[start : start + size]
                k = rotation % size
                out += group[k:] + group[:k]
                start += size
            rdatas = out
        else:
            k = rotation % len(rdatas)
            rdatas = rdatas[k:] + rdatas[:k]
    return dns.rrset.from_text_list(rs.name, rs.ttl, "IN", rs.type, list(rdatas))


def _render(qname: dns.name.Name, res: Resolution, rotation: int, *, additional: bool) -> tuple[int, int, int, bytes]:
    msg = dns.message.Message(id=0)
    msg.flags = dns.flags.QR | (dns.flags.AA if res.aa else 0)
    msg.set_rcode(res.rcode)
    msg.question = [dns.rrset.RRset(qname, 1, A)]
    msg.answer = [_rrset(rs, rotation) for rs in res.answer]
    msg.authority = [_rrset(rs, rotation) for rs in res.authority]
    if additional:
        msg.additional = [_rrset(rs, rotation) for rs in res.additional]
    wire = msg.to_wire(max_size=MAX_RENDER, want_shuffle=False)  # our rotations, not random order
    an, ns, ar = struct.unpack_from("!HHH", wire, 6)
    return an, ns, ar, wire[12 + len(qname.to_wire()) + 4 :]


def render(qname: bytes, res: Resolution) -> Prepared:
    """Render a resolution after the (lower-case, wire) question name ``qname``."""
    name = dns.name.from_wire(qname, 0)[0]
    rotating = [len(rs.rdatas) for rs in res.answer + res.additional if rs.type in ("A", "AAAA")]
    count = min(max(rotating, default=1), MAX_ROTATIONS)
    flags = (FLAG_AA if res.aa else 0) | res.rcode
    variants: list[Variant] = []
    try:
        for i in range(count):
            full = _render(name, res, i, additional=True)
            short = _render(name, res, i, additional=False) if res.additional else full
            variants.append(full + short)  # type: ignore[arg-type]
    except dns.exception.TooBig:
        # Over 64 KB even without additional data: nothing sensible fits. Never happens
        # with the planner's records; say so rather than send a broken message.
        return Prepared(FLAG_AA | SERVFAIL, [EMPTY])
    return Prepared(flags, variants)


def soa_tail(soa: RecordSet) -> bytes:
    """The SOA record after its owner name: type, class, TTL, length and uncompressed rdata."""
    rdata = dns.rdata.from_text("IN", "SOA", soa.rdatas[0]).to_wire()
    return struct.pack("!HHIH", 6, 1, soa.ttl, len(rdata)) + rdata


def precomputed_qtypes(node: dict[int, RecordSet]) -> set[int]:
    qtypes = set(node) | {ANY}
    if CNAME in node:  # a CNAME answers every type: store the common ones
        qtypes |= {A, AAAA, CNAME, SRV, TXT}
    return qtypes


class AnswerTable:
    """Every answer for one version of the zones, and the look-up the fast path calls."""

    def __init__(
        self,
        zone: Zone,
        answers: dict[tuple[bytes, int], Prepared],
        memo: dict,
        placed: dict[tuple[bytes, int], dict] | None = None,
    ) -> None:
        self.zone = zone
        # (qname, qtype) -> {client place: Prepared}, for answers that depend on where the
        # client is; empty unless a client topology is in use (fedns.topology).
        self.placed: dict[tuple[bytes, int], dict] = placed or {}
        self.serial = zone.serial
        self.answers = answers
        self.memo = memo  # (qname, Resolution) -> Prepared, reused by the next build
        self.names = frozenset(zone.nodes)
        self.cnames = frozenset(w for w, node in zone.nodes.items() if CNAME in node)
        self.negative = {apex: soa_tail(zone.soas[apex]) for apex in zone.apexes}
        self.extra: dict[tuple[bytes, int], Prepared] = {}
        self.record_sets = sum(len(node) for node in zone.nodes.values())

    def lookup(self, qname: bytes, qtype: int) -> tuple[int, Variant]:
        """Header bits (AA and rcode) and the records for a lower-case wire ``qname``."""
        prepared = self.answers.get((qname, qtype))
        if prepared is not None:
            return prepared.flags, prepared.pick()
        for i in label_offsets(qname):
            tail = self.negative.get(qname[i:])
            if tail is not None:
                break
        else:
            return REFUSED, EMPTY
        if qname in self.cnames:
            prepared = self.extra.get((qname, qtype))
            if prepared is None:
                if len(self.extra) >= EXTRA_CACHE:
                    self.extra.clear()
                prepared = render(qname, self.zone.resolve(qname, qtype))
                self.extra[(qname, qtype)] = prepared
            return prepared.flags, prepared.pick()
        body = struct.pack("!H", 0xC000 | (12 + i)) + tail
        rcode = NOERROR if qname in self.names else NXDOMAIN
        return FLAG_AA | rcode, (0, 1, 0, body, 0, 1, 0, body)


def build_table(
    config: ZoneConfig,
    recordsets: Iterable[RecordSet],
    serial: int,
    *,
    previous: AnswerTable | None = None,
    places: tuple[tuple[str, str], ...] = (),
    nearest_only: bool = False,
) -> AnswerTable:
    """Build the zones and render every stored answer, reusing ``previous``'s renders.

    ``places`` are the client places of a topology map: answers carrying placements are
    also rendered once per place, nearest targets first (fedns.topology).
    """
    from fedns import topology

    zone = Zone.build(config, recordsets, serial)
    old = previous.memo if previous is not None else {}
    memo: dict[tuple[bytes, Resolution], Prepared] = {}
    answers: dict[tuple[bytes, int], Prepared] = {}
    placed: dict[tuple[bytes, int], dict] = {}

    def prepare(wire: bytes, res: Resolution) -> Prepared:
        key = (wire, res)
        prepared = memo.get(key) or old.get(key)
        if prepared is None:
            prepared = render(wire, res)
        memo[key] = prepared
        return prepared

    for wire, node in zone.nodes.items():
        if not node:
            continue
        for qtype in precomputed_qtypes(node):
            res = zone.resolve(wire, qtype)
            answers[(wire, qtype)] = prepare(wire, res)
            if places and topology.placed(res):
                placed[(wire, qtype)] = {
                    place: prepare(wire, topology.for_place(res, place, nearest_only=nearest_only)) for place in places
                }
    return AnswerTable(zone, answers, memo, placed)


__all__ = ["AnswerTable", "Prepared", "Variant", "build_table", "render", "EMPTY", "FLAG_AA"]
