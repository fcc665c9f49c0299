"""One message in, one reply out (fedns.handler), without sockets.

The fast path (hand-parsed question, stored answers) and the slow path (dnspython
parses the query) must agree byte for byte wherever both apply; the protocol rules
(EDNS, BADVERS, TC, NOTIMP, FORMERR, drops) are checked on the bytes.
"""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from fedns.handler import Handler
from fedns.view import ZoneView
from fedns.zone import ZoneConfig

G = "web.default.myfed.svc.example.com."
BIG = "big.example.com."
SPECS = {
    "g": {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]},
    "z": {"name": "web.default.myfed.svc.z1.r1.example.com.", "type": "CNAME", "ttl": 5, "targets": [G]},
    "srv": {"name": "_http._tcp." + G, "type": "SRV", "ttl": 5, "targets": ["0 10 80 " + G]},
    "big": {"name": BIG, "type": "A", "ttl": 5, "targets": [f"127.20.{i // 250}.{i % 250 + 1}" for i in range(100)]},
    "srvbig": {
        "name": "_big._tcp.example.com.",
        "type": "SRV",
        "ttl": 5,
        "targets": [f"0 10 80 host{i}.example.com." for i in range(10)],
    },
    **{
        f"h{i}": {"name": f"host{i}.example.com.", "type": "A", "ttl": 5, "targets": ["127.30.0.1", "127.30.0.2", "127.30.0.3"]}
        for i in range(10)
    },
    "v6": {"name": "v6.example.com.", "type": "AAAA", "ttl": 5, "targets": ["fd00::1"]},
    "txt": {"name": "txt.example.com.", "type": "TXT", "ttl": 5, "targets": ["hello"]},
}


@pytest.fixture()
def view() -> ZoneView:
    v = ZoneView(ZoneConfig(apexes=("example.com.", "clusterset.local.")))
    v.replace(SPECS)  # no running loop: builds at once
    return v


def query(name: str, rdtype: str = "A", **kw) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()


def handle(view, wire, *, tcp=False, fast=True):
    return Handler(view, fast_path=fast).handle(wire, tcp=tcp)


NAMES = [G, G.upper(), "wEb.DeFaUlT.myfed.svc.Z1.r1.example.com.", "_http._tcp." + G, "svc.example.com.",
         "nope.example.com.", "example.com.", "EXAMPLE.COM.", "dns-version.clusterset.local.", "example.org.",
         "v6.example.com.", "txt.example.com.", "ns1.example.com.", "x.y.z.nope.clusterset.local."]
TYPES = ["A", "AAAA", "CNAME", "SRV", "TXT", "SOA", "NS", "ANY", "MX", "PTR"]
EDNS = [dict(use_edns=False), dict(use_edns=0), dict(use_edns=0, want_dnssec=True), dict(use_edns=0, payload=4096)]


def test_fast_and_slow_paths_agree_byte_for_byte(view):
    # Two tables built from the same records, so their round-robin cursors move alike, and
    # with the same SOA serial (a clock one second behind: max(serial + 1, clock) agrees even
    # when the two builds straddle a second).
    other = ZoneView(view.config, clock=lambda: view.serial - 1)
    other.replace(SPECS)
    fast, slow = Handler(view), Handler(other, fast_path=False)
    compared = 0
    for name in NAMES:
        for rdtype in TYPES:
            for edns in EDNS:
                for tcp in (False, True):
                    msg = dns.message.make_query(name, rdtype, **edns)
                    if compared % 3 == 0:
                        msg.flags &= ~dns.flags.RD
                    wire = msg.to_wire()
                    assert fast.handle(wire, tcp=tcp) == slow.handle(wire, tcp=tcp), (name, rdtype, edns, tcp)
                    compared += 1
    assert compared == len(NAMES) * len(TYPES) * len(EDNS) * 2 == 1120
    assert fast._fast(query(G, use_edns=0), False) is not None  # the fast path really answered
    assert fast.dropped == slow.dropped == 0


def test_header_flags_id_rd_and_question_echo(view):
    msg = dns.message.make_query("WeB.dEfAuLt.MyFed.svc.example.com.", "A")
    msg.id = 0xBEEF
    wire = msg.to_wire()
    reply = handle(view, wire)
    assert reply[:2] == b"\xbe\xef"
    assert reply[12 : 12 + len(wire) - 12] == wire[12:]  # question byte for byte (0x20 preserved)
    parsed = dns.message.from_wire(reply)
    assert parsed.flags & dns.flags.QR and parsed.flags & dns.flags.AA and parsed.flags & dns.flags.RD
    assert not parsed.flags & dns.flags.RA
    msg.flags = 0  # RD clear: copied
    assert not dns.message.from_wire(handle(view, msg.to_wire())).flags & dns.flags.RD


def test_edns_opt_payload_and_do_bit(view):
    plain = dns.message.from_wire(handle(view, query(G, use_edns=False)))
    assert plain.edns == -1
    with_edns = dns.message.from_wire(handle(view, query(G, use_edns=0, payload=4096)))
    assert with_edns.edns == 0 and with_edns.payload == 1232 and not with_edns.ednsflags & dns.flags.DO
    do = dns.message.from_wire(handle(view, query(G, use_edns=0, want_dnssec=True)))
    assert do.ednsflags & dns.flags.DO


def test_edns_version_above_zero_is_badvers(view):
    reply = dns.message.from_wire(handle(view, query(G, use_edns=1)))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and not reply.answer
    assert str(reply.question[0].name) == G


def test_edns_options_are_accepted(view):
    msg = dns.message.make_query(G, "A", use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")])  # a cookie
    reply = dns.message.from_wire(handle(view, msg.to_wire()))
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 2


def test_udp_truncates_and_tcp_comes_whole(view):
    wire = query(BIG, use_edns=False)
    udp = handle(view, wire)
    assert len(udp) <= 512
    parsed = dns.message.from_wire(udp)
    assert parsed.flags & dns.flags.TC and not parsed.answer
    tcp = dns.message.from_wire(handle(view, wire, tcp=True))
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
    # a client with a large EDNS size still gets at most 1232 over UDP
    edns = handle(view, query(BIG, use_edns=0, payload=4096))
    assert len(edns) <= 1232
    assert dns.message.from_wire(edns).flags & dns.flags.TC


def test_udp_drops_additional_before_truncating(view):
    wire = query("_big._tcp.example.com.", "SRV", use_edns=False)
    full = dns.message.from_wire(handle(view, wire, tcp=True))
    assert len(full.additional) == 10
    udp_bytes = handle(view, wire)
    udp = dns.message.from_wire(udp_bytes)
    assert len(udp_bytes) <= 512 and not udp.flags & dns.flags.TC
    assert len(udp.answer[0]) == 10 and not udp.additional


def test_opcode_other_than_query_is_notimp(view):
    # The reply echoes the question (zone section): an UPDATE's must name an SOA for
    # dnspython to read the reply, so each opcode asks what it would really ask.
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS, dns.opcode.IQUERY):
        msg = dns.message.make_query("example.com." if opcode == dns.opcode.UPDATE else G,
                                     "SOA" if opcode == dns.opcode.UPDATE else "A")
        msg.set_opcode(opcode)
        reply = dns.message.from_wire(handle(view, msg.to_wire()))
        assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == opcode and reply.id == msg.id
        assert not reply.flags & dns.flags.RD  # RD is copied for QUERY only


def test_question_count_other_than_one_is_formerr(view):
    none = struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0)
    assert dns.message.from_wire(handle(view, none)).rcode() == dns.rcode.FORMERR
    two = dns.message.make_query(G, "A")
    two.question.append(dns.message.make_query("x.example.com.", "A").question[0])
    reply = dns.message.from_wire(handle(view, two.to_wire()))
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == two.id


def test_zone_transfers_without_a_history_are_notimp(view):
    # A Handler without a zone history (transfers off); see test_dns_transfer.py for them on.
    for rdtype in ("AXFR", "IXFR"):
        assert dns.message.from_wire(handle(view, query("example.com.", rdtype), tcp=True)).rcode() == dns.rcode.NOTIMP


def test_class_other_than_in_is_refused(view):
    msg = dns.message.make_query("version.bind.", "TXT", "CH")
    reply = dns.message.from_wire(handle(view, msg.to_wire()))
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00",
        b"\x12\x34\x01\x00\x00\x01",  # truncated header
        query(G)[:-3],  # truncated question
        dns.message.make_response(dns.message.make_query(G, "A")).to_wire(),  # QR set
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer loop
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label > 63
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63 + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",  # name > 255
    ],
)
def test_broken_or_response_packets_are_dropped(view, wire):
    # Garbage after the message and a wrong answer count used to be here: their header and
    # question parse, so they now get FORMERR with the question (tests/e2e/test_dns_rfc.py).
    h = Handler(view)
    assert h.handle(wire) is None
    assert h.handle(wire, tcp=True) is None
    assert h.dropped == 2 and h.errors == 0


def test_random_and_mutated_packets_never_raise(view):
    rng = random.Random(20160707)
    h = Handler(view)
    seeds = [query(n, t, use_edns=e) for n in NAMES[:6] for t in ("A", "SRV", "ANY") for e in (False, 0)]
    for i in range(20000):
        if i % 2:
            wire = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        else:
            wire = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                op = rng.randrange(3)
                if op == 0 and wire:
                    wire[rng.randrange(len(wire))] = rng.getrandbits(8)
                elif op == 1:
                    del wire[rng.randrange(len(wire) + 1) :]
                else:
                    wire += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 8)))
            wire = bytes(wire)
        reply = h.handle(wire, tcp=bool(i % 3 == 0))
        if reply is not None:
            dns.message.from_wire(reply)  # whatever we send parses
    assert h.errors == 0
    assert dns.message.from_wire(h.handle(query(G))).rcode() == dns.rcode.NOERROR


def test_counts_replies_by_rcode(view):
    h = Handler(view)
    h.handle(query(G))
    h.handle(query("nope.example.com."))
    h.handle(query("example.org."))
    h.handle(query(G, use_edns=1))
    assert h.stats() == {"NOERROR": 1, "NXDOMAIN": 1, "REFUSED": 1, "BADVERS": 1}


def test_the_reply_cache_gives_the_same_replies_and_counts(view):
    """Whole replies kept per query (Responder's default): the same bytes as the plain fast
    path over every rotation, the same counters, and nothing stale once the table changes."""
    cached, plain = Handler(view, reply_cache=100), Handler(view)
    view.listeners.append(cached.forget)
    for name in NAMES + ["host3.example.com."]:
        for rdtype in TYPES:
            for edns in EDNS:
                for tcp in (False, True):
                    wire = dns.message.make_query(name, rdtype, **edns).to_wire()
                    qname = dns.name.from_text(name).canonicalize().to_wire()
                    k = len(view.table.rotations(qname, dns.rdatatype.from_text(rdtype))[1])
                    ours = [cached.handle(wire, tcp=tcp) for _ in range(2 * k)]
                    theirs = [plain.handle(wire, tcp=tcp) for _ in range(2 * k)]
                    assert sorted(ours) == sorted(theirs), (name, rdtype, edns, tcp)
                    assert ours[:k] == ours[k:]  # round robin goes on, in order
    assert cached.rcodes == plain.rcodes and cached.qtypes == plain.qtypes and cached.truncated == plain.truncated
    assert cached.duration_counts != [0] * len(cached.duration_counts)
    assert 0 < len(cached._udp_replies) <= 100
    before = dns.message.from_wire(cached.handle(query("txt.example.com.", "TXT"))).answer
    view.put("txt", {**SPECS["txt"], "targets": ["changed"]})  # no loop: applied at once
    after = dns.message.from_wire(cached.handle(query("txt.example.com.", "TXT"))).answer
    assert before != after and after[0][0].strings == (b"changed",)


def test_replay_gives_the_stored_reply_after_the_id_counts_it_and_forgets_on_change(view):
    """Batched UDP's hit path (fedns.mmsg): the bytes after the ID of a query seen before
    give the stored reply after its ID, counted as handle() counts it; a change of the
    table or an unseen query gives None; observe() puts a batch's hits in the histogram."""
    h = Handler(view, reply_cache=100)
    view.listeners.append(h.forget)
    wire = query("txt.example.com.", "TXT")
    first = h.handle(wire)
    again = bytearray(wire)
    again[:2] = b"\x12\x34"
    tail = h.replay(bytes(again[2:]))
    assert tail == first[2:]
    assert dns.message.from_wire(b"\x12\x34" + tail).id == 0x1234
    assert h.rcodes[dns.rcode.NOERROR] == 2 and h.qtypes[dns.rdatatype.TXT] == 2
    assert h.replay(query("unseen.example.com.")[2:]) is None
    counts = list(h.duration_counts)
    h.observe(0.002, 4)  # four hits in 2 ms: each 0.5 ms
    changed = [b - a for a, b in zip(counts, h.duration_counts)]
    assert sum(changed) == 4 and changed.count(4) == 1
    view.put("txt", {**SPECS["txt"], "targets": ["changed"]})
    assert h.replay(bytes(again[2:])) is None
