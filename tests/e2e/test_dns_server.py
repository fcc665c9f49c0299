"""The responder over real sockets on loopback (fedns.server, fedns.app).

The responder runs in-process on its own event loop in a thread, bound to an ephemeral
port (UDP and TCP on the same number); the tests are plain DNS clients: dnspython's
query functions and stub resolver, raw sockets, and dig where it is installed.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from fedns.app import Responder, Settings

G = "web.default.myfed.svc.example.com."
R = "web.default.myfed.svc.us-east-1.example.com."
Z = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."
SRV = "_http._tcp." + G
BIG = "big.example.com."
MCS = "web.default.svc.clusterset.local."

RECORDS = {
    "a.global": {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1", "127.10.3.1"]},
    "a.region": {"name": R, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]},
    "cname.zone": {"name": Z, "type": "CNAME", "ttl": 5, "targets": [R]},
    "srv": {"name": SRV, "type": "SRV", "ttl": 5, "targets": ["0 10 80 " + G]},
    "big": {"name": BIG, "type": "A", "ttl": 5, "targets": [f"127.20.0.{i}" for i in range(1, 101)]},
    "mcs": {"name": MCS, "type": "A", "ttl": 5, "targets": ["127.10.1.1"]},
    "aaaa": {"name": "v6.example.com.", "type": "AAAA", "ttl": 5, "targets": ["fd00::1"]},
}


class Running:
    """A responder on its own loop in a thread; ``call`` runs a coroutine there."""

    def __init__(self, **settings) -> None:
        settings.setdefault("listen", "127.0.0.1:0")
        settings.setdefault("federation", None)
        settings.setdefault("records", RECORDS)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.responder = Responder(Settings(**settings))
        self.call(self.responder.start())
        self.port = self.responder.port

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.responder.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def server():
    running = Running(status_listen="127.0.0.1:0")
    yield running
    running.close()


def udp(server, name, rdtype="A", **kw) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype, **kw), "127.0.0.1", port=server.port, timeout=2)


def tcp(server, name, rdtype="A", **kw) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, rdtype, **kw), "127.0.0.1", port=server.port, timeout=2)


def raw_udp(server, wire: bytes, *, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", server.port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def resolver(server) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = server.port
    r.lifetime = 3
    r.cache = None
    return r


def texts(rrset) -> list[str]:
    return [r.to_text() for r in rrset]


# -- answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", [udp, tcp])
def test_a_record_over_udp_and_tcp_on_one_port(server, query):
    reply = query(server, G)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert sorted(texts(reply.answer[0])) == ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    assert reply.answer[0].ttl == 5


def test_stub_resolver_follows_the_hierarchy(server):
    r = resolver(server)
    assert sorted(a.to_text() for a in r.resolve(G, "A")) == ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    chained = r.resolve(Z, "A")
    assert chained.canonical_name.to_text() == R
    assert sorted(a.to_text() for a in chained) == ["127.10.1.1", "127.10.2.1"]
    assert [a.to_text() for a in r.resolve(MCS, "A")] == ["127.10.1.1"]
    assert [t.to_text() for t in r.resolve("dns-version.clusterset.local.", "TXT")] == ['"1.0.0"']
    with pytest.raises(dns.resolver.NXDOMAIN):
        r.resolve("nope.example.com.", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        r.resolve("svc.example.com.", "A")  # an empty non-terminal
    with pytest.raises(dns.resolver.NoAnswer):
        r.resolve(G, "AAAA")
    assert len(r.resolve(BIG, "A")) == 100  # TC over UDP, then whole over TCP


def test_cname_chain_in_one_answer(server):
    reply = udp(server, Z)
    assert [(str(rr.name), dns.rdatatype.to_text(rr.rdtype)) for rr in reply.answer] == [(Z, "CNAME"), (R, "A")]


def test_srv_brings_target_addresses(server):
    reply = udp(server, SRV, "SRV")
    assert texts(reply.answer[0]) == ["0 10 80 " + G]
    assert str(reply.additional[0].name) == G and len(reply.additional[0]) == 3


def test_negative_answers_carry_the_soa(server):
    nx = udp(server, "nope.example.com.")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA and not nx.answer
    assert nx.authority[0].rdtype == dns.rdatatype.SOA and str(nx.authority[0].name) == "example.com."
    assert nx.authority[0].ttl == 5 and nx.authority[0][0].minimum == 5
    nodata = udp(server, "svc.example.com.")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    nodata = udp(server, G, "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority


def test_soa_ns_and_glue_at_each_apex(server):
    for apex in ("example.com.", "clusterset.local."):
        soa = udp(server, apex, "SOA").answer[0][0]
        assert str(soa.mname) == "ns1." + apex and str(soa.rname) == "hostmaster." + apex
        ns = udp(server, apex, "NS")
        assert texts(ns.answer[0]) == ["ns1." + apex]
        assert str(ns.additional[0].name) == "ns1." + apex and texts(ns.additional[0]) == ["127.0.0.1"]


def test_outside_every_zone_is_refused_without_aa(server):
    reply = udp(server, "kubernetes.io.")
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA and not reply.answer


def test_any_is_answered_minimally(server):
    reply = tcp(server, G, "ANY")
    assert len(reply.answer) == 1 and reply.answer[0].rdtype == dns.rdatatype.A
    apex = udp(server, "example.com.", "ANY")
    assert [rr.rdtype for rr in apex.answer] == [dns.rdatatype.SOA]


def test_round_robin_over_the_wire(server):
    firsts = {udp(server, G).answer[0][0].to_text() for _ in range(6)}
    assert firsts == {"127.10.1.1", "127.10.2.1", "127.10.3.1"}


def test_0x20_random_case_is_echoed_exactly(server):
    rng = random.Random(0x20)
    for _ in range(20):
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in Z)
        wire = dns.message.make_query(name, "A").to_wire()
        reply = raw_udp(server, wire)
        assert reply[12 : len(wire)] == wire[12:]
        parsed = dns.message.from_wire(reply)
        assert parsed.answer[0].name.to_text() == name and parsed.answer[1][0].to_text() in ("127.10.1.1", "127.10.2.1")


# -- EDNS and sizes --------------------------------------------------------------------


def test_edns_and_badvers(server):
    reply = udp(server, G, use_edns=0, payload=4096, want_dnssec=True)
    assert reply.edns == 0 and reply.payload == 1232 and reply.ednsflags & dns.flags.DO
    assert udp(server, G, use_edns=False).edns == -1
    bad = udp(server, G, use_edns=1)
    assert bad.rcode() == dns.rcode.BADVERS and bad.edns == 0


def test_large_answer_truncated_over_udp_whole_over_tcp(server):
    wire = dns.message.make_query(BIG, "A", use_edns=False).to_wire()
    truncated = raw_udp(server, wire)
    assert len(truncated) <= 512 and dns.message.from_wire(truncated).flags & dns.flags.TC
    edns = raw_udp(server, dns.message.make_query(BIG, "A", use_edns=0, payload=4096).to_wire())
    assert len(edns) <= 1232 and dns.message.from_wire(edns).flags & dns.flags.TC
    whole = tcp(server, BIG)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 100
    reply, used_tcp = dns.query.udp_with_fallback(dns.message.make_query(BIG, "A"), "127.0.0.1", port=server.port, timeout=2)
    assert used_tcp and len(reply.answer[0]) == 100


# -- TCP ------------------------------------------------------------------------------


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_pipelined_tcp_queries_on_one_connection(server):
    names = [G, Z, SRV, "nope.example.com.", "example.com.", MCS] * 20
    queries = []
    for i, name in enumerate(names):
        msg = dns.message.make_query(name, "SRV" if name == SRV else "A")
        msg.id = i + 1
        queries.append(msg)
    stream = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(stream)
        replies = []
        for _ in queries:
            (length,) = struct.unpack("!H", _read_exact(s, 2))
            replies.append(dns.message.from_wire(_read_exact(s, length)))
        # and the connection stays open for more
        s.sendall(struct.pack("!H", len(queries[0].to_wire())) + queries[0].to_wire())
        (length,) = struct.unpack("!H", _read_exact(s, 2))
        assert dns.message.from_wire(_read_exact(s, length)).id == 1
    assert sorted(r.id for r in replies) == list(range(1, len(queries) + 1))
    by_id = {r.id: r for r in replies}
    for q in queries:
        assert by_id[q.id].question[0].name == q.question[0].name


def test_tcp_query_split_across_writes(server):
    wire = dns.message.make_query(G, "A").to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        for byte in framed:
            s.sendall(bytes([byte]))
            time.sleep(0.001)
        (length,) = struct.unpack("!H", _read_exact(s, 2))
        assert dns.message.from_wire(_read_exact(s, length)).rcode() == dns.rcode.NOERROR


def test_tcp_idle_timeout_and_connection_cap():
    running = Running(tcp_idle_timeout=0.5, max_tcp_connections=3)
    try:
        held = [socket.create_connection(("127.0.0.1", running.port), timeout=3) for _ in range(3)]
        time.sleep(0.1)
        extra = socket.create_connection(("127.0.0.1", running.port), timeout=3)
        try:
            assert extra.recv(10) == b""  # closed at once: over the cap
        except ConnectionResetError:
            pass
        extra.close()
        started = time.monotonic()
        for s in held:
            assert s.recv(10) == b""  # closed by the idle timeout
        assert time.monotonic() - started < 2.0
        for s in held:
            s.close()
        # room again once they are gone
        reply = dns.query.tcp(dns.message.make_query(G, "A"), "127.0.0.1", port=running.port, timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR
    finally:
        running.close()


# -- protocol errors and bad input -----------------------------------------------------


def test_notimp_and_formerr(server):
    notify = dns.message.make_query("example.com.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(raw_udp(server, notify.to_wire()))
    assert reply.rcode() == dns.rcode.NOTIMP and reply.id == notify.id
    empty = struct.pack("!HHHHHH", 4242, 0x0100, 0, 0, 0, 0)
    reply = dns.message.from_wire(raw_udp(server, empty))
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == 4242


def test_garbage_is_dropped_and_service_continues(server):
    rng = random.Random(1)
    valid = dns.message.make_query(G, "A").to_wire()
    junk = [b"", b"\x00", b"\x01\x02\x03", valid[:11], valid[:-2], valid + b"\xff" * 5]
    junk += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600))) for _ in range(300)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for packet in junk:
            s.sendto(packet, ("127.0.0.1", server.port))
    assert udp(server, G).rcode() == dns.rcode.NOERROR
    # the same over TCP: garbage frames, then a valid query on the same connection
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        for packet in junk[:50]:
            s.sendall(struct.pack("!H", len(packet)) + packet)
        s.sendall(struct.pack("!H", len(valid)) + valid)
        seen = []
        while True:
            (length,) = struct.unpack("!H", _read_exact(s, 2))
            reply = dns.message.from_wire(_read_exact(s, length))
            seen.append(reply)
            if reply.id == dns.message.from_wire(valid).id and reply.answer:
                break
    assert tcp(server, G).rcode() == dns.rcode.NOERROR


def test_a_few_hundred_queries(server):
    for i in range(300):
        reply = udp(server, [G, Z, "nope.example.com."][i % 3])
        assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


# -- records change while serving -----------------------------------------------------


def test_record_change_shows_within_100_ms(server):
    view = server.responder.view
    serial = udp(server, "example.com.", "SOA").answer[0][0].serial
    name = "fresh.example.com."

    async def put():
        view.put("fresh", {"name": name, "type": "A", "ttl": 5, "targets": ["127.0.0.77"]})

    started = time.monotonic()
    server.call(put())
    while True:
        reply = udp(server, name)
        if reply.answer:
            break
        assert time.monotonic() - started < 1.0
        time.sleep(0.002)
    assert time.monotonic() - started < 0.1
    assert texts(reply.answer[0]) == ["127.0.0.77"]
    assert udp(server, "example.com.", "SOA").answer[0][0].serial > serial

    async def delete():
        view.delete("fresh")
        await view.settled()

    server.call(delete())
    assert udp(server, name).rcode() == dns.rcode.NXDOMAIN


def test_status_endpoint(server):
    port = server.responder.status.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
        status = json.load(resp)
    assert status["records"] >= len(RECORDS) and status["serial"] == server.responder.view.serial
    assert status["stale"] is False and status["queries"]["NOERROR"] > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.read() == b"ok"


# -- dig -------------------------------------------------------------------------------

needs_dig = pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (apt-get install bind9-dnsutils)")


def dig(server, *args: str) -> str:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(server.port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout


@needs_dig
def test_dig_short_and_full(server):
    assert sorted(dig(server, "+short", G).split()) == ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    full = dig(server, Z, "A")
    assert "status: NOERROR" in full and " aa" in full.split("flags:")[1].split(";")[0]
    assert [Z, "5", "IN", "CNAME", R] in [line.split() for line in full.splitlines()]
    assert "status: NXDOMAIN" in dig(server, "nope.example.com")
    assert "status: REFUSED" in dig(server, "example.org")
    assert "EDNS: version: 0, flags:; udp: 1232" in full


@needs_dig
def test_dig_tcp_and_truncation(server):
    assert len(dig(server, "+short", "+tcp", BIG).split()) == 100
    ignored = dig(server, "+ignore", "+noedns", BIG)
    assert " tc" in ignored.split("flags:")[1].split(";")[0]
    assert len(dig(server, "+short", BIG).split()) == 100  # dig retries over TCP by itself
    assert "status: BADVERS" in dig(server, "+edns=1", "+noednsnegotiation", G)
    assert "BADVERS, retrying with EDNS version 0" in dig(server, "+edns=1", G)
