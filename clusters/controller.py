"""The member cluster's own control loop: pod readiness, endpoints and load balancers.

Level-triggered, like a kube-controller-manager in miniature: every pass reads all services
and makes the world match (pods flip Ready when their delay has passed, Endpoints follow,
each LoadBalancer service has an address from the pool and a bound listener, everything
else has none). A pass runs when the state pokes the loop (any API write), when the next
pod is due, and every ``resync`` seconds regardless, which also retries failed binds.

The infinite loop (:meth:`Controller.run`) is tiny; the work is in :meth:`reconcile_once`
so tests can drive it step by step.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clusters.chaos import Chaos
from clusters.dataplane import BIND_FAILED, DataPlane
from clusters.mcsproxy import ExportOwner, MultiClusterDataPlane
from clusters.state import AddressPool, ClusterState, Key

log = logging.getLogger("ubernetes.cluster.controller")


class Controller:
    def __init__(
        self, *, state: ClusterState, dataplane: DataPlane, chaos: Chaos, lb_pool: AddressPool, resync: float = 2.0
    ) -> None:
        self.state = state
        self.dataplane = dataplane
        self.chaos = chaos
        self.lb_pool = lb_pool
        self.resync = resync
        self._wake = asyncio.Event()
        self._alloc_failed: dict[Key, str] = {}
        # exports served and ClusterSetIPs listened on (issue 14, clusters/mcsproxy.py)
        self.mcs = MultiClusterDataPlane(state=state, chaos=chaos, lb_pool=lb_pool,
                                         federation_name=dataplane.federation_name)

    def poke(self) -> None:
        """Ask for a pass soon (called by the state on every write, and by /chaos)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one pass must not stop the cluster
                log.exception("reconcile pass failed; retrying")
            deadline = self.state.next_deadline()
            timeout = self.resync
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - self.state.clock()) + 0.005)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def reconcile_once(self) -> None:
        self.state.forced_unready = self.chaos.forced_unready()
        self.state.reconcile()
        await self._reconcile_load_balancers()
        await self.mcs.reconcile()

    async def _reconcile_load_balancers(self) -> None:
        wanted = {k: s for k, s in self.state.services.items() if s["spec"].get("type") == "LoadBalancer"}
        owners = {o for o in self.lb_pool.owners() if not isinstance(o, ExportOwner)}  # exports: clusters/mcsproxy.py
        for key in set(self.dataplane.keys()) | owners:
            if key not in wanted:
                await self.dataplane.remove(key)
                address = self.lb_pool.release(key)
                if address:
                    log.info("lb %s/%s: released %s", key[0], key[1], address)
                self.state.set_load_balancer_status(key, [])
                self._alloc_failed.pop(key, None)
        for key, svc in wanted.items():
            await self._ensure_load_balancer(key, svc)

    async def _ensure_load_balancer(self, key: Key, svc: dict[str, Any]) -> None:
        requested = svc["spec"].get("loadBalancerIP") or None
        address = self.lb_pool.allocate(key, requested)
        if address is None:
            problem = (
                f"requested loadBalancerIP {requested} is not a free address of the pool {self.lb_pool.network}"
                if requested
                else f"no free address left in the pool {self.lb_pool.network}"
            )
            if self._alloc_failed.get(key) != problem:
                log.warning("lb %s/%s: %s", key[0], key[1], problem)
                self.state.record_event(svc, "Warning", "AllocationFailed", problem)
                self._alloc_failed[key] = problem
            await self.dataplane.remove(key)
            self.state.set_load_balancer_status(key, [])
            return
        self._alloc_failed.pop(key, None)
        tcp_ports = [p["port"] for p in svc["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        errors = await self.dataplane.ensure(key, address, tcp_ports)
        current = self.state.services.get(key)
        if current is None or current["spec"].get("type") != "LoadBalancer":
            self.poke()  # deleted or changed while we were binding: the next pass cleans up
            return
        ingress = [
            {
                "ip": address,
                "ipMode": "VIP",
                "ports": [
                    {"port": port, "protocol": "TCP", **({"error": BIND_FAILED} if port in errors else {})}
                    for port in tcp_ports
                ],
            }
        ]
        if self.state.set_load_balancer_status(key, ingress):
            if errors:
                self.state.record_event(current, "Warning", "SyncLoadBalancerFailed", "; ".join(errors[p] for p in sorted(errors)))
            else:
                self.state.record_event(current, "Normal", "EnsuredLoadBalancer", f"Ensured load balancer at {address}")
