"""bench/scale: how the federation behaves as clusters and services grow (issue 11).

What runs (every process real, every socket on 127.0.0.0/8; :mod:`federation_rig`, shared
with ``bench/soak``): the federation API server with its controllers and tokens on
(SQLite store, data-plane checks off), the DNS responder, and ``--clusters`` member
clusters hosted ``--per-host`` to a process (``python -m clusters.host``, which is
``ubernetes cluster-host``), each joining with the bootstrap token and renewing its lease
every second. The bench raises its open-files limit to the hard limit first (the children
inherit it).

What it measures, in order:

1. **Ready and join.** The bench watches the federation's Clusters from before the first
   host process starts. ``ready_s``: from the first host process's start to the last
   cluster seen ``Ready=True``. **Join latency** of a cluster: from its Cluster object's
   ``ADDED`` event (the agent's join request) to its first ``Ready=True`` event, both as
   the bench's watch receives them. Also reported: host process start to Ready.
2. **Fill** to 10 % of ``--services`` (Services of type LoadBalancer, each placed on
   ``--shards`` clusters by the placement annotation, evenly spread), until every placed
   member copy has its load-balancer address (the bench watches every member's Services,
   selected by the federation label) and the responder answers a sample of 200 names with
   those addresses.
3. **A measured phase** at that store size: 3 s quiet, then ``B`` seconds idle (the CPU
   rate of each process without changes; B = duration / 2 within 2-10 s), then ``--rate``
   changes a second for ``--duration`` seconds, in the cycle create, label update, create,
   port update. For each create: **create to
   every member copy** (from just before the POST to the member watch event that completes
   the set of placed copies) and **create to DNS answer** (from just before the POST until
   the responder, asked over UDP with dnspython messages, answers the name's A query with
   exactly the copies' addresses; asked every 20 ms at first, up to every 250 ms as the
   wait grows). For each update: to every copy showing it. **API CPU per change**: the
   API server's CPU seconds (utime + stime of /proc/PID/stat, all threads) from the first
   change until every change has settled plus 2 s, minus the idle rate times that window,
   divided by the changes.
4. **Fill to 100 %**, the agents' figures cleared (SIGUSR1), and the same phase again at the
   full store: its figures are the headline ones (``copies_p99_s``, ``create_to_dns_p99_s``,
   lease renewals as each agent timed them around its renewal, failed renewals).
5. RSS (VmRSS now, VmHWM peak) of each kind of process; then everything stops.

A change not seen within ``max(60, duration)`` s after the phase's last change is counted
as never arriving (``copies_missing``, ``dns_missing``). Every wait has a bound that grows
with the size; Ctrl-C or SIGTERM stops the measuring, stops every process and still
reports what was measured (with ``error``). Progress goes to stderr; the report to stdout,
and its last line is one JSON object (:data:`scale_plan.REQUIRED_KEYS` first).

Usage: bench/scale --clusters N --services M --shards K --duration S [--per-host H] [--rate R] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from federation_rig import (  # noqa: E402
    CLUSTERS, DOMAIN, FEDERATION_NAME, SECRETS, SERVICES, Rig, cpu_seconds, is_ready, machine_busy_seconds,
    proc_status_mib, raise_open_files_limit)
from scale_plan import (  # noqa: E402
    MAX_CHANGES, Change, CopyView, PhaseResult, fill_name, global_name, placement, plan_changes, service, summary,
    table, top_frames)

import aiohttp  # noqa: E402
import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402

from apimachinery.client import APIClient  # noqa: E402
from apimachinery.errors import APIError  # noqa: E402
from clusters.host import MAX_INDEX, cluster_name  # noqa: E402
from federation.api.auth import ACCESS_SECRET_PREFIX, CREDENTIAL_SECRET_PREFIX, secret_value  # noqa: E402
from federation.api.security import publish_bootstrap_token  # noqa: E402

FEDERATION_LABEL = "federation.kubernetes.io/federation-name"
PREFIX = "scale"
NET_ERRORS = (APIError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)
CLAIMED = re.compile(r"cluster '([a-z0-9-]+)' is already claimed")
FILL_CONCURRENCY = 16
DNS_SAMPLE = 200
TAIL_S = 2.0
QUIET_S = 3.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- DNS over UDP


class DNSProbe(asyncio.DatagramProtocol):
    """One UDP socket to the responder; queries matched to answers by their id."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.next_id = random.randrange(1 << 16)
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        fut = self.pending.pop(int.from_bytes(data[:2], "big"), None)
        if fut is not None and not fut.done():
            fut.set_result(data)

    async def addresses(self, name: str, timeout: float = 1.0) -> list[str] | None:
        """The sorted A addresses the responder gives ``name`` (None: no answer in time)."""
        assert self.transport is not None
        for _ in range(1 << 16):
            self.next_id = (self.next_id + 1) & 0xFFFF
            if self.next_id not in self.pending:
                break
        query = dns.message.make_query(name, "A")
        query.id = self.next_id
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[query.id] = fut
        self.transport.sendto(query.to_wire())
        self.sent += 1
        try:
            data = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self.pending.pop(query.id, None)
        msg = dns.message.from_wire(data)
        return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)


# ---------------------------------------------------------------------------- what the members hold


class Copies:
    """The member copies of every Service, fed by one watch per member; waiters by name."""

    def __init__(self) -> None:
        self.by_name: dict[str, dict[str, CopyView]] = {}
        self.waiters: dict[str, list[tuple[Callable[[dict[str, CopyView]], bool], asyncio.Future[float]]]] = {}
        self.events = 0

    def observe(self, cluster: str, etype: str, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str):
            return
        self.events += 1
        views = self.by_name.setdefault(name, {})
        if etype == "DELETED":
            views.pop(cluster, None)
            return
        view = views.get(cluster)
        if view is None:
            view = views[cluster] = CopyView(seen=now)
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        view.ip = next((i["ip"] for i in ingress if isinstance(i, dict) and i.get("ip")), None)
        ports = (obj.get("spec") or {}).get("ports") or []
        view.port = ports[0].get("port") if ports and isinstance(ports[0], dict) else None
        view.rev = CopyView.revision(meta.get("labels") or {})
        waiting = self.waiters.pop(name, None)
        if waiting:
            keep = []
            for predicate, fut in waiting:
                if fut.done():
                    continue
                if predicate(views):
                    fut.set_result(now)
                else:
                    keep.append((predicate, fut))
            if keep:
                self.waiters[name] = keep

    def expect(self, name: str, predicate: Callable[[dict[str, CopyView]], bool]) -> asyncio.Future[float]:
        """A future set to the time of the event after which ``predicate`` holds (register first, then write)."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if predicate(self.by_name.get(name, {})):
            fut.set_result(time.monotonic())
        else:
            self.waiters.setdefault(name, []).append((predicate, fut))
        return fut

    def ips(self, name: str, placed: list[str] | tuple[str, ...]) -> list[str] | None:
        """The copies' addresses, once every placed copy has one."""
        views = self.by_name.get(name, {})
        ips = [views[c].ip for c in placed if c in views]
        if len(ips) < len(placed) or not all(ips):
            return None
        return sorted(ips)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the bench


class Scale:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.rig = Rig(work, prefix=PREFIX)
        self.names = [cluster_name(PREFIX, i) for i in range(args.clusters)]
        self.copies = Copies()
        self.probe = DNSProbe()
        self.rng = random.Random(11)
        self.tasks: list[asyncio.Task[Any]] = []
        self.clients: list[APIClient] = []
        self.t0 = time.monotonic()
        # figures
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.ready_now: set[str] = set()
        self.left_ready: set[str] = set()
        self.setup_done = False
        self.setup: dict[str, float] = {}
        self.phases: list[PhaseResult] = []
        self.rss: dict[str, dict[str, float]] = {}
        self.error: str | None = None
        self.sent_at: dict[str, tuple[float, int]] = {}  # --stages: a create's send time and shards
        self.stage_at: dict[str, dict[str, float]] = {"federation status": {}, "DNSRecord": {}}
        self.present = 0  # fill services created so far
        self.seq = 0  # changes planned so far (labels and ports take it as their value)
        self.created = 0  # services created by changes so far
        self._last_progress = 0.0
        self._last_stuck_check = 0.0
        self.cluster_watch = {"starts": 0, "gone": 0, "errors": 0, "ready_missed": 0}
        self.freed: dict[str, list[float]] = {}  # cluster -> when its lost credential was freed
        n, m = args.clusters, args.services
        self.ready_timeout = 60 + 1.0 * n
        self.fill_timeout = 120 + 0.3 * m
        self.dns_timeout = 120 + 0.1 * m
        self.settle = max(60.0, args.duration)
        self.idle_s = min(10.0, max(2.0, args.duration / 2))
        self.deadline = self.t0 + self.ready_timeout + 2 * (self.fill_timeout + self.dns_timeout) + \
            2 * (QUIET_S + self.idle_s + args.duration + self.settle + TAIL_S) + 120

    # ---- helpers

    def client(self, url: str, token: str | None, timeout: float = 30) -> APIClient:
        c = APIClient(url, timeout=timeout, token=token, ca_file=str(self.rig.pki["ca.crt"]))
        self.clients.append(c)
        return c

    def progress(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 2.0:
            self._last_progress = now
            log(f"[{now - self.t0:6.1f}s] {text}")

    def cpu_all(self) -> dict[str, float]:
        out = {"apiserver": 0.0, "dns": 0.0, "member host": 0.0}
        for name, proc in self.rig.procs.items():
            value = cpu_seconds(proc.pid)
            if value is not None:
                kind = self.rig.kind_of(name)
                out[kind] = out.get(kind, 0.0) + value
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["bench"] = usage.ru_utime + usage.ru_stime
        out["machine"] = machine_busy_seconds()
        return out

    def read_rss(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, proc in self.rig.procs.items():
            now, peak = proc_status_mib(proc.pid, "VmRSS"), proc_status_mib(proc.pid, "VmHWM")
            if now is None or peak is None:
                continue
            entry = out.setdefault(self.rig.kind_of(name), {"now": 0.0, "peak": 0.0, "count": 0})
            entry["now"], entry["peak"] = max(entry["now"], now), max(entry["peak"], peak)
            entry["count"] += 1
        return out

    def placed_of(self, name: str) -> list[str]:
        return placement(int(name.split("-")[-1]), self.names, self.args.shards)

    def placed_count(self, upto: int) -> int:
        return sum(self.copies.ips(fill_name(i), self.placed_of(fill_name(i))) is not None for i in range(upto))

    # ---- watches

    def see_cluster(self, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        now = time.monotonic()
        self.added.setdefault(name, now)
        if is_ready(obj):
            self.ready.setdefault(name, now)
            self.ready_now.add(name)
        elif name in self.ready_now:
            self.ready_now.discard(name)
            if self.setup_done:
                self.left_ready.add(name)

    async def watch_clusters(self, api: APIClient) -> None:
        while time.monotonic() < self.deadline:
            try:
                listing = await api.get(CLUSTERS)
                for c in listing.get("items") or []:
                    self.see_cluster(c)
                rv = (listing.get("metadata") or {}).get("resourceVersion")
                self.cluster_watch["starts"] += 1
                async for event in api.watch(CLUSTERS, resource_version=rv, idle_timeout=60):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.see_cluster(event.get("object") or {})
            except APIError as err:
                self.cluster_watch["gone" if err.code == 410 else "errors"] += 1
            except NET_ERRORS:
                self.cluster_watch["errors"] += 1
            await asyncio.sleep(0.5)

    async def poll_clusters(self, api: APIClient) -> None:
        """Until every cluster is Ready, a list every 10 s besides the watch: counts what the watch missed.

        At 500 clusters the watch saw 480 ever Ready where the API server's log had all 500."""
        while time.monotonic() < self.deadline and len(self.ready) < self.args.clusters:
            await asyncio.sleep(10)
            try:
                items = (await api.get(CLUSTERS)).get("items") or []
            except NET_ERRORS:
                continue
            for c in items:
                name = (c.get("metadata") or {}).get("name")
                if is_ready(c) and name not in self.ready:
                    self.cluster_watch["ready_missed"] += 1
                self.see_cluster(c)

    async def watch_member(self, cluster: str, member: APIClient) -> None:
        rv: str | None = None
        failures = 0
        while time.monotonic() < self.deadline:
            try:
                async for event in member.watch(SERVICES, resource_version=rv,
                                                params={"labelSelector": f"{FEDERATION_LABEL}={FEDERATION_NAME}"}):
                    obj = event.get("object") or {}
                    etype = event.get("type", "")
                    if etype in ("ADDED", "MODIFIED", "DELETED"):
                        self.copies.observe(cluster, etype, obj, time.monotonic())
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    failures = 0
            except APIError as err:
                if err.code == 410:
                    rv = None  # relist: the backlog of ADDED events brings us up to date
            except NET_ERRORS:
                pass
            failures += 1
            await asyncio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)))

    async def watch_federation(self, api: APIClient, path: str, params: dict[str, str],
                               handle: Callable[[dict[str, Any], float], None]) -> None:
        """``--stages``: a watch from now on (the store's revision is global: a short list gives it)."""
        while time.monotonic() < self.deadline:
            try:
                rv = ((await api.get(CLUSTERS)).get("metadata") or {}).get("resourceVersion")
                async for event in api.watch(path, resource_version=rv, idle_timeout=60, params=params):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        handle(event.get("object") or {}, time.monotonic())
            except NET_ERRORS:
                pass
            await asyncio.sleep(0.5)

    def see_service(self, obj: dict[str, Any], now: float) -> None:
        name = (obj.get("metadata") or {}).get("name")
        placed = self.sent_at.get(name)
        if placed is None or name in self.stage_at["federation status"]:
            return
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if len(ingress) >= placed[1]:
            self.stage_at["federation status"][name] = now

    def see_record(self, obj: dict[str, Any], now: float) -> None:
        record = str((obj.get("metadata") or {}).get("name") or "")
        if not record.startswith("a.") or not record.endswith(f".default.{FEDERATION_NAME}.svc.{DOMAIN}"):
            return
        name = record[2:].split(".")[0]
        placed = self.sent_at.get(name)
        if placed is None or name in self.stage_at["DNSRecord"]:
            return
        if len((obj.get("spec") or {}).get("targets") or []) >= placed[1]:
            self.stage_at["DNSRecord"][name] = now

    async def connect_members(self, api: APIClient) -> None:
        """One watch per member, with the URL its Cluster advertises and the token its Secret holds."""
        clusters = {c["metadata"]["name"]: c for c in (await api.get(CLUSTERS))["items"]}
        sem = asyncio.Semaphore(FILL_CONCURRENCY)

        async def one(name: str) -> None:
            cluster = clusters[name]
            url = cluster["spec"]["serverAddressByClientCIDRs"][0]["serverAddress"]
            token = None
            if (cluster["spec"].get("secretRef") or {}).get("name"):
                async with sem:
                    secret = await api.get(f"{SECRETS}/{ACCESS_SECRET_PREFIX}{name}")
                token = secret_value(secret, "token") or None
            member = self.client(url, token)
            self.tasks.append(asyncio.create_task(self.watch_member(name, member), name=f"watch-{name}"))

        await asyncio.gather(*(one(n) for n in self.names))

    # ---- setup steps

    async def start_hosts(self, api: APIClient) -> None:
        """The host processes one after the other (each once its clusters have registered), or all at once."""
        args = self.args
        ranges = [(first, min(args.per_host, args.clusters - first)) for first in range(0, args.clusters, args.per_host)]
        for k, (first, count) in enumerate(ranges):
            self.rig.start_host(first, count)
            if args.all_at_once:
                continue
            names = [cluster_name(PREFIX, i) for i in range(first, first + count)]

            async def registered() -> bool | str:
                await self.free_stuck(api)
                done = sum(n in self.added for n in names)
                self.progress(f"host {k + 1}/{len(ranges)} started, clusters registered {len(self.added)}/"
                              f"{args.clusters}, Ready {len(self.ready)}/{args.clusters}")
                return True if done == count else f"{done}/{count} of host {k + 1}'s clusters registered"

            await self.rig.wait(f"host {k + 1}'s clusters to register", registered, 60 + 2 * count, interval=0.25)
        self.progress(f"started {len(ranges)} host processes for {args.clusters} clusters", force=True)

    async def free_stuck(self, api: APIClient) -> None:
        """Free clusters that can never join by themselves, as an admin would, and count them.

        Under load the agent's credential request (2 s timeout) can time out after the
        federation issued the credential; every retry is then refused as "already claimed"
        and the cluster never joins (clusters/agent.py, federation/admission.py). The remedy
        the message names: an admin deletes the Secret cluster-credential-<name>, and the
        agent's next retry gets a new credential. Each cluster is freed at most 3 times."""
        now = time.monotonic()
        if now - self._last_stuck_check < 5:
            return
        self._last_stuck_check = now
        stuck: set[str] = set()
        for name, path in self.rig.logs.items():
            if name.startswith("host"):
                try:
                    stuck |= set(CLAIMED.findall(path.read_text(errors="replace")))
                except OSError:
                    pass
        for name in sorted(stuck - set(self.added)):
            times = self.freed.setdefault(name, [])
            if times and now - times[-1] < 20:
                continue
            if len(times) >= 3:
                raise RuntimeError(f"cluster {name} still cannot join after its credential was freed 3 times")
            try:
                await api.delete(f"{SECRETS}/{CREDENTIAL_SECRET_PREFIX}{name}")
            except APIError as err:
                if err.code != 404:
                    raise
            times.append(now)
            log(f"scale: freed cluster {name}: its credential answer was lost (agent timeout), deleted "
                f"Secret {CREDENTIAL_SECRET_PREFIX}{name} as the refusal says")

    async def wait_ready(self, api: APIClient) -> None:
        n = self.args.clusters

        async def all_ready() -> bool | str:
            if len(self.ready) >= n:
                return True
            await self.free_stuck(api)
            self.progress(f"clusters Ready {len(self.ready)}/{n}")
            return f"{len(self.ready)}/{n} Ready"

        await self.rig.wait(f"{n} clusters Ready", all_ready, self.ready_timeout, interval=0.25)
        self.progress(f"clusters Ready {n}/{n}", force=True)

    async def fill(self, api: APIClient, upto: int) -> None:
        """Create fill services up to ``upto``, then wait until every copy has its address and DNS answers."""
        started = time.monotonic()
        sem = asyncio.Semaphore(FILL_CONCURRENCY)
        created = [0]

        async def create(i: int) -> None:
            async with sem:
                name = fill_name(i)
                for attempt in range(5):
                    try:
                        await api.post(SERVICES, service(name, self.placed_of(name), 8000 + i % 1000))
                        break
                    except APIError as err:
                        if err.code == 409:
                            break
                        if attempt == 4:
                            raise
                    except NET_ERRORS:
                        if attempt == 4:
                            raise
                    await asyncio.sleep(0.5 * (attempt + 1))
                created[0] += 1

        todo = [asyncio.create_task(create(i)) for i in range(self.present, upto)]
        try:
            while todo:
                done, pending = await asyncio.wait(todo, timeout=1.0)
                for t in done:
                    t.result()  # raise the first failure
                todo = list(pending)
                self.rig.check_alive()
                self.progress(f"services created {self.present + created[0]}/{upto}, "
                              f"placed {self.placed_count(upto)}/{upto}")
                if time.monotonic() - started > self.fill_timeout:
                    raise TimeoutError(f"creating {upto} services took over {self.fill_timeout:.0f}s")
        finally:
            for t in todo:
                t.cancel()
        self.present = upto
        label = "10 %" if upto < self.args.services else "100 %"
        self.setup[f"created {label}"] = time.monotonic() - self.t0

        async def placed() -> bool | str:
            count = self.placed_count(upto)
            self.progress(f"services placed {count}/{upto}")
            return True if count == upto else f"{count}/{upto} services placed"

        await self.rig.wait(f"{upto} services placed", placed, self.fill_timeout, interval=1.0)
        self.progress(f"services placed {upto}/{upto}", force=True)
        self.setup[f"placed {label}"] = time.monotonic() - self.t0
        sample = self.rng.sample(range(upto), min(DNS_SAMPLE, upto))

        async def dns_answers() -> bool | str:
            names = [fill_name(i) for i in sample]
            got = await asyncio.gather(*(self.probe.addresses(global_name(n, DOMAIN)) for n in names))
            bad = sum(g != self.copies.ips(n, self.placed_of(n)) for n, g in zip(names, got))
            self.progress(f"DNS answers {len(names) - bad}/{len(names)} sampled names")
            return True if bad == 0 else f"{bad} of {len(names)} sampled names not answered as expected"

        await self.rig.wait("DNS to answer the sampled names", dns_answers, self.dns_timeout, interval=1.0)
        self.setup[f"DNS {label}"] = time.monotonic() - self.t0

    # ---- a measured phase

    async def apply(self, api: APIClient, change: Change, result: PhaseResult, deadline: float) -> None:
        reached = self.copies.expect(change.name, change.reached)
        sent = time.monotonic()
        try:
            if change.kind == "create":
                await api.post(SERVICES, change.body())
            else:
                await api.patch(f"{SERVICES}/{change.name}", change.body())
        except NET_ERRORS:
            result.write_errors += 1
            reached.cancel()
            return
        result.write_latency.append(time.monotonic() - sent)
        result.issued += 1
        if change.kind == "create":
            self.sent_at[change.name] = (sent, len(change.placed))
        dns_wait = asyncio.create_task(self.dns_until(change, sent, deadline)) if change.kind == "create" else None
        try:
            at = await asyncio.wait_for(reached, max(0.0, deadline - time.monotonic()))
            (result.create_copies if change.kind == "create" else result.update_copies).append(at - sent)
        except asyncio.TimeoutError:
            result.copies_missing += 1
        if dns_wait is not None:
            took = await dns_wait
            if took is None:
                result.dns_missing += 1
            else:
                result.create_dns.append(took)

    async def dns_until(self, change: Change, sent: float, deadline: float) -> float | None:
        fqdn = global_name(change.name, DOMAIN)
        while (now := time.monotonic()) < deadline:
            expected = self.copies.ips(change.name, change.placed)
            if expected is not None and await self.probe.addresses(fqdn) == expected:
                return time.monotonic() - sent
            await asyncio.sleep(min(0.25, 0.02 + 0.05 * (now - sent)))
        return None

    async def phase(self, api: APIClient, name: str) -> PhaseResult:
        args = self.args
        count = max(1, round(args.rate * args.duration))
        store = self.present + self.created
        result = PhaseResult(name, store, count)
        self.progress(f"{name}: {self.idle_s:.0f} s idle, then {count} changes at {args.rate:g}/s "
                      f"on {store} services", force=True)
        await asyncio.sleep(QUIET_S)  # let the fill's last echoes (status writes, DNS plans) pass
        before, t_before = self.cpu_all(), time.monotonic()
        await asyncio.sleep(self.idle_s)
        after, t_after = self.cpu_all(), time.monotonic()
        result.idle_cpu_per_s = {k: (after[k] - before[k]) / (t_after - t_before) for k in after}
        targets = [fill_name(i) for i in range(self.present)]
        changes = plan_changes(phase=name.split()[0].rstrip("%"), count=count, first_seq=self.seq,
                               first_create=args.services + self.created, targets=targets,
                               placed_of=self.placed_of, clusters=self.names, shards=args.shards,
                               pick=self.rng.randrange)
        self.seq += count
        self.created += sum(c.kind == "create" for c in changes)
        if args.profile and name.startswith("100"):
            self.start_profiles(min(args.duration, 120))
        start, cpu_start = time.monotonic(), self.cpu_all()
        deadline = start + args.duration + self.settle
        running = []
        for j, change in enumerate(changes):
            delay = start + j / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.rig.check_alive()
            running.append(asyncio.create_task(self.apply(api, change, result, deadline)))
            self.progress(f"{name}: {j + 1}/{count} changes sent, {len(result.create_copies)} creates copied, "
                          f"{len(result.create_dns)} in DNS")
        result.send_seconds = time.monotonic() - start
        while running:
            done, pending = await asyncio.wait(running, timeout=2.0)
            for t in done:
                t.result()
            running = list(pending)
            self.rig.check_alive()
            self.progress(f"{name}: settling, {len(running)} changes not yet everywhere")
        await asyncio.sleep(TAIL_S)
        end, cpu_end = time.monotonic(), self.cpu_all()
        result.seconds = end - start
        result.cpu = {k: cpu_end[k] - cpu_start[k] for k in cpu_end}
        if args.stages:
            creates = [c.name for c in changes if c.kind == "create" and c.name in self.sent_at]
            result.stages["every member copy"] = result.create_copies
            for stage, seen in self.stage_at.items():
                result.stages[stage] = [seen[n] - self.sent_at[n][0] for n in creates if n in seen]
            result.stages["DNS answer"] = result.create_dns
        self.phases.append(result)
        self.progress(f"{name}: done, API CPU {result.cpu_per_change_ms():.1f} ms per change", force=True)
        return result

    def start_profiles(self, seconds: float) -> None:
        """py-spy on the API server and the responder for ``seconds`` (``--profile``): collapsed stacks."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            log("scale: --profile: py-spy not found (pip install py-spy into the virtualenv); not profiling")
            return
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        for kind in ("apiserver", "dns"):
            name = f"py-spy-{kind}"
            self.rig.may_exit.add(name)
            self.rig.spawn(name, [spy, "record", "--pid", str(self.rig.procs[kind].pid), "--duration",
                                  str(max(1, int(seconds))), "--format", "raw", "--nonblocking", "--threads",
                                  "--output", str(out / f"{kind}.txt")])

    def profile_report(self) -> str:
        if not self.args.profile:
            return ""
        lines = []
        for kind in ("apiserver", "dns"):
            path = Path(self.args.profile) / f"{kind}.txt"
            if not path.exists():
                continue
            text = path.read_text()
            for by in ("inclusive", "own"):
                total, rows = top_frames(text, 8, by)
                lines += ["", f"profile of the {kind} during the 100 % phase ({total} samples, py-spy), by "
                              f"{'time on the stack' if by == 'inclusive' else 'own time'}: % on the stack / % at the top"]
                lines += [f"  {inclusive:5.1f} % / {own:5.1f} %  {frame}" for frame, inclusive, own in rows]
        return "\n".join(lines)

    # ---- the run

    async def measure(self) -> None:
        args = self.args
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.probe, remote_addr=("127.0.0.1", self.rig.dns_port))
        self.rig.start_apiserver()
        api = self.client(self.rig.api_url, self.rig.creds.admin)
        watch_api = self.client(self.rig.api_url, self.rig.creds.admin)

        async def api_up() -> bool:
            return await api.get("/healthz") == "ok"

        await self.rig.wait("the API", api_up, 60)
        await publish_bootstrap_token(api, self.rig.creds.bootstrap)
        self.rig.start_dns()
        self.tasks.append(asyncio.create_task(self.watch_clusters(watch_api), name="watch-clusters"))
        self.tasks.append(asyncio.create_task(self.poll_clusters(api), name="poll-clusters"))
        await self.start_hosts(api)
        await self.wait_ready(api)
        self.setup["clusters Ready"] = time.monotonic() - self.t0
        await self.connect_members(api)
        small = max(1, round(args.services / 10))
        changes_api = self.client(self.rig.api_url, self.rig.creds.admin)
        await self.fill(api, small)
        self.setup_done = True
        if args.stages:
            stage_api = self.client(self.rig.api_url, self.rig.creds.admin)
            self.tasks.append(asyncio.create_task(self.watch_federation(stage_api, SERVICES, {}, self.see_service)))
            record_api = self.client(self.rig.api_url, self.rig.creds.admin)
            self.tasks.append(asyncio.create_task(self.watch_federation(
                record_api, "/apis/federation/v1beta1/dnsrecords",
                {"labelSelector": "federation.kubernetes.io/record-type=A"}, self.see_record)))
        await self.phase(changes_api, "10% store")
        if args.services > small:
            await self.fill(api, args.services)
        self.rig.signal_hosts(signal.SIGUSR1)  # the lease figures from here on
        await self.phase(changes_api, "100% store")

    def host_starts(self) -> dict[str, float]:
        out = {}
        for host in self.rig.hosts:
            for i in range(host.first, host.first + host.count):
                out[cluster_name(PREFIX, i)] = host.started
        return out

    async def run(self, load_before: tuple[float, float, float]) -> tuple[dict[str, Any], str]:
        measuring = asyncio.create_task(self.measure())
        loop = asyncio.get_running_loop()
        interrupted: list[int] = []

        def interrupt(sig: int) -> None:  # Ctrl-C or SIGTERM: stop measuring, report what was measured
            interrupted.append(sig)
            measuring.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt, sig)
        try:
            await measuring
        except (TimeoutError, RuntimeError, APIError) as err:
            self.error = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
            log(f"scale: {err}")
        except asyncio.CancelledError:
            if not interrupted:
                raise
            self.error = f"interrupted ({signal.Signals(interrupted[0]).name}) after {time.monotonic() - self.t0:.0f}s"
            log(f"scale: {self.error}; stopping everything")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.rss = self.read_rss()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
            if self.probe.transport is not None:
                self.probe.transport.close()
            self.rig.stop()
        renewals, failed = self.rig.host_stats()
        starts = self.host_starts()
        join = [self.ready[n] - self.added[n] for n in self.ready if n in self.added]
        start_to_ready = [self.ready[n] - starts[n] for n in self.ready if n in starts]
        first = min(starts.values()) if starts else None
        ready_s = (max(self.ready.values()) - first) if first is not None and len(self.ready) >= self.args.clusters \
            else None
        phases = {p.name: p for p in self.phases}
        args = self.args
        result = summary(clusters=args.clusters, services=args.services, shards=args.shards, per_host=args.per_host,
                         rate=args.rate, duration=args.duration, ready_s=ready_s, join=join,
                         start_to_ready=start_to_ready, small=phases.get("10% store"),
                         large=phases.get("100% store"), renewals=renewals, failed=failed,
                         not_ready=len(self.left_ready), rss=self.rss, setup=self.setup,
                         load=(load_before[0], os.getloadavg()[0]), error=self.error)
        result["credentials_freed"] = sum(len(t) for t in self.freed.values())
        result["cluster_watch"] = self.cluster_watch
        text = table(result, self.phases, self.rss, join, start_to_ready, renewals, os.cpu_count() or 0)
        text += self.profile_report()
        return result, text


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, required=True, help="member clusters")
    parser.add_argument("--services", type=int, required=True, help="federated services at the full store")
    parser.add_argument("--shards", type=int, required=True, help="clusters each service is placed on")
    parser.add_argument("--duration", type=float, required=True, help="seconds of changes in each measured phase")
    parser.add_argument("--per-host", type=int, default=10, help="clusters per host process (default 10)")
    parser.add_argument("--rate", type=float, default=10.0, help="service changes per second (default 10)")
    parser.add_argument("--all-at-once", action="store_true",
                        help="start every host process at once (default: each once the previous one's clusters "
                             "registered)")
    parser.add_argument("--stages", action="store_true",
                        help="also watch the federation's Services and A DNSRecords, to time each step from a "
                             "create to its DNS answer (adds two watchers to the API server)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="py-spy the API server and the responder during the 100 %% phase; stacks in DIR")
    args = parser.parse_args(argv)
    if not 1 <= args.clusters <= min(2000, MAX_INDEX + 1):
        parser.error("--clusters: 1-2000")
    if not 1 <= args.services <= 20000:
        parser.error("--services: 1-20000")
    if not 1 <= args.shards <= min(10, args.clusters):
        parser.error("--shards: 1-10, and at most --clusters")
    if not 1 <= args.duration <= 3600:
        parser.error("--duration: 1-3600 s")
    if not 1 <= args.per_host <= 200:
        parser.error("--per-host: 1-200")
    if not 0.1 <= args.rate <= 1000 or 2 * args.rate * args.duration > MAX_CHANGES:
        parser.error(f"--rate: 0.1-1000 a second, and at most {MAX_CHANGES // 2} changes a phase")
    return args


def main() -> int:
    args = parse()
    soft, hard = raise_open_files_limit()
    work = Path(tempfile.mkdtemp(prefix="ubernetes-scale-"))
    log(f"scale: working directory {work}; open files limit {soft} (hard {hard})")
    load_before = os.getloadavg()

    async def go() -> tuple[dict[str, Any], str]:
        return await Scale(args, work).run(load_before)

    try:
        result, text = asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log(f"scale: interrupted; every process it started is stopped (logs in {work})")
        return 130
    print(text)
    if args.keep or result.get("error"):
        print(f"logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
