"""Data-plane health checking: probers vote by majority on every shard's LB address (issue 5).

Cluster health (``controllers/health.py``) asks the control plane: does the member's API
answer? That is the wrong question for DNS when the two fail apart. A member cut off from
the federation only (split brain) still serves its clients, and a member whose load
balancers died may still have a healthy API. So each period this controller

1. lists every shard's address (``ip:port``, the service's first TCP port) from the
   federated Services' ``status.shards``;
2. probes them itself (:class:`federation.probing.AddressProber`), and at the same time asks
   every member for its own view with ``POST /probes`` (the targets of the *other* members;
   see ``clusters/prober.py``); a member that does not answer in time has no vote;
3. calls an address unreachable when more than half of the probers with a view say it is
   down (:func:`federation.planners.health.majority_down`), and tells the DNS controller, which leaves
   those addresses out of every record.

The verdicts live in memory: after an API server restart they start empty (nothing is
removed) and are rebuilt within a couple of periods. Each change is logged and recorded as
an Event on the Service (``ShardUnreachable`` / ``ShardReachable``) with the vote tally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from federation.api import approval

from federation.planners import health
from federation.controllers.members import MemberClients
from federation.api.events import record_event
from federation.probing import AddressProber
from federation.api.cache import Reader, StoreReader
from federation.api.registry import Registry
from federation.resources import CLUSTERS, SERVICES
from federation.settings import Settings

log = logging.getLogger("federation.dataplane")

FEDERATION_VOTER = "federation"


def shard_targets(services: list[dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    """``ip:port`` -> {(cluster, ip)} for every shard address of every federated Service."""
    out: dict[str, set[tuple[str, str]]] = {}
    for service in services:
        ports = [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
        tcp = [int(p["port"]) for p in ports if p.get("protocol", "TCP") == "TCP" and p.get("port")]
        if not tcp:
            continue
        for shard in (service.get("status") or {}).get("shards") or []:
            for ingress in shard.get("ingress") or []:
                ip = ingress.get("ip") if isinstance(ingress, dict) else None
                if ip:
                    host = f"[{ip}]" if ":" in ip else ip
                    out.setdefault(f"{host}:{tcp[0]}", set()).add((shard.get("cluster", ""), ip))
    return out


class DataPlaneController:
    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        members: MemberClients,
        *,
        on_change: Callable[[], Awaitable[None]] | None = None,
        reader: Reader | None = None,
        history: Any = None,
    ) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        self.on_change = on_change
        self.prober = AddressProber(
            period=settings.dataplane_period,
            timeout=settings.dataplane_timeout,
            failure_threshold=settings.dataplane_failure_threshold,
        )
        self.down: frozenset[tuple[str, str]] = frozenset()
        self.up: frozenset[tuple[str, str]] = frozenset()  # voted up by a majority (bounded keep)
        self.history = history  # federation.controllers.history.FailoverHistory (issue 17)
        self._told: set[tuple[str, float]] = set()  # first failures already told to the history
        self.votes: dict[str, dict[str, str]] = {}

    def unreachable(self) -> frozenset[tuple[str, str]]:
        return self.down

    def reachable(self) -> frozenset[tuple[str, str]]:
        return self.up

    async def reconcile(self) -> None:
        if not self.settings.dataplane_checks:
            return
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        services = self.reader.list(SERVICES)
        targets = shard_targets(services)
        self.prober.set_targets(set(targets))
        polls = [
            self._ask(c, [t for t, pairs in targets.items() if all(cl != c["metadata"]["name"] for cl, _ in pairs)])
            for c in clusters
        ]
        _, *answers = await asyncio.gather(self.prober.step(), *polls)
        votes: dict[str, dict[str, str]] = {t: {FEDERATION_VOTER: v} for t, v in self.prober.verdicts().items()}
        for cluster, verdicts in zip(clusters, answers):
            for target, verdict in (verdicts or {}).items():
                if target in votes:
                    votes[target][cluster["metadata"]["name"]] = verdict
        if self.history is not None:
            self._tell_history(targets, votes)
        self.votes = votes
        down = frozenset(pair for t, v in votes.items() if health.majority_down(v) for pair in targets.get(t, ()))
        up = frozenset(pair for t, v in votes.items() if health.majority_up(v) for pair in targets.get(t, ()))
        changed = down != self.down or up != self.up
        if down != self.down:
            self._report(services, targets, votes, added=down - self.down, removed=self.down - down)
            self.down = down
        self.up = up
        if changed:
            if self.on_change is not None:
                try:
                    await self.on_change()
                except Exception:  # noqa: BLE001 - the DNS controller's own loop retries and logs it
                    log.debug("DNS reconcile after a verdict change failed", exc_info=True)

    def _tell_history(self, targets: dict[str, set[tuple[str, str]]], votes: dict[str, dict[str, str]]) -> None:
        """First failed probes of the federation's prober, and every prober's changed view (issue 17)."""
        from federation.controllers.history import wall
        from federation.planners import history as plan

        failures = self.prober.first_failures()
        self._told = {k for k in self._told if k[0] in failures and failures[k[0]][0] == k[1]}
        for target, (at, message) in failures.items():
            if (target, at) not in self._told:
                self._told.add((target, at))
                for cluster, _ in sorted(targets.get(target, ())):
                    self.history.probe_failed(cluster, wall(at), f"data-plane probe of {message}",
                                              address=target, prober=FEDERATION_VOTER)
        now = wall(time.time())
        for target, view in votes.items():
            for voter, vote in plan.vote_changes(self.votes.get(target, {}), view):
                for cluster, _ in sorted(targets.get(target, ())):
                    self.history.vote(cluster, now, plan.DOWN if vote == health.DOWN else plan.UP,
                                      f"{voter} votes {target} {vote} ({plan.vote_tally(view)})",
                                      address=target, prober=voter, view=vote, votes=dict(view))

    async def _ask(self, cluster: dict[str, Any], targets: list[str]) -> dict[str, str] | None:
        client = self.members.for_cluster(cluster)
        if client is None:
            return None
        body = {
            "targets": sorted(targets),
            "period": self.settings.dataplane_period,
            "timeout": self.settings.dataplane_timeout,
            "failureThreshold": self.settings.dataplane_failure_threshold,
        }
        try:
            answer = await client.post("/probes", body, timeout=self.settings.dataplane_timeout)
        except Exception as err:  # noqa: BLE001 - no answer, no vote
            log.debug("no data-plane votes from %s: %s", cluster["metadata"]["name"], err)
            return None
        verdicts = (answer or {}).get("verdicts") if isinstance(answer, dict) else None
        return verdicts if isinstance(verdicts, dict) else None

    def _history_verdict(self, cluster: str, ip: str, target: str, votes: dict[str, str], *, up: bool,
                         message: str) -> None:
        from federation import metrics
        from federation.controllers.history import wall
        from federation.planners import history as plan

        now = time.time()
        details: dict[str, Any] = {"address": target, "votes": dict(votes)}
        last_ok = self.prober.last_ok(target)
        if not up and last_ok is not None:
            metrics.shard_detected(now - last_ok)  # the same figure as the record's
            details.update(faultToDetection=round(now - last_ok, 6), lastGoodProbe=plan.rfc3339_micro(wall(last_ok)))
        self.history.verdict(cluster, wall(now), plan.UP if up else plan.DOWN,
                             "ShardReachable" if up else "ShardUnreachable", message,
                             addresses=frozenset({ip}), **details)

    def _report(
        self,
        services: list[dict[str, Any]],
        targets: dict[str, set[tuple[str, str]]],
        votes: dict[str, dict[str, str]],
        *,
        added: frozenset[tuple[str, str]],
        removed: frozenset[tuple[str, str]],
    ) -> None:
        for pairs, reason in ((added, "ShardUnreachable"), (removed, "ShardReachable")):
            for cluster, ip in sorted(pairs):
                target = next((t for t, p in targets.items() if (cluster, ip) in p), "")
                tally = ", ".join(f"{k}: {v or 'no view'}" for k, v in sorted(votes.get(target, {}).items()))
                verb = "down" if reason == "ShardUnreachable" else "up"
                message = f"data-plane probers voted {target or ip} (cluster {cluster}) {verb}: {tally}"
                log.info("%s", message)
                if self.history is not None:
                    self._history_verdict(cluster, ip, target, votes.get(target, {}), up=verb == "up", message=message)
                for service in services:
                    shards = (service.get("status") or {}).get("shards") or []
                    if any(s.get("cluster") == cluster and any(i.get("ip") == ip for i in s.get("ingress") or []) for s in shards):
                        record_event(self.registry, involved=service, reason=reason, message=message,
                                     type_="Warning" if verb == "down" else "Normal")
