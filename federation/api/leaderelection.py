"""Leader election for the controllers with a ``coordination.k8s.io/v1`` Lease (issue 13).

Several API server replicas share one etcd; each serves the API, but only one may run the
controllers, or two would reconcile the same objects at once. They elect one as
kube-controller-manager does (client-go ``tools/leaderelection``), through the Lease
``federation-system/federation-controller-manager``:

- Every ``retry_period`` a candidate reads the Lease. It takes it when there is none, when
  the holder is itself, or when the holder has not renewed for ``lease_duration`` measured
  on the candidate's own clock since it *saw* the record change (not from ``renewTime``,
  so clocks need not agree). The write carries the Lease's resourceVersion: of two
  candidates, one wins and the other gets a conflict.
- The leader renews every ``retry_period``. When it has not renewed for
  ``renew_deadline`` it stops its controllers, and only then stands again. Because
  ``renew_deadline`` < ``lease_duration``, its controllers are stopped before any other
  replica may take the Lease.
- On a clean stop the leader stops its controllers, then releases the Lease (holder
  emptied, as client-go's ``ReleaseOnCancel``) so a standby leads within one retry period.
- Each change of leader is an Event on the Lease (``LeaderElection``: "<identity> became
  leader", "<identity> stopped leading"), as kube-controller-manager records.

The registry's calls are synchronous on the event loop, as every controller's are: while
one blocks (etcd unreachable: up to the store's request timeout), no controller runs
either, and the deadline is checked before anything else runs afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from apimachinery import errors as st
from apimachinery.meta import now_micro
from federation.api.events import record_event
from federation.names import SYSTEM_NAMESPACE
from federation.api.registry import Registry
from federation.resources import LEASES

log = logging.getLogger("federation.api.leaderelection")

LEASE_NAME = "federation-controller-manager"


def default_identity() -> str:
    """``<hostname>_<uuid>``, as kube-controller-manager's (unique per process start)."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class ElectionConfig:
    identity: str
    lease_duration: float = 4.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0
    namespace: str = SYSTEM_NAMESPACE
    name: str = LEASE_NAME

    def check(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                f"leader election needs lease duration > renew deadline > retry period > 0 (got "
                f"{self.lease_duration:g} s, {self.renew_deadline:g} s, {self.retry_period:g} s): a leader must "
                "stop before its lease can pass on, and renew more than once before its deadline"
            )


Hook = Callable[[], Awaitable[None]]


class LeaderElector:
    """Campaigns for the Lease for as long as :meth:`run` runs; ``on_started`` when this
    replica becomes the leader, ``on_stopped`` (awaited before anything else) when it stops
    being the leader or :meth:`run` is cancelled while leading."""

    def __init__(self, registry: Registry, config: ElectionConfig, *, on_started: Hook, on_stopped: Hook,
                 clock: Callable[[], float] = time.monotonic) -> None:
        config.check()
        self.registry = registry
        self.config = config
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self.leading = False
        self._last_renew = 0.0
        self._observed: tuple[Any, ...] | None = None  # holder, renewTime, resourceVersion as last seen
        self._observed_at = 0.0
        self._starting: asyncio.Task[None] | None = None

    # -------------------------------------------------------------- one attempt

    def _lease(self, spec: dict[str, Any], rv: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace}
        if rv is not None:
            meta["resourceVersion"] = rv
        return {"apiVersion": LEASES.api_version, "kind": LEASES.kind, "metadata": meta, "spec": spec}

    def try_acquire_or_renew(self) -> bool:
        """One read and (when allowed) one write of the Lease; True if this replica holds it now."""
        c = self.config
        now, stamp = self.clock(), now_micro()
        duration = int(math.ceil(c.lease_duration))
        current = self.registry.find(LEASES, c.namespace, c.name)
        if current is None:
            spec = {"holderIdentity": c.identity, "leaseDurationSeconds": duration, "acquireTime": stamp,
                    "renewTime": stamp, "leaseTransitions": 0}
            try:
                self.registry.create(LEASES, c.namespace, self._lease(spec))
            except st.APIError as err:
                log.debug("could not create the lease: %s", err)
                return False
            self._observed, self._observed_at = None, now
            return True
        spec = dict(current.get("spec") or {})
        seen = (spec.get("holderIdentity"), spec.get("renewTime"), current["metadata"].get("resourceVersion"))
        if seen != self._observed:
            self._observed, self._observed_at = seen, now
        holder = spec.get("holderIdentity") or ""
        if holder and holder != c.identity and now < self._observed_at + c.lease_duration:
            return False  # another replica holds it and has renewed within the lease duration
        if holder != c.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        spec.update(holderIdentity=c.identity, leaseDurationSeconds=duration, renewTime=stamp)
        try:
            stored = self.registry.replace(LEASES, c.namespace, c.name,
                                           self._lease(spec, current["metadata"]["resourceVersion"]))
        except st.APIError as err:  # a conflict (someone else wrote first), or the store is away
            log.debug("could not renew the lease: %s", err)
            return False
        self._observed = (c.identity, stamp, stored["metadata"].get("resourceVersion"))
        self._observed_at = now
        return True

    def release(self) -> None:
        """Give the Lease up (holder emptied) so a standby need not wait out the duration."""
        c = self.config
        current = self.registry.find(LEASES, c.namespace, c.name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != c.identity:
            return
        spec = dict(current["spec"], holderIdentity="", leaseDurationSeconds=1, renewTime=now_micro())
        try:
            self.registry.replace(LEASES, c.namespace, c.name, self._lease(spec, current["metadata"]["resourceVersion"]))
        except st.APIError as err:
            log.debug("could not release the lease: %s", err)

    def _event(self, message: str) -> None:
        lease = self.registry.find(LEASES, self.config.namespace, self.config.name) or self._lease({})
        record_event(self.registry, involved=lease, reason="LeaderElection", message=message)

    # -------------------------------------------------------------- the loop

    async def step(self) -> None:
        """One retry period's work: try, then start or stop the controllers on a change."""
        try:
            held = self.try_acquire_or_renew()
        except st.ServiceUnavailable as e:  # the store is down: one line, no traceback
            log.warning("leader election attempt failed: %s", e)
            held = False
        except Exception:  # noqa: BLE001 - a store hiccup is a failed attempt, never the end of the campaign
            log.warning("leader election attempt failed", exc_info=True)
            held = False
        if held:
            self._last_renew = self.clock()
            if not self.leading:
                self.leading = True
                log.info("%s became leader (lease %s/%s)", self.config.identity, self.config.namespace,
                         self.config.name)
                self._event(f"{self.config.identity} became leader")
                # Started beside the campaign (client-go's OnStartedLeading goroutine): a
                # slow start (informers syncing) must not hold up the renewals.
                self._starting = asyncio.create_task(self.on_started())
        elif self.leading and self.clock() - self._last_renew >= self.config.renew_deadline:
            await self._stop_leading("failed to renew the lease within the renew deadline")

    async def _stop_leading(self, why: str) -> None:
        self.leading = False
        log.warning("%s stopped leading: %s", self.config.identity, why)
        await self._stop_controllers()
        self._event(f"{self.config.identity} stopped leading")

    async def _stop_controllers(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
        if starting is not None:
            await asyncio.gather(starting, return_exceptions=True)
        await self.on_stopped()

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                # Standbys retry with jitter (client-go's JitterFactor 1.2), so they do not
                # all write at the same instant after a leader goes.
                period = self.config.retry_period
                await asyncio.sleep(period if self.leading else period * (1 + 0.2 * random.random()))
        finally:
            if self.leading:
                self.leading = False
                await self._stop_controllers()
                self._event(f"{self.config.identity} stopped leading")
                self.release()
