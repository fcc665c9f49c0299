"""The probes of an experiment: what a DNS client and a real application would have seen.

- :class:`DNSProber` asks the real responder for each watched name at a fixed rate (UDP,
  no cache) and records every answer: what the authoritative server says, moment by moment.
- :class:`StubResolver` is a client's caching stub resolver, in process: it keeps an answer
  (positive or negative) exactly as long as its TTL says, follows the CNAME chain the
  responder puts in the answer, and asks again only when the entry expired. Whatever the
  resolver of a real host does beyond that (prefetch, serve-stale) would only hide the
  federation's behaviour.
- :class:`ClientProber` runs a few independent clients. Each resolves through its own stub
  resolver, connects to the first address of the answer (as ``getaddrinfo`` users mostly
  do), sends one HTTP request and records which cluster answered (``X-Ubernetes-Cluster``)
  or how it failed. Clients start staggered, so their caches expire at different moments.
- :class:`LeaderWatch` reads the controllers' Lease (``coordination.k8s.io/v1``,
  ``federation-system/federation-controller-manager``) through the API, moving from one API
  server to the next as every client does, and records each renewal it sees (holder and
  ``renewTime`` on the runner's clock): a leader renews every retry period, so a gap in the
  renewals is time without a leader. A single API server on SQLite elects nobody (no
  Lease): it runs the controllers whenever it runs, so each answer it gives counts as one.
- :class:`WriteProber` creates ConfigMaps through the API all along, one at a time, and
  records each as acknowledged (201) or refused (any error, a timeout too); at the end
  :meth:`WriteProber.verify` lists what is stored, so an acknowledged write that is missing
  is a lost write.

Every observation goes to a callback as one event dict (see ``runner``); times are seconds
on the runner's clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from apimachinery.client import APIClient
from apimachinery.errors import APIError, NotFound
from apimachinery.meta import parse_time
from federation.api.leaderelection import LEASE_NAME
from federation.names import CLUSTER_HEADER, LEASE_NAMESPACE

Emit = Callable[[dict[str, Any]], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Answer:
    rcode: str
    addresses: tuple[str, ...]  # the A records at the end of the chain, in answer order
    cname: str | None  # the first CNAME target, if the name is an alias
    ttl: int  # the smallest TTL of the chain (or the negative TTL)


def parse_answer(name: str, response: dns.message.Message) -> Answer:
    """Follow the CNAME chain of ``name`` inside the answer section."""
    rcode = dns.rcode.to_text(response.rcode())
    owner = dns.name.from_text(name)
    cname = None
    ttls: list[int] = []
    addresses: tuple[str, ...] = ()
    for _ in range(9):
        a = next((r for r in response.answer if r.name == owner and r.rdtype == dns.rdatatype.A), None)
        c = next((r for r in response.answer if r.name == owner and r.rdtype == dns.rdatatype.CNAME), None)
        if a is not None:
            ttls.append(a.ttl)
            addresses = tuple(r.address for r in a)
            break
        if c is None:
            break
        ttls.append(c.ttl)
        target = c[0].target
        cname = cname or target.to_text().lower()
        owner = target
    if not addresses:  # negative: the SOA says how long to keep it (RFC 2308)
        soa = next((r for r in response.authority if r.rdtype == dns.rdatatype.SOA), None)
        if soa is not None:
            ttls.append(min(soa.ttl, soa[0].minimum))
    return Answer(rcode, addresses, cname, min(ttls) if ttls else 0)


async def query(name: str, *, server: str, port: int, timeout: float) -> Answer:
    response = await dns.asyncquery.udp(dns.message.make_query(name, "A"), server, port=port, timeout=timeout)
    return parse_answer(name, response)


class DNSProber:
    def __init__(
        self, *, names: tuple[str, ...], rate: float, server: str, port: int, emit: Emit, clock: Clock, until: float,
    ) -> None:
        self.names, self.rate, self.server, self.port = names, rate, server, port
        self.emit, self.clock, self.until = emit, clock, until

    async def run(self) -> None:
        await asyncio.gather(*(self._one(name, i) for i, name in enumerate(self.names)))

    async def _one(self, name: str, index: int) -> None:
        interval = 1.0 / self.rate
        await asyncio.sleep(interval * index / max(1, len(self.names)))
        # Stop by the clock as well as by cancellation: asyncio.wait_for in Python 3.11 (used
        # inside dnspython) can swallow a cancel that races with a reply.
        while self.clock() < self.until:
            started = self.clock()
            event: dict[str, Any] = {"t": round(started, 4), "kind": "dns", "name": name}
            try:
                answer = await query(name, server=self.server, port=self.port, timeout=min(1.0, interval * 4))
                event.update(rcode=answer.rcode, addrs=sorted(answer.addresses), cname=answer.cname, ttl=answer.ttl,
                             ok=answer.rcode == "NOERROR")
            except (dns.exception.DNSException, OSError) as err:
                event.update(rcode="TIMEOUT" if isinstance(err, dns.exception.Timeout) else "ERROR", addrs=[],
                             ok=False, error=str(err) or type(err).__name__)
            event["ms"] = round((self.clock() - started) * 1000, 2)
            self.emit(event)
            await asyncio.sleep(max(0.0, interval - (self.clock() - started)))


class StubResolver:
    """A caching stub resolver that honours TTLs, in process (one per client)."""

    def __init__(self, *, server: str, port: int, timeout: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.server, self.port, self.timeout, self.clock = server, port, timeout, clock
        self._cache: dict[str, tuple[Answer, float]] = {}

    async def resolve(self, name: str) -> tuple[Answer, bool]:
        """(answer, from cache). Raises dns.exception.DNSException when the server does not answer."""
        hit = self._cache.get(name)
        now = self.clock()
        if hit is not None and now < hit[1]:
            return hit[0], True
        answer = await query(name, server=self.server, port=self.port, timeout=self.timeout)
        if answer.rcode in ("NOERROR", "NXDOMAIN"):
            self._cache[name] = (answer, self.clock() + answer.ttl)
        return answer, False


async def http_get(address: str, port: int, *, timeout: float) -> tuple[int, str]:
    """One HTTP request to ``address:port``: (status, the X-Ubernetes-Cluster header)."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(f"GET / HTTP/1.1\r\nHost: {address}:{port}\r\nUser-Agent: ubernetes-client-prober\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status_line = await reader.readline()
            if not status_line.startswith(b"HTTP/"):
                raise ConnectionError("the connection closed without an HTTP answer")
            cluster = ""
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                key, _, value = line.decode(errors="replace").partition(":")
                if key.strip().lower() == CLUSTER_HEADER.lower():
                    cluster = value.strip()
        return int(status_line.split()[1]), cluster
    finally:
        if writer is not None:
            writer.close()


class ClientProber:
    def __init__(
        self, *, name: str, port: int, count: int, rate: float, timeout: float, server: str, dns_port: int,
        emit: Emit, clock: Clock, until: float,
    ) -> None:
        self.name, self.port, self.count, self.rate, self.timeout = name, port, count, rate, timeout
        self.server, self.dns_port, self.emit, self.clock, self.until = server, dns_port, emit, clock, until

    async def run(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.count)))

    async def _client(self, index: int) -> None:
        interval = 1.0 / self.rate
        resolver = StubResolver(server=self.server, port=self.dns_port, timeout=self.timeout, clock=self.clock)
        await asyncio.sleep(interval * index / self.count)
        while self.clock() < self.until:
            started = self.clock()
            event: dict[str, Any] = {"t": round(started, 4), "kind": "client", "client": index}
            try:
                answer, cached = await resolver.resolve(self.name)
                event.update(answer=list(answer.addresses), cached=cached)
                if not answer.addresses:
                    raise LookupError(f"{self.name}: {answer.rcode} with no address")
                address = answer.addresses[0]
                event["addr"] = address
                status, cluster = await http_get(address, self.port, timeout=self.timeout)
                event.update(status=status, cluster=cluster, ok=200 <= status < 300)
                if not event["ok"]:
                    event["error"] = f"HTTP {status}"
            except TimeoutError:
                event.update(ok=False, error=f"no answer within {self.timeout:g}s")
            except (dns.exception.DNSException, OSError, LookupError, ValueError) as err:
                event.update(ok=False, error=f"{type(err).__name__}: {err}"[:160])
            event["ms"] = round((self.clock() - started) * 1000, 2)
            self.emit(event)
            await asyncio.sleep(max(0.0, interval - (self.clock() - started)))


LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE_NAME}"
SINGLE_SERVER = "(the only API server)"  # the holder a single server without election stands for
WRITTEN_BY = "ubernetes-experiment"
WRITES_PATH = "/api/v1/namespaces/default/configmaps"


class LeaderWatch:
    """Every ``interval`` s: who holds the controllers' Lease, and when it renewed it last."""

    def __init__(self, *, urls: str, emit: Emit, clock: Clock, until: float, interval: float = 0.2,
                 token: str | None = None, ca_file: str | None = None) -> None:
        self.urls, self.emit, self.clock, self.until, self.interval = urls, emit, clock, until, interval
        self.token, self.ca_file = token, ca_file
        self._wall_offset = time.time() - clock()  # wall clock minus the runner's: renewTime on the runner's clock

    def _runner_time(self, stamp: str) -> float:
        return parse_time(stamp).timestamp() - self._wall_offset

    async def run(self) -> None:
        seen: tuple[str, str] | None = None
        async with APIClient(self.urls, timeout=min(1.0, self.interval * 5), token=self.token,
                             ca_file=self.ca_file) as api:
            while self.clock() < self.until:
                started = self.clock()
                try:
                    spec = (await api.get(LEASE_PATH)).get("spec") or {}
                    holder, stamp = spec.get("holderIdentity") or "", spec.get("renewTime") or ""
                    if holder and stamp and (holder, stamp) != seen:
                        seen = (holder, stamp)
                        self.emit({"t": round(started, 4), "kind": "leader", "holder": holder,
                                   "renewed": round(self._runner_time(stamp), 4)})
                except NotFound:
                    self.emit({"t": round(started, 4), "kind": "leader", "holder": SINGLE_SERVER,
                               "renewed": round(self.clock(), 4)})
                except (APIError, OSError, asyncio.TimeoutError, ValueError):
                    pass  # no API server answered: no renewal seen
                await asyncio.sleep(max(0.0, self.interval - (self.clock() - started)))


class WriteProber:
    """Creates ConfigMaps ``write-<n>`` through the API at ``rate`` per second, one at a time."""

    def __init__(self, *, urls: str, rate: float, timeout: float, emit: Emit, clock: Clock, until: float,
                 token: str | None = None, ca_file: str | None = None) -> None:
        self.urls, self.rate, self.timeout = urls, rate, timeout
        self.emit, self.clock, self.until, self.token, self.ca_file = emit, clock, until, token, ca_file

    async def run(self) -> None:
        interval = 1.0 / self.rate
        n = 0
        async with APIClient(self.urls, timeout=self.timeout, token=self.token, ca_file=self.ca_file) as api:
            while self.clock() < self.until:
                started = self.clock()
                name = f"write-{n}"
                n += 1
                event: dict[str, Any] = {"t": round(started, 4), "kind": "write", "name": name}
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "labels": {"written-by": WRITTEN_BY}}, "data": {"n": str(n)}}
                try:
                    await api.post(WRITES_PATH, body)
                    event["ok"] = True
                except APIError as err:
                    event.update(ok=False, status=err.code, error=err.message[:160])
                except (OSError, asyncio.TimeoutError) as err:
                    event.update(ok=False, error=f"{type(err).__name__}: {err}"[:160])
                event["ms"] = round((self.clock() - started) * 1000, 2)
                self.emit(event)
                await asyncio.sleep(max(0.0, interval - (self.clock() - started)))

    async def verify(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """A ``writes-check`` event: every written ConfigMap's name as stored now (a list that
        fails is asked again, on the next API server, until ``timeout``)."""
        deadline = time.monotonic() + timeout
        error = ""
        async with APIClient(self.urls, timeout=10.0, token=self.token, ca_file=self.ca_file) as api:
            while True:
                try:
                    items = (await api.get(WRITES_PATH, params={"labelSelector": f"written-by={WRITTEN_BY}"}))["items"]
                    return {"t": round(self.clock(), 4), "kind": "writes-check",
                            "stored": sorted(o["metadata"]["name"] for o in items)}
                except (APIError, OSError, asyncio.TimeoutError) as err:
                    error = f"{type(err).__name__}: {err}"[:160]
                if time.monotonic() > deadline:
                    return {"t": round(self.clock(), 4), "kind": "writes-check", "stored": None, "error": error}
                await asyncio.sleep(0.5)
