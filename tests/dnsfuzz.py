"""The DNS fuzz kit: mutated packets, a prober and the sending loop, shared by the suite's
100,000-packet test (tests/e2e/test_dns_fuzz.py) and the 1,000,000-packet bench
(bench/dns_fuzz.py), so both send the same mutations the same way (issue 12).

The mutations: random bytes, flipped bytes, bad lengths, wrong counts, truncated headers,
garbage after the message, compression-pointer loops, labels over 63 bytes, names over 255,
malformed EDNS (two OPTs, misplaced, overrunning, broken options) and TSIG (unknown keys,
damaged records). :func:`fuzz` sends them over UDP and framed on TCP, probes with valid
queries between rounds, and reads each worker's RSS from /proc.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode
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


def signed_queries() -> list[bytes]:
    """Queries signed with TSIG keys we do not hold (the responder answers BADKEY)."""
    import dns.tsig
    import dns.tsigkeyring

    out = []
    for i, alg in enumerate((dns.tsig.HMAC_SHA256, dns.tsig.HMAC_SHA1, dns.tsig.HMAC_MD5)):
        ring = dns.tsigkeyring.from_text({f"k{i}.fuzz.": (alg, "c2VjcmV0c2VjcmV0c2VjcmV0")})
        for name, rdtype in ((G, "A"), ("example.com.", "AXFR"), ("example.com.", "SOA")):
            q = dns.message.make_query(name, rdtype, use_edns=0 if i % 2 else None)
            q.use_tsig(ring, keyname=f"k{i}.fuzz.", algorithm=alg)
            out.append(q.to_wire())
    return out


SIGNED = signed_queries()


def bad_edns(rng: random.Random) -> bytes:
    """A query whose EDNS is wrong: two OPTs, an OPT outside the additional section, an
    overrunning rdlength, broken or odd options, versions above 0, an OPT not at the root."""
    q = dns.message.make_query(G, "A", use_edns=0).to_wire()
    body, opt = q[:-11], bytearray(q[-11:])  # the header and question, then the 11-byte OPT
    kind = rng.randrange(8)
    if kind == 0:  # two OPT records
        head = bytearray(body)
        struct.pack_into("!H", head, 10, 2)
        return bytes(head) + bytes(opt) + bytes(opt)
    if kind == 1:  # the OPT in the answer or authority section
        head = bytearray(body)
        struct.pack_into("!HHH", head, 6, *rng.choice([(1, 0, 0), (0, 1, 0), (1, 1, 0)]))
        return bytes(head) + bytes(opt)
    if kind == 2:  # rdlength past the end
        struct.pack_into("!H", opt, 9, rng.randrange(1, 65536))
        return body + bytes(opt) + rng.randbytes(rng.randrange(0, 8))
    if kind == 3:  # options with lying lengths, or cut short
        options = b"".join(struct.pack("!HH", rng.choice([3, 8, 10, 12, 15, 65001]), rng.randrange(0, 300))
                           + rng.randbytes(rng.randrange(0, 12)) for _ in range(rng.randrange(1, 4)))
        struct.pack_into("!H", opt, 9, len(options))
        return body + bytes(opt) + options
    if kind == 4:  # version, flags, extended rcode
        opt[5], opt[6] = rng.randrange(256), rng.randrange(256)
        struct.pack_into("!H", opt, 7, rng.randrange(65536))
        return body + bytes(opt)
    if kind == 5:  # an owner name other than the root
        return body + b"\x01x" + bytes(opt[1:])
    if kind == 6:  # payload sizes from 0 to 65535, with NSID and a client subnet
        struct.pack_into("!H", opt, 3, rng.choice([0, 1, 511, 512, 1232, 4096, 65535]))
        options = struct.pack("!HH", 3, 0) + struct.pack("!HHHBB", 8, 8, 1, rng.randrange(40), 0) + rng.randbytes(4)
        struct.pack_into("!H", opt, 9, len(options))
        return body + bytes(opt) + options
    return body + bytes(opt[: rng.randrange(1, 11)])  # the OPT itself cut short


def bad_tsig(rng: random.Random) -> bytes:
    """A query signed with an unknown key, then damaged: flipped bytes in the TSIG, a cut MAC,
    the TSIG not last, a second TSIG."""
    base = bytearray(rng.choice(SIGNED))
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(base)  # intact: NOTAUTH, BADKEY
    if kind == 1:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(base) - 40, len(base))
            base[i] = rng.randrange(256)
        return bytes(base)
    if kind == 2:
        return bytes(base[: rng.randrange(len(base) - 40, len(base))])
    ar = struct.unpack_from("!H", base, 10)[0]
    struct.pack_into("!H", base, 10, ar + 1)
    return bytes(base) + bytes(base[-60:])  # something after the TSIG


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    base = bytearray(rng.choice(seeds))
    kind = rng.randrange(14)
    if kind == 12:
        return bad_edns(rng)
    if kind == 13:
        return bad_tsig(rng)
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


@contextlib.contextmanager
def running_responder(work: Path, *extra: str) -> Iterator[tuple["subprocess.Popen[bytes]", int, Path]]:
    """A real responder process (default workers: one per core) serving :data:`RECORDS`;
    yields (process, DNS port, log path) and kills it if it is still running at the end."""
    records = work / "records.yaml"
    records.write_text(yaml.safe_dump(RECORDS))
    log_path = work / "responder.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedns", "--federation", "", "--listen", "127.0.0.1:0", "--records", str(records),
         "--max-tcp-connections", "64", "--status-listen", "127.0.0.1:0", *extra],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        port = None
        deadline = time.monotonic() + 15
        while port is None:
            text = log_path.read_text()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the responder did not start: {text[-2000:]}")
            m = re.search(r"serving DNS on 127\.0\.0\.1:(\d+)", text)
            if m:
                port = int(m.group(1))
            else:
                time.sleep(0.02)
        yield proc, port, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()


def status_of(log_path) -> dict:
    status_port = int(re.search(r"status on http://127\.0\.0\.1:(\d+)", log_path.read_text()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=5) as resp:
        return json.load(resp)


def worker_rss(proc, log_path) -> dict[int, int]:
    """kB of RSS by pid: each worker of ``--workers N``, or the one process."""
    workers = status_of(log_path).get("workers")
    pids = [w["pid"] for w in workers if w["alive"]] if workers else [proc.pid]
    return {pid: rss_kb(pid) for pid in pids}


def fuzz(proc, port: int, log_path, *, total: int = TOTAL, rounds: int = ROUNDS, seed: int = 4,
         progress: Callable[[int, int, float], None] | None = None,
         packet: Callable[[random.Random, list[bytes]], bytes] | None = None) -> dict:
    """Send ``total`` mutated packets (3/4 UDP, 1/4 framed on TCP), probing between rounds;
    returns what happened, RSS per worker included. ``packet`` makes each packet (default
    :func:`mutate`; the bench's reference sends valid queries the same way); ``progress`` is
    called as (sent, total, seconds) every fifth round."""
    packet = packet or mutate
    rng = random.Random(seed)
    seeds = valid_queries()
    probe(port)
    for _ in range(200):  # warm up before measuring memory
        dns.query.udp(dns.message.make_query(G, "A"), "127.0.0.1", port=port, timeout=1)
    rss_start = worker_rss(proc, log_path)
    peak = dict(rss_start)
    per_round = total // rounds
    udp_share = per_round * 3 // 4
    sent = 0
    started = time.monotonic()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    for r in range(rounds):
        for _ in range(udp_share):
            try:
                udp.sendto(packet(rng, seeds), ("127.0.0.1", port))
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
            data = packet(rng, seeds)
            frames.append(struct.pack("!H", len(data)) + data)
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
            for pid, kb in worker_rss(proc, log_path).items():
                peak[pid] = max(peak.get(pid, 0), kb)
            if progress is not None:
                progress(sent, total, time.monotonic() - started)
    udp.close()
    elapsed = time.monotonic() - started
    probe(port)
    for pid, kb in worker_rss(proc, log_path).items():
        peak[pid] = max(peak.get(pid, 0), kb)
    status = status_of(log_path)
    return {
        "sent": sent, "elapsed": elapsed, "status": status,
        "seen": sum(status["queries"].values()) + status["dropped"],
        "rss_start": rss_start, "rss_peak": peak,
        "growth": max(peak[pid] - rss_start.get(pid, peak[pid]) for pid in peak),
        "restarts": sum(w["restarts"] for w in status.get("workers", [])),
    }


