"""Faults of the highly available control plane (issue 13), as ``ubernetes up --ha`` runs it.

One federation for the module: three real etcd members, three API servers on them (each
reaching each etcd member through the launcher's relay), the DNS responder and three
member clusters, all given every API server (``--federation URL1,URL2,URL3``). The tests
run in order, as a story, and each leaves the control plane healed:

- the leader is SIGKILLed while writers write through every replica and a member crashes
  during the handover: a standby leads within the lease duration plus a retry period, every
  acknowledged write is in etcd once, DNS answers throughout, the crash is still failed over;
- one etcd member of three dies: writes go on; a second: writes fail with 503 within a
  bounded time and DNS keeps answering; both back: writes go on and nothing is lost;
- the leader is cut off from etcd (its packets held by the relay): it stops leading,
  another replica leads, and the two never lead at once beyond the renew deadline.

Skipped, with the package to install, when etcd is not installed.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import dns.exception
import dns.message
import dns.query
import pytest
import pytest_asyncio

from apimachinery.client import APIClient
from apimachinery.errors import APIError
from federation.launch.etcdserver import PACKAGE_HINT, etcd_binary
from federation.launch.localfed import LocalFederation
from tests.conftest import GLOBAL, three_clusters

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(etcd_binary() is None, reason=PACKAGE_HINT)]

LEASE_DURATION, RENEW_DEADLINE, RETRY = 4.0, 3.0, 1.0  # the defaults (federation/settings.py)
FED_ARGS = ["--health-period", "1", "--failure-threshold", "3", "--dns-ttl", "5"]
SVC = "/api/v1/namespaces/default/services"
WEB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 18400}]}}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    federation = LocalFederation(three_clusters(), api_replicas=3, etcd_members=3, apiserver_args=FED_ARGS,
                                 workdir=str(tmp_path_factory.mktemp("ha")))
    try:
        await federation.start(timeout=60)
        await federation.api.post(SVC, WEB)
        await wait_answer(federation, lambda got: len(got) == 3, 30)
        yield federation
    finally:
        await federation.stop()


def global_answer(fed: LocalFederation) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(GLOBAL, "A"), fed.host, port=fed.dns_port, timeout=1)
    return {r.to_text() for rrset in reply.answer for r in rrset if rrset.rdtype == 1}


async def wait_answer(fed: LocalFederation, predicate, timeout: float) -> set[str]:
    deadline = time.monotonic() + timeout
    got: set[str] = set()
    while time.monotonic() < deadline:
        try:
            got = await asyncio.to_thread(global_answer, fed)
            if predicate(got):
                return got
        except dns.exception.Timeout:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"DNS for {GLOBAL} never matched; last answer {sorted(got)}")


async def wait_leader(fed: LocalFederation, *, other_than: int | None, timeout: float) -> tuple[int, float]:
    """(index, seconds waited) of the first leader that is not ``other_than``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        index = await fed.leader()
        if index is not None and index != other_than and fed.api_running(index):
            return index, time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new leader within {timeout} s")


def logged_at(fed: LocalFederation, index: int, text: str) -> float:
    """Seconds since midnight of the last log line of API server ``index`` that has ``text``
    (the processes log ``HH:MM:SS.mmm`` first, on one machine's clock)."""
    for line in reversed(fed.logs(fed.apiserver_name(index)).splitlines()):
        if text in line:
            hours, minutes, seconds = line.split()[0].split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise AssertionError(f"API server {index} never logged {text!r}")


class DNSWatch:
    """Asks the responder for the global name every 100 ms until stopped; counts silences."""

    def __init__(self, fed: LocalFederation) -> None:
        self.fed, self.asked, self.silent = fed, 0, 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.asked += 1
            try:
                if not await asyncio.to_thread(global_answer, self.fed):
                    self.silent += 1
            except dns.exception.Timeout:
                self.silent += 1
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def writer(fed: LocalFederation, first: int, tag: str, seconds: float) -> tuple[list[str], int]:
    """Creates services through API server ``first`` (moving on as clients do) for
    ``seconds``; the names acknowledged with 201 and the count of refused or lost writes."""
    acknowledged, failed = [], 0
    urls = fed.api_urls.split(",")
    async with APIClient(",".join(urls[first:] + urls[:first]), timeout=2.0) as client:
        deadline, n = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            name = f"{tag}-{n}"
            n += 1
            try:
                await client.post(SVC, {"apiVersion": "v1", "kind": "Service",
                                        "metadata": {"name": name, "labels": {"written-by": "ha-test"}},
                                        "spec": {"ports": [{"port": 80}]}})
                acknowledged.append(name)
            except (APIError, OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001 - counted, not hidden
                failed += 1
            await asyncio.sleep(0.05)
    return acknowledged, failed


async def any_version_read(fed: LocalFederation) -> tuple[int, list[str], set[str]]:
    """A list at any resourceVersion (``?resourceVersion=0``) from API server 0: its
    status, its ``Warning`` headers and the names it holds."""
    url = fed.api_urls.split(",")[0] + SVC
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        headers = {"Authorization": f"Bearer {fed.admin_token}"} if fed.admin_token else {}
        async with session.get(url, params={"resourceVersion": "0"}, ssl=False, headers=headers) as resp:
            body = await resp.json(content_type=None)
            names = {o["metadata"]["name"] for o in body.get("items") or []}
            return resp.status, resp.headers.getall("Warning", []), names


async def every_service(fed: LocalFederation) -> list[str]:
    return [s["metadata"]["name"] for s in (await fed.api.get(SVC))["items"]]


async def test_a_leader_killed_while_writers_write_hands_over_and_loses_nothing(fed):
    gcp = fed.topology.clusters[2].name
    before = await wait_answer(fed, lambda got: len(got) == 3, 10)
    leader, _ = await wait_leader(fed, other_than=None, timeout=10)
    watch = DNSWatch(fed)
    writers = asyncio.gather(*(writer(fed, i, f"w{i}", 8.0) for i in range(3)))
    await asyncio.sleep(2.0)
    assert await fed.kill_leader() == leader
    killed_at = time.monotonic()
    await fed.kill_cluster(gcp)  # a member crash during the handover
    new_leader, took = await wait_leader(fed, other_than=leader, timeout=LEASE_DURATION + RETRY + 5)
    results = await writers
    after = await wait_answer(fed, lambda got: len(got) == 2, 30)
    failed_over = time.monotonic() - killed_at
    await watch.stop()

    assert took <= LEASE_DURATION + RETRY + 1.0, f"a standby led {took:.1f} s after the kill"
    acknowledged = [name for names, _ in results for name in names]
    assert len(acknowledged) > 60, results
    stored = await every_service(fed)
    assert sorted(set(stored) & set(acknowledged)) == sorted(acknowledged), "an acknowledged write is missing"
    assert len(stored) == len(set(stored)), "an object is stored twice"
    assert watch.silent == 0 and watch.asked > 50, f"DNS was silent {watch.silent} of {watch.asked} times"
    assert after < before and len(after) == 2, (before, after)
    print(f"leader {leader} killed: {new_leader} led after {took:.2f} s; {len(acknowledged)} writes acknowledged, "
          f"{sum(f for _, f in results)} refused; member crash out of DNS {failed_over:.1f} s after the kill")

    await fed.api.delete(SVC, params={"labelSelector": "written-by=ha-test"}, timeout=60)  # deletecollection
    await fed.start_api(leader)
    await fed.restart([gcp])
    await wait_answer(fed, lambda got: len(got) == 3, 45)


async def test_one_etcd_member_down_writes_go_on_two_down_they_fail_fast_and_nothing_is_lost(fed):
    async def create(name: str) -> float:
        began = time.monotonic()
        await fed.api.post(SVC, {"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": name, "labels": {"written-by": "ha-test"}},
                                 "spec": {"ports": [{"port": 80}]}}, timeout=20)
        return time.monotonic() - began

    fresh = await any_version_read(fed)
    assert fresh[0] == 200 and not fresh[1], f"a read with quorum warned it may be stale: {fresh[1]}"
    await fed.kill_etcd(0)
    # If member 0 led raft, a write sent before the others elect a new leader waits out the
    # store's timeout (etcdserver.EtcdCluster.wait_leader says why); writes after it go on.
    await asyncio.to_thread(fed.etcd.wait_leader, 15)
    for i in range(20):
        # A write that reached a member just as raft moved on may time out (503); a client
        # sends it again, and AlreadyExists then says the first one was applied.
        for attempt in range(3):
            try:
                await create(f"one-down-{i}")
                break
            except APIError as err:
                if err.code == 409:
                    break
                if err.code != 503 or attempt == 2:
                    raise
                await asyncio.sleep(2.5)
    await fed.kill_etcd(1)
    began = time.monotonic()
    with pytest.raises(APIError) as refused:
        await create("no-quorum")
    waited = time.monotonic() - began
    assert refused.value.code == 503, refused.value
    assert waited < 15, f"a write without quorum hung {waited:.1f} s"
    assert await asyncio.to_thread(global_answer, fed), "DNS went silent without etcd quorum"
    # A consistent read fails as the write did; a read at any version (resourceVersion=0) is
    # served from the surviving member's copy and says it may be stale.
    with pytest.raises(APIError) as unread:
        await fed.api.get(SVC, timeout=20)
    assert unread.value.code == 503, unread.value
    began = time.monotonic()
    status, warnings, names = await any_version_read(fed)
    stale_took = time.monotonic() - began
    assert status == 200, (status, warnings)
    assert warnings and all(w.startswith('299 - "this read may be stale') for w in warnings), warnings
    assert {f"one-down-{i}" for i in range(20)} <= names

    await fed.start_etcd_member(0)
    await fed.start_etcd_member(1)
    deadline = time.monotonic() + 30
    while True:
        try:
            await create("quorum-again")
            break
        except (APIError, OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    stored = set(await every_service(fed))
    assert {f"one-down-{i}" for i in range(20)} | {"quorum-again"} <= stored
    stale_warning = warnings[0]
    deadline = time.monotonic() + 3 * RETRY  # the next consistent request that succeeds ends the warnings
    while (read := await any_version_read(fed))[1] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    status, warnings, _ = read
    assert status == 200 and not warnings, f"a read with quorum back still warned: {warnings}"
    print(f"two etcd members down: a write refused with 503 after {waited:.1f} s; a resourceVersion=0 list "
          f"answered 200 in {stale_took:.2f} s with Warning: {stale_warning}")


async def test_a_leader_cut_off_from_etcd_steps_down_and_another_leads(fed):
    leader, _ = await wait_leader(fed, other_than=None, timeout=10)
    identity = fed.identity_of(leader)
    fed.partition_etcd(leader)
    cut_at = time.monotonic()
    try:
        new_leader, took = await wait_leader(fed, other_than=leader, timeout=LEASE_DURATION + RETRY + 15)
        stepped_down = f"{identity} stopped leading"
        deadline = time.monotonic() + 15
        while stepped_down not in fed.logs(fed.apiserver_name(leader)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert stepped_down in fed.logs(fed.apiserver_name(leader)) or "stopped leading" in fed.logs(
            fed.apiserver_name(leader)), fed.logs(fed.apiserver_name(leader))[-3000:]
    finally:
        fed.partition_etcd(leader, heal=True)
    stopped = logged_at(fed, leader, f"{identity} stopped leading")
    began = logged_at(fed, new_leader, f"{fed.identity_of(new_leader)} became leader")
    print(f"leader {leader} cut off from etcd: {new_leader} led {took:.1f} s later; the old one stopped "
          f"leading {stopped - began:+.2f} s after the new one began")
    assert took <= LEASE_DURATION + RETRY + 6.0
    assert stopped <= began + RENEW_DEADLINE, "two replicas led at once for longer than the renew deadline"
    # healed: one leader, and it stays the new one (the old one stands again as a standby)
    await asyncio.sleep(2 * RETRY)
    assert await fed.leader() == new_leader
    assert time.monotonic() - cut_at < 60
