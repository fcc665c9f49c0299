"""The responder's limits against abuse (docs/dns.md, "Limits and hardening"), attacked
over real loopback sockets: a real ``python -m fedns`` process, or a real in-process
responder (test_dns_server.Running).

- TCP slots: bytes trickling in are not activity; a connection's lifetime is capped; one
  client address holds a bounded number of connections; a client that never reads its
  replies cannot keep a closing slot.
- Zone transfer: by default only the listen address itself may transfer.
- The federation token: never over plain http to a host that is not loopback.

Other loopback addresses (127.1.0.x, 127.0.0.2) stand in for other clients; nothing here
sends a packet off the host.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

from test_dns_command import start
from test_dns_server import RECORDS, Running

from apimachinery.transport import InsecureTokenTransport, check_token_transport
from fedns.transfer import LOOPBACK, default_allow

G = "web.default.myfed.svc.example.com."


@pytest.fixture()
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "records.yaml"
    path.write_text(yaml.safe_dump(list(RECORDS.values())))
    return path


def fedns(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedns", "--listen", "127.0.0.1:0", *args]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def query_tcp(port: int, *, source: str | None = None, timeout: float = 2.0) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(G, "A"), "127.0.0.1", port=port, timeout=timeout, source=source)


def framed(name: str = G) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """True when the server closes ``s`` (EOF or reset) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([s], [], [], left)
        if not readable:
            return False
        try:
            if s.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True


def connect_from(source: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


# -- TCP slots --------------------------------------------------------------------------


def test_trickling_bytes_do_not_hold_the_tcp_slots(records_file):
    """300 connections (10 client addresses, 30 each: under the per-client cap) trickle one
    byte every 0.2 s. Before the fix each byte was activity and they held all 256 slots
    forever; now they are closed after the 1 s idle timeout and a fresh client is answered."""
    proc, port, _ = start(fedns("--federation", "", "--records", str(records_file),
                                "--tcp-idle-timeout", "1", "--max-tcp-connections", "256"))
    socks: list[socket.socket] = []
    opened_at: dict[int, float] = {}  # by fileno
    try:
        first = time.monotonic()
        for i in range(300):
            s = connect_from(f"127.1.0.{i % 10 + 1}", port)
            opened_at[s.fileno()] = time.monotonic()
            s.sendall(b"\xff")  # a length prefix of 0xff..: the message never completes
            socks.append(s)
        opened = time.monotonic()
        assert opened - first < 0.8, f"opening 300 connections took {opened - first:.2f} s"
        open_ = {s.fileno(): s for s in socks}
        closed_at: dict[int, float] = {}
        fresh_refused_while_full = None
        fresh_answered_at = None
        for _ in range(40):  # at most 40 rounds of 0.2 s: 8 s
            now = time.monotonic() - opened
            if fresh_refused_while_full is None:
                try:
                    query_tcp(port, timeout=0.5)
                    fresh_refused_while_full = False
                except (ConnectionError, EOFError, OSError):
                    fresh_refused_while_full = True  # every slot is taken: closed at once
            readable, _, _ = select.select(list(open_.values()), [], [], 0)
            for s in readable:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if data == b"":
                    closed_at[s.fileno()] = time.monotonic() - opened_at[s.fileno()]
                    del open_[s.fileno()]
            for s in list(open_.values()):
                try:
                    s.send(b"\xff")  # the trickle
                except OSError:
                    closed_at[s.fileno()] = time.monotonic() - opened_at[s.fileno()]
                    del open_[s.fileno()]
            if not open_ and fresh_answered_at is None:
                assert query_tcp(port).rcode() == dns.rcode.NOERROR
                fresh_answered_at = time.monotonic() - opened
            if not open_ and fresh_answered_at is not None:
                break
            time.sleep(max(0.0, 0.2 - (time.monotonic() - opened - now)))
        assert fresh_refused_while_full, "the 300 connections should have filled all 256 slots at first"
        assert not open_, f"{len(open_)} trickling connections still open after {time.monotonic() - opened:.1f} s"
        late = sorted(closed_at.values())
        idle_closed = [t for t in late if t >= 0.8]
        assert len(idle_closed) >= 256 - 10, late[:20]  # the admitted ones, by the idle timeout
        assert max(late) < 3.0, f"the last was closed at {max(late):.2f} s"
        assert fresh_answered_at is not None and fresh_answered_at < 3.5
        print(f"\n{len(late)} trickling connections (opened in {opened - first:.2f} s) closed, each timed from "
              f"its own open: {len(late) - len(idle_closed)} at once "
              f"(over the cap), {len(idle_closed)} by the idle timeout between {min(idle_closed):.2f} s "
              f"and {max(idle_closed):.2f} s; a fresh client was answered at {fresh_answered_at:.2f} s")
    finally:
        for s in socks:
            s.close()
        stop(proc)


def test_one_client_address_holds_at_most_max_tcp_per_client():
    running = Running(max_tcp_per_client=3, tcp_idle_timeout=5)
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            s = connect_from("127.0.0.1", running.port)
            s.sendall(framed())
            assert s.recv(2)  # admitted and answered
            held.append(s)
        extra = connect_from("127.0.0.1", running.port)
        started = time.monotonic()
        assert closed_by_peer(extra, 2.0)  # a fourth from the same address: closed at once
        assert time.monotonic() - started < 1.0
        extra.close()
        assert running.responder.server.rejected_per_client == 1
        # Another address is not affected, and a slot freed is a slot again.
        assert query_tcp(running.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR
        held.pop().close()
        deadline = time.monotonic() + 3
        while running.responder.server.per_client.get("127.0.0.1", 0) > 2:
            assert time.monotonic() < deadline, "the closed connection was never counted out"
            time.sleep(0.02)
        assert query_tcp(running.port).rcode() == dns.rcode.NOERROR
    finally:
        for s in held:
            s.close()
        running.close()


def test_a_busy_connection_is_closed_at_its_lifetime():
    running = Running(tcp_max_lifetime=1.0, tcp_idle_timeout=10)
    try:
        s = connect_from("127.0.0.1", running.port)
        opened = time.monotonic()
        answered = 0
        for _ in range(100):  # a query every 0.05 s for at most 5 s
            try:
                s.sendall(framed())
                if not s.recv(65536):
                    break
            except (ConnectionResetError, BrokenPipeError):
                break
            answered += 1
            time.sleep(0.05)
        lived = time.monotonic() - opened
        s.close()
        assert 0.9 <= lived < 2.0, lived
        assert answered >= 10  # busy the whole time: it was the lifetime, not idleness
        assert running.responder.server.closed_lifetime == 1
    finally:
        running.close()


def test_a_client_that_never_reads_loses_its_slot():
    """Replies pile up unread, so we stop reading its queries; the idle timeout closes it,
    and the close (which waits for unsent replies) ends in an abort a timeout later."""
    running = Running(tcp_idle_timeout=0.5)
    try:
        s = connect_from("127.0.0.1", running.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        burst = framed() * 2000
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # until the server stops reading (flow control)
            try:
                sent += s.send(burst)
            except BlockingIOError:
                time.sleep(0.05)
                try:
                    sent += s.send(burst)
                except BlockingIOError:
                    break
        assert sent > 1_000_000
        server = running.responder.server
        started = time.monotonic()
        while server.connections:
            assert time.monotonic() - started < 4.0, "a client that never reads kept its slot"
            time.sleep(0.05)
        s.close()
        assert server.closed_idle == 1
    finally:
        running.close()


# -- zone transfer ---------------------------------------------------------------------


def test_default_transfer_networks_follow_the_listen_address():
    assert default_allow("127.0.0.1") == ("127.0.0.1/32",)
    assert default_allow("10.1.2.3") == ("10.1.2.3/32",)
    assert default_allow("::1") == ("::1/128",)
    assert default_allow("[::1]") == ("::1/128",)
    assert default_allow("0.0.0.0") == default_allow("::") == LOOPBACK == ("127.0.0.1/32", "::1/128")
    assert default_allow("localhost") == LOOPBACK


def axfr_rcode(port: int, source: str) -> tuple[int, int]:
    q = dns.message.make_query("example.com.", "AXFR")
    reply = dns.query.tcp(q, "127.0.0.1", port=port, timeout=3, source=source)
    return reply.rcode(), sum(len(rrset) for rrset in reply.answer)


def test_axfr_from_another_loopback_address_needs_allow_transfer(records_file):
    base = ["--federation", "", "--records", str(records_file)]
    proc, port, _ = start(fedns(*base))
    try:
        assert axfr_rcode(port, "127.0.0.2") == (dns.rcode.REFUSED, 0)
        rcode, records = axfr_rcode(port, "127.0.0.1")  # the listen address itself may
        assert rcode == dns.rcode.NOERROR and records > 2
    finally:
        stop(proc)
    proc, port, _ = start(fedns(*base, "--allow-transfer", "127.0.0.2/32"))
    try:
        rcode, records = axfr_rcode(port, "127.0.0.2")
        assert rcode == dns.rcode.NOERROR and records > 2
        assert axfr_rcode(port, "127.0.0.1") == (dns.rcode.REFUSED, 0)  # the flag replaces the default
    finally:
        stop(proc)


def test_allow_transfer_none_turns_transfers_off():
    running = Running(allow_transfer=())
    try:
        rcode, records = axfr_rcode(running.port, "127.0.0.1")
        assert rcode == dns.rcode.NOTIMP and records == 0  # no zone history is even kept
        assert running.responder.history is None
    finally:
        running.close()


# -- the federation token ----------------------------------------------------------------


def test_token_transport_rule():
    assert check_token_transport("http://10.1.2.3:8080", None) is None
    assert check_token_transport("https://10.1.2.3:8080", "t") is None
    assert check_token_transport(None, "t") is None
    for url in ("http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:8080", "http://LOCALHOST:8080"):
        assert "INSECURE" in check_token_transport(url, "t")
    for url in ("http://10.1.2.3:8080", "http://federation:8080", "HTTP://example.org", "10.1.2.3:8080", "http://[::1"):
        with pytest.raises(InsecureTokenTransport, match="plain HTTP"):
            check_token_transport(url, "t")
    assert "INSECURE" in check_token_transport("http://10.1.2.3:8080", "t", allow_http=True)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_token_over_plain_http_to_another_host_is_refused_at_start(how):
    argv = fedns("--federation", "http://10.255.255.1:1")  # refused before any connection
    env = None
    if how == "flag":
        argv += ["--token", "s3cret"]
    else:
        import os

        env = {**os.environ, "UBERNETES_TOKEN": "s3cret"}
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)
    err = " ".join(out.stderr.split())  # click wraps the message
    assert out.returncode != 0
    assert "refusing to send a bearer token over plain HTTP to http://10.255.255.1:1" in err
    assert "--insecure-allow-http-token" in err
    assert "serving DNS" not in err and "s3cret" not in err
    assert time.monotonic() - started < 10


def test_a_token_over_plain_http_to_loopback_warns(records_file):
    proc, port, lines = start(fedns("--federation", "http://127.0.0.1:9", "--token", "s3cret",
                                    "--records", str(records_file)))
    try:
        text = "".join(lines)
        assert "WARNING" in text and "INSECURE: a bearer token goes over plain HTTP to http://127.0.0.1" in text
        assert "s3cret" not in text
        assert query_tcp(port).rcode() == dns.rcode.NOERROR
    finally:
        stop(proc)
