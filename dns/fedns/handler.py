"""One DNS message in, one reply (or silence) out: the protocol rules, without sockets.

The fast path parses the header and question by hand, looks the answer up in the
precomputed :class:`~fedns.table.AnswerTable`, and assembles the reply from the query's
own question bytes and the stored records: only the ID, the RD and CD bits, the counts,
TC and the OPT record are decided per query. Everything unusual (compression in the
question, a class other than IN, extra records, a malformed OPT, EDNS versions above 0,
meta types) goes to the slow path, where dnspython parses the message. The two paths
give byte-identical replies wherever both apply (tests/test_dns_handler.py checks it).

Rules:

- shorter than a header, QR set, or unparseable: dropped, no reply;
- opcode other than QUERY: NOTIMP; a question count other than one: FORMERR;
- EDNS(0): the reply carries an OPT with our payload size (1232) and the query's DO bit;
  an EDNS version above 0 gets BADVERS;
- over UDP the reply must fit min(client size, 1232) with EDNS, 512 without: first the
  additional section is left out (no TC, RFC 2181 9), then the records (TC=1);
  over TCP it comes whole;
- AXFR and IXFR (:mod:`fedns.transfer`): over TCP from allowed networks, several
  messages; over UDP, or from elsewhere, REFUSED;
- with a client topology (:mod:`fedns.topology`), answers that carry placements are
  picked for where the client is (its EDNS Client Subnet option, else its address),
  and an ECS option in the query comes back with its scope.

Any exception in handling one message is counted and logged, and the message dropped:
one bad packet never stops the responder.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Protocol

import dns.message
import dns.rcode

from fedns.table import EMPTY, AnswerTable, Variant
from fedns.topology import ClientTopology
from fedns.transfer import History, TransferPolicy

log = logging.getLogger("fedns.handler")

QR, OPCODE_MASK, TC, RD, CD = 0x8000, 0x7800, 0x0200, 0x0100, 0x0010
ECS = 8
FORMERR, NOTIMP, REFUSED, NOTAUTH, BADVERS = 1, 4, 5, 9, 16
OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA = 41, 249, 250, 251, 252, 253, 254
PAYLOAD_SIZE = 1232  # DNS flag day 2020: no fragmented UDP
DO_BIT = 0x8000
_HEADER = struct.Struct("!HHHHHH")
_OPT_FIELDS = struct.Struct("!HHBBHH")  # type, class (size), ext-rcode, version, flags, rdlength


def _ecs_option(wire: bytes, start: int, end: int) -> bytes | None | bool:
    """The data of the ECS option in OPT rdata ``wire[start:end]``; None if absent, False if broken."""
    i = start
    while i < end:
        if end - i < 4:
            return False
        code, length = (wire[i] << 8) | wire[i + 1], (wire[i + 2] << 8) | wire[i + 3]
        if i + 4 + length > end:
            return False
        if code == ECS:
            return wire[i + 4 : i + 4 + length]
        i += 4 + length
    return None


class HasTable(Protocol):
    table: AnswerTable


def opt_record(*, payload: int, do: bool, ext_rcode: int = 0) -> bytes:
    return b"\x00" + _OPT_FIELDS.pack(OPT, payload, ext_rcode, 0, DO_BIT if do else 0, 0)


class Handler:
    """Answers messages from the view's current table, and counts what it answered."""

    def __init__(
        self,
        view: HasTable,
        *,
        payload_size: int = PAYLOAD_SIZE,
        fast_path: bool = True,
        topology: ClientTopology | None = None,
        transfer: TransferPolicy | None = None,
        history: History | None = None,
    ) -> None:
        self.view = view
        self.topology = topology  # None: answers do not depend on the client
        self.transfer = transfer or TransferPolicy()
        self.history = history  # None: zone transfer is off
        self.transfers = 0
        self.refused_transfers = 0
        self.payload_size = payload_size
        self.fast_path = fast_path
        self.rcodes = [0] * 32  # replies by rcode (BADVERS is 16)
        self.dropped = 0
        self.errors = 0
        self.truncated = 0
        self._opts = {
            (do, ext): opt_record(payload=payload_size, do=do, ext_rcode=ext) for do in (False, True) for ext in (0, 1)
        }
        self._last_error_log = 0.0

    # -- entry point -------------------------------------------------------------------

    def handle(self, wire: bytes, tcp: bool = False, peer: str | None = None) -> bytes | list[bytes] | None:
        """The reply to one message; a list of messages for a zone transfer; None: drop it.

        ``peer`` is the client's address: needed for zone transfer and a client topology.
        """
        try:
            reply = self._fast(wire, tcp, peer) if self.fast_path else None
            if reply is None:
                reply = self._slow(wire, tcp, peer)
        except Exception:  # never let one message hurt the server
            self.errors += 1
            now = time.monotonic()
            if now - self._last_error_log > 5.0:
                self._last_error_log = now
                log.exception("error handling a %d-byte message; dropped", len(wire))
            reply = None
        if reply is None:
            self.dropped += 1
        return reply

    def stats(self) -> dict[str, int]:
        out = {dns.rcode.to_text(dns.rcode.Rcode(i)): n for i, n in enumerate(self.rcodes) if n}
        return out

    # -- fast path ---------------------------------------------------------------------

    def _fast(self, wire: bytes, tcp: bool, peer: str | None = None) -> bytes | None:
        """The common query, hand-parsed; None sends it to the slow path."""
        n = len(wire)
        if n < 17:
            return None
        qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
        if flags & (QR | OPCODE_MASK) or qd != 1 or an or ns or ar > 1:
            return None
        i = 12
        while True:
            if i >= n:
                return None
            length = wire[i]
            if length == 0:
                break
            if length > 63:
                return None
            i += length + 1
        qend = i + 5
        if qend > n or i - 11 > 255:
            return None
        qtype = (wire[i + 1] << 8) | wire[i + 2]
        if wire[i + 3] != 0 or wire[i + 4] != 1 or qtype == OPT or TKEY <= qtype <= MAILA:
            return None
        if ar:
            if n < qend + 11 or wire[qend] != 0:
                return None
            rtype, size, _ext, version, eflags, rdlen = _OPT_FIELDS.unpack_from(wire, qend + 1)
            if rtype != OPT or version or qend + 11 + rdlen != n:
                return None
            edns_size, do = size, bool(eflags & DO_BIT)
        else:
            if qend != n:
                return None
            edns_size, do = -1, False
        question = wire[12:qend]
        qname = question[:-4].lower()
        table = self.view.table
        if self.topology is not None and (qname, qtype) in table.placed:
            ecs = _ecs_option(wire, qend + 11, n) if ar else None
            if ecs is False:
                return None  # malformed options: the slow path decides
            return self._placed(qid, flags, question, table, qname, qtype, edns_size, do, tcp, peer, ecs)
        bits, variant = table.lookup(qname, qtype)
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp)

    def _placed(
        self,
        qid: int,
        flags: int,
        question: bytes,
        table: AnswerTable,
        qname: bytes,
        qtype: int,
        edns_size: int,
        do: bool,
        tcp: bool,
        peer: str | None,
        ecs: bytes | None,
    ) -> bytes:
        """An answer ordered for where the client is (fedns.topology)."""
        topo = self.topology
        assert topo is not None
        place = None
        opt = None
        if ecs is not None:
            hit = topo.of_ecs(ecs)
            if hit is not None:
                place, scope = hit
                # RFC 7871 7.2.1: echo family, source prefix and address; set our scope.
                option = ecs[:3] + bytes([scope]) + ecs[4:]
                rdata = struct.pack("!HH", ECS, len(option)) + option
                opt = b"\x00" + _OPT_FIELDS.pack(OPT, self.payload_size, 0, 0, DO_BIT if do else 0, len(rdata)) + rdata
        if place is None and peer is not None and (ecs is None or opt is None):
            place = topo.of_ip(peer)
        prepared = table.placed[(qname, qtype)].get(place) if place is not None else None
        if prepared is None:
            bits, variant = table.lookup(qname, qtype)
        else:
            bits, variant = prepared.flags, prepared.pick()
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp, opt)

    def _assemble(
        self,
        qid: int,
        qflags: int,
        question: bytes,
        bits: int,
        variant: Variant,
        edns_size: int,
        do: bool,
        tcp: bool,
        opt: bytes | None = None,
    ) -> bytes:
        flags = QR | (qflags & (RD | CD)) | bits
        an, ns, ar, body = variant[0], variant[1], variant[2], variant[3]
        if edns_size >= 0:
            if opt is None:
                opt = self._opts[(do, 0)]
            limit = min(max(edns_size, 512), self.payload_size)
        else:
            opt = b""
            limit = 512
        if not tcp and 12 + len(question) + len(body) + len(opt) > limit:
            an, ns, ar, body = variant[4], variant[5], variant[6], variant[7]
            if 12 + len(question) + len(body) + len(opt) > limit:
                flags |= TC
                an, ns, ar, body = 0, 0, 0, b""
                self.truncated += 1
        self.rcodes[bits & 0xF] += 1
        if opt:
            ar += 1
        return _HEADER.pack(qid, flags, 1, an, ns, ar) + question + body + opt

    # -- slow path ---------------------------------------------------------------------

    def _slow(self, wire: bytes, tcp: bool, peer: str | None = None) -> bytes | list[bytes] | None:
        if len(wire) < 12:
            return None
        qid, flags, *_ = _HEADER.unpack_from(wire)
        if flags & QR:
            return None
        if flags & OPCODE_MASK:
            # Not a query (NOTIFY, UPDATE, ...): say so without reading further.
            self.rcodes[NOTIMP] += 1
            return _HEADER.pack(qid, QR | (flags & (OPCODE_MASK | RD | CD)) | NOTIMP, 0, 0, 0, 0)
        try:
            msg = dns.message.from_wire(wire)
        except Exception:
            return None
        edns_size = msg.payload if msg.edns >= 0 else -1
        do = bool(msg.ednsflags & DO_BIT) if msg.edns >= 0 else False
        opt = self._opts[(do, 0)] if msg.edns >= 0 else b""
        if len(msg.question) != 1:
            self.rcodes[FORMERR] += 1
            return _HEADER.pack(qid, QR | (flags & (RD | CD)) | FORMERR, 0, 0, 0, 1 if opt else 0) + opt
        q = msg.question[0]
        question = q.name.to_wire() + struct.pack("!HH", q.rdtype, q.rdclass)
        if msg.edns > 0:
            self.rcodes[BADVERS] += 1
            opt = self._opts[(do, BADVERS >> 4)]
            return _HEADER.pack(qid, QR | (flags & (RD | CD)), 1, 0, 0, 1) + question + opt
        if q.rdclass != 1:
            bits, variant = REFUSED, EMPTY
        elif q.rdtype in (AXFR, IXFR):
            return self._transfer(msg, qid, flags, question, tcp, peer, opt)
        elif q.rdtype in (MAILA, MAILB):
            bits, variant = NOTIMP, EMPTY
        elif q.rdtype in (OPT, TKEY, TSIG):
            # Meta types are not questions one can ask.
            bits, variant = FORMERR, EMPTY
        else:
            qname = q.name.canonicalize().to_wire()
            table = self.view.table
            if self.topology is not None and (qname, q.rdtype) in table.placed:
                ecs = next((o for o in msg.options if o.otype == ECS), None)
                return self._placed(
                    qid, flags, question, table, qname, q.rdtype, edns_size, do, tcp, peer,
                    ecs.to_wire() if ecs is not None else None,
                )
            bits, variant = table.lookup(qname, q.rdtype)
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp)

    def _transfer(
        self, msg: dns.message.Message, qid: int, flags: int, question: bytes, tcp: bool, peer: str | None, opt: bytes
    ) -> bytes | list[bytes]:
        """AXFR or IXFR: several messages over TCP to an allowed client, else REFUSED."""
        q = msg.question[0]
        apex = q.name.canonicalize().to_wire()
        history = self.history
        if history is None:
            bits = NOTIMP
        elif not tcp or not self.transfer.allowed(peer):
            bits = REFUSED
            self.refused_transfers += 1
        elif apex not in history.current:
            bits = NOTAUTH  # not the apex of a zone we serve
        else:
            serial = None
            if q.rdtype == IXFR:
                soa = next((rs for rs in msg.authority if rs.rdtype == 6 and len(rs)), None)
                serial = soa[0].serial if soa is not None else None
            if q.rdtype != IXFR or serial is not None:
                self.transfers += 1
                self.rcodes[0] += 1
                return history.answer(msg, apex, ixfr_serial=serial)
            bits = FORMERR  # RFC 1995: an IXFR query carries the client's SOA
        self.rcodes[bits] += 1
        ar = 1 if opt else 0
        return _HEADER.pack(qid, QR | (flags & (RD | CD)) | bits, 1, 0, 0, ar) + question + opt
