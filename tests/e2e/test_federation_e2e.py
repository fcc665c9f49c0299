"""The foundation's acceptance, end to end: real processes, real sockets, real DNS clients.

One federation (API server, DNS responder, three member clusters, each its own process)
serves the whole module; the tests run in order, as a story: join, propagate, answer DNS,
connect, lose a cluster, get it back, restart the control plane.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time

import aiohttp
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest
import pytest_asyncio

from federation.planners.health import is_ready
from federation.launch.localfed import LocalFederation
from tests.conftest import GLOBAL, REGION_EAST, REGION_EU, ZONE_A, ZONE_B, ZONE_EU, three_clusters

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERIOD, THRESHOLD = 1.0, 3
FED_ARGS = ["--health-period", str(PERIOD), "--failure-threshold", str(THRESHOLD), "--dns-ttl", "5"]

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: %d, protocol: TCP}
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("fed") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store, apiserver_args=FED_ARGS)
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()
        for name in federation.children:
            if federation.children[name].proc.returncode not in (0, -9, None):
                print(f"--- {name} exited {federation.children[name].proc.returncode}\n{federation.logs(name)}")


def query(fed, name, rdtype="A", tcp=False):
    q = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, fed.host, port=fed.dns_port, timeout=2)


def answer_of(resp):
    """{(name, type): sorted targets} of an answer section."""
    out = {}
    for rrset in resp.answer:
        out[(rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype))] = sorted(r.to_text() for r in rrset)
    return out


async def wait_dns(fed, name, predicate, timeout=15.0, rdtype="A"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(query, fed, name, rdtype)
            if predicate(last):
                return last
        except dns.exception.Timeout:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"DNS for {name} never matched; last answer:\n{last}")


async def member_copies(fed, name="web", namespace="default"):
    """(HTTP status, body) of the service's copy in every member cluster."""
    out = []
    async with aiohttp.ClientSession() as session:
        for c in fed.topology.clusters:
            async with session.get(f"{fed.cluster_url(c.name)}/api/v1/namespaces/{namespace}/services/{name}") as r:
                out.append((r.status, await r.json()))
    return out


async def test_three_clusters_join_ready_with_zones_and_regions(fed):
    clusters = await fed.clusters()
    assert set(clusters) == {"aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"}
    for name, spec in ((c.name, c) for c in fed.topology.clusters):
        c = clusters[name]
        assert is_ready(c)
        assert c["status"]["zones"] == list(spec.zones)
        assert c["status"]["region"] == spec.region
        assert c["spec"]["provider"] == spec.provider
        conds = {x["type"]: x for x in c["status"]["conditions"]}
        assert conds["Offline"]["status"] == "False"
        assert conds["Ready"]["lastTransitionTime"] and conds["Ready"]["lastProbeTime"]


async def test_service_applied_from_yaml_reaches_every_member(fed, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(SERVICE_YAML % 18080)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation", "--server", fed.api_url, "apply", "-f", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "service/web created" in out.decode()

    async def in_every_member():
        copies = await member_copies(fed)
        return all(code == 200 and (body.get("status") or {}).get("loadBalancer", {}).get("ingress")
                   for code, body in copies)

    await fed.wait_for(in_every_member, 15, "the service in every member")

    async def three_shards():
        svc = await fed.api.get("/api/v1/namespaces/default/services/web")
        shards = (svc.get("status") or {}).get("shards") or []
        return len([s for s in shards if s["healthy"]]) == 3 and svc

    svc = await fed.wait_for(three_shards, 15, "three healthy shards")
    assert len(svc["status"]["loadBalancer"]["ingress"]) == 3

    # Level-triggered but quiet: once converged, the copies are not rewritten every period.
    member = fed.cluster_url("aws-us-east-1a") + "/api/v1/namespaces/default/services/web"
    async with aiohttp.ClientSession() as session:
        async with session.get(member) as r:
            first = (await r.json())["metadata"]["resourceVersion"]
        await asyncio.sleep(2.5 * PERIOD)
        async with session.get(member) as r:
            assert (await r.json())["metadata"]["resourceVersion"] == first


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_dns_answers_the_hierarchy(fed, tcp):
    await wait_dns(fed, GLOBAL, lambda r: len(answer_of(r).get((GLOBAL, "A"), [])) == 3)
    federated = await fed.api.get("/api/v1/namespaces/default/services/web")
    shards = {s["cluster"]: s["ingress"][0]["ip"] for s in federated["status"]["shards"]}
    assert set(shards) == {c.name for c in fed.topology.clusters}
    expect = {
        GLOBAL: sorted(shards.values()),
        REGION_EAST: sorted([shards["aws-us-east-1a"], shards["aws-us-east-1b"]]),
        ZONE_A: [shards["aws-us-east-1a"]],
        ZONE_B: [shards["aws-us-east-1b"]],
        REGION_EU: [shards["gcp-europe-west1-b"]],
        ZONE_EU: [shards["gcp-europe-west1-b"]],
        "web.default.svc.clusterset.local.": sorted(shards.values()),
    }
    for name, want in expect.items():
        resp = await asyncio.to_thread(query, fed, name, "A", tcp)
        assert resp.rcode() == dns.rcode.NOERROR
        assert resp.flags & dns.flags.AA
        assert answer_of(resp)[(name, "A")] == want, name
    # A name under our domain that does not exist: NXDOMAIN with the SOA in authority.
    resp = await asyncio.to_thread(query, fed, "nothing.default.myfed.svc.example.com.", "A", tcp)
    assert resp.rcode() == dns.rcode.NXDOMAIN and resp.authority[0].rdtype == dns.rdatatype.SOA
    # Outside our zones: REFUSED.
    resp = await asyncio.to_thread(query, fed, "www.example.org.", "A", tcp)
    assert resp.rcode() == dns.rcode.REFUSED


async def test_srv_records_name_the_service_port(fed):
    srv = f"_http._tcp.{GLOBAL}"
    resp = await wait_dns(fed, srv, lambda r: bool(r.answer), rdtype="SRV", timeout=10)
    (rrset,) = resp.answer
    assert [(r.port, r.target.to_text()) for r in rrset] == [(18080, GLOBAL)]
    # The target's addresses come along in the additional section.
    extra = {(x.name.to_text(), dns.rdatatype.to_text(x.rdtype)) for x in resp.additional}
    assert (GLOBAL, "A") in extra


async def test_dig_answers_the_global_name(fed):
    if not shutil.which("dig"):
        pytest.skip("dig is not installed (apt-get install bind9-dnsutils)")
    for transport in ("+notcp", "+tcp"):
        out = subprocess.run(
            ["dig", f"@{fed.host}", "-p", str(fed.dns_port), transport, "+short", GLOBAL],
            capture_output=True, text=True, timeout=10,
        ).stdout.split()
        assert len(out) == 3 and all(ip.startswith("127.") for ip in out), out


async def test_a_client_resolves_and_connects(fed):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [fed.host]
    resolver.port = fed.dns_port
    answer = await asyncio.to_thread(resolver.resolve, GLOBAL, "A")
    ip = answer[0].to_text()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{ip}:18080/", timeout=aiohttp.ClientTimeout(total=3)) as resp:
            body = json.loads(await resp.text())
    assert body["service"] == "web" and body["cluster"] in {c.name for c in fed.topology.clusters}
    assert body["region"] in ("us-east-1", "europe-west1")


async def test_garbage_packets_do_not_stop_the_responder(fed):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\x00" * 3, bytes(range(256)) * 2):
            s.sendto(payload, (fed.host, fed.dns_port))
    resp = await asyncio.to_thread(query, fed, GLOBAL)
    assert len(answer_of(resp)[(GLOBAL, "A")]) == 3


async def test_a_killed_cluster_goes_offline_and_comes_back(fed):
    name = "aws-us-east-1a"
    killed = time.monotonic()
    await fed.kill_cluster(name)

    async def offline():
        c = (await fed.clusters())[name]
        return {x["type"]: x["status"] for x in c["status"]["conditions"]}.get("Offline") == "True"

    await fed.wait_for(offline, PERIOD * THRESHOLD + 5, f"{name} to be Offline")
    resp = await wait_dns(fed, ZONE_A, lambda r: (ZONE_A, "CNAME") in answer_of(r), timeout=5)
    assert answer_of(resp)[(ZONE_A, "CNAME")] == [REGION_EAST]
    # The CNAME chain is followed in the same answer: the region's remaining shard.
    assert len(answer_of(resp)[(REGION_EAST, "A")]) == 1
    detected = time.monotonic() - killed
    assert detected < PERIOD * THRESHOLD + 5
    resp = await asyncio.to_thread(query, fed, GLOBAL)
    assert len(answer_of(resp)[(GLOBAL, "A")]) == 2

    await fed.start_cluster(name)
    await fed.wait_clusters_ready([name], timeout=20)
    await wait_dns(fed, ZONE_A, lambda r: (ZONE_A, "A") in answer_of(r), timeout=15)
    await wait_dns(fed, GLOBAL, lambda r: len(answer_of(r).get((GLOBAL, "A"), [])) == 3)


async def test_restarting_the_api_loses_nothing_and_dns_answers_throughout(fed):
    before = await fed.api.get("/api/v1/namespaces/default/services/web")
    stop = asyncio.Event()
    results = {"ok": 0, "failed": 0}

    def prober():
        while not stop.is_set():
            try:
                resp = query(fed, GLOBAL)
                if len(answer_of(resp).get((GLOBAL, "A"), [])) >= 1:
                    results["ok"] += 1
                else:
                    results["failed"] += 1
            except Exception:  # noqa: BLE001
                results["failed"] += 1
            time.sleep(0.05)

    probe = asyncio.get_running_loop().run_in_executor(None, prober)
    await fed.stop_child("apiserver", kill=True)
    await asyncio.sleep(1.5)  # the control plane is away; DNS keeps answering
    await fed.start_api()
    after = await fed.api.get("/api/v1/namespaces/default/services/web")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert int(after["metadata"]["resourceVersion"]) >= int(before["metadata"]["resourceVersion"])
    await fed.wait_clusters_ready([c.name for c in fed.topology.clusters], timeout=20)
    await wait_dns(fed, GLOBAL, lambda r: len(answer_of(r).get((GLOBAL, "A"), [])) == 3)
    # A write after the restart shows up in DNS: the responder resynced.
    await fed.api.patch("/api/v1/namespaces/default/services/web", {"metadata": {"labels": {"restarted": "yes"}}})
    stop.set()
    await probe
    assert results["failed"] == 0 and results["ok"] > 20, results


async def test_deleting_the_service_leaves_no_record_behind(fed):
    await fed.api.delete("/api/v1/namespaces/default/services/web")
    await wait_dns(fed, GLOBAL, lambda r: r.rcode() == dns.rcode.NXDOMAIN)
    for name in (REGION_EAST, ZONE_A, ZONE_EU, "web.default.svc.clusterset.local."):
        resp = await asyncio.to_thread(query, fed, name)
        assert resp.rcode() == dns.rcode.NXDOMAIN, name
    records = await fed.api.get("/apis/federation/v1beta1/dnsrecords")
    assert records["items"] == []

    async def gone_everywhere():
        return all(code == 404 for code, _ in await member_copies(fed))

    await fed.wait_for(gone_everywhere, 10, "the copies to be deleted")
