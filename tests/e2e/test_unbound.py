"""A real resolver in the loop (issue 12): Unbound caching in front of a real federation.

Clients rarely ask an authoritative server directly, so this module puts Unbound (Debian's
``unbound``, installed by .ci/run) between dnspython and the responder, with the stub zones
of docs/dns.md ("Behind a caching resolver"), read from that page so the documented
configuration is the tested one. The federation is three member processes: two in
us-east-1 serving ``web``, and one in europe-west1 with no pods, so its zone and region
answer a two-step CNAME chain. The tests run in order, as a story, ending with a member
crash and the time until its address leaves Unbound's answers.

Unbound runs in the foreground (``-d``) with its directory, pid file and log in the test's
temporary directory, no chroot, on a free loopback port. It never leaves loopback: the root
is a stub at a closed port on 127.0.0.1 and its queries go out from 127.0.0.1. A root trust
anchor is configured as a validating resolver of a real system has it, so the page's
``domain-insecure`` lines are exercised too (without them Unbound tries to validate the
zones against a root it cannot reach, and answers nothing for them: tried).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import pytest_asyncio

from federation.launch.localfed import LocalFederation, free_port
from federation.launch.topology import Topology
from tests.conftest import (CLUSTERSET, GLOBAL, REGION_EAST, REGION_EU, ZONE_A, ZONE_B, ZONE_EU, stop_process,
                            three_clusters)

UNBOUND = shutil.which("unbound") or ("/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists() else None)
pytestmark = [
    pytest.mark.skipif(UNBOUND is None, reason="unbound is not installed (apt-get install unbound)"),
    pytest.mark.asyncio(loop_scope="module"),
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "dns.md"
DOC_MARK = "<!-- unbound.conf: tests/e2e/test_unbound.py reads and runs this block -->"
TTL = 5  # the federation's --dns-ttl (its default)
NEGATIVE_TTL = 5  # the responder's --negative-ttl (its default): the SOA minimum
PORT = 18080

ABSENT = "nothing.default.myfed.svc.example.com."

# The root zone's KSK-2017 DS, as every validating resolver ships it.
ROOT_ANCHOR = ". DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"


def documented_config() -> str:
    """The Unbound block of docs/dns.md, as a user copies it."""
    text = DOC.read_text()
    assert DOC_MARK in text, f"docs/dns.md lost its Unbound block marker {DOC_MARK!r}"
    block = re.search(r"```\n(.*?)```", text[text.index(DOC_MARK):], re.S)
    assert block, "no fenced block after the Unbound marker in docs/dns.md"
    return block.group(1)


class Unbound:
    """``unbound -d`` on a free loopback port with the documented stub zones; stop() by pid."""

    def __init__(self, work: Path, *, responder_port: int) -> None:
        self.work = work
        self.port = free_port(udp_too=True)
        self.log = work / "unbound.log"
        documented = documented_config()
        assert "127.0.0.1@1053" in documented, "the documented block no longer points at 127.0.0.1@1053"
        closed = free_port(udp_too=True)  # nothing listens there: the "root" never answers
        self.config = work / "unbound.conf"
        self.config.write_text(
            "server:\n"
            f"    interface: 127.0.0.1\n    port: {self.port}\n    do-ip6: no\n"
            f'    do-daemonize: no\n    chroot: ""\n    username: ""\n'
            f'    directory: "{work}"\n    pidfile: "{work}/unbound.pid"\n'
            f'    use-syslog: no\n    logfile: "{self.log}"\n'
            "    verbosity: 4\n"  # debug: the 0x20 check's lines
            "    access-control: 127.0.0.0/8 allow\n"
            "    outgoing-interface: 127.0.0.1\n"
            f'    trust-anchor: "{ROOT_ANCHOR}"\n'
            'stub-zone:\n    name: "."\n'
            f"    stub-addr: 127.0.0.1@{closed}\n"
            + documented.replace("127.0.0.1@1053", f"127.0.0.1@{responder_port}")
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Unbound":
        check = subprocess.run([str(Path(UNBOUND).with_name("unbound-checkconf")), str(self.config)],
                               capture_output=True, text=True, timeout=20)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.work / "unbound.out", "wb") as out:
            self.process = subprocess.Popen([UNBOUND, "-d", "-c", str(self.config)], stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"unbound exited with {self.process.returncode}:\n{self.output()}")
            try:
                dns.query.udp(dns.message.make_query("example.com.", "SOA"), "127.0.0.1", port=self.port, timeout=0.5)
                return self
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"unbound did not answer within 15 s:\n{self.output()}")
                time.sleep(0.05)

    def output(self) -> str:
        out = (self.work / "unbound.out").read_text(errors="replace")
        return out + (self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)


def topology() -> Topology:
    """conftest's three clusters, but the European one never runs a pod: it is joined and
    Ready with no healthy shard, so its zone and region names are CNAMEs up to the global one."""
    east_a, east_b, eu = three_clusters().clusters
    return Topology(clusters=(east_a, east_b, dataclasses.replace(eu, pods_per_service=0)))


class Stack:
    def __init__(self, fed: LocalFederation, unbound: Unbound, status_port: int) -> None:
        self.fed, self.unbound, self.status_port = fed, unbound, status_port

    def ask(self, name: str, rdtype: str = "A", *, via_unbound: bool = True) -> dns.message.Message:
        port = self.unbound.port if via_unbound else self.fed.dns_port
        return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=3)

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/status", timeout=3) as resp:
            return json.load(resp)


def answer_of(reply: dns.message.Message) -> dict[tuple[str, str], list[str]]:
    """{(owner, type): sorted data} of the answer section."""
    return {
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype)): sorted(r.to_text() for r in rrset)
        for rrset in reply.answer
    }


def addresses(reply: dns.message.Message, name: str = GLOBAL) -> list[str]:
    return answer_of(reply).get((name, "A"), [])


async def wait_answer(stack: Stack, name: str, predicate, *, timeout: float, rdtype: str = "A",
                      via_unbound: bool = True) -> dns.message.Message:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await asyncio.to_thread(stack.ask, name, rdtype, via_unbound=via_unbound)
            if predicate(last):
                return last
        except dns.exception.Timeout:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {rdtype} never matched within {timeout} s; last answer:\n{last}")
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("unbound")
    status_port = free_port()
    fed = LocalFederation(topology(), apiserver_args=["--dns-ttl", str(TTL)],
                          dns_args=["--negative-ttl", str(NEGATIVE_TTL), "--status-listen", f"127.0.0.1:{status_port}"])
    unbound = Unbound(work, responder_port=fed.dns_port)
    try:
        await fed.start(timeout=40)
        await fed.api.post("/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]},
        })
        s = Stack(fed, unbound, status_port)
        # Our answers first: Unbound asked too early would cache NXDOMAIN for the SOA minimum.
        await wait_answer(s, GLOBAL, lambda r: len(addresses(r)) == 2, timeout=30, via_unbound=False)
        await wait_answer(s, ZONE_EU, lambda r: (ZONE_EU, "CNAME") in answer_of(r), timeout=15, via_unbound=False)
        await asyncio.to_thread(unbound.start)
        yield s
    finally:
        unbound.stop()
        await fed.stop()


async def test_a_records_through_unbound_equal_ours(stack):
    for name in (GLOBAL, REGION_EAST, ZONE_A, ZONE_B, CLUSTERSET):
        ours = await asyncio.to_thread(stack.ask, name, via_unbound=False)
        theirs = await asyncio.to_thread(stack.ask, name)
        assert ours.rcode() == theirs.rcode() == dns.rcode.NOERROR, (name, theirs)
        assert answer_of(theirs) == answer_of(ours) and addresses(theirs, name), (name, theirs, ours)
        # It came from the resolver (recursion available, not authoritative) ...
        assert theirs.flags & dns.flags.RA and not theirs.flags & dns.flags.AA
        # ... which keeps our TTL as the upper bound.
        assert all(0 < rrset.ttl <= TTL for rrset in theirs.answer)
    assert len(addresses(await asyncio.to_thread(stack.ask, GLOBAL))) == 2


async def test_srv_through_unbound(stack):
    srv = f"_http._tcp.{GLOBAL}"
    reply = await asyncio.to_thread(stack.ask, srv, "SRV")
    assert reply.rcode() == dns.rcode.NOERROR
    (rrset,) = reply.answer
    assert [(r.port, r.target.to_text()) for r in rrset] == [(PORT, GLOBAL)]


async def test_a_cname_chain_resolves_in_one_answer(stack):
    reply = await asyncio.to_thread(stack.ask, ZONE_EU)
    ours = await asyncio.to_thread(stack.ask, ZONE_EU, via_unbound=False)
    got = answer_of(reply)
    # zone -> region -> global, both steps and the final addresses in the one reply
    assert got[(ZONE_EU, "CNAME")] == [REGION_EU]
    assert got[(REGION_EU, "CNAME")] == [GLOBAL]
    assert len(got[(GLOBAL, "A")]) == 2
    assert got == answer_of(ours)


async def test_nxdomain_is_cached_for_the_soa_minimum(stack):
    def nxdomains() -> int:
        return stack.status()["queries"].get("NXDOMAIN", 0)

    before = await asyncio.to_thread(nxdomains)
    first = await asyncio.to_thread(stack.ask, ABSENT)
    asked = time.monotonic()
    assert first.rcode() == dns.rcode.NXDOMAIN
    (soa,) = [rrset for rrset in first.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert soa[0].minimum == NEGATIVE_TTL and soa.ttl <= NEGATIVE_TTL
    assert await asyncio.to_thread(nxdomains) == before + 1  # Unbound asked us once
    # While the negative answer is cached, Unbound answers it alone, its TTL counting down.
    ttls = []
    while time.monotonic() - asked < NEGATIVE_TTL - 1.5:
        again = await asyncio.to_thread(stack.ask, ABSENT)
        assert again.rcode() == dns.rcode.NXDOMAIN
        ttls.append([r for r in again.authority if r.rdtype == dns.rdatatype.SOA][0].ttl)
        await asyncio.sleep(0.25)
    assert await asyncio.to_thread(nxdomains) == before + 1, "a cached NXDOMAIN reached the responder"
    assert ttls and min(ttls) < soa.ttl, ttls
    # After the SOA minimum, the next question goes to the responder again.
    await asyncio.sleep(max(0.0, NEGATIVE_TTL + 1.2 - (time.monotonic() - asked)))
    assert (await asyncio.to_thread(stack.ask, ABSENT)).rcode() == dns.rcode.NXDOMAIN
    assert await asyncio.to_thread(nxdomains) == before + 2


async def test_a_crashed_members_address_leaves_unbound_within_ttl_plus_2s(stack):
    fed = stack.fed
    federated = await fed.api.get("/api/v1/namespaces/default/services/web")
    shards = {s["cluster"]: s["ingress"][0]["ip"] for s in federated["status"]["shards"]}
    dead, alive = shards["aws-us-east-1a"], shards["aws-us-east-1b"]
    # Unbound holds the dead address, freshly cached: the slowest case for a resolver.
    primed = await asyncio.to_thread(stack.ask, GLOBAL)
    assert addresses(primed) == sorted([dead, alive])

    killed = time.monotonic()
    await fed.crash(["aws-us-east-1a"])
    clean: dict[str, float] = {}
    seen_dead_after_clean: list[str] = []
    empty: list[str] = []
    bound = TTL + 2
    while time.monotonic() - killed < bound + 1 and len(clean) < 2:
        for who, via in (("ours", False), ("unbound", True)):
            try:
                reply = await asyncio.to_thread(stack.ask, GLOBAL, via_unbound=via)
            except dns.exception.Timeout:
                continue
            got, at = addresses(reply), time.monotonic() - killed
            if not got:
                empty.append(f"{who} at +{at:.2f} s: {dns.rcode.to_text(reply.rcode())}")
            elif dead not in got:
                clean.setdefault(who, at)
            elif who in clean:
                seen_dead_after_clean.append(f"{who} at +{at:.2f} s")
        await asyncio.sleep(0.05)
    print(f"\ndead address {dead} gone from our answers at +{clean.get('ours', float('nan')):.2f} s, "
          f"from Unbound's at +{clean.get('unbound', float('nan')):.2f} s after the kill (TTL {TTL} s)")
    assert "ours" in clean, f"our answers still hold {dead} {bound + 1} s after the kill:\n{fed.logs('apiserver')[-2000:]}"
    assert "unbound" in clean and clean["unbound"] <= bound, (
        f"Unbound still answered {dead} more than TTL + 2 s = {bound} s after the kill (ours: +{clean['ours']:.2f} s)")
    assert not empty, f"the global name answered without addresses: {empty}"
    assert not seen_dead_after_clean, f"the dead address came back: {seen_dead_after_clean}"
    # The dead cluster's zone now points one level up; through Unbound the chain ends at the survivor.
    reply = await wait_answer(stack, ZONE_A, lambda r: (ZONE_A, "CNAME") in answer_of(r), timeout=bound)
    assert answer_of(reply)[(ZONE_A, "CNAME")] == [REGION_EAST]
    assert addresses(reply, REGION_EAST) == [alive]


async def test_every_reply_kept_unbounds_random_case(stack):
    log = stack.unbound.log.read_text(errors="replace")
    assert log.count("good 0x20-ID in reply qname") >= 5, stack.unbound.output()
    assert "wrong 0x20-ID" not in log and "Capsforid" not in log and "0x20 fallback" not in log
    assert "validation failure" not in log  # the documented domain-insecure lines hold
