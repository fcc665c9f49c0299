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
- AXFR and IXFR: NOTIMP (zone transfer is not built yet; issue 4).

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

log = logging.getLogger("fedns.handler")

QR, OPCODE_MASK, TC, RD, CD = 0x8000, 0x7800, 0x0200, 0x0100, 0x0010
FORMERR, NOTIMP, REFUSED, BADVERS = 1, 4, 5, 16
OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA = 41, 249, 250, 251, 252, 253, 254
PAYLOAD_SIZE = 1232  # DNS flag day 2020: no fragmented UDP
DO_BIT = 0x8000
_HEADER = struct.Struct("!HHHHHH")
_OPT_FIELDS = struct.Struct("!HHBBHH")  # type, class (size), ext-rcode, version, flags, rdlength


class HasTable(Protocol):
    table: AnswerTable


def opt_record(*, payload: int, do: bool, ext_rcode: int = 0) -> bytes:
    return b"\x00" + _OPT_FIELDS.pack(OPT, payload, ext_rcode, 0, DO_BIT if do else 0, 0)


class Handler:
    """Answers messages from the view's current table, and counts what it answered."""

    def __init__(self, view: HasTable, *, payload_size: int = PAYLOAD_SIZE, fast_path: bool = True) -> None:
        self.view = view
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

    def handle(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        try:
            reply = self._fast(wire, tcp) if self.fast_path else None
            if reply is None:
                reply = self._slow(wire, tcp)
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

    def _fast(self, wire: bytes, tcp: bool) -> bytes | None:
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
        bits, variant = self.view.table.lookup(question[:-4].lower(), qtype)
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp)

    def _assemble(
        self, qid: int, qflags: int, question: bytes, bits: int, variant: Variant, edns_size: int, do: bool, tcp: bool
    ) -> bytes:
        flags = QR | (qflags & (RD | CD)) | bits
        an, ns, ar, body = variant[0], variant[1], variant[2], variant[3]
        if edns_size >= 0:
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

    def _slow(self, wire: bytes, tcp: bool) -> bytes | None:
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
        elif q.rdtype in (AXFR, IXFR, MAILA, MAILB):
            bits, variant = NOTIMP, EMPTY
        elif q.rdtype in (OPT, TKEY, TSIG):
            # Meta types are not questions one can ask.
            bits, variant = FORMERR, EMPTY
        else:
            bits, variant = self.view.table.lookup(q.name.canonicalize().to_wire(), q.rdtype)
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp)
