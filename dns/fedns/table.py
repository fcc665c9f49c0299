"""Precomputed wire-format answers, so a query costs a dictionary look-up, not a render.

Rendering one answer with dnspython costs about 100 us (:mod:`fedns.encode` does it by hand
in a fraction of that); looking up stored bytes about 1 us (../shared/notes/dns-fast-path.md). So every answer a client can get for a name we
serve is rendered when the records change, not when queries arrive, and stored as the
bytes that follow the question section, keyed by (lower-case question name wire bytes,
qtype). The stored bytes were rendered after a lower-case copy of the question, so their
compression pointers point into the question; the reply copies the client's own question
bytes there (same length whatever the case), which keeps randomised case ("0x20") intact.

Three kinds of answer are not stored per name:

- NXDOMAIN and NODATA carry only the zone's SOA, written as a pointer to where the apex
  starts inside the client's question name plus fixed bytes: built per query for a few
  hundred nanoseconds, so unknown names cost no memory (and the same SOA bytes are
  appended to stored answers whose authority is the SOA, after a CNAME chain, so a new
  serial re-renders none of them: :class:`WithSOA`);
- REFUSED has no records at all;
- an unusual qtype at a CNAME (MX at a CNAME, say) is resolved and rendered on demand and
  kept in a small cache.

A and AAAA record sets with several targets rotate between answers (round robin), so
clients spread over the shards: each answer keeps up to :data:`MAX_ROTATIONS` rendered
rotations and a cursor.

A change of one record set (a watch event) costs the change, not the zone (issue 20):
:meth:`AnswerTable.apply` changes the zone in place and re-renders only the answers of
the names it touched and of the names whose answers read them (CNAME chains into them,
SRV and NS additional records), plus each apex's SOA, all in one synchronous step. A
whole build (the first list, a large relist) reuses every rendered answer of the previous
table whose resolution did not change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Iterable

import dns.exception
import dns.rdata

from fedns.encode import sections
from fedns.records import RecordSet
from fedns.weights import schedule
from fedns.zone import (
    AAAA,
    ANY,
    CNAME,
    SOA,
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
    to_wire,
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

    def rotations(self) -> list[Variant]:
        """Every rotation, in the order :meth:`pick` gives them."""
        return self.variants

    def advance(self) -> int:
        """The index :meth:`pick` would give, and move on (the reply cache's first reply to a
        new query: queries that differ in bytes only, by a cookie or 0x20 case, share the
        answer's cursor, so they too go round, or by weight)."""
        i = self.cursor
        self.cursor = i + 1 if i + 1 < len(self.variants) else 0
        return i


class WithSOA(Prepared):
    """An answer whose authority section is its zone's SOA (NODATA or NXDOMAIN after a
    CNAME chain): stored without it, and the SOA appended per query from the table's
    current negative tails, so a new serial re-renders none of these answers."""

    __slots__ = ("owner", "apex", "tails")

    def __init__(self, flags: int, variants: list[Variant], owner: bytes, apex: bytes, tails: dict[bytes, bytes]) -> None:
        super().__init__(flags, variants)
        self.owner = owner  # the SOA's owner name: a pointer into the question, or the name itself
        self.apex = apex
        self.tails = tails

    def pick(self) -> Variant:
        return self._with_soa(Prepared.pick(self))

    def rotations(self) -> list[Variant]:
        return [self._with_soa(v) for v in self.variants]

    def _with_soa(self, variant: Variant) -> Variant:
        an, ns, ar, body, an_s, ns_s, ar_s, body_s = variant
        soa = self.owner + self.tails[self.apex]
        return (an, ns + 1, ar, body + soa, an_s, ns_s + 1, ar_s, body_s + soa)


def _render(qname: bytes, res: Resolution, rotation: int, *, additional: bool) -> tuple[int, int, int, bytes]:
    sets = (res.answer, res.authority, res.additional if additional else ())
    (an, ns, ar), body = sections(qname, sets, rotation, max_size=MAX_RENDER)
    return an, ns, ar, body


def soa_apart(qname: bytes, res: Resolution) -> tuple[Resolution, bytes, bytes] | None:
    """(the resolution without its SOA, the SOA's owner bytes, its apex) when the authority
    section is one SOA (:class:`WithSOA`), else None."""
    if len(res.authority) != 1 or res.authority[0].type != "SOA":
        return None
    apex = to_wire(res.authority[0].name)
    if qname.endswith(apex):
        owner = struct.pack("!H", 0xC000 | (12 + len(qname) - len(apex)))
    else:  # the chain left the question's zone: the apex name in full
        owner = apex
    return replace(res, authority=()), owner, apex


def render(qname: bytes, res: Resolution, tails: dict[bytes, bytes] | None = None) -> Prepared:
    """Render a resolution after the (lower-case, wire) question name ``qname``; with
    ``tails`` (a table's negative tails), an SOA in authority is left to :class:`WithSOA`."""
    apart = soa_apart(qname, res) if tails is not None else None
    if apart is not None:
        res = apart[0]
    rotating = [len(rs.rdatas) for rs in res.answer + res.additional if rs.type in ("A", "AAAA")]
    count = min(max(rotating, default=1), MAX_ROTATIONS)
    flags = (FLAG_AA if res.aa else 0) | res.rcode
    variants: list[Variant] = []
    try:
        for i in range(count):
            full = _render(qname, res, i, additional=True)
            short = _render(qname, res, i, additional=False) if res.additional else full
            variants.append(full + short)  # type: ignore[arg-type]
    except dns.exception.TooBig:
        # Over 64 KB even without additional data: nothing sensible fits. Never happens
        # with the planner's records; say so rather than send a broken message.
        return Prepared(FLAG_AA | SERVFAIL, [EMPTY])
    weighted = next((rs for rs in res.answer + res.additional if rs.weights and len(rs.rdatas) > 1), None)
    if weighted is not None:  # issue 16: the rotations in weighted order (fedns.weights)
        variants = [variants[i] for i in schedule(weighted.weights[:count])]
    if apart is not None:
        assert tails is not None
        return WithSOA(flags, variants, apart[1], apart[2], tails)
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


@dataclass(frozen=True)
class ZoneChange:
    """What one :meth:`AnswerTable.apply` changed, for IXFR history (fedns.transfer):
    per apex, the records removed and added (owner, type, TTL, rdata), and the serials."""

    old_serial: int
    new_serial: int
    old_soas: dict[bytes, RecordSet]
    removed: dict[bytes, tuple[tuple[str, str, int, str], ...]]
    added: dict[bytes, tuple[tuple[str, str, int, str], ...]]


def _records(node: dict[int, RecordSet]) -> set[tuple[str, str, int, str]]:
    return {(rs.name, rs.type, rs.ttl, r) for t, rs in node.items() if t != SOA for r in rs.rdatas}


class AnswerTable:
    """Every answer for one zone, the look-up the fast path calls, and the dependencies
    that let one record set change re-render only the answers that show it.

    Each name with records owns its stored answers (one per :func:`precomputed_qtypes`).
    Resolving them reads other names too (CNAME chain links, SRV and NS targets, names a
    chain ends at that do not exist yet): :attr:`reads` keeps, per owner, the other names
    read, and :attr:`readers` the reverse, so :meth:`apply` re-renders the changed names
    and exactly the owners that read them. SOA serials never force a re-render: answers
    with an SOA in authority are :class:`WithSOA`, and only each apex's own SOA answer is
    rendered again per change.
    """

    def __init__(
        self,
        zone: Zone,
        *,
        places: tuple[tuple[str, str], ...] = (),
        nearest_only: bool = False,
    ) -> None:
        self.zone = zone
        self.places = places
        self.nearest_only = nearest_only
        # (qname, qtype) -> {client place: Prepared}, for answers that depend on where the
        # client is; empty unless a client topology is in use (fedns.topology).
        self.placed: dict[tuple[bytes, int], dict] = {}
        self.answers: dict[tuple[bytes, int], Prepared] = {}
        self.negative: dict[bytes, bytes] = {}  # apex -> its SOA after the owner name
        self.extra: dict[tuple[bytes, int], Prepared] = {}
        self.reads: dict[bytes, tuple[bytes, ...]] = {}
        self.readers: dict[bytes, set[bytes]] = {}
        self.changes: ZoneChange | None = None  # set by apply(); None after a whole build
        self._tails()

    @property
    def serial(self) -> int:
        return self.zone.serial

    def _tails(self) -> None:
        for apex in self.zone.apexes:
            self.negative[apex] = soa_tail(self.zone.soas[apex])

    # -- building and changing -----------------------------------------------------------

    def fill(self, previous: "AnswerTable | None" = None) -> None:
        """Render every stored answer; ``previous``'s renders are reused where its zone
        resolves the question the same way (compared without the SOA, see WithSOA)."""
        for wire, node in self.zone.nodes.items():
            if node:
                self._own(wire, (), previous)

    def apply(self, changes: Iterable[tuple[tuple[str, str], RecordSet | None]], serial: int) -> ZoneChange:
        """Put or remove record sets (None: removed) and move to ``serial``, re-rendering
        what they show in. Synchronous: a query sees all of it or none of it."""
        zone = self.zone
        before: dict[bytes, dict[int, RecordSet]] = {}
        touched: set[bytes] = set()
        for (name, rtype), rs in changes:
            wire = to_wire(name)
            if wire not in before:
                before[wire] = dict(zone.nodes.get(wire) or {})
            touched |= zone.put(rs) if rs is not None else zone.remove(name, rtype)
        old_serial, old_soas = zone.serial, dict(zone.soas)
        zone.set_serial(serial)
        self._tails()
        owners = set(touched)
        for wire in touched:
            owners |= self.readers.get(wire, set())
        for wire in owners:
            node = before[wire] if wire in before else zone.nodes.get(wire)
            self._own(wire, precomputed_qtypes(node) if node else ())
        for apex in zone.apexes:  # the SOA itself (and ANY, which answers the SOA at an apex)
            if apex not in owners:
                self._own(apex, (SOA, ANY), only=(SOA, ANY))
        self.extra.clear()
        removed: dict[bytes, set] = {}
        added: dict[bytes, set] = {}
        for wire, old in before.items():
            apex = zone.apex_of(wire)
            if apex is None:
                continue
            was, now = _records(old), _records(zone.nodes.get(wire) or {})
            if was != now:
                removed.setdefault(apex, set()).update(was - now)
                added.setdefault(apex, set()).update(now - was)
        self.changes = ZoneChange(
            old_serial,
            serial,
            old_soas,
            {a: tuple(sorted(r)) for a, r in removed.items()},
            {a: tuple(sorted(r)) for a, r in added.items()},
        )
        return self.changes

    def _own(
        self,
        wire: bytes,
        old_qtypes: Iterable[int],
        previous: "AnswerTable | None" = None,
        only: tuple[int, ...] | None = None,
    ) -> None:
        """Render the stored answers of the name ``wire`` again (``old_qtypes``: the ones
        it had), and record which other names they read."""
        from fedns import topology

        zone, answers, placed = self.zone, self.answers, self.placed
        for qtype in old_qtypes:
            answers.pop((wire, qtype), None)
            placed.pop((wire, qtype), None)
        if only is None:
            for name in self.reads.pop(wire, ()):
                readers = self.readers.get(name)
                if readers is not None:
                    readers.discard(wire)
                    if not readers:
                        del self.readers[name]
        node = zone.nodes.get(wire)
        if not node:
            return
        reads: set[bytes] = set()
        rendered: dict[tuple, Prepared] = {}
        tails = self.negative
        for qtype in only if only is not None else precomputed_qtypes(node):
            res = zone.resolve(wire, qtype, reads)
            key = render_key(wire, res)
            prepared = rendered.get(key)
            if prepared is None and previous is not None:
                old = previous.answers.get((wire, qtype))
                if old is not None and render_key(wire, previous.zone.resolve(wire, qtype)) == key:
                    prepared = old
                    if isinstance(old, WithSOA):  # the same bytes, this table's SOA
                        prepared = WithSOA(old.flags, old.variants, old.owner, old.apex, tails)
            if prepared is None:
                prepared = render(wire, res, tails)
            rendered[key] = prepared
            answers[(wire, qtype)] = prepared
            if self.places and topology.placed(res):
                placed[(wire, qtype)] = {
                    place: render(wire, topology.for_place(res, place, nearest_only=self.nearest_only), tails)
                    for place in self.places
                }
        if only is None:
            reads.discard(wire)
            if reads:
                self.reads[wire] = tuple(reads)
                for name in reads:
                    self.readers.setdefault(name, set()).add(wire)

    # -- answering -------------------------------------------------------------------------

    def rotations(self, qname: bytes, qtype: int) -> tuple[int, list[Variant], int]:
        """What :meth:`lookup` answers, every rotation at once, in order, and the index of the
        one to send now (the handler's reply cache keeps them all and rotates itself)."""
        prepared = self.answers.get((qname, qtype))
        if prepared is not None:
            return prepared.flags, prepared.rotations(), prepared.advance() if len(prepared.variants) > 1 else 0
        bits, variant = self.lookup(qname, qtype)  # synthesized (NXDOMAIN, NODATA, REFUSED) or extra
        prepared = self.extra.get((qname, qtype))
        return (bits, prepared.rotations(), 0) if prepared is not None else (bits, [variant], 0)

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
        node = self.zone.nodes.get(qname)
        if node and CNAME in node:
            prepared = self.extra.get((qname, qtype))
            if prepared is None:
                if len(self.extra) >= EXTRA_CACHE:
                    self.extra.clear()
                prepared = render(qname, self.zone.resolve(qname, qtype), self.negative)
                self.extra[(qname, qtype)] = prepared
            return prepared.flags, prepared.pick()
        body = struct.pack("!H", 0xC000 | (12 + i)) + tail
        rcode = NOERROR if node is not None else NXDOMAIN
        return FLAG_AA | rcode, (0, 1, 0, body, 0, 1, 0, body)


def render_key(qname: bytes, res: Resolution) -> tuple:
    """What a rendered answer shows: the resolution, less an SOA that WithSOA adds per query."""
    apart = soa_apart(qname, res)
    return (apart[0], apart[2]) if apart is not None else (res, None)


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
    table = AnswerTable(Zone.build(config, recordsets, serial), places=places, nearest_only=nearest_only)
    table.fill(previous)
    return table


__all__ = ["AnswerTable", "Prepared", "Variant", "WithSOA", "ZoneChange", "build_table", "render", "EMPTY", "FLAG_AA"]
