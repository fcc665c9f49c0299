"""The hand-written renderer (fedns.encode) writes the same bytes as dnspython's, for
every answer of the zones the other tests use and of random ones."""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rrset
import pytest
from hypothesis import given, settings

from fedns.encode import rotated, sections
from fedns.records import RecordSet, collect
from fedns.table import MAX_RENDER
from fedns.view import ZoneView
from fedns.zone import Zone, to_wire
from test_dns_incremental import CONFIG, OPS
from test_dns_zone import CONFIG as ZONE_CONFIG, SPECS


def dnspython(qname: bytes, res_sets, rotation: int) -> tuple[tuple[int, ...], bytes]:
    """The reference: the message dnspython renders, cut after the question."""
    msg = dns.message.Message(id=0)
    msg.flags = dns.flags.QR
    msg.question = [dns.rrset.RRset(dns.name.from_wire(qname, 0)[0], 1, 1)]
    to_rrsets = lambda sets: [  # noqa: E731
        dns.rrset.from_text_list(rs.name, rs.ttl, "IN", rs.type, list(rotated(rs, rotation))) for rs in sets
    ]
    msg.answer, msg.authority, msg.additional = (to_rrsets(s) for s in res_sets)
    wire = msg.to_wire(max_size=MAX_RENDER, want_shuffle=False)
    return struct.unpack_from("!HHH", wire, 6), wire[12 + len(qname) + 4 :]


def check_zone(zone: Zone) -> int:
    compared = 0
    for wire, node in zone.nodes.items():
        for qtype in (*node, 1, 28, 5, 33, 16, 255, 15):
            res = zone.resolve(wire, qtype)
            sets = (res.answer, res.authority, res.additional)
            for rotation in range(3):
                assert sections(wire, sets, rotation, max_size=MAX_RENDER) == dnspython(wire, sets, rotation), (
                    wire, qtype, rotation)
                compared += 1
    return compared


def test_every_answer_of_the_rfc_cases_zone_matches_dnspython():
    zone = Zone.build(ZONE_CONFIG, collect(SPECS)[0], 42)
    assert check_zone(zone) > 500


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_random_zones_match_dnspython(ops):
    view = ZoneView(CONFIG, clock=lambda: 1000)
    for name, spec in ops:
        if spec is None:
            view.delete(name)
        else:
            view.put(name, spec)
    check_zone(view.table.zone)


def test_escaped_txt_long_txt_tiers_and_a_question_outside_the_zone():
    sets = (
        (
            RecordSet("t.example.com.", "TXT", 5, ('"a \\"quoted\\" \\\\ b"', '"' + "x" * 255 + '" "y"')),
            RecordSet("six.example.com.", "AAAA", 5, ("fd00::1", "2001:db8::abcd")),
        ),
        (RecordSet("example.com.", "SOA", 5, ("ns1.example.com. hostmaster.example.com. 7 60 10 86400 5",)),),
        (RecordSet("w.example.com.", "A", 5, ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"), tiers=(1, 3)),),
    )
    for qname in (to_wire("t.example.com."), to_wire("other.example.org.")):
        for rotation in range(4):
            assert sections(qname, sets, rotation, max_size=MAX_RENDER) == dnspython(qname, sets, rotation)


def test_too_big_is_too_big_for_both():
    huge = RecordSet("big.example.com.", "A", 5, tuple(f"127.{i // 250}.{i % 250}.1" for i in range(5000)))
    qname = to_wire("big.example.com.")
    for render in (lambda: sections(qname, ((huge,), (), ()), 0, max_size=MAX_RENDER),
                   lambda: dnspython(qname, ((huge,), (), ()), 0)):
        with pytest.raises(dns.exception.TooBig):
            render()
