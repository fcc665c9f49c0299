"""One ``ubernetes up --netns`` (issue 16): namespaces, who runs where, resolvers, packet faults.

The launcher's app-level mode runs every process on loopback; this mode puts each member
cluster, the federation API and the DNS responder in a network namespace of its own and
clients in client namespaces (the layout and every command: :mod:`federation.launch.netnsplan`;
running them: :mod:`federation.launch.netns`). This module ties that to a
:class:`~federation.launch.localfed.LocalFederation`:

- :meth:`NetnsRun.create` cleans what a SIGKILLed launcher left (by name), builds this
  run's namespaces, and hands out the topology with each member's LB pool moved into
  198.19.x (its namespace's) and the :class:`Placement` that starts each process inside its
  namespace on its link address;
- :meth:`NetnsRun.start_resolvers` runs Unbound in every client namespace, with stub zones
  to our responder, and writes the namespace's ``resolv.conf`` (``ip netns exec`` binds
  ``/etc/netns/NS/resolv.conf``) so glibc's ``getaddrinfo`` there goes through it;
- :class:`PacketFaults` is what ``ubernetes chaos`` reaches through the launcher's fault API
  in this mode: each verb a planner fault, tracked by an id derived from what it breaks so
  that the same verb again replaces it, ``flap`` a task that keeps time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from federation.launch import netns as nx
from federation.launch import netnsplan, unboundconf
from federation.launch.localfed import Placement
from federation.launch.topology import Topology

log = logging.getLogger("federation.launch.netnsrun")

UNBOUND = shutil.which("unbound") or ("/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists() else None)
VERBS = ("partition", "blackhole", "loss", "latency", "link-down", "flap", "slow-dns")


class NetnsRun:
    def __init__(self, plan: netnsplan.NetnsPlan, net: nx.Netns, cleaned: list[str], netem: bool) -> None:
        self.plan, self.net, self.cleaned, self.netem = plan, net, cleaned, netem
        self.resolvers: dict[str, subprocess.Popen[bytes]] = {}
        self.faults: PacketFaults | None = None
        self.closed = False

    @classmethod
    def create(cls, topology: Topology, *, clients: int = 1, pid: int | None = None) -> "NetnsRun":
        """Clean leftovers, then build this run's namespaces (raises NetnsUnavailable without root)."""
        nx.check_root()
        cleaned = nx.clean_leftovers()
        plan = netnsplan.plan(topology, pid=pid or os.getpid(), subnet=nx.free_subnet(), clients=clients)
        net = nx.Netns(plan).build()
        try:
            netem = nx.has_netem(plan.launcher)
        except BaseException:
            net.close()
            raise
        return cls(plan, net, cleaned, netem)

    def topology(self, topology: Topology) -> Topology:
        """``topology`` with each member's LB pool the one routed to its namespace."""
        pools = {m.name: m.lb_pool for m in self.plan.members}
        return dataclasses.replace(topology, clusters=tuple(
            dataclasses.replace(c, lb_pool=pools[c.name] or c.lb_pool) for c in topology.clusters))

    def placement(self) -> Placement:
        where = {"apiserver": self.plan.api, "dns": self.plan.dns, **{m.name: m for m in self.plan.members}}
        # "launcher": the root end of the link, where the fault API listens too (its certificate names it)
        return Placement(hosts={"launcher": self.plan.host_address, **{name: n.address for name, n in where.items()}},
                         prefixes={name: ("ip", "netns", "exec", n.netns) for name, n in where.items()})

    def start_resolvers(self, *, workdir: Path, dns_port: int, domain: str,
                        options: dict[str, str] | None = None) -> list[str]:
        """Unbound in every client namespace (when installed); what happened, one line each."""
        said = []
        for client in self.plan.clients:
            resolv = self.net.resolv_conf(client, "127.0.0.1")
            if UNBOUND is None:
                said.append(f"{client.netns}: no Unbound (apt-get install unbound); {resolv} names 127.0.0.1 anyway")
                continue
            work = workdir / f"unbound-{client.name}"
            work.mkdir(parents=True, exist_ok=True)
            conf = work / "unbound.conf"
            conf.write_text(unboundconf.config(workdir=work, interfaces=["127.0.0.1", client.address],
                                               outgoing=client.address, responder=f"{self.plan.dns.address}@{dns_port}",
                                               domain=domain, options=options))
            with open(work / "unbound.out", "wb") as out:
                self.resolvers[client.name] = subprocess.Popen(
                    ["ip", "netns", "exec", client.netns, UNBOUND, "-d", "-c", str(conf)],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=nx.die_with_parent)
            said.append(f"{client.netns}: Unbound on {client.address}:53 and 127.0.0.1:53, stub zones to "
                        f"{self.plan.dns.address}@{dns_port}; {resolv}")
        return said

    def stop_resolvers(self) -> None:
        for proc in self.resolvers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.resolvers.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.faults is not None:
            self.faults.stop_flaps()
        self.net.heal_all()
        self.stop_resolvers()
        self.net.close()

    def describe(self) -> list[str]:
        """The summary's lines: each namespace, its address and who runs in it."""
        p = self.plan
        lines = [f"  namespaces       {p.run}-* (bridge in {p.launcher}; this host is {p.host_address} "
                 f"on {p.host_veth}; latency by {'netem' if self.netem else 'our delaying relay (no netem)'})"]
        for n in p.nodes:
            extra = f", LB pool {n.lb_pool}" if n.lb_pool else ""
            lines.append(f"    {n.netns:<16} {n.address:<15} {n.role} {n.name if n.role == 'member' else ''}{extra}")
        return lines


class PacketFaults:
    """``ubernetes chaos`` verbs as packet-level faults, for the launcher's fault API."""

    def __init__(self, run: NetnsRun, *, dns_port: int) -> None:
        self.run, self.dns_port = run, dns_port
        self.targets: dict[str, tuple[str, ...]] = {}  # fault id -> the member clusters it breaks
        self.params: dict[str, dict[str, Any]] = {}
        self.flaps: dict[str, asyncio.Task[None]] = {}
        run.faults = self

    @property
    def plan(self) -> netnsplan.NetnsPlan:
        return self.run.plan

    def _targets(self, *, cluster: str | None, zone: str | None, region: str | None) -> tuple[str, ...]:
        if cluster is None and zone is None and region is None:
            return ()
        return tuple(m.name for m in self.plan.members_in(cluster=cluster, zone=zone, region=region))

    async def apply(self, kind: str, *, cluster: str | None = None, zone: str | None = None, region: str | None = None,
                    direction: str = "both", percent: float = 0.0, ms: float = 0.0, jitter_ms: float = 0.0,
                    period: float = 5.0) -> str:
        """Apply one fault (raises NetnsPlanError for bad input); its id."""
        where = cluster or (f"zone-{zone}" if zone else f"region-{region}" if region else "dns")
        fault_id = f"{kind}-{where}"
        fp = netnsplan.fault(self.plan, kind, fault_id=fault_id, cluster=cluster, zone=zone, region=region,
                             direction=direction, percent=percent, ms=ms, jitter_ms=jitter_ms, netem=self.run.netem,
                             udp_dport=self.dns_port if kind == "slow-dns" else None)
        await self.heal_id(fault_id)
        if kind == "flap":
            if period <= 0:
                raise netnsplan.NetnsPlanError(f"flap period {period}: must be more than 0 s")
            self.flaps[fault_id] = asyncio.create_task(self._flap(fault_id, fp, period), name=fault_id)
        else:
            await asyncio.to_thread(self.run.net.apply, fault_id, fp)
        self.targets[fault_id] = self._targets(cluster=cluster, zone=zone, region=region)
        self.params[fault_id] = {k: v for k, v in dict(kind=kind, direction=direction, percent=percent, ms=ms,
                                                       jitterMs=jitter_ms, period=period).items()
                                 if v and (k != "direction" or kind in ("partition", "loss"))
                                 and (k != "period" or kind == "flap")}
        log.info("packet fault %s applied", fault_id)
        return fault_id

    async def _flap(self, fault_id: str, fp: netnsplan.FaultPlan, period: float) -> None:
        key = f"{fault_id}/down"
        try:
            while True:
                await asyncio.to_thread(self.run.net.apply, key, fp)
                await asyncio.sleep(period)
                await asyncio.to_thread(self.run.net.heal, key)
                await asyncio.sleep(period)
        finally:
            self.run.net.heal(key)

    async def heal_id(self, fault_id: str) -> bool:
        task = self.flaps.pop(fault_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        healed = await asyncio.to_thread(self.run.net.heal, fault_id)
        self.targets.pop(fault_id, None)
        self.params.pop(fault_id, None)
        return healed or task is not None

    async def heal(self, clusters: list[str] | None = None) -> list[str]:
        """Heal every fault (None), or those that touch one of ``clusters``; their ids."""
        ids = [f for f, t in self.targets.items() if clusters is None or set(t) & set(clusters)]
        for fault_id in ids:
            await self.heal_id(fault_id)
        return ids

    def stop_flaps(self) -> None:
        for task in self.flaps.values():
            task.cancel()
        self.flaps.clear()

    def state(self) -> dict[str, Any]:
        return {"mode": "netns", "run": self.plan.run, "netem": self.run.netem,
                "faults": {f: {"clusters": list(self.targets[f]), **self.params[f]} for f in sorted(self.targets)}}
