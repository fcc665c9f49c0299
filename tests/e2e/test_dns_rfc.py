"""The replies the RFCs require at the edges (issue 12, section 2; docs/dns.md "RFC edge cases").

Each case is asked twice: against the handler (dnspython-built queries and hand-made wire
bytes, through a fast-path and a slow-path handler that must reply byte for byte alike),
and end to end over loopback UDP/TCP, to an in-process responder or a ``python -m fedns``
process. Cases: unknown TSIG key (NOTAUTH + BADKEY), FORMERR with the question echoed for a
malformed rest, an OPT in every reply to an EDNS query (NOTIMP, zone transfers), wildcard
and host-name checks at the record source, IXFR over UDP, QCLASS ANY, NSID and
``id.server.``/``hostname.bind.`` CH TXT, and Extended DNS Errors on REFUSED.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import pytest
import yaml

from test_dns_server import Running

from fedns.handler import Handler
from fedns.records import InvalidRecord, collect, parse_spec
from fedns.transfer import History, TransferPolicy
from fedns.view import ZoneView
from fedns.wire import scan
from fedns.zone import ZoneConfig

G = "web.default.myfed.svc.example.com."
MIXED = "WeB.dEfAuLt.MyFed.svc.example.com."  # 0x20 case: every echo must keep it
SPECS = {
    "g": {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]},
    "srv": {"name": "_http._tcp." + G, "type": "SRV", "ttl": 5, "targets": ["0 10 80 " + G]},
    "txt": {"name": "_acme.example.com.", "type": "TXT", "ttl": 5, "targets": ["underscores are fine in TXT"]},
}
IDENTITY = "ns-rfc.test"
KEY = dns.tsig.Key("Fed-Key.example.", base64.b64encode(b"k" * 32).decode(), "hmac-sha256")
QR, AA, RD, CD, AD = 0x8000, 0x0400, 0x0100, 0x0010, 0x0020
NOTAUTH, BADKEY = 9, 17


# -- handlers and wire helpers ---------------------------------------------------------------


def make_view(specs=SPECS) -> ZoneView:
    # A fixed clock: both views of a Pair get the same serial, so transfers agree byte for byte.
    view = ZoneView(ZoneConfig(apexes=("example.com.", "clusterset.local.")), clock=lambda: 1_700_000_000.0)
    view.replace(specs)  # no running loop: builds at once
    return view


class Pair:
    """A fast-path and a slow-path handler over two views of the same records."""

    def __init__(self, specs=SPECS, *, transfers: bool = False, allow=("127.0.0.1/32",), identity=IDENTITY) -> None:
        self.handlers = []
        for fast in (True, False):
            view = make_view(specs)
            history = None
            if transfers:
                history = History()
                history.record(view.table)
            self.handlers.append(
                Handler(view, fast_path=fast, history=history, transfer=TransferPolicy(allow), identity=identity)
            )
        self.fast, self.slow = self.handlers

    def ask(self, wire: bytes, *, tcp: bool = False, peer: str | None = "127.0.0.1"):
        a = self.fast.handle(wire, tcp=tcp, peer=peer)
        b = self.slow.handle(wire, tcp=tcp, peer=peer)
        assert a == b, "the fast and slow paths disagree"
        return a


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair()


def question(name: str, rdtype: int = 1, rdclass: int = 1) -> bytes:
    return dns.name.from_text(name).to_wire() + struct.pack("!HH", rdtype, rdclass)


def rr(owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes, *, rdlen: int | None = None) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata) if rdlen is None else rdlen) + rdata


def opt(*, do: bool = False, rdata: bytes = b"", owner: bytes = b"\x00", rdlen: int | None = None) -> bytes:
    return rr(owner, 41, 1232, 0x8000 if do else 0, rdata, rdlen=rdlen)


def message(q: bytes, an=(), ns=(), ar=(), *, qid=0x1234, flags=RD, counts=None, tail=b"") -> bytes:
    counts = counts or (1, len(an), len(ns), len(ar))
    return struct.pack("!HHHHHH", qid, flags, *counts) + q + b"".join(an) + b"".join(ns) + b"".join(ar) + tail


def header(reply: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack_from("!HHHHHH", reply)


def options(reply: dns.message.Message, code: int) -> list[bytes]:
    return [o.to_wire() for o in reply.options if o.otype == code]


def signed(name: str = G, rdtype: str = "A", **kw) -> tuple[dns.message.Message, bytes]:
    q = dns.message.make_query(name, rdtype, **kw)
    q.use_tsig(KEY)
    return q, q.to_wire()


def check_badkey(reply: bytes, query_wire: bytes, *, edns: bool) -> dns.message.Message:
    m = dns.message.from_wire(reply, keyring=False)  # read the TSIG without validating it
    sent = dns.message.from_wire(query_wire, keyring=False)
    assert m.rcode() == NOTAUTH and m.id == sent.id and not m.flags & AA
    qlen = len(sent.question[0].name.to_wire()) + 4
    assert reply[12 : 12 + qlen] == query_wire[12 : 12 + qlen]  # the question byte for byte
    assert m.question == sent.question and not m.answer and not m.authority
    t = m.tsig[0]
    assert m.tsig.name == sent.tsig.name and t.algorithm == sent.tsig[0].algorithm
    assert t.error == BADKEY and t.mac == b"" and t.original_id == sent.tsig[0].original_id
    assert t.time_signed == sent.tsig[0].time_signed and t.other == b""
    assert m.tsig.rdclass == dns.rdataclass.ANY
    assert (m.edns == 0) == edns
    # a validating client (the key's owner) is told BADKEY, not a bad signature
    with pytest.raises(dns.tsig.PeerBadKey):
        dns.message.from_wire(reply, keyring=KEY, request_mac=sent.tsig[0].mac)
    return m


# -- unknown TSIG key: NOTAUTH + BADKEY (RFC 8945 5.2.2) ------------------------------------


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("edns", [False, True])
def test_unknown_tsig_key_gets_notauth_badkey(pair, tcp, edns):
    q, wire = signed(MIXED, use_edns=0 if edns else None)
    reply = pair.ask(wire, tcp=tcp)
    m = check_badkey(reply, wire, edns=edns)
    assert str(m.question[0].name) == MIXED  # the client's case
    assert header(reply)[5] == (2 if edns else 1)  # OPT, then the TSIG last
    assert pair.slow.rcodes[NOTAUTH] >= 1


def test_unknown_tsig_key_on_raw_wire_echoes_key_and_algorithm():
    p = Pair()
    algorithm = dns.name.from_text("HMAC-MD5.SIG-ALG.REG.INT.").to_wire()
    rdata = algorithm + struct.pack("!HIH", 0, 1_700_000_000, 300) + struct.pack("!H", 16) + b"m" * 16
    rdata += struct.pack("!HHH", 0x4321, 0, 0)
    tsig = rr(dns.name.from_text("Some.KEY.").to_wire(), 250, 255, 0, rdata)
    wire = message(question(G), ar=[tsig], qid=0x4321)
    reply = p.ask(wire)
    m = dns.message.from_wire(reply, keyring=False)
    assert m.rcode() == NOTAUTH and m.tsig[0].error == BADKEY
    assert str(m.tsig.name) == "Some.KEY." and str(m.tsig[0].algorithm) == "HMAC-MD5.SIG-ALG.REG.INT."
    assert m.tsig[0].time_signed == 1_700_000_000 and m.tsig[0].fudge == 300 and m.tsig[0].original_id == 0x4321
    assert reply.endswith(dns.name.from_text("Some.KEY.").to_wire() + struct.pack("!HHIH", 250, 255, 0, len(algorithm) + 16)
                          + algorithm + struct.pack("!HIHHHHH", 0, 1_700_000_000, 300, 0, 0x4321, BADKEY, 0))
    # a TSIG that is not the last record is FORMERR (RFC 8945 5.1), not BADKEY
    reply = p.ask(message(question(G), ar=[tsig, opt()]))
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_signed_zone_transfer_gets_badkey_not_the_zone():
    p = Pair(transfers=True)
    for rdtype in ("AXFR", "IXFR"):
        q, wire = signed("example.com.", rdtype)
        reply = p.ask(wire, tcp=True)
        assert isinstance(reply, bytes)  # one message, no records
        check_badkey(reply, wire, edns=False)
    assert p.slow.transfers == 0


def test_unknown_tsig_key_over_udp_and_tcp_sockets():
    running = Running(records=SPECS)
    try:
        for query in (dns.query.udp, dns.query.tcp):
            q, _ = signed(G, use_edns=0)
            with pytest.raises(dns.tsig.PeerBadKey):  # dnspython reads the BADKEY and says so
                query(q, "127.0.0.1", port=running.port, timeout=2)
        # the same over raw sockets, byte for byte what the handler says
        q, wire = signed(G)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(wire, ("127.0.0.1", running.port))
            check_badkey(s.recv(65535), wire, edns=False)
        with socket.create_connection(("127.0.0.1", running.port), timeout=2) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            check_badkey(read_frame(s), wire, edns=False)
    finally:
        running.close()


# -- FORMERR with the question echoed (RFC 6891 6.1.1) ---------------------------------------

Q = question(MIXED)
A_RR = rr(b"\xc0\x0c", 1, 1, 5, b"\x7f\x00\x00\x01")
FORMERR_CASES = {
    "two OPT records": (message(Q, ar=[opt(), opt(do=True)]), True),
    "OPT in the answer section": (message(Q, an=[opt()]), True),
    "OPT in the authority section": (message(Q, ns=[opt()]), True),
    "OPT rdlength overruns the message": (message(Q, ar=[opt(rdata=b"\x00\x0a", rdlen=40)]), True),
    "OPT owner not the root": (message(Q, ar=[opt(owner=b"\x01x\x00")]), True),
    "OPT option longer than the OPT": (message(Q, ar=[opt(rdata=struct.pack("!HH", 10, 50) + b"ab")]), True),
    "OPT with DO, then a record past the end": (message(Q, ar=[opt(do=True)], counts=(1, 0, 0, 2)), True),
    "TSIG before the OPT": (message(Q, ar=[rr(b"\x01k\x00", 250, 255, 0, b"\x00" * 10), opt()]), True),
    "garbage after the message": (message(Q, tail=b"junk"), False),
    "answer count 5, no answers": (message(Q, counts=(1, 5, 0, 0)), False),
    "A record past the end": (message(Q, ar=[rr(b"\x00", 1, 1, 0, b"\x7f", rdlen=4)]), False),
    "A record of 3 bytes": (message(Q, an=[rr(b"\xc0\x0c", 1, 1, 5, b"\x7f\x00\x01")]), False),
    "good answer, broken authority": (message(Q, an=[A_RR], ns=[b"\xc0"], counts=(1, 1, 1, 0)), False),
}


@pytest.mark.parametrize("case", list(FORMERR_CASES))
@pytest.mark.parametrize("tcp", [False, True])
def test_malformed_rest_gets_formerr_with_the_question(pair, case, tcp):
    wire, had_opt = FORMERR_CASES[case]
    reply = pair.ask(wire, tcp=tcp)
    assert reply is not None, "dropped"
    qid, flags, qd, an, ns, ar = header(reply)
    assert qid == 0x1234 and flags == QR | RD | dns.rcode.FORMERR and (qd, an, ns) == (1, 0, 0)
    assert reply[12 : 12 + len(Q)] == Q  # the question byte for byte, 0x20 case kept
    m = dns.message.from_wire(reply)
    assert (m.edns == 0) == had_opt and ar == (1 if had_opt else 0)
    if had_opt:
        assert m.payload == 1232
        assert bool(m.ednsflags & dns.flags.DO) == ("DO" in case)  # the first OPT's DO bit


def test_scan_names_the_problem():
    assert scan(FORMERR_CASES["two OPT records"][0]).problem == "more than one OPT record"
    assert scan(FORMERR_CASES["OPT in the answer section"][0]).problem == "an OPT record outside the additional section"
    assert "overruns the message" in scan(FORMERR_CASES["OPT rdlength overruns the message"][0]).problem
    assert scan(FORMERR_CASES["garbage after the message"][0]).problem == "4 bytes after the last record"
    assert scan(dns.message.make_query(G, "A", use_edns=0).to_wire()).problem is None


@pytest.mark.parametrize(
    "wire",
    [
        struct.pack("!HHHHHH", 1, RD, 1, 0, 0, 0),  # a question count of one, no question
        struct.pack("!HHHHHH", 1, RD, 1, 0, 0, 1) + Q[:-3],  # the question cut short
        struct.pack("!HHHHHH", 1, RD, 1, 0, 0, 1) + b"\xc0\x0c\x00\x01\x00\x01" + opt(),  # pointer loop
        struct.pack("!HHHHHH", 1, RD, 1, 0, 0, 1) + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01" + opt(),  # bad label
    ],
)
def test_too_broken_for_a_question_is_still_dropped(wire):
    p = Pair()
    assert p.ask(wire) is None and p.ask(wire, tcp=True) is None
    assert p.slow.dropped == 2 and p.slow.errors == 0


def test_formerr_over_udp_and_tcp_sockets():
    running = Running(records=SPECS)
    try:
        for case in ("two OPT records", "OPT in the authority section", "OPT rdlength overruns the message",
                     "garbage after the message"):
            wire, had_opt = FORMERR_CASES[case]
            for reply in (udp_raw(running.port, wire), tcp_raw(running.port, wire)):
                assert reply is not None, case
                m = dns.message.from_wire(reply)
                assert m.rcode() == dns.rcode.FORMERR and reply[12 : 12 + len(Q)] == Q and (m.edns == 0) == had_opt
        assert running.responder.handler.rcodes[dns.rcode.FORMERR] == 8
    finally:
        running.close()


# -- an OPT in every reply to a query that had one ------------------------------------------


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.STATUS, dns.opcode.IQUERY, 15])
def test_notimp_echoes_the_question_with_opt_and_no_rd_cd(pair, opcode):
    wire = message(Q, ar=[opt(do=True)], flags=(opcode << 11) | RD | CD | AD)
    reply = pair.ask(wire)
    qid, flags, qd, an, ns, ar = header(reply)
    assert flags == QR | (opcode << 11) | dns.rcode.NOTIMP  # neither RD, CD nor AD
    assert (qd, an, ns, ar) == (1, 0, 0, 1) and reply[12 : 12 + len(Q)] == Q
    m = dns.message.from_wire(reply)
    assert m.edns == 0 and m.payload == 1232 and m.ednsflags & dns.flags.DO
    no_edns = pair.ask(message(Q, flags=(opcode << 11) | RD))
    assert header(no_edns)[1:] == (QR | (opcode << 11) | dns.rcode.NOTIMP, 1, 0, 0, 0)


def test_notimp_update_echoes_its_zone_only_when_it_is_one(pair):
    update = message(question("example.com.", 6), ar=[opt()], flags=5 << 11)
    reply = dns.message.from_wire(pair.ask(update))
    assert reply.rcode() == dns.rcode.NOTIMP and str(reply.zone[0].name) == "example.com." and reply.edns == 0
    broken = pair.ask(message(question(G, 1), ar=[opt()], flags=5 << 11))  # zone type A: unreadable if echoed
    assert header(broken)[2] == 0 and dns.message.from_wire(broken).rcode() == dns.rcode.NOTIMP


MANY = {f"h{i}": {"name": f"host{i}.example.com.", "type": "A", "ttl": 5, "targets": [f"127.40.{i // 250}.{i % 250 + 1}"]}
        for i in range(1500)}


def xfr_opt_check(messages: list[bytes], *, edns: bool, do: bool = False) -> int:
    """Every message has the OPT (or none has); the records come whole; returns their count."""
    records = 0
    for i, wire in enumerate(messages):
        m = dns.message.from_wire(wire, xfr=True, origin=None)
        assert (m.edns == 0) == edns, f"message {i + 1} of {len(messages)}"
        if edns:
            assert m.payload == 1232 and bool(m.ednsflags & dns.flags.DO) == do and header(wire)[5] == 1
        assert (len(m.question) == 1) == (i == 0)
        records += sum(len(rrset) for rrset in m.answer)
    return records


@pytest.fixture(scope="module")
def many() -> Pair:
    return Pair(MANY, transfers=True)


@pytest.mark.parametrize("do", [False, True])
def test_every_zone_transfer_message_carries_the_opt(many, do):
    p = many
    messages = p.ask(dns.message.make_query("example.com.", "AXFR", use_edns=0, want_dnssec=do).to_wire(), tcp=True)
    assert isinstance(messages, list) and len(messages) >= 2
    plain = p.ask(dns.message.make_query("example.com.", "AXFR").to_wire(), tcp=True)
    assert xfr_opt_check(messages, edns=True, do=do) == xfr_opt_check(plain, edns=False) == 1500 + 4  # SOA x2, NS, glue
    serial = p.fast.history.current[next(iter(p.fast.history.current))].serial
    up_to_date = p.ask(ixfr_query("example.com.", serial, use_edns=0), tcp=True)
    assert xfr_opt_check(up_to_date, edns=True) == 1


def test_zone_transfer_opt_over_tcp_socket():
    running = Running(records=MANY)
    try:
        wire = dns.message.make_query("example.com.", "AXFR", use_edns=0).to_wire()
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            messages, soas = [], 0
            while soas < 2 and len(messages) < 50:
                messages.append(read_frame(s))
                soas += sum(1 for rrset in dns.message.from_wire(messages[-1], xfr=True).answer if rrset.rdtype == 6)
        assert soas == 2 and len(messages) >= 2
        assert xfr_opt_check(messages, edns=True) == 1500 + 4
    finally:
        running.close()


def test_refused_transfer_has_opt_and_ede_prohibited():
    p = Pair(transfers=True, allow=("10.0.0.0/8",))
    for tcp in (True, False):
        reply = dns.message.from_wire(p.ask(dns.message.make_query("example.com.", "AXFR", use_edns=0).to_wire(), tcp=tcp))
        assert reply.rcode() == dns.rcode.REFUSED and reply.edns == 0
        assert [(e.code, e.text) for e in reply.extended_errors()] == [(dns.edns.EDECode.PROHIBITED, None)]


# -- wildcards and host names: refused at the record source ---------------------------------


@pytest.mark.parametrize(
    "spec,words",
    [
        ({"name": "*.wild.example.com.", "type": "A", "targets": ["127.0.0.1"]}, "wildcards are not served"),
        ({"name": "*.example.com", "type": "TXT", "targets": ["x"]}, "wildcards are not served"),
        ({"name": "a.*.example.com.", "type": "CNAME", "targets": [G]}, "'*' label"),
        ({"name": "_x.example.com.", "type": "A", "targets": ["127.0.0.1"]}, "not a host name"),
        ({"name": "a_b.example.com.", "type": "AAAA", "targets": ["fd00::1"]}, "label 'a_b'"),
        ({"name": "-x.example.com.", "type": "A", "targets": ["127.0.0.1"]}, "not at either end"),
        ({"name": "x-.example.com.", "type": "A", "targets": ["127.0.0.1"]}, "not a host name"),
        ({"name": "a b.example.com.", "type": "A", "targets": ["127.0.0.1"]}, "not a host name"),
    ],
)
def test_wildcards_and_bad_host_names_are_refused(spec, words):
    with pytest.raises(InvalidRecord, match=re.escape(words)) as err:
        parse_spec(spec, source="bad-one")
    assert 'dnsrecord "bad-one": spec.name:' in str(err.value)


def test_underscores_and_digits_are_fine_where_allowed():
    assert parse_spec({"name": "_http._tcp." + G, "type": "SRV", "targets": ["0 1 80 " + G]}).name == "_http._tcp." + G
    assert parse_spec({"name": "_acme.example.com.", "type": "TXT", "targets": ["t"]}).type == "TXT"
    assert parse_spec({"name": "1st.us-east-1.example.com.", "type": "A", "targets": ["127.0.0.1"]}).ttl == 5


BAD = {
    "wild": {"name": "*.wild.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.66"]},
    "under": {"name": "_x.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.67"]},
}


def test_a_bad_record_is_reported_and_the_zone_still_served():
    recordsets, problems = collect({**SPECS, **BAD})
    assert len(recordsets) == len(SPECS) and len(problems) == 2
    assert any(p.startswith('dnsrecord "wild"') and "wildcards are not served" in p for p in problems)
    view = make_view({**SPECS, **BAD})
    assert sorted(view.problems) == sorted(problems)
    h = Handler(view)
    assert dns.message.from_wire(h.handle(dns.message.make_query(G, "A").to_wire())).rcode() == dns.rcode.NOERROR
    for name in ("x.wild.example.com.", "*.wild.example.com.", "_x.example.com."):
        assert dns.message.from_wire(h.handle(dns.message.make_query(name, "A").to_wire())).rcode() == dns.rcode.NXDOMAIN


# -- IXFR over UDP: our SOA (RFC 1995 2) ---------------------------------------------------


def ixfr_query(zone: str, serial: int | None, **kw) -> bytes:
    q = dns.message.make_query(zone, "IXFR", **kw)
    if serial is not None:
        soa = f"ns1.{zone} hostmaster.{zone} {serial} 60 10 86400 5"
        q.authority.append(dns.rrset.from_text(zone, 5, "IN", "SOA", soa))
    return q.to_wire()


@pytest.mark.parametrize("edns", [False, True])
def test_ixfr_over_udp_answers_our_soa(edns):
    p = Pair(transfers=True)
    current = p.fast.view.table.serial
    for serial in (current - 7, current, current + 1):  # behind, up to date, ahead: the SOA alone
        reply = dns.message.from_wire(p.ask(ixfr_query("Example.COM.", serial, use_edns=0 if edns else None)))
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert [(str(r.name), r.rdtype) for r in reply.answer] == [("Example.COM.", 6)]
        assert reply.answer[0][0].serial == current and not reply.authority
        assert reply.question[0].rdtype == dns.rdatatype.IXFR and (reply.edns == 0) == edns
    for tcp in (False, True):  # without the client's SOA: FORMERR
        reply = dns.message.from_wire(p.ask(ixfr_query("example.com.", None, use_edns=0), tcp=tcp))
        assert reply.rcode() == dns.rcode.FORMERR and reply.question[0].rdtype == dns.rdatatype.IXFR and reply.edns == 0
    not_apex = dns.message.from_wire(p.ask(ixfr_query(G, 1)))
    assert not_apex.rcode() == dns.rcode.NOTAUTH
    assert p.fast.refused_transfers == 0


def test_ixfr_over_udp_socket():
    running = Running(records=SPECS)
    try:
        serial = running.responder.view.serial
        q = dns.message.from_wire(ixfr_query("example.com.", serial - 1, use_edns=0))
        reply = dns.query.udp(q, "127.0.0.1", port=running.port, timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].rdtype == 6 and reply.answer[0][0].serial == serial
        q = dns.message.from_wire(ixfr_query("example.com.", None))
        assert dns.query.udp(q, "127.0.0.1", port=running.port, timeout=2).rcode() == dns.rcode.FORMERR
    finally:
        running.close()


# -- QCLASS ANY gets the IN data --------------------------------------------------------------


def test_qclass_any_gets_the_in_data(pair):
    reply = pair.ask(dns.message.make_query(MIXED, "A", rdclass="ANY", use_edns=0).to_wire())
    m = dns.message.from_wire(reply)
    assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
    assert m.question[0].rdclass == dns.rdataclass.ANY and str(m.question[0].name) == MIXED
    assert m.answer[0].rdclass == dns.rdataclass.IN and sorted(r.address for r in m.answer[0]) == ["127.10.1.1", "127.10.2.1"]
    nx = dns.message.from_wire(pair.ask(dns.message.make_query("nope.example.com.", "A", rdclass="ANY").to_wire()))
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == 6
    srv = dns.message.from_wire(pair.ask(dns.message.make_query("_http._tcp." + G, "SRV", rdclass="ANY").to_wire()))
    assert srv.answer[0].rdtype == dns.rdatatype.SRV and srv.additional[0].rdtype == dns.rdatatype.A
    outside = dns.message.from_wire(pair.ask(dns.message.make_query("example.org.", "A", rdclass="ANY").to_wire()))
    assert outside.rcode() == dns.rcode.REFUSED


# -- NSID, id.server./hostname.bind., EDE ---------------------------------------------------


def test_nsid_when_asked(pair):
    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    for name, rcode in ((G, dns.rcode.NOERROR), ("nope.example.com.", dns.rcode.NXDOMAIN), ("example.org.", dns.rcode.REFUSED)):
        for tcp in (False, True):
            wire = dns.message.make_query(name, "A", use_edns=0, options=[nsid]).to_wire()
            m = dns.message.from_wire(pair.ask(wire, tcp=tcp))
            assert m.rcode() == rcode and options(m, 3) == [IDENTITY.encode()]
    asked_not = dns.message.from_wire(pair.ask(dns.message.make_query(G, "A", use_edns=0).to_wire()))
    assert options(asked_not, 3) == []
    anonymous = Pair(identity="")
    m = dns.message.from_wire(anonymous.ask(dns.message.make_query(G, "A", use_edns=0, options=[nsid]).to_wire()))
    assert m.rcode() == dns.rcode.NOERROR and options(m, 3) == []


def test_nsid_beside_a_cookie_and_with_a_client_topology():
    from fedns.topology import ClientTopology

    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    cookie = dns.edns.GenericOption(10, b"12345678")
    wire = dns.message.make_query(G, "A", use_edns=0, options=[cookie, nsid]).to_wire()
    m = dns.message.from_wire(Pair().ask(wire))
    assert options(m, 3) == [IDENTITY.encode()] and m.rcode() == dns.rcode.NOERROR
    specs = {"g": {**SPECS["g"], "placements": [{"target": "127.10.2.1", "cluster": "c2", "region": "r2", "zones": ["z2"]}]}}
    view = ZoneView(ZoneConfig(apexes=("example.com.",)), places=(("r2", "z2"),))
    view.replace(specs)
    h = Handler(view, topology=ClientTopology.from_entries([{"cidr": "127.0.0.0/8", "region": "r2", "zone": "z2"}]),
                identity=IDENTITY)
    m = dns.message.from_wire(h.handle(wire, peer="127.0.0.5"))
    assert options(m, 3) == [IDENTITY.encode()] and [r.address for r in m.answer[0]][0] == "127.10.2.1"


@pytest.mark.parametrize("name", ["id.server.", "hostname.bind.", "ID.Server.", "HOSTNAME.BIND."])
def test_chaos_txt_names_the_server(pair, name):
    for rdtype in ("TXT", "ANY"):
        m = dns.message.from_wire(pair.ask(dns.message.make_query(name, rdtype, "CH").to_wire()))
        assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA and str(m.question[0].name) == name
        assert [(r.rdclass, r.rdtype, r.ttl) for r in m.answer] == [(dns.rdataclass.CH, 16, 0)]
        assert m.answer[0][0].strings == (IDENTITY.encode(),) and str(m.answer[0].name) == name
    nodata = dns.message.from_wire(pair.ask(dns.message.make_query(name, "A", "CH").to_wire()))
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer


def test_refused_carries_ede_not_authoritative(pair):
    for q in (dns.message.make_query("example.org.", "A", use_edns=0),
              dns.message.make_query("version.bind.", "TXT", "CH", use_edns=0),
              dns.message.make_query(G, "A", "HS", use_edns=0)):
        for tcp in (False, True):
            m = dns.message.from_wire(pair.ask(q.to_wire(), tcp=tcp))
            assert m.rcode() == dns.rcode.REFUSED and not m.flags & dns.flags.AA
            assert [(e.code, e.text) for e in m.extended_errors()] == [(dns.edns.EDECode.NOT_AUTHORITATIVE, None)]
    plain = pair.ask(dns.message.make_query("example.org.", "A").to_wire())
    assert header(plain)[5] == 0  # no EDNS in the query: no OPT, no EDE


def test_identity_is_checked():
    view = make_view()
    with pytest.raises(ValueError, match="at most 255"):
        Handler(view, identity="x" * 256)
    with pytest.raises(ValueError, match="control characters"):
        Handler(view, identity="a\nb")


def test_default_identity_is_the_host_name():
    running = Running(records=SPECS)
    try:
        q = dns.message.make_query("id.server.", "TXT", "CH")
        reply = dns.query.udp(q, "127.0.0.1", port=running.port, timeout=2)
        assert reply.answer[0][0].strings == (socket.gethostname().encode(),)
    finally:
        running.close()


def test_identity_nsid_and_problems_from_a_fedns_process(tmp_path):
    """``python -m fedns --identity``: NSID and CH TXT over UDP and TCP, EDE 20, a refused
    wildcard reported in the log and /status while the rest is served."""
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump([SPECS["g"], BAD["wild"]]))
    log_path = tmp_path / "fedns.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedns", "--federation", "", "--listen", "127.0.0.1:0", "--records", str(records),
             "--identity", "ns-b.rfc-test 7", "--status-listen", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        port = status_port = None
        deadline = time.monotonic() + 15
        while status_port is None:
            text = log_path.read_text()
            assert proc.poll() is None and time.monotonic() < deadline, text[-2000:]
            m, s = re.search(r"serving DNS on 127\.0\.0\.1:(\d+)", text), re.search(r"status on http://127\.0\.0\.1:(\d+)", text)
            if m and s:
                port, status_port = int(m.group(1)), int(s.group(1))
            else:
                time.sleep(0.02)
        nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
        for query in (dns.query.udp, dns.query.tcp):
            reply = query(dns.message.make_query(G, "A", use_edns=0, options=[nsid]), "127.0.0.1", port=port, timeout=2)
            assert reply.rcode() == dns.rcode.NOERROR and options(reply, 3) == [b"ns-b.rfc-test 7"]
            for name in ("id.server.", "hostname.bind."):
                reply = query(dns.message.make_query(name, "TXT", "CH"), "127.0.0.1", port=port, timeout=2)
                assert reply.answer[0][0].strings == (b"ns-b.rfc-test 7",)
            reply = query(dns.message.make_query("example.org.", "A", use_edns=0), "127.0.0.1", port=port, timeout=2)
            assert [e.code for e in reply.extended_errors()] == [dns.edns.EDECode.NOT_AUTHORITATIVE]
            reply = query(dns.message.make_query("x.wild.example.com.", "A"), "127.0.0.1", port=port, timeout=2)
            assert reply.rcode() == dns.rcode.NXDOMAIN
        with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=5) as resp:
            status = json.load(resp)
        assert status["identity"] == "ns-b.rfc-test 7"
        assert len(status["problems"]) == 1 and "wildcards are not served" in status["problems"][0]
        assert "wildcards are not served" in log_path.read_text()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    bad = subprocess.run([sys.executable, "-m", "fedns", "--federation", "", "--listen", "127.0.0.1:0",
                          "--identity", "x" * 300], capture_output=True, text=True, timeout=15)
    assert bad.returncode == 2 and "--identity" in bad.stderr and "at most 255" in bad.stderr


# -- socket helpers -------------------------------------------------------------------------


def read_frame(s: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError("closed")
            data += chunk
        return data

    (length,) = struct.unpack("!H", exactly(2))
    return exactly(length)


def udp_raw(port: int, wire: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def tcp_raw(port: int, wire: bytes) -> bytes | None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        try:
            return read_frame(s)
        except (EOFError, socket.timeout):
            return None
