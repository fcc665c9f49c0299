"""The zones and their resolution rules (fedns.zone), and the precomputed table
(fedns.table): table-driven, no sockets."""

from __future__ import annotations

import struct

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from fedns.records import collect
from fedns.table import build_table
from fedns.view import ZoneView
from fedns.zone import NOERROR, NXDOMAIN, REFUSED, Zone, ZoneConfig, to_wire

G = "web.default.myfed.svc.example.com."
R = "web.default.myfed.svc.us-east-1.example.com."
Z = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."
EU_R = "web.default.myfed.svc.europe-west1.example.com."
EU_Z = "web.default.myfed.svc.europe-west1-b.europe-west1.example.com."
SRV_NAME = "_http._tcp." + G
MCS = "web.default.svc.clusterset.local."

SPECS = [
    {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1", "127.10.3.1"]},
    {"name": R, "type": "A", "ttl": 5, "targets": ["127.10.1.1"]},
    {"name": Z, "type": "CNAME", "ttl": 5, "targets": [R]},
    {"name": EU_Z, "type": "CNAME", "ttl": 5, "targets": [EU_R]},
    {"name": EU_R, "type": "CNAME", "ttl": 5, "targets": [G]},
    {"name": "dangling.example.com.", "type": "CNAME", "ttl": 5, "targets": ["gone.example.com."]},
    {"name": "out.example.com.", "type": "CNAME", "ttl": 5, "targets": ["www.example.org."]},
    {"name": "loop1.example.com.", "type": "CNAME", "ttl": 5, "targets": ["loop2.example.com."]},
    {"name": "loop2.example.com.", "type": "CNAME", "ttl": 5, "targets": ["loop1.example.com."]},
    {"name": "mcs-alias.clusterset.local.", "type": "CNAME", "ttl": 5, "targets": [G]},
    {"name": SRV_NAME, "type": "SRV", "ttl": 5, "targets": ["0 10 80 " + G, "0 10 80 v6.example.com."]},
    {"name": MCS, "type": "A", "ttl": 5, "targets": ["127.10.1.1"]},
    {"name": "v6.example.com.", "type": "AAAA", "ttl": 5, "targets": ["fd00::1"]},
    {"name": "txt.example.com.", "type": "TXT", "ttl": 5, "targets": ["hello"]},
    {"name": "outside.example.org.", "type": "A", "ttl": 5, "targets": ["127.0.0.1"]},
    {"name": "both.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.9"]},
    {"name": "both.example.com.", "type": "CNAME", "ttl": 5, "targets": [G]},
    {"name": "example.com.", "type": "CNAME", "ttl": 5, "targets": [G]},
]

CONFIG = ZoneConfig(apexes=("example.com.", "clusterset.local."), ns_address="127.0.0.1", negative_ttl=7)


@pytest.fixture(scope="module")
def zone() -> Zone:
    recordsets, problems = collect(SPECS)
    assert problems == []
    return Zone.build(CONFIG, recordsets, serial=42)


def summary(rrsets) -> list[str]:
    return [f"{rs.name} {rs.type}" for rs in rrsets]


# (qname, qtype, rcode, AA, answer, authority, additional)
CASES = [
    (G, "A", NOERROR, True, [f"{G} A"], [], []),
    (G.upper(), "A", NOERROR, True, [f"{G} A"], [], []),
    (G, "AAAA", NOERROR, True, [], ["example.com. SOA"], []),
    (G, "MX", NOERROR, True, [], ["example.com. SOA"], []),
    (Z, "A", NOERROR, True, [f"{Z} CNAME", f"{R} A"], [], []),
    (EU_Z, "A", NOERROR, True, [f"{EU_Z} CNAME", f"{EU_R} CNAME", f"{G} A"], [], []),
    (EU_Z, "CNAME", NOERROR, True, [f"{EU_Z} CNAME"], [], []),
    (EU_Z, "TXT", NOERROR, True, [f"{EU_Z} CNAME", f"{EU_R} CNAME"], ["example.com. SOA"], []),
    ("dangling.example.com.", "A", NXDOMAIN, True, ["dangling.example.com. CNAME"], ["example.com. SOA"], []),
    ("out.example.com.", "A", NOERROR, True, ["out.example.com. CNAME"], [], []),
    ("loop1.example.com.", "A", NOERROR, True, ["loop1.example.com. CNAME", "loop2.example.com. CNAME"], [], []),
    ("mcs-alias.clusterset.local.", "A", NOERROR, True, ["mcs-alias.clusterset.local. CNAME", f"{G} A"], [], []),
    (SRV_NAME, "SRV", NOERROR, True, [f"{SRV_NAME} SRV"], [], [f"{G} A", "v6.example.com. AAAA"]),
    (MCS, "A", NOERROR, True, [f"{MCS} A"], [], []),
    ("dns-version.clusterset.local.", "TXT", NOERROR, True, ["dns-version.clusterset.local. TXT"], [], []),
    ("txt.example.com.", "TXT", NOERROR, True, ["txt.example.com. TXT"], [], []),
    ("v6.example.com.", "AAAA", NOERROR, True, ["v6.example.com. AAAA"], [], []),
    ("v6.example.com.", "A", NOERROR, True, [], ["example.com. SOA"], []),
    # apexes
    ("example.com.", "SOA", NOERROR, True, ["example.com. SOA"], [], []),
    ("example.com.", "NS", NOERROR, True, ["example.com. NS"], [], ["ns1.example.com. A"]),
    ("clusterset.local.", "NS", NOERROR, True, ["clusterset.local. NS"], [], ["ns1.clusterset.local. A"]),
    ("example.com.", "A", NOERROR, True, [], ["example.com. SOA"], []),
    ("ns1.example.com.", "A", NOERROR, True, ["ns1.example.com. A"], [], []),
    # empty non-terminals exist; other names do not
    ("svc.example.com.", "A", NOERROR, True, [], ["example.com. SOA"], []),
    ("myfed.svc.example.com.", "A", NOERROR, True, [], ["example.com. SOA"], []),
    ("_tcp." + G, "SRV", NOERROR, True, [], ["example.com. SOA"], []),
    ("svc.clusterset.local.", "A", NOERROR, True, [], ["clusterset.local. SOA"], []),
    ("nope.example.com.", "A", NXDOMAIN, True, [], ["example.com. SOA"], []),
    ("x." + G, "A", NXDOMAIN, True, [], ["example.com. SOA"], []),
    ("nope.clusterset.local.", "A", NXDOMAIN, True, [], ["clusterset.local. SOA"], []),
    # outside every zone
    ("example.org.", "A", REFUSED, False, [], [], []),
    ("outside.example.org.", "A", REFUSED, False, [], [], []),
    ("com.", "NS", REFUSED, False, [], [], []),
    (".", "NS", REFUSED, False, [], [], []),
    # ANY: one record set (RFC 8482)
    (G, "ANY", NOERROR, True, [f"{G} A"], [], []),
    (Z, "ANY", NOERROR, True, [f"{Z} CNAME"], [], []),
    ("example.com.", "ANY", NOERROR, True, ["example.com. SOA"], [], []),
    ("svc.example.com.", "ANY", NOERROR, True, [], ["example.com. SOA"], []),
    ("nope.example.com.", "ANY", NXDOMAIN, True, [], ["example.com. SOA"], []),
    # a CNAME beside other data, or at an apex, is ignored (and reported)
    ("both.example.com.", "A", NOERROR, True, ["both.example.com. A"], [], []),
]


@pytest.mark.parametrize("qname,qtype,rcode,aa,answer,authority,additional", CASES)
def test_resolve(zone, qname, qtype, rcode, aa, answer, authority, additional):
    res = zone.resolve(to_wire(qname), dns.rdatatype.from_text(qtype))
    assert (dns.rcode.to_text(res.rcode), res.aa) == (dns.rcode.to_text(rcode), aa)
    assert summary(res.answer) == answer
    assert summary(res.authority) == authority
    assert summary(res.additional) == additional


def test_problems_are_reported_not_fatal():
    recordsets, _ = collect(SPECS)
    zone = Zone.build(CONFIG, recordsets, serial=1)
    text = "\n".join(zone.problems)
    assert "outside.example.org. A: outside every served zone" in text
    assert "both.example.com. CNAME: the name also has A" in text
    assert "example.com. CNAME: a zone apex cannot be a CNAME" in text


def test_soa_carries_serial_and_negative_ttl(zone):
    soa = zone.soas[to_wire("example.com.")]
    assert soa.rdatas == ("ns1.example.com. hostmaster.example.com. 42 60 10 86400 7",)
    assert soa.ttl == 7


def test_clusterset_builtin_only_when_served():
    zone = Zone.build(ZoneConfig(apexes=("example.com.",)), [], serial=1)
    assert zone.resolve(to_wire("dns-version.clusterset.local."), 16).rcode == REFUSED


def _reply(table, qname: str, qtype: str) -> dns.message.Message:
    """The table's answer as a full message, for comparing with dnspython's view."""
    wire_name = dns.name.from_text(qname).to_wire()
    question = wire_name + struct.pack("!HH", dns.rdatatype.from_text(qtype), 1)
    bits, v = table.lookup(wire_name.lower(), dns.rdatatype.from_text(qtype))
    header = struct.pack("!HHHHHH", 1, 0x8000 | bits, 1, v[0], v[1], v[2])
    return dns.message.from_wire(header + question + v[3])



@pytest.mark.parametrize("qname,qtype,rcode,aa,answer,authority,additional", CASES)
def test_table_matches_resolution(zone, qname, qtype, rcode, aa, answer, authority, additional):
    recordsets, _ = collect(SPECS)
    table = build_table(CONFIG, recordsets, 42)
    msg = _reply(table, qname, qtype)
    assert msg.rcode() == rcode
    assert [f"{r.name} {dns.rdatatype.to_text(r.rdtype)}".lower() for r in msg.answer] == [a.lower() for a in answer]
    assert [f"{r.name} {dns.rdatatype.to_text(r.rdtype)}" for r in msg.authority] == authority
    assert [f"{r.name} {dns.rdatatype.to_text(r.rdtype)}" for r in msg.additional] == additional



def test_round_robin_rotates_every_answer():
    recordsets, _ = collect(SPECS)
    table = build_table(CONFIG, recordsets, 1)
    firsts = [str(_reply(table, G, "A").answer[0][0]) for _ in range(6)]
    assert firsts == ["127.10.1.1", "127.10.2.1", "127.10.3.1"] * 2
    # the chain's final A record set rotates too
    chained = [[str(r) for r in _reply(table, EU_Z, "A").answer[2]] for _ in range(3)]
    assert chained[0] == ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    assert chained[1] == ["127.10.2.1", "127.10.3.1", "127.10.1.1"]


def test_rebuild_reuses_unchanged_answers():
    recordsets, _ = collect(SPECS)
    first = build_table(CONFIG, recordsets, 1)
    more, _ = collect(SPECS + [{"name": "new.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.5"]}])
    second = build_table(CONFIG, more, 2, previous=first)
    key = (to_wire(G), 1)
    assert second.answers[key] is first.answers[key]
    assert (to_wire("new.example.com."), 1) in second.answers
    assert second.answers[(to_wire("example.com."), 6)] is not first.answers[(to_wire("example.com."), 6)]


def test_unusual_type_at_a_cname_is_resolved_on_demand():
    recordsets, _ = collect(SPECS)
    table = build_table(CONFIG, recordsets, 1)
    msg = _reply(table, Z, "MX")
    assert [dns.rdatatype.to_text(r.rdtype) for r in msg.answer] == ["CNAME"]
    assert [dns.rdatatype.to_text(r.rdtype) for r in msg.authority] == ["SOA"]


def test_serial_rises_with_every_change_only():
    view = ZoneView(CONFIG, clock=lambda: 1000)
    s0 = view.serial
    view.replace({"a": SPECS[0]})
    s1 = view.serial
    view.replace({"a": SPECS[0]})  # same records: no change
    assert view.serial == s1 > s0
    view.put("b", SPECS[1])
    assert view.serial == s1 + 1
    view.delete("b")
    assert view.serial == s1 + 2
    view.delete("b")
    assert view.serial == s1 + 2
