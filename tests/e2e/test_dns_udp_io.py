"""Batched UDP (fedns.mmsg: recvmmsg/sendmmsg in a thread) and the event loop's path, over
real loopback sockets: both answer every query of a burst, the batched path hands the handler
the client's real address (IPv4 and IPv6), drops a datagram too big for its buffers and goes
on, sends replies bigger than its slots, and stops promptly."""

from __future__ import annotations

import socket
import threading
import time

import dns.message
import dns.rcode
import pytest

from fedns import mmsg
from tests.e2e.test_dns_server import RECORDS, Running

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg are Linux's")

NAME = "web.default.myfed.svc.example.com."


def burst(port: int, count: int, senders: int = 4) -> dict[int, dns.message.Message]:
    """Send ``count`` queries from ``senders`` sockets before reading any reply."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    sent: dict[int, socket.socket] = {}
    try:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.settimeout(2)
        for i in range(count):
            q = dns.message.make_query(NAME, "A")
            q.id = i
            s = socks[i % senders]
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            sent[i] = s
        replies: dict[int, dns.message.Message] = {}
        for k, s in enumerate(socks):
            expected = sum(1 for i in range(count) if i % senders == k)
            got = 0
            while got < expected:
                try:
                    reply = dns.message.from_wire(s.recv(65535))
                except socket.timeout:
                    break
                replies[reply.id] = reply
                got += 1
        return replies
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("udp_io,mode", [("auto", "batched"), ("loop", "loop")])
def test_every_query_of_a_burst_is_answered(udp_io, mode):
    running = Running(records=RECORDS, udp_io=udp_io)
    try:
        assert running.responder.status_document()["udpIO"] == mode
        replies = burst(running.port, 400)
        assert sorted(replies) == list(range(400))
        assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies.values())
        batches = running.responder.status_document()["udpBatches"]
        if mode == "batched":  # one name asked 400 times: all but the first are replayed hits
            assert batches["datagrams"] >= 400 and 1 <= batches["batches"] <= batches["datagrams"], batches
        else:
            assert batches is None
    finally:
        running.close()


def serve(sock: socket.socket, handle) -> mmsg.BatchedUDP:
    server = mmsg.BatchedUDP(sock, handle, with_peer=True)
    server.start()
    return server


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_handler_sees_the_client_address(family, host):
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
    except OSError as err:
        pytest.skip(f"no {host} here: {err}")
    seen: list[tuple[bytes, bool, str]] = []
    server = serve(sock, lambda wire, tcp, peer: (seen.append((wire, tcp, peer)), b"echo:" + wire)[1])
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as client:
            client.settimeout(2)
            client.sendto(b"hello", sock.getsockname())
            assert client.recv(100) == b"echo:hello"
        assert seen == [(b"hello", False, host)]
    finally:
        server.stop()
        sock.close()


def test_oversized_datagram_dropped_big_reply_sent_and_prompt_stop():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    big_reply = bytes(range(256)) * 24  # 6144 bytes: more than a reply slot holds
    server = serve(sock, lambda wire, tcp, peer: big_reply if wire == b"big" else wire.upper())
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(2)
            client.sendto(b"x" * (mmsg.BUFSIZE + 100), sock.getsockname())
            client.sendto(b"small", sock.getsockname())
            assert client.recv(65535) == b"SMALL"  # the oversized one got no reply
            client.sendto(b"big", sock.getsockname())
            assert client.recv(65535) == big_reply
        assert server.datagrams == 3
    finally:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < mmsg.POLL_S * 3
        assert not any(t.name == "fedns-udp" and t.is_alive() for t in threading.enumerate())
        sock.close()


def test_a_failing_handler_does_not_end_the_thread():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def handle(wire, tcp, peer):
        if wire == b"boom":
            raise RuntimeError("boom")
        return wire

    server = serve(sock, handle)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(2)
            client.sendto(b"boom", sock.getsockname())
            client.sendto(b"after", sock.getsockname())
            assert client.recv(100) == b"after"
    finally:
        server.stop()
        sock.close()
