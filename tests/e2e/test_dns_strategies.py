"""Per-service DNS strategies against a real federation (issue 16): three member processes,
the API server, the responder, and real DNS queries with dnspython over UDP.

The federation runs with ``--no-dataplane-checks --offline-keep-seconds 3``, so a crashed
member is Offline after three failed probes, its shards are kept 3 s (bounded keep) and then
leave DNS: the failover and bounded keep tests both watch that.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
import pytest_asyncio

from conftest import three_clusters
from federation.launch.localfed import LocalFederation
from apimachinery.meta import parse_time

KEEP = 3.0
STRAT = "federation.kubernetes.io/dns-strategy"


def name(svc: str) -> str:
    return f"{svc}.default.myfed.svc.example.com."


def ask(port: int, qname: str, sock: socket.socket | None = None) -> dns.message.Message:
    q = dns.message.make_query(qname, "A")
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=2, sock=sock)


def addresses(reply: dns.message.Message) -> list[str]:
    return [r.address for rrset in reply.answer if rrset.rdtype == 1 for r in rrset]


async def wait_for(port, qname, predicate, timeout):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = addresses(await asyncio.to_thread(ask, port, qname))
        except dns.exception.Timeout:  # a UDP query lost on a busy machine: ask again
            continue
        if predicate(got):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"{qname}: never matched in {timeout} s; last {got}")


def service(svc: str, annotations: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc, "namespace": "default", "labels": {"app": svc}, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "selector": {"app": svc},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


SERVICES = {
    "plain": {},
    "spread": {STRAT: "weighted", "federation.kubernetes.io/dns-weights": "us-east-1=70,europe-west1=30"},
    "primary": {STRAT: "failover", "federation.kubernetes.io/dns-primary": "europe-west1"},
    "bad": {STRAT: "weighted", "federation.kubernetes.io/dns-weights": "us-east-1=lots"},
    "open": {"ubernetes.io/pods": "0", "federation.kubernetes.io/dns-fail-open": "true"},
    "closed": {"ubernetes.io/pods": "0"},
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed():
    fed = LocalFederation(three_clusters(), apiserver_args=[
        "--no-dataplane-checks", "--offline-keep-seconds", str(KEEP)])
    try:
        await fed.start(timeout=40)
        for svc, annotations in SERVICES.items():
            await fed.api.post("/api/v1/namespaces/default/services", service(svc, annotations))
        await wait_for(fed.dns_port, name("plain"), lambda a: len(a) == 3, 30)
        await wait_for(fed.dns_port, name("spread"), lambda a: len(a) == 3, 30)
        yield fed
    finally:
        await fed.stop()


async def shard_ips(fed, svc):
    obj = await fed.api.get(f"/api/v1/namespaces/default/services/{svc}")
    return {s["cluster"]: s["ingress"][0]["ip"] for s in obj["status"]["shards"]}


@pytest.mark.asyncio(loop_scope="module")
async def test_weighted_spread_within_5_percent_over_10000_queries(fed):
    ips = await shard_ips(fed, "spread")
    want = {"aws-us-east-1a": 0.35, "aws-us-east-1b": 0.35, "gcp-europe-west1-b": 0.30}
    by_ip = {ip: c for c, ip in ips.items()}

    def run() -> Counter:
        firsts: Counter = Counter()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(10_000):
                got = addresses(ask(fed.dns_port, name("spread"), sock))
                assert sorted(got) == sorted(ips.values())
                firsts[by_ip[got[0]]] += 1
        return firsts

    started = time.monotonic()
    firsts = await asyncio.to_thread(run)
    shares = {c: n / 10_000 for c, n in firsts.items()}
    print(f"\n10,000 queries in {time.monotonic() - started:.1f} s; first address by cluster: {dict(firsts)}")
    for cluster, share in want.items():
        assert abs(shares.get(cluster, 0) - share) <= 0.05, (cluster, shares)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_invalid_annotation_is_an_event_and_round_robin(fed):
    got = await wait_for(fed.dns_port, name("bad"), lambda a: len(a) == 3, 15)
    firsts = {addresses(await asyncio.to_thread(ask, fed.dns_port, name("bad")))[0] for _ in range(6)}
    assert len(firsts) == 3 and len(got) == 3
    deadline = time.monotonic() + 10
    while True:
        events = (await fed.api.get("/api/v1/namespaces/default/events"))["items"]
        hits = [e for e in events if e["reason"] == "InvalidDNSStrategy" and e["involvedObject"]["name"] == "bad"]
        if hits or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert hits and "'lots' is not a number" in hits[0]["message"] and hits[0]["type"] == "Warning"
    print("\nEvent:", hits[0]["message"])


@pytest.mark.asyncio(loop_scope="module")
async def test_fail_open_answers_every_known_shard_and_closed_answers_none(fed):
    ips = await shard_ips(fed, "open")
    assert len(ips) == 3
    got = await wait_for(fed.dns_port, name("open"), lambda a: len(a) == 3, 15)
    assert sorted(got) == sorted(ips.values())
    reply = await asyncio.to_thread(ask, fed.dns_port, name("closed"))
    assert addresses(reply) == [] and dns.rcode.to_text(reply.rcode()) in ("NXDOMAIN", "NOERROR")
    print(f"\nfail-open: {sorted(got)}; closed: {dns.rcode.to_text(reply.rcode())}, no address")


@pytest.mark.asyncio(loop_scope="module")
async def test_failover_primary_alone_then_others_and_bounded_keep_expiry(fed):
    ips = await shard_ips(fed, "primary")
    eu, east = ips["gcp-europe-west1-b"], sorted([ips["aws-us-east-1a"], ips["aws-us-east-1b"]])
    for _ in range(20):  # the primary alone while it is healthy
        assert addresses(await asyncio.to_thread(ask, fed.dns_port, name("primary"))) == [eu]
    plain_eu = (await shard_ips(fed, "plain"))["gcp-europe-west1-b"]
    killed = time.time()
    await fed.crash(["gcp-europe-west1-b"])
    # Bounded keep: Offline after a few failed probes, then kept KEEP s, then gone.
    got = await wait_for(fed.dns_port, name("primary"), lambda a: a and eu not in a, 20)
    gone = time.time()
    assert sorted(got) == east
    cluster = await fed.api.get("/apis/federation/v1beta1/clusters/gcp-europe-west1-b")
    offline = next(c for c in cluster["status"]["conditions"] if c["type"] == "Offline")
    assert offline["status"] == "True"
    since = parse_time(offline["lastTransitionTime"]).timestamp()
    print(f"\nkilled at 0, Offline at +{since - killed:.2f} s, out of DNS at +{gone - killed:.2f} s "
          f"(keep {KEEP} s): failover now answers {got}")
    assert KEEP - 0.5 <= gone - since <= KEEP + 2.5
    plain = addresses(await asyncio.to_thread(ask, fed.dns_port, name("plain")))
    assert plain_eu not in plain and len(plain) == 2
