"""DNS records: keep the DNSRecord objects equal to what the planner says, one service at a time.

Reads clusters (their region, zones and readiness) and federated services (their shards),
asks :func:`federation.planners.dnsplan.plan_records` for the record sets, and creates, replaces or
deletes DNSRecord objects until the store matches. The DNS responder watches those objects.
With data-plane checking on, the addresses the probers voted down (kept in memory by
:class:`federation.controllers.dataplane.DataPlaneController`) are left out as well.

Per key (issue 11): the informers' handlers put the key (``namespace/name``) of a federated
Service that was added, changed or deleted in a work queue; a worker plans that service's
record sets alone, from its cached object and the clusters, writes those that differ from
what the controller knows is stored, and only then deletes the service's records no longer
planned: a name that turns from A to CNAME (or back) changes object, and deleting the old
one first would let the responder answer NXDOMAIN in between. A cluster whose placement,
usability or approval changed enqueues every service (each has a name in every zone: the
change's own cost); a cluster's status refresh that changes none of those enqueues nothing.
A DNSRecord someone else changed or deleted enqueues the service it belongs to. A failing
service (a record the API refuses) backs off alone while the others proceed.

The whole pass, :meth:`DNSRecordController.reconcile`, is the first step after a start (it
learns which records are stored and deletes those no service plans) and the slow resync
(every 30 s); it runs on the queue's one worker as the key :data:`RESYNC`, so never beside a
per-key reconcile. Tests call it directly.

Issue 16: a Service's strategy annotations (:mod:`federation.planners.dnsstrategy`) are read
here; a bad one is a Warning Event on the Service (``InvalidDNSStrategy``, once per distinct
message) and the service falls back to round robin. Bounded keep: an Offline cluster whose
Offline condition is older than ``offline_keep_seconds`` is planned as expired, and a timer
replans every service at the moment the next one expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

from apimachinery.informer import object_key, split_key
from apimachinery.workqueue import WorkQueue
from federation.api import approval
from federation.planners import dnsplan, dnsstrategy, health
from federation.api.events import record_event
from apimachinery.meta import parse_time
from federation.api.cache import InformerReader, Reader, StoreReader
from federation.controllers import Coalesced
from federation.api.registry import Registry
from federation.resources import CLUSTERS, DNSRECORDS, FEDERATION_SERVICEIMPORTS, SERVICES
from federation.mcsapi import MCS_RECORD_LABEL
from federation.settings import Settings
from apimachinery.errors import APIError, NotFound

log = logging.getLogger("federation.dns")


def offline_since(cluster: dict[str, Any]) -> float | None:
    """When the cluster's Offline condition turned True (unix seconds), or None."""
    for c in (cluster.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Offline" and c.get("status") == "True":
            try:
                return parse_time(str(c.get("lastTransitionTime"))).timestamp()
            except (TypeError, ValueError):
                return None
    return None


def cluster_info(cluster: dict[str, Any], *, now: float | None = None,
                 keep_for: float = float("inf")) -> dnsplan.ClusterInfo:
    """``keep_for``: seconds an Offline cluster's records are kept (bounded keep, issue 16)."""
    status = cluster.get("status") or {}
    offline = health.phase_from_conditions(status.get("conditions")) == health.OFFLINE
    since = offline_since(cluster) if offline else None
    expired = since is not None and (time.time() if now is None else now) - since >= keep_for
    return dnsplan.ClusterInfo(
        name=cluster["metadata"]["name"],
        region=str(status.get("region") or ""),
        zones=tuple(status.get("zones") or ()),
        usable=health.is_ready(cluster),
        offline=offline,
        keep_expired=expired,
    )


def service_info(service: dict[str, Any], unreachable: frozenset[tuple[str, str]] = frozenset(),
                 reachable: frozenset[tuple[str, str]] = frozenset()) -> dnsplan.ServiceInfo:
    """``unreachable`` / ``reachable``: the (cluster, address) pairs that data-plane probers
    voted down / up."""
    shards = []
    for shard in (service.get("status") or {}).get("shards") or []:
        cluster = shard.get("cluster", "")
        ips = tuple(i.get("ip") for i in shard.get("ingress") or [] if isinstance(i, dict) and i.get("ip"))
        down = tuple(ip for ip in ips if (cluster, ip) in unreachable)
        up = tuple(ip for ip in ips if (cluster, ip) in reachable)
        shards.append(dnsplan.Shard(cluster, ips, int(shard.get("readyEndpoints") or 0), down, up))
    ports = tuple(
        dnsplan.Port(p.get("name") or "", p.get("protocol", "TCP"), int(p.get("port") or 0))
        for p in (service.get("spec") or {}).get("ports") or []
        if isinstance(p, dict)
    )
    meta = service["metadata"]
    strategy, _ = dnsstrategy.parse(meta.get("annotations"))
    return dnsplan.ServiceInfo(meta["name"], meta["namespace"], tuple(shards), ports, strategy)


def record_object(record: dnsplan.RecordSet) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": record.name, "type": record.type, "ttl": record.ttl, "targets": list(record.targets)}
    if record.placements:
        spec["placements"] = [
            {"target": p.target, "cluster": p.cluster, "region": p.region, "zones": list(p.zones)}
            for p in record.placements
        ]
    if record.strategy:
        spec["strategy"] = record.strategy
    if record.weights:
        spec["weights"] = [int(w) if float(w).is_integer() else w for w in record.weights]
    return {
        "apiVersion": DNSRECORDS.api_version,
        "kind": DNSRECORDS.kind,
        "metadata": {"name": record.object_name, "labels": {"federation.kubernetes.io/record-type": record.type}},
        "spec": spec,
    }


RESYNC = ""  # the work queue's key of the whole pass (no service's key is empty)

Objects = dict[str, dict[str, Any]]  # DNSRecord objects by name


def cluster_view(cluster: dict[str, Any]) -> tuple[bool, dnsplan.ClusterInfo, float | None]:
    """What of a Cluster the DNS records depend on: a change in anything else replans nothing."""
    return approval.is_approved(cluster), cluster_info(cluster, keep_for=float("inf")), offline_since(cluster)


class DNSRecordController:
    workers = 1  # planning and writing are CPU work on the event loop: more workers would only interleave

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        *,
        unreachable: Callable[[], frozenset[tuple[str, str]]] | None = None,
        reachable: Callable[[], frozenset[tuple[str, str]]] | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.registry = registry
        self.reader = reader or StoreReader(registry)  # issue 11: the shared informers' caches
        self.settings = settings
        self.unreachable = unreachable or frozenset
        self.reachable = reachable or frozenset
        self._problems: dict[str, tuple[str, ...]] = {}  # service key -> strategy problems reported
        self._expiry: asyncio.TimerHandle | None = None
        # Told each service's record specs before and after a per-key write (the failover history, issue 17).
        self.on_records: Callable[[str, dict[str, Any], dict[str, Any], datetime], None] | None = None
        self.queue: WorkQueue[str] = WorkQueue(name="dns")
        # The specs this controller knows are stored, by object name. Reading every
        # DNSRecord back on each reconcile cost more than planning (17,000 records in the
        # soak); only the whole pass (the slow resync) re-reads them, and a record someone
        # else changes or deletes meanwhile is seen by the informer's handler.
        self._known: dict[str, dict[str, Any]] | None = None
        self._owned: dict[str, set[str]] = {}  # service key -> the names of its records
        self._owner: dict[str, str] = {}  # record name -> its service's key
        # Each service's records depend only on its ServiceInfo and on the clusters: the
        # last plan per service key, redone when either changed.
        self._planned: dict[str, tuple[Any, tuple[dnsplan.ClusterInfo, ...], Objects]] = {}
        self._clusters: tuple[dnsplan.ClusterInfo, ...] | None = None  # kept only while handlers keep it current
        self._attached = False
        self._fan_out = Coalesced(self.enqueue_services)
        self.reconciles = 0  # service keys reconciled
        self.passes = 0  # whole passes

    # -------------------------------------------------------------- events

    def attach(self) -> None:
        """Enqueue keys on the informers' events (the reader must be an InformerReader)."""
        if not isinstance(self.reader, InformerReader):
            raise TypeError("the per-key DNS controller needs an InformerReader")
        services = self.reader.informer(SERVICES)
        add = lambda obj: self.queue.add(object_key(obj))  # noqa: E731
        services.add_handler(on_add=add, on_update=lambda old, new: add(new), on_delete=add)
        self.reader.informer(CLUSTERS).add_handler(on_add=lambda c: self._clusters_changed(),
                                                   on_update=self._cluster_updated,
                                                   on_delete=lambda c: self._clusters_changed())
        self.reader.informer(DNSRECORDS).add_handler(on_update=lambda old, new: self._record_changed(new),
                                                     on_delete=self._record_deleted)
        if FEDERATION_SERVICEIMPORTS.key in self.reader.informers:  # an import takes over the clusterset name
            self.reader.informer(FEDERATION_SERVICEIMPORTS).add_handler(on_add=add, on_delete=add)
        self._attached = True

    def _cluster_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if cluster_view(old) != cluster_view(new):
            self._clusters_changed()

    def _clusters_changed(self) -> None:
        self._clusters = None
        self._fan_out()  # every service, once for a burst of cluster events

    def enqueue_services(self) -> None:
        """Enqueue every federated Service (a cluster changed; the probers' verdicts changed)."""
        for obj in self.reader.list(SERVICES):
            self.queue.add(object_key(obj))

    async def services_changed(self) -> None:
        """:meth:`enqueue_services`, as the data-plane controller's ``on_change`` awaits it."""
        self.enqueue_services()

    def _record_changed(self, record: dict[str, Any]) -> None:
        name = record["metadata"]["name"]
        if self._known is None or name not in self._known or self._known[name] == record.get("spec"):
            return
        # Someone else's write (or an older write of ours, arriving late): trust the store's
        # version, so the service's reconcile compares with what is there.
        self._known[name] = record.get("spec") or {}
        if name in self._owner:
            self.queue.add(self._owner[name])

    def _record_deleted(self, record: dict[str, Any]) -> None:
        name = record["metadata"]["name"]
        if self._known is None or self._known.pop(name, None) is None:
            return  # our own delete
        if name in self._owner:
            self.queue.add(self._owner[name])

    def resync(self) -> None:
        self.queue.add(RESYNC)

    # -------------------------------------------------------------- planning

    def _cluster_infos(self) -> tuple[dnsplan.ClusterInfo, ...]:
        clusters = self._clusters
        if clusters is None:
            clusters = self._infos(approval.trusted(self.reader.list(CLUSTERS)))  # issue 19
            if self._attached:
                self._clusters = clusters
        return clusters

    def _infos(self, clusters: list[dict[str, Any]]) -> tuple[dnsplan.ClusterInfo, ...]:
        """The clusters' infos now, and a timer for the next bounded keep to expire."""
        now, keep_for = time.time(), self.settings.offline_keep_seconds
        if self.settings.offline_records != "keep":
            keep_for = float("inf")
        infos = tuple(cluster_info(c, now=now, keep_for=keep_for) for c in clusters)
        pending = [since + keep_for - now for c in clusters if (since := offline_since(c)) is not None
                   and since + keep_for > now]
        if pending:
            self._schedule_expiry(min(pending))
        return infos

    def _schedule_expiry(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # planning in a thread (a big resync): the next resync schedules it
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = loop.call_later(delay + 0.05, self._clusters_changed)

    def _plan_service(self, key: str, service: dict[str, Any], clusters: tuple[dnsplan.ClusterInfo, ...],
                      unreachable: frozenset[tuple[str, str]]) -> Objects:
        info = service_info(service, unreachable, self.reachable() if self._any_expired(clusters) else frozenset())
        # An exported service's clusterset.local name is the MCS controller's (issue 14, docs/mcs.md).
        meta = service["metadata"]
        exported = self._exported(meta["namespace"], meta["name"])
        last = self._planned.get(key)
        if last is not None and last[0] == (info, exported) and (last[1] is clusters or last[1] == clusters):
            return last[2]
        records = dnsplan.plan_records(
            federation=self.settings.federation_name,
            domain=self.settings.domain,
            ttl=self.settings.dns_ttl,
            clusters=list(clusters),
            services=[info],
            offline_records=self.settings.offline_records,
            fail_open=self.settings.dns_fail_open,
            clusterset=not exported,
        )
        objects = {r.object_name: record_object(r) for r in records}
        self._planned[key] = ((info, exported), clusters, objects)
        return objects

    @staticmethod
    def _any_expired(clusters: tuple[dnsplan.ClusterInfo, ...]) -> bool:
        return any(c.keep_expired for c in clusters)

    def _report_strategy(self, key: str, service: dict[str, Any] | None, clusters: tuple[dnsplan.ClusterInfo, ...]) -> None:
        """A Warning Event per new problem with the service's strategy annotations."""
        if service is None:
            self._problems.pop(key, None)
            return
        strategy, problems = dnsstrategy.parse(service["metadata"].get("annotations"))
        problems += dnsstrategy.unknown_names(strategy, {c.name: c.region for c in clusters})
        seen = self._problems.get(key, ())
        if tuple(problems) == seen:
            return
        self._problems[key] = tuple(problems)
        for message in problems:
            if message not in seen:
                log.warning("service %s: %s", key, message)
                record_event(self.registry, involved=service,
                             reason="InvalidDNSStrategy", message=message, type_="Warning")

    def _exported(self, namespace: str, name: str) -> bool:
        informers = getattr(self.reader, "informers", None)
        if informers is not None and FEDERATION_SERVICEIMPORTS.key not in informers:
            return False  # a reader without imports (a test's): no service is exported
        return self.reader.get(FEDERATION_SERVICEIMPORTS, namespace, name) is not None

    def plan(self, clusters: list[dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, Objects]:
        """The DNSRecord objects wanted for these clusters and services, by service key.

        Each service's plan is remembered and redone only when its ServiceInfo or the
        clusters changed. (A steady cluster's status is rewritten now and then to refresh
        lastProbeTime: that replans nothing.)"""
        unreachable = self.unreachable()
        infos = self._infos(clusters)
        return {object_key(s): self._plan_service(object_key(s), s, infos, unreachable) for s in services}

    # -------------------------------------------------------------- reconciling

    async def reconcile_key(self, key: str) -> None:
        """Make one service's DNSRecords match its plan (:data:`RESYNC`: the whole pass)."""
        if key == RESYNC or self._known is None:
            await self.reconcile()  # the first step learns what is stored
            return
        self.reconciles += 1
        namespace, name = split_key(key)
        service = self.reader.get(SERVICES, namespace, name)
        if service is None:
            self._planned.pop(key, None)
            desired: Objects = {}
        else:
            clusters = self._cluster_infos()
            desired = self._plan_service(key, service, clusters, self.unreachable())
        self._report_strategy(key, service, self._cluster_infos() if service is not None else ())
        before = {n: self._known.get(n) for n in self._owned.get(key, set()) | set(desired) if self._known.get(n)}
        self._write(desired)
        # Deletes last (see the module docstring).
        self._delete(sorted(self._owned.get(key, set()) - set(desired)))
        self._own(key, desired)
        after = {n: o["spec"] for n, o in desired.items()}
        if self.on_records is not None and before != after:
            try:
                self.on_records(key, before, after, datetime.now(timezone.utc))
            except Exception:  # noqa: BLE001 - the history never stops DNS
                log.warning("the failover history failed on %s's records", key, exc_info=True)

    async def reconcile(self) -> None:
        """The whole pass: plan every service, write what differs, delete what no service plans."""
        self.passes += 1
        clusters = approval.trusted(self.reader.list(CLUSTERS))  # issue 19: approved members only
        services = self.reader.list(SERVICES)
        self._clusters = None
        if len(services) < 50:
            per_service = self.plan(clusters, services)
        else:
            # A big federation's plan takes a few hundred milliseconds: plan in a thread so the
            # event loop keeps serving lease renewals and watches meanwhile.
            per_service = await asyncio.to_thread(self.plan, clusters, services)
        for key in set(self._planned) - set(per_service):
            del self._planned[key]
        infos = tuple(cluster_info(c) for c in clusters)
        for service in services:
            self._report_strategy(object_key(service), service, infos)
        self._known = {o["metadata"]["name"]: o.get("spec") for o in self.reader.list(DNSRECORDS)
                       if not (o["metadata"].get("labels") or {}).get(MCS_RECORD_LABEL)}  # the MCS controller's
        writes, failed = 0, set()
        for key, objects in per_service.items():
            try:
                writes += self._write(objects)
            except Exception as err:  # noqa: BLE001 - one service's refused record must not stop the others
                failed.add(key)
                delay = self.queue.add_rate_limited(key)
                log.warning("records of service %s: %s; retrying in %.2f s", key, err, delay)
            if writes >= 200:
                writes = 0
                await asyncio.sleep(0)  # let lease renewals and watches through a big change
        owned = {key: set(objects) | (self._owned.get(key, set()) if key in failed else set())
                 for key, objects in per_service.items()}
        wanted = set().union(*owned.values())
        # Deletes last (see the module docstring); a service whose writes failed keeps its old records.
        self._delete(sorted(set(self._known) - wanted))
        self._owned, self._owner = owned, {name: key for key, names in owned.items() for name in names}

    def _own(self, key: str, objects: Objects) -> None:
        for name in self._owned.pop(key, ()):
            self._owner.pop(name, None)
        if objects:
            self._owned[key] = set(objects)
            for name in objects:
                self._owner[name] = key

    def _write(self, objects: Objects) -> int:
        """Create or replace the records whose stored spec differs; how many were written."""
        known = self._known
        assert known is not None
        writes = 0
        for name, obj in sorted(objects.items()):
            spec = obj["spec"]
            if known.get(name) == spec:
                continue
            current = self.registry.find(DNSRECORDS, "", name)
            if current is None:
                self.registry.create(DNSRECORDS, "", obj)
                log.info("added record %s %s %s", spec["name"], spec["type"], " ".join(spec["targets"]))
            elif current.get("spec") != spec:
                self.registry.put_if_changed(DNSRECORDS, "", name, {**current, "spec": spec})
                log.info("changed record %s %s %s", spec["name"], spec["type"], " ".join(spec["targets"]))
            known[name] = spec
            writes += 1
        return writes

    def _delete(self, names: list[str]) -> None:
        known = self._known
        assert known is not None
        for name in names:
            try:
                self.registry.delete(DNSRECORDS, "", name)
                log.info("removed record %s", name)
            except APIError as err:
                if not isinstance(err, NotFound):
                    raise
            known.pop(name, None)
