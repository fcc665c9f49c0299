"""Zone transfer and NOTIFY over real sockets (fedns.transfer, fedns.notify).

The responder runs in-process on an ephemeral port (see test_dns_server.Running); the
clients are dnspython's transfer functions, raw sockets and dig where it is installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from test_dns_server import RECORDS, Running

from fedns.transfer import History, serial_ge
from fedns.table import build_table
from fedns.records import collect
from fedns.zone import ZoneConfig


@pytest.fixture
def server():
    running = Running()
    yield running
    running.close()


def soa_serial(server, zone="example.com.") -> int:
    q = dns.message.make_query(zone, "SOA")
    return dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2).answer[0][0].serial


def change(server, name: str, spec: dict | None) -> None:
    async def run():
        if spec is None:
            server.responder.view.delete(name)
        else:
            server.responder.view.put(name, spec)
        await server.responder.view.settled()

    server.call(run())


def axfr(server, zone="example.com."):
    xfr = dns.query.xfr("127.0.0.1", zone, port=server.port, timeout=5, lifetime=10, relativize=False)
    return dns.zone.from_xfr(xfr, relativize=False)


def test_axfr_lists_every_record(server):
    z = axfr(server)
    got = {(n.to_text(), dns.rdatatype.to_text(rds.rdtype), r.to_text()) for n, rds in z.iterate_rdatasets() for r in rds}
    for spec in RECORDS.values():
        if not spec["name"].endswith("example.com."):
            continue
        for target in spec["targets"]:
            assert (spec["name"], spec["type"], target) in got
    assert ("example.com.", "NS", "ns1.example.com.") in got and ("ns1.example.com.", "A", "127.0.0.1") in got
    assert z.get_soa().serial == soa_serial(server)
    # clusterset.local. is a zone of its own, with the KEP-1645 version record.
    cs = axfr(server, "clusterset.local.")
    assert cs.get_rdataset("dns-version.clusterset.local.", "TXT")[0].to_text() == '"1.0.0"'
    assert cs.get_rdataset("web.default.svc.clusterset.local.", "A") is not None


def test_axfr_of_a_thousand_names_spans_several_messages(server):
    async def bulk():
        view = server.responder.view
        for i in range(1000):  # watch events, as the sync feeds them
            view.put(f"n{i}", {"name": f"n{i}.bulk.example.com.", "type": "A", "targets": [f"127.1.{i // 250}.{i % 250 + 1}"]})
        await view.settled()

    server.call(bulk())
    messages = list(dns.query.xfr("127.0.0.1", "example.com.", port=server.port, timeout=5, lifetime=10, relativize=False))
    assert len(messages) > 1
    z = dns.zone.from_xfr(iter(messages), relativize=False)
    assert sum(1 for n in z.nodes if n.to_text().endswith("bulk.example.com.")) == 1000


def test_ixfr_sends_the_diff_and_falls_back_to_axfr(server):
    old = soa_serial(server)
    change(server, "fresh", {"name": "fresh.example.com.", "type": "A", "targets": ["127.0.0.77"]})
    change(server, "fresh", {"name": "fresh.example.com.", "type": "A", "targets": ["127.0.0.78"]})
    new = soa_serial(server)
    assert new > old
    msgs = list(dns.query.xfr("127.0.0.1", "example.com.", rdtype=dns.rdatatype.IXFR, serial=old, port=server.port, timeout=5, relativize=False))
    records = [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), r.to_text()) for m in msgs for rrset in m.answer for r in rrset]
    soas = [r for r in records if r[1] == "SOA"]
    # new SOA, (old SOA, removed, mid SOA, added), (mid SOA, removed, new SOA, added), new SOA
    assert len(soas) == 6 and str(new) in soas[0][2] and str(old) in soas[1][2]
    assert ("fresh.example.com.", "A", "127.0.0.77") in records
    assert records.count(("fresh.example.com.", "A", "127.0.0.77")) == 2  # added, then removed
    assert ("fresh.example.com.", "A", "127.0.0.78") in records
    assert len(records) == 9  # a diff, not the zone
    # Up to date: the SOA alone.
    msgs = list(dns.query.xfr("127.0.0.1", "example.com.", rdtype=dns.rdatatype.IXFR, serial=new, port=server.port, timeout=5))
    assert [dns.rdatatype.to_text(rs.rdtype) for m in msgs for rs in m.answer] == ["SOA"]
    # A serial the history no longer has: the whole zone, AXFR style.
    msgs = list(dns.query.xfr("127.0.0.1", "example.com.", rdtype=dns.rdatatype.IXFR, serial=12345, port=server.port, timeout=5, relativize=False))
    names = {rs.name.to_text() for m in msgs for rs in m.answer}
    assert "fresh.example.com." in names and "ns1.example.com." in names


def test_history_is_bounded_and_serials_wrap():
    cfg = ZoneConfig()
    history = History(limit=3)
    table = None
    for i in range(6):
        rs, _ = collect([{"name": f"h{i}.example.com.", "type": "A", "targets": ["127.0.0.1"]}])
        table = build_table(cfg, rs, 100 + i, previous=table)
        history.record(table)
    apex = next(iter(history.current))
    assert len(history.diffs[apex]) == 3
    assert history.chain(apex, 102) is not None and history.chain(apex, 101) is None
    assert serial_ge(5, 2**32 - 5) and not serial_ge(2**32 - 5, 5)


def test_transfer_over_udp_and_from_other_networks_is_refused(server):
    q = dns.message.make_query("example.com.", "AXFR")
    assert dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2).rcode() == dns.rcode.REFUSED
    # a name that is not a zone apex
    q = dns.message.make_query("web.default.myfed.svc.example.com.", "AXFR")
    assert dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=2).rcode() == dns.rcode.NOTAUTH
    other = Running(allow_transfer=("10.0.0.0/8",))
    try:
        q = dns.message.make_query("example.com.", "AXFR")
        reply = dns.query.tcp(q, "127.0.0.1", port=other.port, timeout=2)
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer
        assert other.responder.handler.refused_transfers == 1
    finally:
        other.close()


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (apt-get install bind9-dnsutils)")
def test_dig_axfr_lists_every_record(server):
    out = subprocess.run(
        ["dig", "AXFR", "example.com", "@127.0.0.1", "-p", str(server.port), "+nocmd", "+nostats"],
        capture_output=True, text=True, timeout=10,
    ).stdout
    lines = [line for line in out.splitlines() if line and not line.startswith(";")]
    assert lines[0].split()[3] == "SOA" and lines[-1].split()[3] == "SOA"
    for target in RECORDS["big"]["targets"]:
        assert any(line.endswith("\t" + target) for line in lines)


def test_notify_on_every_change_with_retries():
    secondary = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    secondary.bind(("127.0.0.1", 0))
    secondary.settimeout(5)
    port = secondary.getsockname()[1]
    server = Running(notify=(f"127.0.0.1:{port}",), notify_retries=3)
    try:
        def receive(zone="example.com."):
            while True:
                wire, addr = secondary.recvfrom(65535)
                msg = dns.message.from_wire(wire)
                if msg.question[0].name.to_text() == zone:
                    return msg, addr

        # The first NOTIFY (startup) is answered, so the retries stop.
        msg, addr = receive()
        secondary.sendto(dns.message.make_response(msg).to_wire(), addr)
        # A change: NOTIFY with the new serial; not answered, so it comes again.
        change(server, "fresh", {"name": "fresh.example.com.", "type": "A", "targets": ["127.0.0.77"]})
        serial = soa_serial(server)
        started = time.monotonic()
        first, _ = receive()
        assert first.opcode() == dns.opcode.NOTIFY and first.flags & dns.flags.AA
        assert first.answer[0][0].serial == serial
        again, addr = receive()
        assert again.answer[0][0].serial == serial and time.monotonic() - started < 2
        secondary.sendto(dns.message.make_response(again).to_wire(), addr)
        deadline = time.monotonic() + 3
        while server.responder.notifier.acked < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.responder.notifier.acked >= 2
    finally:
        server.close()
        secondary.close()
