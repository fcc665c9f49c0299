"""Zone transfer (AXFR, RFC 5936; IXFR, RFC 1995): how real DNS servers take our zones.

Secondaries (Knot, NSD, BIND) pull each zone we serve over TCP and then answer for it
themselves: the way DNS has always scaled out. This module holds:

- :class:`History`: each zone's serial and a bounded list of diffs by serial
  (``limit`` versions and ``max_records`` changed records at most), fed with every change
  of the answer table (the change itself when the table changed in place); IXFR from a serial still in it is answered with the diffs, from an older
  one with the whole zone (RFC 1995 section 4 allows that), from the current or a newer
  one with the SOA alone (the client is up to date);
- :func:`transfer_messages`: the wire messages of one transfer, rendered with dnspython
  (transfers are rare and large, so they stay off the fast path) and cached per
  (zone, serial, kind) with only the ID, flags and question patched per request;
- :class:`TransferPolicy`: which client networks may transfer, and
  :func:`default_allow`: who may when ``--allow-transfer`` is not given (the listen
  address alone; on a wildcard, 127.0.0.1 and ::1 alone).

The serial is shared by every zone of the responder (``fedns.view``), so a change in one
zone also moves the other zones' serials; their IXFR diff is then the SOA alone.
"""

from __future__ import annotations

import io
import ipaddress
import struct
import threading
from collections import deque
from dataclasses import dataclass
from typing import Iterable

import dns.message
import dns.name
import dns.rrset

from fedns.records import RecordSet
from fedns.table import AnswerTable
from fedns.zone import SOA, Zone

RR = tuple[str, str, int, str]  # owner, type, ttl, rdata (presentation format)
LOOPBACK = ("127.0.0.1/32", "::1/128")  # on a wildcard listen address: this host's own clients
CHUNK = 16000  # bytes of records per message; well under TCP's 65535
QR, AA, RD = 0x8000, 0x0400, 0x0100


@dataclass(frozen=True)
class Diff:
    old_serial: int
    old_soa: str
    new_serial: int
    new_soa: str
    removed: tuple[RR, ...]
    added: tuple[RR, ...]


@dataclass(frozen=True)
class Version:
    serial: int
    soa: RR
    records: frozenset[RR] = frozenset()  # everything but the SOA (zone_contents only)


def soa_record(soa: RecordSet) -> RR:
    return (soa.name, "SOA", soa.ttl, soa.rdatas[0])


def zone_contents(zone: Zone, apex: bytes) -> Version:
    """One zone's records (those whose deepest enclosing apex is ``apex``)."""
    records: set[RR] = set()
    for wire, node in zone.nodes.items():
        if not node or zone.apex_of(wire) != apex:
            continue
        for t, rs in node.items():
            if t == SOA:
                continue
            for rdata in rs.rdatas:
                records.add((rs.name, rs.type, rs.ttl, rdata))
    return Version(zone.serial, soa_record(zone.soas[apex]), frozenset(records))


class History:
    """The serial and recent diffs of every zone, for AXFR and IXFR.

    A table changed in place (:meth:`fedns.table.AnswerTable.apply`) says what it changed,
    so recording it costs the change; a whole new table is compared with the last one.
    AXFR reads the current table's zone when a transfer asks for it (cached per serial).
    """

    def __init__(self, *, limit: int = 64, max_records: int = 200_000) -> None:
        self.limit = limit
        self.max_records = max_records
        self.current: dict[bytes, Version] = {}  # serial and SOA of each zone
        self.diffs: dict[bytes, deque[Diff]] = {}
        self.table: AnswerTable | None = None
        self._cache: dict[tuple, list[bytes]] = {}
        self._lock = threading.Lock()

    def record(self, table: AnswerTable) -> None:
        zone, change, last = table.zone, table.changes, self.table
        in_place = table is last and change is not None
        for apex in zone.apexes:
            old = self.current.get(apex)
            new = Version(zone.serial, soa_record(zone.soas[apex]))
            self.current[apex] = new
            if old is None or old.serial == new.serial:
                continue
            diffs = self.diffs.setdefault(apex, deque())
            if in_place and change.old_serial == old.serial:
                removed, added = change.removed.get(apex, ()), change.added.get(apex, ())
            elif last is not None and table is not last:
                was, now = zone_contents(last.zone, apex).records, zone_contents(zone, apex).records
                removed, added = tuple(sorted(was - now)), tuple(sorted(now - was))
            else:  # a change we did not see: no diff leads here, IXFR gets the whole zone
                diffs.clear()
                continue
            diffs.append(Diff(old.serial, old.soa[3], new.serial, new.soa[3], removed, added))
            while len(diffs) > self.limit or (
                len(diffs) > 1 and sum(len(d.removed) + len(d.added) for d in diffs) > self.max_records
            ):
                diffs.popleft()
        self.table = table
        with self._lock:
            self._cache.clear()

    def chain(self, apex: bytes, serial: int) -> list[Diff] | None:
        """The diffs from ``serial`` to the current version, or None when they are gone."""
        diffs = list(self.diffs.get(apex, ()))
        for i, d in enumerate(diffs):
            if d.old_serial == serial:
                return diffs[i:]
        return None

    # -- answering ---------------------------------------------------------------------

    def answer(
        self, query: dns.message.Message, apex: bytes, *, ixfr_serial: int | None, opt: bytes = b""
    ) -> list[bytes]:
        """The messages answering an AXFR (``ixfr_serial`` None) or an IXFR; ``opt``: the OPT
        record every message ends with (the query had one: RFC 6891 6.1.1)."""
        version = self.current[apex]
        if ixfr_serial is None:
            key: tuple = (apex, version.serial, "axfr")
        elif serial_ge(ixfr_serial, version.serial):
            key = (apex, version.serial, "soa")
        else:
            key = (apex, version.serial, "ixfr", ixfr_serial)
        with self._lock:
            messages = self._cache.get(key)
        if messages is None:
            assert self.table is not None
            if key[2] == "axfr":
                rrs = axfr_records(zone_contents(self.table.zone, apex))
            elif key[2] == "soa":
                rrs = [version.soa]
            else:
                chain = self.chain(apex, ixfr_serial)  # type: ignore[arg-type]
                if chain is not None:
                    rrs = ixfr_records(version, chain)
                else:
                    rrs = axfr_records(zone_contents(self.table.zone, apex))
            messages = render_messages(rrs, qname=dns.name.from_wire(apex, 0)[0], qtype=query.question[0].rdtype)
            with self._lock:
                if len(self._cache) > 16:
                    self._cache.clear()
                self._cache[key] = messages
        return patch(messages, query, opt)


def serial_ge(a: int, b: int) -> bool:
    """RFC 1982 serial number arithmetic: a >= b."""
    return a == b or ((a - b) & 0xFFFFFFFF) < 0x80000000


def axfr_records(version: Version) -> list[RR]:
    return [version.soa, *sorted(version.records), version.soa]


def ixfr_records(version: Version, chain: list[Diff]) -> list[RR]:
    name = version.soa[0]
    soa = lambda text: (name, "SOA", version.soa[2], text)  # noqa: E731
    out: list[RR] = [version.soa]
    for d in chain:
        out.append(soa(d.old_soa))
        out += d.removed
        out.append(soa(d.new_soa))
        out += d.added
    out.append(version.soa)
    return out


def _rrsets(rrs: Iterable[RR]) -> list[dns.rrset.RRset]:
    """Consecutive records of one (owner, type, ttl) as one RRset; order kept."""
    out: list[dns.rrset.RRset] = []
    group: list[RR] = []

    def flush() -> None:
        if group:
            name, rtype, ttl, _ = group[0]
            out.append(dns.rrset.from_text_list(name, ttl, "IN", rtype, [r[3] for r in group]))
            group.clear()

    for rr in rrs:
        if group and (rr[:3] != group[0][:3] or rr[1] == "SOA"):
            flush()
        group.append(rr)
    flush()
    return out


def render_messages(rrs: list[RR], *, qname: dns.name.Name, qtype: int) -> list[bytes]:
    """Messages with ID 0 and a lower-case question in the first only."""
    messages: list[bytes] = []
    batch: list[dns.rrset.RRset] = []
    size = 0

    def finish() -> None:
        msg = dns.message.Message(id=0)
        msg.flags = QR | AA
        if not messages:
            msg.question = [dns.rrset.RRset(qname, 1, qtype)]
        msg.answer = list(batch)
        messages.append(msg.to_wire(max_size=65535, want_shuffle=False))

    for rrset in _rrsets(rrs):
        out = io.BytesIO()
        rrset.to_wire(out)
        n = out.tell()
        if batch and size + n > CHUNK:
            finish()
            batch, size = [], 0
        batch.append(rrset)
        size += n
    finish()
    return messages


def patch(messages: list[bytes], query: dns.message.Message, opt: bytes = b"") -> list[bytes]:
    """The cached messages with the query's ID, RD bit and question (its case) put in, and
    ``opt`` (an OPT record, or b"") at the end of each. Cached messages have no additional
    records, so the additional count is 1 with an OPT, else 0."""
    flags = QR | AA | (query.flags & RD)
    head = struct.pack("!HH", query.id, flags)
    ar = b"\x00\x01" if opt else b"\x00\x00"
    q = query.question[0]
    question = q.name.to_wire() + struct.pack("!HH", q.rdtype, q.rdclass)
    first = messages[0]
    out = [head + first[4:10] + ar + question + first[12 + len(question) :] + opt]
    out += [head + m[4:10] + ar + m[12:] + opt for m in messages[1:]]
    return out


def default_allow(listen_host: str) -> tuple[str, ...]:
    """Who may transfer without ``--allow-transfer``: a client of the listen address itself.

    Listening on 127.0.0.1 lets 127.0.0.1 transfer, not the rest of 127/8 (other local
    services, containers sharing the host's loopback); on a wildcard (0.0.0.0, ::) or a
    name, 127.0.0.1 and ::1 only. Anything wider is said with ``--allow-transfer``.
    """
    try:
        addr = ipaddress.ip_address(listen_host.strip("[]").split("%")[0])
    except ValueError:
        return LOOPBACK
    if addr.is_unspecified:
        return LOOPBACK
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (str(ipaddress.ip_network(addr)),)


class TransferPolicy:
    """Client networks allowed to transfer zones (``--allow-transfer``)."""

    def __init__(self, allow: Iterable[str] = LOOPBACK) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in allow]
        self._seen: dict[str, bool] = {}

    def allowed(self, peer: str | None) -> bool:
        if peer is None:
            return False
        hit = self._seen.get(peer)
        if hit is None:
            try:
                addr = ipaddress.ip_address(peer.split("%")[0])
            except ValueError:
                return False
            if addr.version == 6 and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            hit = any(addr.version == n.version and addr in n for n in self.networks)
            if len(self._seen) > 4096:
                self._seen.clear()
            self._seen[peer] = hit
        return hit
