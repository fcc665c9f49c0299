"""``ubernetes client``: a demo client that resolves federated names and connects to the answer.

Failover is only convincing when a real client moves. This one does what an application
behind a stub resolver does, once per attempt and without caching (so every DNS change shows
at once): ask our responder for the name's A records (following a CNAME to its target, as a
zone with no healthy shard answers one), connect to one of the addresses (round robin over
attempts), and print one line saying when, what DNS answered, and which cluster served the
request (the member's load balancer names itself in its JSON answer). In the compose demo it
runs in its own container; ``docker compose logs -f client`` shows a killed cluster's traffic
moving to another one.

The formatting and the reading of DNS answers are pure functions (tested in
``tests/test_democlient.py``); the loop around them is kept small.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import click
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from federation.names import CLUSTER_HEADER, DEFAULT_SERVER, REGION_HEADER, ZONE_HEADER

MAX_CNAME_HOPS = 8


@dataclass
class Answer:
    """What DNS said about one name: the CNAME chain walked and the addresses at its end."""

    cnames: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    ttl: int | None = None
    error: str | None = None  # NXDOMAIN, no answer, timeout, ...


@dataclass
class Attempt:
    when: float
    name: str
    answer: Answer
    address: str | None = None
    port: int = 0
    cluster: str | None = None
    zone: str | None = None
    region: str | None = None
    status: int | None = None
    error: str | None = None
    elapsed_ms: float = 0.0


def read_answer(response: dns.message.Message, qname: str) -> tuple[list[str], list[str], int | None, str | None]:
    """(cname targets, addresses, ttl, next name to ask) from one response for ``qname``.

    Follows the CNAME chain inside the answer section; when the chain ends at a name the
    response has no A records for, returns that name as the one to ask next.
    """
    name = dns.name.from_text(qname)
    cnames: list[str] = []
    for _ in range(MAX_CNAME_HOPS):
        cname = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        name = cname[0].target
        cnames.append(name.to_text())
    a = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.A)
    if a is not None:
        return cnames, sorted(r.address for r in a), a.ttl, None
    return cnames, [], None, name.to_text() if cnames else None


def format_attempt(attempt: Attempt) -> str:
    """One line: time, name, DNS answer, and who served (or what failed)."""
    stamp = datetime.fromtimestamp(attempt.when).strftime("%H:%M:%S.%f")[:-3]
    parts = [stamp, attempt.name]
    for target in attempt.answer.cnames:
        parts += ["CNAME", target]
    if attempt.answer.error:
        parts.append(attempt.answer.error)
        return " ".join(parts)
    parts += ["A", ",".join(attempt.answer.addresses)]
    where = f"{attempt.address}:{attempt.port}"
    if attempt.error:
        parts += ["->", where, "failed:", attempt.error]
    else:
        served = f"answered by {attempt.cluster} (zone {attempt.zone}, region {attempt.region})"
        status = "" if attempt.status == 200 else f" HTTP {attempt.status}"
        parts += ["->", where, served + status, f"in {attempt.elapsed_ms:.0f} ms"]
    return " ".join(parts)


def pick(addresses: list[str], attempt_number: int) -> str:
    """Round robin over the answer, as a client that rotates through A records does."""
    return sorted(addresses)[attempt_number % len(addresses)]


# --------------------------------------------------------------------------- I/O


def server_address(dns_server: str) -> tuple[str, int]:
    """HOST:PORT to (IP, port); the host is looked up every time (a container may move)."""
    host, _, port = dns_server.rpartition(":")
    info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)
    return str(info[0][4][0]), int(port)


def resolve(name: str, *, dns_server: str, timeout: float) -> Answer:
    answer = Answer()
    qname = name
    try:
        ip, port = server_address(dns_server)
    except (OSError, ValueError) as err:
        return Answer(error=f"cannot find the DNS server {dns_server}: {err}")
    for _ in range(MAX_CNAME_HOPS):
        query = dns.message.make_query(qname, dns.rdatatype.A)
        try:
            response, _ = dns.query.udp_with_fallback(query, ip, port=port, timeout=timeout)
        except dns.exception.Timeout:
            answer.error = f"DNS timeout ({dns_server})"
            return answer
        except OSError as err:
            answer.error = f"DNS error: {err}"
            return answer
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            answer.error = dns.rcode.to_text(rcode)
            return answer
        cnames, addresses, ttl, follow = read_answer(response, qname)
        answer.cnames += cnames
        if addresses:
            answer.addresses, answer.ttl = addresses, ttl
            return answer
        if follow is None:
            answer.error = "no A record"
            return answer
        qname = follow
    answer.error = "CNAME chain too long"
    return answer


def fetch(attempt: Attempt, *, timeout: float) -> None:
    """GET / from the chosen address; fills in who answered, or the error."""
    assert attempt.address is not None
    started = time.monotonic()
    conn = http.client.HTTPConnection(attempt.address, attempt.port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"User-Agent": "ubernetes-client"})
        resp = conn.getresponse()
        body = resp.read()
        attempt.status = resp.status
        attempt.cluster = resp.getheader(CLUSTER_HEADER)
        attempt.zone = resp.getheader(ZONE_HEADER)
        attempt.region = resp.getheader(REGION_HEADER)
        if attempt.cluster is None:
            doc: Any = json.loads(body or b"{}")
            attempt.cluster, attempt.zone, attempt.region = doc.get("cluster"), doc.get("zone"), doc.get("region")
    except (OSError, http.client.HTTPException, ValueError) as err:
        attempt.error = describe_error(err)
    finally:
        conn.close()
        attempt.elapsed_ms = (time.monotonic() - started) * 1000


def describe_error(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def apply_until_done(filename: str, server: str, *, echo: Callable[[str], None], deadline: float) -> bool:
    """Create or update the objects of ``filename`` (like ``ubernetes apply -f``), retrying
    while the federation does not answer; False if it never did before ``deadline``."""
    from federation.cli.kubectl import ConnectionFailed, Server, apply_document, parse_documents, read_sources

    docs = [d for source, text in read_sources([filename]) for d in parse_documents(source, text)]
    api = Server(server)
    said = 0.0
    while True:
        try:
            for doc in docs:
                line, error = apply_document(api, doc, None)
                echo(line or error or "")
            return True
        except ConnectionFailed as err:
            if time.monotonic() >= deadline:
                echo(f"client: giving up on --apply: {err}")
                return False
            if time.monotonic() - said > 5:
                echo(f"client: waiting for the federation at {server}: {err}")
                said = time.monotonic()
            time.sleep(0.5)


@click.command("client")
@click.argument("names", nargs=-1, required=True)
@click.option("--dns", "dns_server", default="127.0.0.1:1053", show_default=True, metavar="HOST:PORT", help="The federation's DNS responder to ask.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port to connect to on the address DNS gives.")
@click.option("--interval", type=click.FloatRange(0.01, 3600), default=1.0, show_default=True, help="Seconds between attempts.")
@click.option("--timeout", type=click.FloatRange(0.05, 60), default=1.0, show_default=True, help="Seconds for each DNS query and each connection.")
@click.option("--count", type=click.IntRange(0), default=0, show_default=True, help="Attempts per name, then exit (0: until stopped).")
@click.option("--apply", "apply_file", type=click.Path(exists=True, dir_okay=False), default=None, help="First create or update these objects in the federation (ubernetes apply -f FILE).")
@click.option("--server", default=None, envvar="UBERNETES_SERVER", help=f"Federation API for --apply [default: the global --server, else {DEFAULT_SERVER}].")
@click.option("--status-file", type=click.Path(dir_okay=False), default=None, help="Touch this file after every attempt (a liveness signal for a healthcheck).")
@click.pass_context
def client(
    ctx: click.Context,
    names: tuple[str, ...],
    dns_server: str,
    port: int,
    interval: float,
    timeout: float,
    count: int,
    apply_file: str | None,
    server: str | None,
    status_file: str | None,
) -> None:
    """Resolve federated NAMES through the responder and connect to the answer, one line per attempt.

    \b
    ubernetes client web.default.myfed.svc.us-east-1a.us-east-1.example.com.
    ubernetes client --dns dns:1053 --apply web.yaml web.default.myfed.svc.example.com.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # also as PID 1 without an init

    def echo(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    fqdns = [n if n.endswith(".") else n + "." for n in names]
    if apply_file:
        root = ctx.find_root().obj or {}
        target = server or root.get("server") or DEFAULT_SERVER
        if not apply_until_done(apply_file, target, echo=echo, deadline=time.monotonic() + 120):
            sys.exit(1)
    echo(f"client: resolving {', '.join(fqdns)} via {dns_server} every {interval:g} s, connecting to port {port}")
    number = 0
    try:
        while count == 0 or number < count:
            started = time.monotonic()
            for name in fqdns:
                attempt = Attempt(when=time.time(), name=name, answer=Answer(), port=port)
                attempt.answer = resolve(name, dns_server=dns_server, timeout=timeout)
                if attempt.answer.addresses:
                    attempt.address = pick(attempt.answer.addresses, number)
                    fetch(attempt, timeout=timeout)
                echo(format_attempt(attempt))
            if status_file:
                Path(status_file).touch()
            number += 1
            if count == 0 or number < count:
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
