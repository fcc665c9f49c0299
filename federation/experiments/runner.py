"""One run of a scenario: a fresh federation, probes, the timed faults, and events.jsonl.

The run brings up the scenario's federation with :class:`~federation.launch.localfed.LocalFederation`
(free ports, fresh LB pools in 127/8, a store file in the output directory, every process's
log under ``logs/``), waits until every shard is healthy and DNS answers all of them, then
starts the clock: t = 0 is when the probes start. Faults and heals happen at their times;
cluster conditions and the data-plane verdicts (Events ``ShardUnreachable`` and
``ShardReachable``) are watched from the federation API. At the end everything is torn down.

Every observation is one JSON line in ``events.jsonl`` with ``t`` (seconds) and ``kind``:
``meta``, ``shards`` (the baseline addresses), ``fault`` / ``heal``, ``condition``,
``verdict``, ``dns`` (every query), ``client`` (every request), ``leader`` (every renewal
of the controllers' Lease seen), ``write`` (every write of the write prober) and, after
``end``, ``writes-check`` (what is stored of those writes).

The scenario's ``controlPlane`` says what runs the API: ``sqlite`` (one API server on a
file in the output directory) or ``etcd-ha`` (three real etcd members with their data in a
temporary directory, three API servers on them, leader-elected controllers: ``up --ha``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from federation.planners import dnsplan, health
from federation.experiments import faults as faultlib
from federation.experiments.probes import ClientProber, DNSProber, LeaderWatch, WriteProber, query
from federation.experiments.scenario import Scenario, with_fresh_pools
from federation.launch.localfed import LocalFederation

CONDITION_POLL = 0.2


class EventLog:
    def __init__(self, path: Path) -> None:
        self.events: list[dict[str, Any]] = []
        self._file: TextIO = path.open("w")

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._file.write(json.dumps(event, sort_keys=True) + "\n")

    def close(self) -> None:
        self._file.close()


def _shards(services: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for s in services:
        ref = f"{s['metadata']['namespace']}/{s['metadata']['name']}"
        for shard in (s.get("status") or {}).get("shards") or []:
            ips = [i["ip"] for i in shard.get("ingress") or [] if i.get("ip")]
            out.setdefault(ref, {})[shard["cluster"]] = ips
    return out


async def _settled(fed: LocalFederation, scenario: Scenario) -> dict[str, dict[str, list[str]]] | None:
    """The baseline shards once every one is healthy and the first name answers all of them."""
    try:
        services = (await fed.api.get("/api/v1/services")).get("items") or []
    except Exception:  # noqa: BLE001
        return None
    want = len(scenario.topology.clusters)
    for s in services:
        shards = (s.get("status") or {}).get("shards") or []
        if len([x for x in shards if x.get("healthy")]) < want:
            return None
    shards = _shards(services)
    meta = scenario.topology.objects[0]["metadata"]
    ns = meta.get("namespace") or "default"
    gname = dnsplan.global_name(meta["name"], ns, scenario.topology.federation, scenario.topology.domain.strip(".") + ".")
    try:
        answer = await query(gname, server=fed.host, port=fed.dns_port, timeout=1.0)
    except Exception:  # noqa: BLE001
        return None
    wanted = {ip for ips in shards.get(f"{ns}/{meta['name']}", {}).values() for ip in ips}
    return shards if wanted and wanted <= set(answer.addresses) else None


async def _watch_conditions(
    fed: LocalFederation, emit: Callable[[dict[str, Any]], None], clock: Callable[[], float], until: float,
) -> None:
    last: dict[str, str] = {}
    seen_events: set[str] = set()
    first = True
    while clock() < until:
        try:
            clusters = await fed.clusters()
            for name, c in sorted(clusters.items()):
                phase = health.phase_from_conditions((c.get("status") or {}).get("conditions"))
                if last.get(name) != phase:
                    if name in last or first:
                        emit({"t": round(clock(), 4), "kind": "condition", "cluster": name, "phase": phase})
                    last[name] = phase
            events = (await fed.api.get("/api/v1/events")).get("items") or []
            for ev in events:
                uid = ev["metadata"].get("uid") or ev["metadata"]["name"]
                if ev.get("reason") in ("ShardUnreachable", "ShardReachable") and uid not in seen_events:
                    seen_events.add(uid)
                    if not first:
                        emit({"t": round(clock(), 4), "kind": "verdict", "reason": ev["reason"], "message": ev.get("message", "")})
            first = False
        except Exception:  # noqa: BLE001 - the API may be the fault; keep watching
            pass
        await asyncio.sleep(CONDITION_POLL)


class _Progress:
    """A progress bar on stderr over the scenario's duration (quiet when not asked)."""

    def __init__(self, *, duration: float, label: str, enabled: bool) -> None:
        self.duration, self.label, self.enabled = duration, label, enabled

    async def run(self, clock: Callable[[], float]) -> None:
        if not self.enabled:
            return
        steps = max(1, int(self.duration * 4))
        with click.progressbar(length=steps, label=self.label, file=sys.stderr, show_eta=True, width=30) as bar:
            done = 0
            while done < steps:
                await asyncio.sleep(0.25)
                now = min(steps, int(clock() * 4))
                if now > done:
                    bar.update(now - done)
                    done = now


async def run_once(scenario: Scenario, out: Path, *, progress: bool = True, label: str = "") -> list[dict[str, Any]]:
    """Run the scenario once; write ``out/events.jsonl`` and ``out/logs/``; return the events."""
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    files: dict[str, TextIO] = {}

    def sink(name: str, line: str) -> None:
        f = files.get(name) or files.setdefault(name, (logs / f"{name}.log").open("a"))
        f.write(line + "\n")

    store = out / "federation.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    topology = with_fresh_pools(scenario.topology)
    fed = LocalFederation(topology, store=str(store), apiserver_args=scenario.apiserver_args(), log_sink=sink,
                          api_replicas=scenario.api_replicas, etcd_members=scenario.etcd_members)
    log = EventLog(out / "events.jsonl")
    tasks: list[asyncio.Task[Any]] = []
    try:
        await fed.start(timeout=60)
        await fed.apply_objects()
        shards = await fed.wait_for(lambda: _settled(fed, scenario), 60, "every shard healthy and answered in DNS", interval=0.2)
        start = time.monotonic()

        def clock() -> float:
            return time.monotonic() - start

        emit = log.emit
        emit({"t": 0.0, "kind": "meta", "scenario": scenario.name, "settings": scenario.effective_settings(),
              "controlPlane": scenario.control_plane,
              "ttl": scenario.ttl, "duration": scenario.duration, "names": list(scenario.dns.names),
              "clientName": scenario.clients.name if scenario.clients else None,
              "clientTimeout": scenario.clients.timeout if scenario.clients else None,
              "clusters": [{"name": c.name, "region": c.region, "zones": list(c.zones)} for c in topology.clusters],
              "faults": [{"id": f.id, "fault": f.kind, "at": f.at, "heal": f.heal, **f.params} for f in scenario.faults],
              "expect": list(scenario.expect)})
        emit({"t": 0.0, "kind": "shards", "shards": shards})
        dns_prober = DNSProber(names=scenario.dns.names, rate=scenario.dns.rate, server=fed.host, port=fed.dns_port,
                               emit=emit, clock=clock, until=scenario.duration)
        tasks.append(asyncio.create_task(dns_prober.run()))
        if scenario.clients is not None:
            c = scenario.clients
            clients = ClientProber(name=c.name, port=c.port, count=c.count, rate=c.rate, timeout=c.timeout,
                                   server=fed.host, dns_port=fed.dns_port, emit=emit, clock=clock,
                                   until=scenario.duration)
            tasks.append(asyncio.create_task(clients.run()))
        tasks.append(asyncio.create_task(_watch_conditions(fed, emit, clock, scenario.duration)))
        tasks.append(asyncio.create_task(LeaderWatch(urls=fed.api_urls, emit=emit, clock=clock,
                                                     until=scenario.duration).run()))
        writes = None
        if scenario.writes is not None:
            writes = WriteProber(urls=fed.api_urls, rate=scenario.writes.rate, timeout=scenario.writes.timeout,
                                 emit=emit, clock=clock, until=scenario.duration)
            tasks.append(asyncio.create_task(writes.run()))
        bar = asyncio.create_task(_Progress(duration=scenario.duration, label=label or scenario.name, enabled=progress).run(clock))
        actions: list[tuple[float, str, Any]] = []
        for f in scenario.faults:
            actions.append((f.at, "fault", f))
            if f.heal is not None:
                actions.append((f.heal, "heal", f))
        done: dict[str, dict[str, Any]] = {}  # fault id -> what its injection did (for its heal)
        for at, what, fault in sorted(actions, key=lambda a: (a[0], a[1] == "fault")):
            await asyncio.sleep(max(0.0, at - clock()))
            clusters = faultlib.affected_clusters(fed, fault)
            event = {"t": round(clock(), 4), "kind": what, "id": fault.id, "fault": fault.kind, "clusters": clusters,
                     "addresses": faultlib.dead_addresses(fault, clusters, shards), "what": fault.describe()}
            if what == "fault":
                done[fault.id] = await faultlib.inject(fed, fault)
                event.update(done[fault.id])
            else:
                await faultlib.heal(fed, fault, done.get(fault.id))
            emit(event)
        await asyncio.sleep(max(0.0, scenario.duration - clock()))
        emit({"t": round(clock(), 4), "kind": "end"})
        await bar
        if writes is not None:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)
            emit(await writes.verify())
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        with contextlib.suppress(Exception):
            await fed.stop()
        log.close()
        for f in files.values():
            f.close()
    return log.events
