"""Several API servers on one etcd (issue 13): any replica serves any request, and a watch
served by one replica sees the writes made through another, in order, each exactly once.

Real processes: one etcd member and two ``ubernetes federation-apiserver --store etcd://...
--no-controllers``. Skipped with the package to install when etcd is not installed.
"""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp

from tests.conftest import apiserver_process

SVC = "/api/v1/namespaces/default/services"


def service(name: str, port: int = 80) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": port}]}}


async def write_many(session: aiohttp.ClientSession, base: str, tag: str, count: int) -> list[tuple[int, str, str]]:
    """Create, update and delete services through one replica; every acknowledged write as
    (resourceVersion, event type, name)."""
    done: list[tuple[int, str, str]] = []
    for i in range(count):
        name = f"{tag}-{i}"
        async with session.post(base + SVC, json=service(name)) as resp:
            assert resp.status == 201, await resp.text()
            created = await resp.json()
        done.append((int(created["metadata"]["resourceVersion"]), "ADDED", name))
        if i % 3 == 1:
            created["spec"]["ports"][0]["port"] = 81
            async with session.put(f"{base}{SVC}/{name}", json=created) as resp:
                assert resp.status == 200, await resp.text()
                updated = await resp.json()
            done.append((int(updated["metadata"]["resourceVersion"]), "MODIFIED", name))
        if i % 3 == 2:
            async with session.delete(f"{base}{SVC}/{name}") as resp:
                assert resp.status == 200, await resp.text()
                deleted = await resp.json()
            done.append((int(deleted["metadata"]["resourceVersion"]), "DELETED", name))
    return done


def writes_of(count: int) -> int:
    """How many writes :func:`write_many` makes for ``count`` names."""
    return count + sum(1 for i in range(count) if i % 3 in (1, 2))


async def list_rv(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + SVC) as resp:
        return int((await resp.json())["metadata"]["resourceVersion"])


async def watch_until(session: aiohttp.ClientSession, base: str, since: int, want: int,
                      got: list[tuple[int, str, str]], timeout: float = 30.0) -> None:
    """Append this watch's events to ``got`` until it holds ``want`` of them (or the stream
    ends, which the caller then notices)."""
    url = f"{base}{SVC}?watch=true&resourceVersion={since}&timeoutSeconds=60"
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        assert resp.status == 200, await resp.text()
        async for line in resp.content:
            if not line.strip():
                continue
            event = json.loads(line)
            assert event["type"] != "ERROR", event
            obj = event["object"]
            got.append((int(obj["metadata"]["resourceVersion"]), event["type"], obj["metadata"]["name"]))
            if len(got) >= want:
                return


async def test_a_watch_on_one_replica_sees_every_write_through_both_exactly_once_in_order(tmp_path, etcd_url):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with apiserver_process(tmp_path / "a", "--store", etcd_url, "--no-controllers") as (a, _), \
            apiserver_process(tmp_path / "b", "--store", etcd_url, "--no-controllers") as (b, _):
        async with aiohttp.ClientSession() as session:
            since = await list_rv(session, b)
            on_b: list[tuple[int, str, str]] = []
            on_a: list[tuple[int, str, str]] = []
            # Watchers on both replicas, connected before the writes (live events), then
            # writers through both replicas at once.
            want = 2 * writes_of(60)
            watchers = asyncio.gather(watch_until(session, b, since, want, on_b),
                                      watch_until(session, a, since, want, on_a))
            await asyncio.sleep(0.5)
            writes = await asyncio.gather(write_many(session, a, "via-a", 60), write_many(session, b, "via-b", 60))
            acknowledged = sorted(writes[0] + writes[1])
            assert len(acknowledged) == want
            await watchers
    rvs = [rv for rv, _, _ in acknowledged]
    assert len(set(rvs)) == len(rvs), "two writes were acknowledged at one resourceVersion"
    assert on_b == acknowledged  # every write, once, in revision order, with its type
    assert on_a == acknowledged


async def test_a_watch_resumes_on_another_replica_from_its_last_resource_version(tmp_path, etcd_url):
    """The replica a watch was connected to dies (SIGKILL) while writes go on through the
    other: the watcher resumes there from the last resourceVersion it saw, and ends up with
    every event exactly once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with apiserver_process(tmp_path / "a", "--store", etcd_url, "--no-controllers") as (a, _), \
            apiserver_process(tmp_path / "b", "--store", etcd_url, "--no-controllers") as (b, proc_b):
        async with aiohttp.ClientSession() as session:
            since = await list_rv(session, a)
            first = await write_many(session, a, "early", 30)
            seen: list[tuple[int, str, str]] = []
            await watch_until(session, b, since, len(first) // 2, seen)
            proc_b.send_signal(signal.SIGKILL)
            proc_b.wait(10)
            later = await write_many(session, a, "late", 30)
            acknowledged = sorted(first + later)
            await watch_until(session, a, seen[-1][0], len(acknowledged), seen)
    assert seen == acknowledged


LEASE = "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases/federation-controller-manager"


def identity_of(log_path) -> str:
    """The identity a replica stands for election with, from its log."""
    for line in log_path.read_text().splitlines():
        if "standing for leader of the controllers as " in line:
            return line.rsplit(" as ", 1)[1].strip()
    raise AssertionError(f"no identity in {log_path}:\n{log_path.read_text()}")


async def holder(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(base + LEASE) as resp:
        if resp.status != 200:
            return ""
        return (await resp.json())["spec"].get("holderIdentity") or ""


async def wait_holder(session: aiohttp.ClientSession, base: str, want: str, timeout: float) -> float:
    began = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - began < timeout:
        if await holder(session, base) == want:
            return asyncio.get_running_loop().time() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"{want} did not hold the lease within {timeout} s (holder: {await holder(session, base)!r})")


async def test_one_replica_leads_the_controllers_and_a_standby_takes_over(tmp_path, etcd_url):
    """Two replicas with controllers: one holds the Lease and runs them; killed (SIGKILL),
    the other leads within the lease duration plus a retry period; stopped cleanly
    (SIGTERM), the leader hands over within about one retry period. Every change is an Event."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with apiserver_process(tmp_path / "a", "--store", etcd_url) as (a, proc_a), \
            apiserver_process(tmp_path / "b", "--store", etcd_url) as (b, proc_b):
        ids = {a: identity_of(tmp_path / "a" / "apiserver.log"), b: identity_of(tmp_path / "b" / "apiserver.log")}
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.3)
            first = ""
            for _ in range(100):
                first = await holder(session, a)
                if first:
                    break
                await asyncio.sleep(0.05)
            assert first in ids.values()
            leader, standby = (a, b) if ids[a] == first else (b, a)
            leader_proc = proc_a if leader == a else proc_b
            leader_log = tmp_path / ("a" if leader == a else "b") / "apiserver.log"
            await asyncio.sleep(2.5)  # renewals go on; the standby never takes it meanwhile
            assert await holder(session, standby) == first
            assert "controllers started" in leader_log.read_text()
            standby_log = tmp_path / ("b" if leader == a else "a") / "apiserver.log"
            assert "controllers started" not in standby_log.read_text()
            leader_proc.send_signal(signal.SIGKILL)
            leader_proc.wait(10)
            took = await wait_holder(session, standby, ids[standby], timeout=10)
            assert took <= 4.0 + 1.2 + 0.5, f"the standby led {took:.1f} s after the kill"
            await asyncio.sleep(0.5)
            assert "controllers started" in standby_log.read_text()
            # A third replica joins; the leader stops cleanly and hands over at once.
            with apiserver_process(tmp_path / "c", "--store", etcd_url) as (c, _):
                third = identity_of(tmp_path / "c" / "apiserver.log")
                standby_proc = proc_b if standby == b else proc_a
                standby_proc.send_signal(signal.SIGTERM)
                standby_proc.wait(10)
                took = await wait_holder(session, c, third, timeout=5)
                assert took <= 1.2 + 0.5, f"the new leader led {took:.1f} s after a clean stop"
                async with session.get(c + "/api/v1/namespaces/federation-system/events") as resp:
                    messages = [e["message"] for e in (await resp.json())["items"] if e["reason"] == "LeaderElection"]
    assert f"{first} became leader" in messages and f"{ids[standby]} became leader" in messages
    assert f"{ids[standby]} stopped leading" in messages and f"{third} became leader" in messages


async def test_clients_given_several_api_servers_move_on_when_one_dies(tmp_path, etcd_url):
    """``--federation URL1,URL2`` (the agents, the responder, the CLI): a dead first address
    is passed over, and a replica killed mid-way sends the next requests to the other; a
    watch whose replica dies resumes on the other from its last resourceVersion."""
    import subprocess
    import sys

    from apimachinery.client import APIClient
    from clusters.testing import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with apiserver_process(tmp_path / "a", "--store", etcd_url, "--no-controllers") as (a, proc_a), \
            apiserver_process(tmp_path / "b", "--store", etcd_url, "--no-controllers") as (b, _):
        async with APIClient(f"{dead},{a},{b}", timeout=2) as client:
            await client.post(SVC, service("first"))
            assert client.base_url == a
            seen = []
            async for event in client.watch(SVC, resource_version="0", params={"timeoutSeconds": "5"}):
                seen.append(event["object"]["metadata"]["name"])
                break
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(10)
            await client.post(SVC, service("second"))  # refused by a's port: sent to b at once
            assert client.base_url == b
            names = [s["metadata"]["name"] for s in (await client.get(SVC))["items"]]
        cli = subprocess.run([sys.executable, "-m", "federation", "--server", f"{dead},{a},{b}", "get", "services"],
                             capture_output=True, text=True, timeout=30)
    assert seen == ["first"] and names == ["first", "second"]
    assert cli.returncode == 0, cli.stderr
    assert "first" in cli.stdout and "second" in cli.stdout
