"""Bad input at volume: 100,000 random and mutated packets to a real responder process.

Over UDP and TCP: random bytes, mutated valid queries (flipped bytes, bad lengths, wrong
counts, truncated headers, garbage after the message), compression-pointer loops,
labels over 63 bytes, names over 255, broken EDNS. Between batches a prober sends valid
queries and checks the answers; at the end the process is still alive, answers at once,
its RSS (from /proc) stayed under a bound, and it stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

G = "web.default.myfed.svc.example.com."
TARGETS = ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
RECORDS = [
    {"name": G, "type": "A", "ttl": 5, "targets": TARGETS},
    {"name": "_http._tcp." + G, "type": "SRV", "ttl": 5, "targets": ["0 100 80 " + G]},
    {"name": "c.example.com.", "type": "CNAME", "ttl": 5, "targets": [G]},
    {"name": "big.example.com.", "type": "A", "ttl": 5, "targets": [f"127.20.0.{i}" for i in range(1, 101)]},
    {"name": "t.example.com.", "type": "TXT", "ttl": 5, "targets": ["x" * 300]},
]
TOTAL = 100_000
ROUNDS = 100
RSS_GROWTH_BOUND_KB = 64 * 1024  # 64 MiB above the warmed-up size


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def valid_queries() -> list[bytes]:
    out = []
    for name, rdtype in [(G, "A"), (G, "SRV"), ("c.example.com.", "A"), ("big.example.com.", "A"),
                         ("nope.example.com.", "A"), ("_http._tcp." + G, "SRV"), ("t.example.com.", "TXT"),
                         ("example.com.", "SOA"), ("example.com.", "AXFR"), ("example.com.", "IXFR")]:
        for edns in (-1, 0):
            out.append(dns.message.make_query(name, rdtype, use_edns=edns).to_wire())
    return out


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    base = bytearray(rng.choice(seeds))
    kind = rng.randrange(12)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    if kind == 1:  # flipped bytes
        for _ in range(rng.randrange(1, 6)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        return bytes(base)
    if kind == 2:  # truncated, including the header itself
        return bytes(base[: rng.randrange(0, len(base))])
    if kind == 3:  # garbage after the message
        return bytes(base) + rng.randbytes(rng.randrange(1, 300))
    if kind == 4:  # wrong counts
        struct.pack_into("!HHHH", base, 4, *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
        return bytes(base)
    head = struct.pack("!HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0)
    if kind == 5:  # compression-pointer loop: the name points at itself or a cycle
        return head + rng.choice([b"\xc0\x0c", b"\x01a\xc0\x0c", b"\x01a\xc0\x0e\x01b\xc0\x0c"]) + b"\x00\x01\x00\x01"
    if kind == 6:  # a label over 63 bytes
        return head + bytes([rng.randrange(64, 192)]) + rng.randbytes(70) + b"\x00\x00\x01\x00\x01"
    if kind == 7:  # a name over 255 bytes
        return head + (b"\x3f" + b"a" * 63) * rng.randrange(4, 8) + b"\x00\x00\x01\x00\x01"
    if kind == 8:  # a pointer forward / out of range
        return head + struct.pack("!H", 0xC000 | rng.randrange(12, 16384)) + b"\x00\x01\x00\x01"
    if kind == 9:  # a broken OPT record
        q = dns.message.make_query(G, "A", use_edns=0).to_wire()
        return q[:-2] + struct.pack("!H", rng.randrange(1, 400)) + rng.randbytes(rng.randrange(0, 20))
    if kind == 10:  # opcodes, QR, odd flags
        struct.pack_into("!H", base, 2, rng.randrange(65536))
        return bytes(base)
    return bytes(base[:12]) + rng.randbytes(rng.randrange(0, 40))  # random body after a header


def probe(port: int) -> None:
    """A valid query over UDP and one over TCP; both must be answered correctly, promptly."""
    q = dns.message.make_query(G, "A")
    for attempt in range(5):  # UDP may be dropped while the socket buffer is full
        try:
            reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
            break
        except dns.exception.Timeout:
            if attempt == 4:
                raise
    assert reply.rcode() == dns.rcode.NOERROR and sorted(r.address for r in reply.answer[0]) == TARGETS
    reply = dns.query.tcp(dns.message.make_query("c.example.com.", "A"), "127.0.0.1", port=port, timeout=2)
    assert [rs.rdtype for rs in reply.answer] == [5, 1]


@pytest.fixture
def responder(tmp_path):
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(RECORDS))
    log_path = tmp_path / "responder.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedns", "--federation", "", "--listen", "127.0.0.1:0", "--records", str(records),
         "--max-tcp-connections", "64", "--status-listen", "127.0.0.1:0"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    port = None
    deadline = time.monotonic() + 15
    while port is None:
        text = log_path.read_text()
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"the responder did not start: {text[-2000:]}")
        m = re.search(r"serving DNS on 127\.0\.0\.1:(\d+)", text)
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.02)
    yield proc, port, log_path
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    log.close()


def test_fuzz_100k_packets_udp_and_tcp(responder):
    proc, port, log_path = responder
    rng = random.Random(4)
    seeds = valid_queries()
    probe(port)
    for _ in range(200):  # warm up before measuring memory
        dns.query.udp(dns.message.make_query(G, "A"), "127.0.0.1", port=port, timeout=1)
    rss_start = rss_kb(proc.pid)
    per_round = TOTAL // ROUNDS
    udp_share = per_round * 3 // 4
    sent = 0
    started = time.monotonic()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    peak = rss_start
    for r in range(ROUNDS):
        for _ in range(udp_share):
            try:
                udp.sendto(mutate(rng, seeds), ("127.0.0.1", port))
            except (BlockingIOError, OSError):
                time.sleep(0.001)
            sent += 1
            if sent % 100 == 0:
                time.sleep(0.0005)  # let the responder keep up, so the packets are read, not dropped by the kernel
            if sent % 200 == 0:
                try:  # drain replies so our own buffer never blocks the test
                    while udp.recv(65535):
                        pass
                except BlockingIOError:
                    pass
        # TCP: framed packets on a fresh connection, sometimes a lying length at the end.
        frames = []
        for _ in range(per_round - udp_share):
            packet = mutate(rng, seeds)
            frames.append(struct.pack("!H", len(packet)) + packet)
            sent += 1
        if rng.random() < 0.5:
            frames.append(struct.pack("!H", 5000) + b"short")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
            tcp.settimeout(5)
            tcp.sendall(b"".join(frames))
            tcp.shutdown(socket.SHUT_WR)
            try:
                while tcp.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
        assert proc.poll() is None, "the responder died"
        if r % 5 == 4:
            probe(port)
            peak = max(peak, rss_kb(proc.pid))
    udp.close()
    elapsed = time.monotonic() - started
    assert sent >= TOTAL
    probe(port)
    peak = max(peak, rss_kb(proc.pid))
    assert peak - rss_start < RSS_GROWTH_BOUND_KB, f"RSS grew from {rss_start} kB to {peak} kB"
    assert elapsed < 60, f"{sent} packets took {elapsed:.1f} s"
    status_port = int(re.search(r"status on http://127\.0\.0\.1:(\d+)", log_path.read_text()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=5) as resp:
        status = json.load(resp)
    seen = sum(status["queries"].values()) + status["dropped"]
    assert seen >= TOTAL * 0.8, f"only {seen} of {sent} packets reached the responder"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    print(f"fuzz: {sent} packets in {elapsed:.1f} s, {seen} read; RSS {rss_start} -> {peak} kB; {status['errors']} errors")
