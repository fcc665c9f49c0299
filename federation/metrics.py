"""The federation's own metric families: cluster health and how fast a fault is seen (issue 17).

The health controller (:mod:`federation.controllers.health`) tells :func:`cluster_observed`
each probe's result and the phase it led to; everything here is derived from that, in the
process-wide registry that the federation API server's ``/metrics`` serves:

- KubeFed's ``kubefedcluster_total{state}`` (clusters per state: ready, notready, offline,
  unknown) and Karmada's ``cluster_ready_state{member_cluster}`` (1 when Ready), under
  their names since they mean the same;
- ours: ``ubernetes_cluster_health_state{cluster, state}`` (1 for the cluster's phase),
  ``ubernetes_cluster_health_transitions_total{cluster, to}``,
  ``ubernetes_cluster_probes_total{cluster, result}``, and the histogram no anchor has,
  ``ubernetes_fault_to_detection_seconds{verdict}``: from a cluster's last good probe to
  the probe that turned it Offline (or NotReady), the time a failover waits before it starts.

The phases are kept here (not read from the controller) so a scrape needs nothing but this
module; a deleted cluster is dropped with :func:`cluster_removed`.

And the store's latency: :class:`MeteredStore` wraps the API server's store and times each
request to it, ``ubernetes_store_request_duration_seconds{operation, resource, store}`` (what
kube-apiserver's ``etcd_request_duration_seconds`` tells, for SQLite as well as etcd).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from federation.planners import health

PHASES = (health.READY, health.NOT_READY, health.OFFLINE, health.UNKNOWN)
DETECTION_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)

TRANSITIONS = Counter("ubernetes_cluster_health_transitions_total",
                      "Changes of a member cluster's health phase, by the phase it entered.", ["cluster", "to"])
PROBES = Counter("ubernetes_cluster_probes_total",
                 "Health probes of a member cluster by result (ok, not-ok, unreachable; an expired lease "
                 "counts as unreachable).", ["cluster", "result"])
FAULT_TO_DETECTION = Histogram(
    "ubernetes_fault_to_detection_seconds",
    "From a member cluster's last good probe to the verdict that it is down (Offline or NotReady).",
    ["verdict"], buckets=DETECTION_BUCKETS)


DETECTION_TO_DNS = Histogram(
    "ubernetes_detection_to_dns_seconds",
    "From a verdict on a member cluster or a shard to the DNS responder serving the records it changed "
    "(the failover history's Served step).", ["verdict"], buckets=DETECTION_BUCKETS)


def dns_served(verdict: str, seconds: float) -> None:
    """The history saw the responder serve a verdict's records ``seconds`` after it (issue 17)."""
    DETECTION_TO_DNS.labels(verdict).observe(seconds)


def shard_detected(seconds: float) -> None:
    """The probers voted a shard's address down ``seconds`` after the federation's last good probe of it."""
    FAULT_TO_DETECTION.labels("ShardUnreachable").observe(seconds)


class _ClusterHealth:
    """The gauges, computed from the last phase of every cluster at scrape time."""

    def __init__(self) -> None:
        self.phases: dict[str, str] = {}
        self.last_ok: dict[str, float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phases = dict(self.phases)
        total = GaugeMetricFamily("kubefedcluster_total", "Number of total kubefed clusters in a particular state.",
                                  labels=["state"])
        for phase in PHASES:
            total.add_metric([phase.lower()], sum(1 for p in phases.values() if p == phase))
        yield total
        ready = GaugeMetricFamily("cluster_ready_state", "State of the cluster: 1 if ready, 0 otherwise.",
                                  labels=["member_cluster"])
        state = GaugeMetricFamily("ubernetes_cluster_health_state",
                                  "1 for the health phase a member cluster is in, 0 for the others.",
                                  labels=["cluster", "state"])
        for name, phase in sorted(phases.items()):
            ready.add_metric([name], 1 if phase == health.READY else 0)
            for p in PHASES:
                state.add_metric([name, p], 1 if phase == p else 0)
        yield ready
        yield state

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


_HEALTH = _ClusterHealth()
REGISTRY.register(_HEALTH)  # type: ignore[arg-type]


def cluster_observed(name: str, *, result: str, before: str, after: str, now: float | None = None) -> float | None:
    """One probe of cluster ``name``: its result and the phase before and after it. Returns
    the fault-to-detection seconds observed (a verdict that it is down), else None, so the
    failover history records the same figure."""
    now = time.monotonic() if now is None else now
    PROBES.labels(name, result).inc()
    if result == health.OK:
        _HEALTH.last_ok[name] = now
    _HEALTH.phases[name] = after
    if after == before:
        return None
    TRANSITIONS.labels(name, after).inc()
    last_ok = _HEALTH.last_ok.get(name)
    if after in (health.OFFLINE, health.NOT_READY) and before == health.READY and last_ok is not None:
        FAULT_TO_DETECTION.labels(after).observe(now - last_ok)
        return now - last_ok
    return None


def cluster_removed(name: str) -> None:
    """``name`` is no longer a member: its gauges go."""
    _HEALTH.phases.pop(name, None)
    _HEALTH.last_ok.pop(name, None)


STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STORE_SECONDS = Histogram(
    "ubernetes_store_request_duration_seconds",
    "Time of each request of the federation API server to its store, by operation and resource "
    "(failed ones included: a conflict or a missing object is an answer too).",
    ["operation", "resource", "store"], buckets=STORE_BUCKETS)


class MeteredStore:
    """A :class:`federation.storage.store.Store` whose object and history reads and writes are timed;
    everything else goes straight to the store it wraps."""

    def __init__(self, store: Any, *, kind: str) -> None:
        self._store = store
        self._kind = kind  # "sqlite" or "etcd": the store label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _timed(self, operation: str, fn: Callable[..., Any], resource: str | None, *args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(resource, *args, **kw)
        finally:
            STORE_SECONDS.labels(operation, resource or "", self._kind).observe(time.perf_counter() - started)

    def get(self, resource: str, *args: Any, **kw: Any) -> Any:
        return self._timed("get", self._store.get, resource, *args, **kw)

    def list(self, resource: str, *args: Any, **kw: Any) -> Any:
        return self._timed("list", self._store.list, resource, *args, **kw)

    def create(self, resource: str, *args: Any, **kw: Any) -> Any:
        return self._timed("create", self._store.create, resource, *args, **kw)

    def update(self, resource: str, *args: Any, **kw: Any) -> Any:
        return self._timed("update", self._store.update, resource, *args, **kw)

    def delete(self, resource: str, *args: Any, **kw: Any) -> Any:
        return self._timed("delete", self._store.delete, resource, *args, **kw)

    def events_page(self, rv: int, resource: str | None = None, **kw: Any) -> Any:
        return self._timed("events", lambda r, **k: self._store.events_page(rv, r, **k), resource, **kw)
