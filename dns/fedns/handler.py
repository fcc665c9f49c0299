"""One DNS message in, one reply (or silence) out: the protocol rules, without sockets.

The fast path parses the header and question by hand, looks the answer up in the
precomputed :class:`~fedns.table.AnswerTable`, and assembles the reply from the query's
own question bytes and the stored records: only the ID, the RD and CD bits, the counts,
TC and the OPT record are decided per query. Everything unusual (compression in the
question, a class other than IN, extra records, a malformed OPT, EDNS versions above 0,
meta types) goes to the slow path, where dnspython parses the message. The two paths
give byte-identical replies wherever both apply (tests/unit/test_dns_handler.py checks it).

Rules (docs/dns.md, "RFC edge cases"):

- shorter than a header, QR set, or no readable question: dropped, no reply;
- a header and question that parse with a malformed rest (records past the end, two OPT
  records, an OPT outside the additional section, bytes after the last record, broken
  record data; :mod:`fedns.wire`): FORMERR with the question echoed;
- opcode other than QUERY: NOTIMP, the question echoed, RD and CD not copied; a
  question count other than one: FORMERR;
- signed with TSIG: we hold no keys, so NOTAUTH with an unsigned TSIG, error BADKEY
  (RFC 8945 5.2.2);
- EDNS(0): every reply to a query with an OPT carries one, with our payload size (1232)
  and the query's DO bit; an EDNS version above 0 gets BADVERS; NSID (RFC 5001) is
  answered with the server identity; REFUSED carries Extended DNS Error 20, Not
  Authoritative (18, Prohibited, for a refused zone transfer; RFC 8914);
- QCLASS ANY gets the IN data; class CH answers ``id.server.`` and ``hostname.bind.`` TXT
  with the server identity, and REFUSED for the rest;
- over UDP the reply must fit min(client size, 1232) with EDNS, 512 without: first the
  additional section is left out (no TC, RFC 2181 9), then the records (TC=1);
  over TCP it comes whole;
- AXFR and IXFR (:mod:`fedns.transfer`): over TCP from allowed networks, several
  messages; AXFR over UDP, or from elsewhere, REFUSED; IXFR over UDP our SOA alone
  (RFC 1995 2), and without the client's SOA in the authority section FORMERR;
- with a client topology (:mod:`fedns.topology`), answers that carry placements are
  picked for where the client is (its EDNS Client Subnet option, else its address),
  and an ECS option in the query comes back with its scope.

Any exception in handling one message is counted and logged, and the message dropped:
one bad packet never stops the responder.

Replies to fast-path queries may be kept whole (``reply_cache``, on in the responder): keyed
by the query's bytes after its ID, one per rotation of a round-robin answer, dropped whenever
the table changes. A repeated query then costs one dictionary look-up and a concatenation
(issue 12: the handler's share of CPU per query was cut from about 3.2 us).

What was asked and answered is counted in plain lists (questions by type, replies by rcode,
handling time in :data:`DURATION_BOUNDS` buckets), which :mod:`fedns.metrics` reads only when
``/metrics`` is scraped: a few list increments a query, no metrics library on the hot path.
"""

from __future__ import annotations

import logging
import struct
import time
from bisect import bisect_left
from typing import Any, Protocol

import dns.message
import dns.rcode

from fedns.table import EMPTY, FLAG_AA, AnswerTable, Variant
from fedns.topology import ClientTopology
from fedns.transfer import History, TransferPolicy
from fedns.wire import Scan, scan

log = logging.getLogger("fedns.handler")

QR, OPCODE_MASK, TC, RD, CD = 0x8000, 0x7800, 0x0200, 0x0100, 0x0010
NSID, ECS, EDE = 3, 8, 15  # EDNS option codes
EDE_PROHIBITED, EDE_NOT_AUTHORITATIVE = 18, 20  # RFC 8914 info codes
FORMERR, NOTIMP, REFUSED, NOTAUTH, BADVERS, BADKEY = 1, 4, 5, 9, 16, 17
SOA, TXT = 6, 16
OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY_TYPE = 41, 249, 250, 251, 252, 253, 254, 255
IN, CH, NONE_CLASS, ANY_CLASS = 1, 3, 254, 255
UPDATE = 5 << 11  # the opcode, in place in the flags
CHAOS_NAMES = (b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00")  # CH TXT: who answered
MAX_IDENTITY = 255  # bytes: one TXT string
PAYLOAD_SIZE = 1232  # DNS flag day 2020: no fragmented UDP
DO_BIT = 0x8000
# Handling time buckets (seconds; le): 8 us doubling to about 0.5 s. A fast-path answer takes
# a few microseconds, so CoreDNS's buckets (from 0.25 ms) would put every query in the first.
DURATION_BOUNDS = tuple(0.000008 * 2**i for i in range(17))
_HEADER = struct.Struct("!HHHHHH")
_OPT_FIELDS = struct.Struct("!HHBBHH")  # type, class (size), ext-rcode, version, flags, rdlength


def _option(wire: bytes, start: int, end: int, wanted: int) -> bytes | None | bool:
    """The data of option ``wanted`` in OPT rdata ``wire[start:end]``; None if absent, False if broken."""
    i = start
    while i < end:
        if end - i < 4:
            return False
        code, length = (wire[i] << 8) | wire[i + 1], (wire[i + 2] << 8) | wire[i + 3]
        if i + 4 + length > end:
            return False
        if code == wanted:
            return wire[i + 4 : i + 4 + length]
        i += 4 + length
    return None


class HasTable(Protocol):
    table: AnswerTable


def opt_record(*, payload: int, do: bool, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT record: root owner, payload size, extended rcode, version 0, DO, options."""
    return b"\x00" + _OPT_FIELDS.pack(OPT, payload, ext_rcode, 0, DO_BIT if do else 0, len(options)) + options


def ede_option(info_code: int, text: bytes = b"") -> bytes:
    """An Extended DNS Error option (RFC 8914)."""
    return struct.pack("!HHH", EDE, 2 + len(text), info_code) + text


def check_identity(identity: str) -> bytes:
    """The server identity as bytes; raises ValueError when it cannot be served."""
    data = identity.encode("utf-8")
    if len(data) > MAX_IDENTITY:
        raise ValueError(f"the server identity is {len(data)} bytes; at most {MAX_IDENTITY}")
    if any(b < 0x20 or b == 0x7F for b in data):
        raise ValueError(f"the server identity {identity!r} has control characters")
    return data


def chaos_txt(identity: bytes) -> Variant:
    """The answer to ``id.server. CH TXT``: one TXT record, owner a pointer to the question."""
    rdata = bytes([len(identity)]) + identity
    body = b"\xc0\x0c" + struct.pack("!HHIH", TXT, CH, 0, len(rdata)) + rdata
    return (1, 0, 0, body, 1, 0, 0, body)


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
        identity: str = "",
        reply_cache: int = 0,
    ) -> None:
        """``identity`` names this server in NSID and ``id.server.`` answers; "" answers neither.
        ``reply_cache``: whole replies kept for that many fast-path queries (0: none); whoever
        changes the table calls :meth:`forget` (the responder makes it a view listener)."""
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
        self.qtypes = [0] * 65536  # questions answered, by QTYPE
        self.duration_counts = [0] * (len(DURATION_BOUNDS) + 1)  # messages by handling time; last: +Inf
        self.duration_sum = 0.0
        self._opts = {
            (do, ext): opt_record(payload=payload_size, do=do, ext_rcode=ext) for do in (False, True) for ext in (0, 1)
        }
        self._refused_opts = {
            do: opt_record(payload=payload_size, do=do, options=ede_option(EDE_NOT_AUTHORITATIVE)) for do in (False, True)
        }
        ident = check_identity(identity)
        self.identity = identity
        self._nsid = struct.pack("!HH", NSID, len(ident)) + ident if ident else b""
        self._chaos = chaos_txt(ident) if ident else None
        self._last_error_log = 0.0
        # Query bytes after the ID -> [reply tails after the ID, cursor, rcode, qtype, truncated
        # flags]: one per rotation, so round robin goes on. Not with a client topology (the
        # answer depends on who asks).
        self.cache_limit = reply_cache if topology is None else 0
        self._udp_replies: dict[bytes, list] = {}
        self._tcp_replies: dict[bytes, list] = {}
        self._cached_table: AnswerTable | None = None

    # -- entry point -------------------------------------------------------------------

    def handle(self, wire: bytes, tcp: bool = False, peer: str | None = None) -> bytes | list[bytes] | None:
        """The reply to one message; a list of messages for a zone transfer; None: drop it.

        ``peer`` is the client's address: needed for zone transfer and a client topology.
        """
        started = time.perf_counter()
        try:
            tail = self.replay(wire[2:], tcp) if self.cache_limit else None
            if tail is not None:  # a query seen since the table last changed
                reply = wire[:2] + tail
            else:
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
        self.observe(time.perf_counter() - started)
        return reply

    def replay(self, key: bytes, tcp: bool = False) -> bytes | None:
        """The stored reply, after its 2-byte ID, to a query whose bytes after the ID are
        ``key``, counted as answered; None if this query was not seen since the table
        last changed. Batched UDP (fedns.mmsg) calls it first and :meth:`handle` only on
        a miss, timing the hits of a batch together (:meth:`observe`)."""
        if self.view.table is not self._cached_table:
            self.forget()
        entry = (self._tcp_replies if tcp else self._udp_replies).get(key)
        if entry is None:
            return None
        tails = entry[0]
        i = entry[1]
        if len(tails) > 1:
            entry[1] = i + 1 if i + 1 < len(tails) else 0
        self.rcodes[entry[2]] += 1
        self.qtypes[entry[3]] += 1
        if entry[4][i]:
            self.truncated += 1
        return tails[i]

    def observe(self, took: float, messages: int = 1) -> None:
        """Count ``messages`` handled in ``took`` seconds in all (each at the mean) in the
        handling-time histogram."""
        self.duration_sum += took
        self.duration_counts[bisect_left(DURATION_BOUNDS, took / messages)] += messages

    def forget(self, table: AnswerTable | None = None) -> None:
        """Drop the cached replies: the table changed (a view listener, fedns.app)."""
        self._udp_replies.clear()
        self._tcp_replies.clear()
        self._cached_table = self.view.table

    def _remember(
        self, wire: bytes, tcp: bool, qid: int, flags: int, question: bytes, table: AnswerTable, qname: bytes,
        qtype: int, edns_size: int, do: bool,
    ) -> bytes:
        """Render the reply to this query in every rotation, keep them, and send the one the
        answer's own cursor is at (so queries that differ in a cookie or in case still go round)."""
        bits, variants, first = table.rotations(qname, qtype)
        tails, truncs = [], []
        composed: dict[int, tuple[bytes, bool]] = {}  # a weighted schedule repeats its variants
        for variant in variants:
            done = composed.get(id(variant))
            if done is None:
                reply, truncated = self._compose(qid, flags, question, bits, variant, edns_size, do, tcp)
                done = composed[id(variant)] = (reply[2:], truncated)
            tails.append(done[0])
            truncs.append(done[1])
        cache = self._tcp_replies if tcp else self._udp_replies
        if len(cache) >= self.cache_limit:
            cache.clear()  # a flood of names: start again rather than grow
        cache[wire[2:]] = [tails, (first + 1) % len(tails), bits & 0xF, qtype, truncs]
        self.rcodes[bits & 0xF] += 1
        self.qtypes[qtype] += 1
        if truncs[first]:
            self.truncated += 1
        return wire[:2] + tails[first]

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
            if rdlen and _option(wire, qend + 11, n, NSID) is not None:
                return None  # NSID asked for, or broken options: the slow path answers
            edns_size, do = size, bool(eflags & DO_BIT)
        else:
            if qend != n:
                return None
            edns_size, do = -1, False
        question = wire[12:qend]
        qname = question[:-4].lower()
        table = self.view.table
        if self.topology is not None and (qname, qtype) in table.placed:
            ecs = _option(wire, qend + 11, n, ECS) if ar else None
            if ecs is False:
                return None  # malformed options: the slow path decides
            return self._placed(qid, flags, question, table, qname, qtype, edns_size, do, tcp, peer, ecs)
        if self.cache_limit:
            return self._remember(wire, tcp, qid, flags, question, table, qname, qtype, edns_size, do)
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
        options: bytes = b"",
    ) -> bytes:
        """An answer ordered for where the client is (fedns.topology); ``options``: more EDNS
        options for the reply (NSID)."""
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
                opt = opt_record(payload=self.payload_size, do=do, options=rdata + options)
        if place is None and peer is not None and (ecs is None or opt is None):
            place = topo.of_ip(peer)
        if opt is None and options and edns_size >= 0:
            opt = opt_record(payload=self.payload_size, do=do, options=options)
        prepared = table.placed[(qname, qtype)].get(place) if place is not None else None
        if prepared is None:
            bits, variant = table.lookup(qname, qtype)
        else:
            bits, variant = prepared.flags, prepared.pick()
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp, opt)

    def _assemble(self, *reply: Any) -> bytes:
        """:meth:`_compose`'s reply, counted (same arguments)."""
        out, truncated = self._compose(*reply)
        question, bits = reply[2], reply[3]
        self.rcodes[bits & 0xF] += 1
        self.qtypes[(question[-4] << 8) | question[-3]] += 1
        if truncated:
            self.truncated += 1
        return out

    def _compose(
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
    ) -> tuple[bytes, bool]:
        """The reply and whether it was truncated (nothing counted)."""
        flags = QR | (qflags & (RD | CD)) | bits
        an, ns, ar, body = variant[0], variant[1], variant[2], variant[3]
        if edns_size >= 0:
            if opt is None:
                opt = self._refused_opts[do] if bits == REFUSED else self._opts[(do, 0)]
            limit = min(max(edns_size, 512), self.payload_size)
        else:
            opt = b""
            limit = 512
        truncated = False
        if not tcp and 12 + len(question) + len(body) + len(opt) > limit:
            an, ns, ar, body = variant[4], variant[5], variant[6], variant[7]
            if 12 + len(question) + len(body) + len(opt) > limit:
                flags |= TC
                an, ns, ar, body = 0, 0, 0, b""
                truncated = True
        if opt:
            ar += 1
        return _HEADER.pack(qid, flags, 1, an, ns, ar) + question + body + opt, truncated


    # -- slow path ---------------------------------------------------------------------

    def _slow(self, wire: bytes, tcp: bool, peer: str | None = None) -> bytes | list[bytes] | None:
        s = scan(wire)
        if s is None or s.flags & QR:
            return None
        qid, flags = s.qid, s.flags
        opt = self._opts[(s.opt_do, 0)] if s.had_opt else b""
        echo = s.question if s.qdcount == 1 and s.question is not None else b""
        if flags & OPCODE_MASK:
            # Not a query (NOTIFY, UPDATE, ...): NOTIMP without reading further. RD and CD
            # mean something for QUERY only, so they are not copied (genreport's opcodeflg).
            # An UPDATE's zone section is echoed only when it is one (RFC 2136 3.1.1 says FORMERR
            # otherwise, and clients cannot read such a reply).
            if flags & OPCODE_MASK == UPDATE and (s.qtype != SOA or s.qclass in (NONE_CLASS, ANY_CLASS)):
                echo = b""
            return self._error(qid, QR | (flags & OPCODE_MASK), NOTIMP, echo, opt)
        if s.qdcount != 1:
            return self._error(qid, QR | (flags & (RD | CD)), FORMERR, b"", opt)
        if s.question is None:
            return None  # too broken to have a question: dropped
        if s.problem is not None:  # RFC 6891 6.1.1: two OPTs, a misplaced or overrunning one, ...
            return self._error(qid, QR | (flags & (RD | CD)), FORMERR, echo, opt)
        try:
            msg = dns.message.from_wire(wire, keyring=False)  # TSIG read, not validated
        except Exception:  # broken record data (an A record of 3 bytes, a bad option, ...)
            return self._error(qid, QR | (flags & (RD | CD)), FORMERR, echo, opt)
        if msg.tsig is not None:
            return self._badkey(s, msg, opt)
        question = s.question
        edns_size = msg.payload if msg.edns >= 0 else -1
        do = bool(msg.ednsflags & DO_BIT) if msg.edns >= 0 else False
        if msg.edns > 0:
            self.rcodes[BADVERS] += 1
            self.qtypes[s.qtype] += 1
            opt = self._opts[(do, BADVERS >> 4)]
            return _HEADER.pack(qid, QR | (flags & (RD | CD)), 1, 0, 0, 1) + question + opt
        nsid = bool(self._nsid) and msg.edns == 0 and any(o.otype == NSID for o in msg.options)
        qname, qtype, qclass = s.qname, s.qtype, s.qclass
        if qclass == CH:
            if self._chaos is not None and qname in CHAOS_NAMES:
                bits, variant = FLAG_AA, (self._chaos if qtype in (TXT, ANY_TYPE) else EMPTY)
            else:
                bits, variant = REFUSED, EMPTY
        elif qclass != IN and qclass != ANY_CLASS:  # QCLASS ANY gets the IN data, as Knot does
            bits, variant = REFUSED, EMPTY
        elif qtype in (AXFR, IXFR):
            return self._transfer(msg, s, tcp, peer, edns_size, do)
        elif qtype in (MAILA, MAILB):
            bits, variant = NOTIMP, EMPTY
        elif qtype in (OPT, TKEY, TSIG):
            # Meta types are not questions one can ask.
            bits, variant = FORMERR, EMPTY
        else:
            table = self.view.table
            if self.topology is not None and (qname, qtype) in table.placed:
                ecs = next((o for o in msg.options if o.otype == ECS), None)
                return self._placed(
                    qid, flags, question, table, qname, qtype, edns_size, do, tcp, peer,
                    ecs.to_wire() if ecs is not None else None, self._nsid if nsid else b"",
                )
            bits, variant = table.lookup(qname, qtype)
        reply_opt = self._reply_opt(do, bits, nsid=True) if nsid else None
        return self._assemble(qid, flags, question, bits, variant, edns_size, do, tcp, reply_opt)

    def _error(self, qid: int, flags: int, rcode: int, question: bytes, opt: bytes) -> bytes:
        """A reply of a header, the question (b"": none) and our OPT (b"": none)."""
        self.rcodes[rcode] += 1
        if question:
            self.qtypes[(question[-4] << 8) | question[-3]] += 1
        return _HEADER.pack(qid, flags | rcode, 1 if question else 0, 0, 0, 1 if opt else 0) + question + opt

    def _reply_opt(self, do: bool, bits: int, *, nsid: bool = False, ede: int | None = None) -> bytes:
        """Our OPT with the options this reply carries: NSID when asked, an EDE on REFUSED."""
        options = self._nsid if nsid else b""
        if ede is None and bits == REFUSED:
            ede = EDE_NOT_AUTHORITATIVE
        if ede is not None:
            options += ede_option(ede)
        return opt_record(payload=self.payload_size, do=do, options=options)

    def _badkey(self, s: Scan, msg: dns.message.Message, opt: bytes) -> bytes:
        """RFC 8945 5.2.2: a key we do not know (we know none) gets NOTAUTH and an unsigned
        TSIG with error BADKEY: the query's key name, algorithm, time and fudge, no MAC."""
        assert msg.tsig is not None and s.question is not None
        t = msg.tsig[0]
        rdata = (
            t.algorithm.to_wire()
            + struct.pack("!HIHHHHH", t.time_signed >> 32, t.time_signed & 0xFFFFFFFF, t.fudge, 0, t.original_id, BADKEY, 0)
        )
        tsig = msg.tsig.name.to_wire() + struct.pack("!HHIH", TSIG, ANY_CLASS, 0, len(rdata)) + rdata
        self.rcodes[NOTAUTH] += 1
        self.qtypes[s.qtype] += 1
        flags = QR | (s.flags & (RD | CD)) | NOTAUTH
        return _HEADER.pack(s.qid, flags, 1, 0, 0, 2 if opt else 1) + s.question + opt + tsig

    def _transfer(
        self, msg: dns.message.Message, s: Scan, tcp: bool, peer: str | None, edns_size: int, do: bool
    ) -> bytes | list[bytes]:
        """AXFR or IXFR: several messages over TCP to an allowed client; IXFR over UDP: our SOA."""
        assert s.question is not None
        apex, question = s.qname, s.question
        opt = self._opts[(do, 0)] if edns_size >= 0 else b""
        history = self.history
        serial = None
        if s.qtype == IXFR:
            soa = next((rs for rs in msg.authority if rs.rdtype == SOA and len(rs)), None)
            serial = soa[0].serial if soa is not None else None
        if history is None:
            bits = NOTIMP
        elif s.qtype == IXFR and serial is None:
            bits = FORMERR  # RFC 1995 3: an IXFR query carries the client's SOA in authority
        elif s.qtype == IXFR and not tcp:
            # RFC 1995 2: over UDP, our SOA alone: "up to date", or "ask again over TCP".
            # The SOA is public (any SOA query gets it), so no transfer ACL applies.
            table = self.view.table
            if apex in table.zone.apexes:
                bits, variant = table.lookup(apex, SOA)
                return self._assemble(s.qid, s.flags, question, bits, variant, edns_size, do, tcp)
            bits = NOTAUTH
        elif not tcp or not self.transfer.allowed(peer):
            bits = REFUSED
            self.refused_transfers += 1
            if opt:  # RFC 8914 4.19: the client is not allowed to do this
                opt = self._reply_opt(do, bits, ede=EDE_PROHIBITED)
        elif apex not in history.current:
            bits = NOTAUTH  # not the apex of a zone we serve
        else:
            self.transfers += 1
            self.rcodes[0] += 1
            self.qtypes[s.qtype] += 1
            return history.answer(msg, apex, ixfr_serial=serial, opt=opt)
        return self._error(s.qid, QR | (s.flags & (RD | CD)), bits, question, opt)
