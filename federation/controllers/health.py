"""Cluster health: probe every member's ``/healthz``, watch its lease, write its conditions.

Each period every cluster is probed concurrently with a timeout; the result (and an expired
lease, which counts as unreachable) is folded into :mod:`federation.planners.health`'s state machine,
and the ``Ready``/``Offline`` conditions are written when they change. Zones and region are
read from the member's node labels and refreshed. The status of a steady cluster is
rewritten only every ``probe_time_refresh`` seconds, to keep ``lastProbeTime`` meaningful
without a write per probe.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import datetime, timezone
from typing import Any

from federation import metrics
from federation.planners import health
from federation.controllers.members import MemberClients
from federation.api.events import record_event
from apimachinery.meta import now_rfc3339, parse_time
from federation.api.cache import Reader, StoreReader
from federation.names import LEGACY_REGION_LABEL, LEGACY_ZONE_LABEL, REGION_LABEL, ZONE_LABEL
from federation.api.registry import Registry
from federation.resources import CLUSTERS, LEASES
from federation.settings import Settings
from apimachinery.errors import APIError, Conflict, NotFound, ServiceUnavailable

log = logging.getLogger("federation.planners.health")

ZONE_LABELS = (ZONE_LABEL, LEGACY_ZONE_LABEL)
REGION_LABELS = (REGION_LABEL, LEGACY_REGION_LABEL)
TOKEN_WITHHELD = "TokenWithheld"  # issue 19: a member token the federation will not send, and why


def zones_and_region(nodes: list[dict[str, Any]]) -> tuple[list[str], str]:
    zones: set[str] = set()
    regions: set[str] = set()
    for node in nodes:
        meta = node.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(labels, dict):
            continue  # a member's answer is untrusted input
        for keys, found in ((ZONE_LABELS, zones), (REGION_LABELS, regions)):
            value = next((labels[k] for k in keys if isinstance(labels.get(k), str) and labels[k]), None)
            if value:
                found.add(value)
    return sorted(zones), (sorted(regions)[0] if regions else "")


class HealthController:
    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None, history: Any = None) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.members = members
        self.states: dict[str, health.HealthState] = {}
        self.history = history  # federation.controllers.history.FailoverHistory (issue 17)
        self._last_write: dict[str, float] = {}
        self._last_zones: dict[str, float] = {}

    async def reconcile(self) -> None:
        clusters = self.reader.list(CLUSTERS)
        names = {c["metadata"]["name"] for c in clusters}
        for gone in set(self.states) - names:
            self.states.pop(gone, None)
            self._last_write.pop(gone, None)
            self._last_zones.pop(gone, None)
            metrics.cluster_removed(gone)
        results = await asyncio.gather(*(self._check(c) for c in clusters), return_exceptions=True)
        for cluster, result in zip(clusters, results):
            # One member's odd answer must not stop the health of all the others (issue 19).
            if isinstance(result, Exception):
                log.warning("checking cluster %s failed: %s", cluster["metadata"]["name"], result,
                            exc_info=None if isinstance(result, ServiceUnavailable) else result)

    async def _probe(self, cluster: dict[str, Any]) -> tuple[str, str]:
        client = self.members.for_cluster(cluster)
        if client is None:
            return health.UNREACHABLE, "the cluster has no server address"
        try:
            body = await client.get("/healthz", timeout=self.settings.health_timeout)
        except APIError as err:
            return health.NOT_OK, f"/healthz responded with {err.code}: {err.message[:80]}"
        except asyncio.TimeoutError:
            return health.UNREACHABLE, f"/healthz did not answer within {self.settings.health_timeout:g}s"
        except Exception as err:  # noqa: BLE001 - OSError and aiohttp's many client errors
            cause = getattr(err, "os_error", None) or err
            reason = getattr(cause, "strerror", None) or str(cause) or type(err).__name__
            return health.UNREACHABLE, f"cannot reach {client.base_url}: {reason}"
        if isinstance(body, str) and body.strip() == "ok":
            return health.OK, "/healthz responded with ok"
        return health.NOT_OK, f"/healthz responded with {str(body)[:80]!r}"

    def _lease(self, name: str) -> dict[str, Any]:
        """The member's Lease as the verdict saw it: renewTime, its age, duration, expired."""
        lease = self.registry.find(LEASES, self.settings.lease_namespace, name)
        spec = (lease or {}).get("spec") or {}
        if not spec.get("renewTime"):
            return {"expired": False}
        try:
            renewed = parse_time(spec["renewTime"])
        except ValueError:
            return {"expired": False}
        age = (datetime.now(timezone.utc) - renewed).total_seconds()
        duration = float(spec.get("leaseDurationSeconds") or 5)
        return {"renewTime": spec["renewTime"], "ageSeconds": round(age, 3), "durationSeconds": duration,
                "expired": age > duration}

    def _lease_expired(self, name: str) -> bool:
        return bool(self._lease(name)["expired"])

    async def _check(self, cluster: dict[str, Any]) -> None:
        name = cluster["metadata"]["name"]
        result, message = await self._probe(cluster)
        if result == health.OK and self._lease_expired(name):
            result, message = health.UNREACHABLE, "the cluster's lease expired"
        state = self.states.get(name)
        if state is None:
            stored = health.phase_from_conditions((cluster.get("status") or {}).get("conditions"))
            state = health.HealthState(phase=stored)
        new = health.observe(
            state,
            result,
            message,
            failure_threshold=self.settings.failure_threshold,
            success_threshold=self.settings.success_threshold,
        )
        self.states[name] = new
        when = time.time()
        detected = metrics.cluster_observed(name, result=result, before=state.phase, after=new.phase, now=when)  # issue 17
        if self.history is not None:
            self._tell_history(name, state, new, result, message, when, detected)
        zones = region = None
        now = time.monotonic()
        if result == health.OK and now - self._last_zones.get(name, 0) >= self.settings.zones_refresh:
            zones, region = await self._read_topology(cluster)
            if zones is not None:
                self._last_zones[name] = now
        await self._write_status(name, new, changed=new.phase != state.phase, zones=zones, region=region)

    def _tell_history(self, name: str, before: health.HealthState, after: health.HealthState, result: str,
                      message: str, when: float, detected: float | None) -> None:
        """The failover history's steps of this probe (issue 17): a first failed probe, a verdict, a recovery."""
        from federation.controllers.history import wall
        from federation.planners import history as plan

        at = wall(when)
        if before.phase == health.READY and result != health.OK and before.run_result in (health.OK, ""):
            self.history.probe_failed(name, at, f"health probe of {name}: {message}", probe=result)
        if after.phase == before.phase:
            return
        lease = self._lease(name)
        if before.phase == health.READY and after.phase in (health.OFFLINE, health.NOT_READY):
            details: dict[str, Any] = {"probe": result, "lease": lease,
                                       "probesInARow": self.settings.failure_threshold}
            if detected is not None:
                details.update(faultToDetection=round(detected, 6), lastGoodProbe=plan.rfc3339_micro(wall(when - detected)))
            self.history.verdict(name, at, plan.DOWN, after.phase, f"cluster {name} is {after.phase}: {after.message}",
                                 addresses=self.history.cluster_addresses(name), **details)
        elif after.phase == health.READY and before.phase in (health.OFFLINE, health.NOT_READY):
            self.history.verdict(name, at, plan.UP, health.READY, f"cluster {name} is Ready again: {after.message}",
                                 addresses=self.history.cluster_addresses(name), probe=result, lease=lease)

    async def _read_topology(self, cluster: dict[str, Any]) -> tuple[list[str] | None, str | None]:
        client = self.members.for_cluster(cluster)
        try:
            nodes = await client.get("/api/v1/nodes", timeout=self.settings.health_timeout)  # type: ignore[union-attr]
        except Exception as err:  # noqa: BLE001
            log.debug("reading nodes of %s failed: %s", cluster["metadata"]["name"], err)
            return None, None
        items = nodes.get("items") if isinstance(nodes, dict) else None
        if not isinstance(items, list):
            log.debug("cluster %s answered /api/v1/nodes without a list", cluster["metadata"]["name"])
            return None, None
        return zones_and_region([n for n in items if isinstance(n, dict)])

    async def _write_status(
        self, name: str, state: health.HealthState, *, changed: bool, zones: list[str] | None, region: str | None
    ) -> None:
        # Re-read: the cluster may have been patched while we probed.
        cluster = self.registry.find(CLUSTERS, "", name)
        if cluster is None:
            return
        now_mono = time.monotonic()
        status = copy.deepcopy(cluster.get("status") or {})
        topology_changed = (zones is not None and status.get("zones") != zones) or (
            region is not None and status.get("region") != region
        )
        stale = now_mono - self._last_write.get(name, 0) >= self.settings.probe_time_refresh
        wanted = health.conditions_for(state.phase, state.message)
        withheld = self.members.withheld(cluster)
        if withheld:  # issue 19: say why the member gets no token from us
            wanted[TOKEN_WITHHELD] = ("True", TOKEN_WITHHELD, withheld)
        current = {c.get("type"): c for c in status.get("conditions") or []}
        conditions_differ = any(
            (current.get(t) or {}).get("status") != s or (current.get(t) or {}).get("reason") != r
            for t, (s, r, _) in wanted.items()
        )
        if not (changed or conditions_differ or topology_changed or stale):
            return
        now = now_rfc3339()
        conditions = []
        for ctype, (cstatus, reason, message) in wanted.items():
            old = current.get(ctype) or {}
            transition = old.get("lastTransitionTime") if old.get("status") == cstatus else now
            conditions.append(
                {
                    "type": ctype,
                    "status": cstatus,
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": transition or now,
                }
            )
        status["conditions"] = conditions
        if zones is not None:
            status["zones"] = zones
        if region is not None:
            status["region"] = region
        new = copy.deepcopy(cluster)
        new["status"] = status
        try:
            self.registry.put_if_changed(CLUSTERS, "", name, new)
        except APIError as err:
            if isinstance(err, (NotFound, Conflict)):
                return  # deleted or changed under us; the next period decides again
            raise
        self._last_write[name] = now_mono
        if changed or conditions_differ:
            log.info("cluster %s is now %s: %s", name, state.phase, state.message)
            record_event(
                self.registry,
                involved=new,
                reason=f"Cluster{state.phase}",
                message=f"cluster {name} is {state.phase}: {state.message}",
                type_="Normal" if state.phase == health.READY else "Warning",
            )
