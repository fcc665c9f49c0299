"""The clusterset's MCS controller (KEP-1645): from the members' ServiceExports to a
ServiceImport in every member, the exports' conditions and the ``clusterset.local`` records.

One exported service at a time, keyed ``namespace/name``, on the per-key machinery the
member-copy controllers share (:mod:`federation.controllers.keyed`). What enqueues a key:
a ServiceExport, a Service or a member copy of the ServiceImport added, changed or deleted
in any Ready member; the endpoints of an imported service; a member's view syncing; a
cluster's change; the slow resync. A reconcile:

1. reads the service's export, Service and Endpoints in every Ready member from the member
   informers (a member whose views have not synced yet is left out; a member that exported
   and is not heard from now keeps the import alive, as a shard is kept in propagation);
2. asks :func:`federation.planners.mcsplan.plan_import` for the import and each export's
   ``Valid`` and ``Conflict`` conditions;
3. keeps the federation's own ServiceImport (``multicluster.x-k8s.io/v1alpha1``, read only
   through the API: the source of truth for the ClusterSetIP, allocated once from
   ``--clusterset-ip-range`` and kept for the import's life);
4. syncs its copy into every Ready member (:func:`federation.controllers.membersync.
   sync_copies`, the path Services and Deployments take), the healthy backends on it for the
   members' ClusterSetIP proxies (:mod:`clusters.mcsproxy`);
5. writes each export's conditions through the member's ``.../status``, and the import's
   DNSRecords (labelled ``multicluster.ubernetes.io/record``: the DNS controller, which
   answers ``<svc>.<ns>.svc.clusterset.local`` for federated Services that are not
   exported, leaves these alone and drops its own name for exported ones).

The last export gone (deleted, or its Service gone), the import, its copies and its records go.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

from apimachinery.backoff import Backoff
from apimachinery.errors import APIError, NotFound
from apimachinery.meta import now_rfc3339
from federation import mcsapi
from federation.api.cache import Reader
from federation.api.registry import Registry
from federation.controllers.dnsrecords import cluster_info, record_object
from federation.controllers.keyed import ClusterSnapshot, MemberCopyController
from federation.controllers.members import MemberClients
from federation.controllers.membersync import Wanted, sync_copies
from federation.names import FEDERATION_LABEL, OWNER_ANNOTATION
from federation.planners import mcsplan
from federation.resources import DNSRECORDS, ENDPOINTS, FEDERATION_SERVICEIMPORTS, SERVICEEXPORTS, SERVICEIMPORTS, SERVICES
from federation.settings import Settings

log = logging.getLogger("federation.mcs")

Object = dict[str, Any]


# ------------------------------------------------------------------ member objects -> planner


def exported_service(service: Object, endpoints: Object | None) -> mcsplan.ExportedService:
    spec = service.get("spec") or {}
    ports = tuple(
        mcsplan.Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"), int(p["port"]), str(p.get("appProtocol") or ""))
        for p in spec.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int))
    config = spec.get("sessionAffinityConfig")
    eps = []
    for subset in (endpoints or {}).get("subsets") or []:
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in subset.get(key) or []:
                if isinstance(a, dict) and a.get("ip"):
                    host = a.get("hostname") or (a.get("targetRef") or {}).get("name") or str(a["ip"]).replace(".", "-")
                    eps.append(mcsplan.Endpoint(str(a["ip"]), str(host).lower(), ready))
    return mcsplan.ExportedService(
        type=str(spec.get("type") or "ClusterIP"),
        headless=spec.get("clusterIP") == "None",
        ports=ports,
        session_affinity=str(spec.get("sessionAffinity") or "None"),
        session_affinity_config=json.dumps(config, sort_keys=True) if config else "",
        internal_traffic_policy=str(spec.get("internalTrafficPolicy") or ""),
        traffic_distribution=str(spec.get("trafficDistribution") or ""),
        ip_families=tuple(spec.get("ipFamilies") or ("IPv4",)),
        endpoints=tuple(eps),
    )


def export_info(cluster: Object, export: Object, service: Object | None, endpoints: Object | None,
                *, usable: bool) -> mcsplan.Export:
    info = cluster_info(cluster)
    spec = export.get("spec") or {}
    meta = export.get("metadata") or {}
    return mcsplan.Export(
        cluster=info.name,
        created=str(meta.get("creationTimestamp") or ""),
        service=exported_service(service, endpoints) if service is not None else None,
        region=info.region,
        zones=info.zones,
        usable=usable,
        address=str((meta.get("annotations") or {}).get(mcsapi.EXPORT_ADDRESS_ANNOTATION) or ""),
        labels=tuple(sorted((spec.get("exportedLabels") or {}).items())),
        annotations=tuple(sorted((spec.get("exportedAnnotations") or {}).items())),
    )


# ------------------------------------------------------------------ planner -> objects


def import_object(namespace: str, name: str, plan: mcsplan.ImportPlan, ips: list[str]) -> Object:
    spec: dict[str, Any] = {
        "type": plan.type,
        "ips": ips,
        "ipFamilies": list(plan.ip_families) if ips else [],
        "ports": [p.to_dict() for p in plan.ports],
        "sessionAffinity": plan.session_affinity,
    }
    if plan.session_affinity_config:
        spec["sessionAffinityConfig"] = json.loads(plan.session_affinity_config)
    if plan.internal_traffic_policy:
        spec["internalTrafficPolicy"] = plan.internal_traffic_policy
    if plan.traffic_distribution:
        spec["trafficDistribution"] = plan.traffic_distribution
    annotations = dict(plan.annotations)
    annotations[mcsapi.BACKENDS_ANNOTATION] = json.dumps([b.to_dict() for b in plan.backends], separators=(",", ":"))
    return {
        "apiVersion": mcsapi.API_VERSION,
        "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**dict(plan.labels), mcsapi.SERVICE_NAME_LABEL: name},
                     "annotations": annotations},
        "spec": spec,
        "status": {"clusters": [{"cluster": c} for c in plan.clusters]},
    }


def member_copy(fed_import: Object, federation: str) -> Object:
    meta = fed_import["metadata"]
    return {
        "apiVersion": mcsapi.API_VERSION,
        "kind": "ServiceImport",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "labels": {**(meta.get("labels") or {}), FEDERATION_LABEL: federation},
                     "annotations": {**(meta.get("annotations") or {}),
                                     OWNER_ANNOTATION: f"{meta['namespace']}/{meta['name']}"}},
        "spec": copy.deepcopy(fed_import.get("spec") or {}),
        "status": copy.deepcopy(fed_import.get("status") or {}),
    }


def conditions_of(planned: list[mcsplan.Condition], old: list[dict[str, Any]] | None, generation: Any) -> list[dict[str, Any]]:
    """The conditions as a status lists them; a condition whose status did not change keeps
    its lastTransitionTime."""
    out = []
    for c in planned:
        before = mcsapi.condition(old, c.type)
        stamp = before.get("lastTransitionTime") if before and before.get("status") == c.status else now_rfc3339()
        out.append({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                    "lastTransitionTime": stamp, **({"observedGeneration": generation} if generation else {})})
    return out


def _same_conditions(a: list[dict[str, Any]] | None, b: list[dict[str, Any]]) -> bool:
    strip = lambda cs: [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs or []]  # noqa: E731
    return strip(a) == strip(b)


class ImportCopies:
    """How a member's copy of a ServiceImport is kept (a :class:`membersync.CopyAdapter`)."""

    kind = SERVICEIMPORTS
    noun = "serviceimport"

    @staticmethod
    def drifted(desired: Object, actual: Object) -> bool:
        a, d = actual.get("metadata") or {}, desired["metadata"]
        return ((a.get("labels") or {}) != d["labels"] or (a.get("annotations") or {}) != d["annotations"]
                or actual.get("spec") != desired["spec"] or actual.get("status") != desired["status"])

    @staticmethod
    def update_body(desired: Object, actual: Object) -> Object:
        return {**desired, "metadata": {**actual["metadata"], "labels": desired["metadata"]["labels"],
                                        "annotations": desired["metadata"]["annotations"]}}

    @staticmethod
    def created_event(want: Wanted, cluster: str) -> str:
        meta = want.desired["metadata"]
        return f"imported service {meta['namespace']}/{meta['name']} into cluster {cluster}"

    @staticmethod
    def update_event(desired: Object, actual: Object, cluster: str) -> tuple[str, str]:
        meta = desired["metadata"]
        return "UpdatedInCluster", f"updated serviceimport {meta['namespace']}/{meta['name']} in cluster {cluster}"

    @staticmethod
    def collectable(copy_: Object) -> bool:
        return True

    @staticmethod
    def tombstone(key: tuple[str, str], copy_: Object) -> None:
        return None  # an import is the controller's own: never orphaned

    @staticmethod
    def released(copy_: Object) -> Object:
        return copy_

    @staticmethod
    def delete_body() -> None:
        return None


class MultiClusterServiceController(MemberCopyController):
    kind = FEDERATION_SERVICEIMPORTS
    workers = 4

    def __init__(self, registry: Registry, settings: Settings, members: MemberClients,
                 reader: Reader | None = None) -> None:
        super().__init__(registry, settings, members, reader, name="mcs")
        self.adapter = ImportCopies()
        self.backoff: Backoff[tuple[str, str, str]] = Backoff()
        self.member_view(SERVICEIMPORTS, label_selector=f"{FEDERATION_LABEL}={settings.federation_name}")
        self.exports = self.member_view(SERVICEEXPORTS)
        self.services = self.member_view(SERVICES)
        self.endpoints = self.member_view(ENDPOINTS, ours=False)
        self._records: dict[str, set[str]] | None = None  # service key -> its DNSRecords' names
        self._lock = asyncio.Lock()  # ClusterSetIPs are allocated one import at a time

    def placed(self, obj: Object, trusted: list[Object]) -> set[str]:
        return {c["metadata"]["name"] for c in trusted}

    def keys(self) -> set[str]:
        keys = super().keys()
        for cluster in self.clusters().ready:
            keys.update(self.exports.keys(cluster["metadata"]["name"]))
        return keys

    def resync_cluster(self, cluster: str) -> None:
        super().resync_cluster(cluster)
        for key in sorted(self.exports.keys(cluster)):
            self.queue.add(key)

    # ---------------------------------------------------------------- reconcile

    async def reconcile_key(self, key: str) -> None:
        snapshot, (namespace, name), fed_import = await self.begin(key)
        observed: list[str] = []
        exports: list[tuple[Object, mcsplan.Export]] = []
        for cluster in snapshot.ready:
            cname = cluster["metadata"]["name"]
            if not self.synced(cname):
                continue
            observed.append(cname)
            export = self.exports.get(cname, key)
            if export is not None:
                exports.append((cluster, export_info(cluster, export, self.services.get(cname, key),
                                                     self.endpoints.get(cname, key), usable=True)))
        plan, conditions = mcsplan.plan_import([e for _, e in exports], namespace=namespace, name=name)
        previous = {c.get("cluster") for c in ((fed_import or {}).get("status") or {}).get("clusters") or []}
        unheard = (previous & snapshot.joined) - set(observed)
        if plan is None and unheard:
            desired_import = fed_import  # exported from a member we cannot see now: keep it as it was
        else:
            desired_import = await self._write_import(namespace, name, plan, fed_import)
        failed: dict[str, BaseException] = {}
        results = await asyncio.gather(
            *(self._sync_member(snapshot, cname, key, (namespace, name), desired_import) for cname in observed),
            *(self._write_conditions(snapshot, cluster["metadata"]["name"], key, conditions[cluster["metadata"]["name"]])
              for cluster, _ in exports),
            return_exceptions=True)
        for cname, result in zip(observed + [c["metadata"]["name"] for c, _ in exports], results):
            if isinstance(result, BaseException):
                failed[cname] = result
        if not (plan is None and unheard):
            self._write_records(key, namespace, name, plan, desired_import)
        self.requeue_if_failed(failed)

    async def _write_import(self, namespace: str, name: str, plan: mcsplan.ImportPlan | None,
                            current: Object | None) -> Object | None:
        """Keep the federation's ServiceImport equal to ``plan``; the stored object. Read from
        the store, not the cache: the cache may not have our last write yet."""
        current = self.registry.find(FEDERATION_SERVICEIMPORTS, namespace, name)
        if plan is None:
            if current is not None:
                try:
                    self.registry.delete(FEDERATION_SERVICEIMPORTS, namespace, name)
                    log.info("serviceimport %s/%s removed: no cluster exports it", namespace, name)
                except NotFound:
                    pass
            return None
        async with self._lock:
            ips: list[str] = []
            if plan.type == mcsapi.CLUSTERSET_IP:
                old = ((current or {}).get("spec") or {}).get("ips") or []
                taken = {ip for o in self.registry.list(FEDERATION_SERVICEIMPORTS)[0]
                         if (o["metadata"]["namespace"], o["metadata"]["name"]) != (namespace, name)
                         for ip in (o.get("spec") or {}).get("ips") or []}
                ip = mcsplan.allocate_ip(self.settings.clusterset_ip_range, taken, old[0] if old else None)
                if ip is None:
                    log.warning("serviceimport %s/%s: no free ClusterSetIP left in %s", namespace, name,
                                self.settings.clusterset_ip_range)
                else:
                    ips = [ip]
            desired = import_object(namespace, name, plan, ips)
            if current is None:
                stored = self.registry.create(FEDERATION_SERVICEIMPORTS, namespace, desired)
                log.info("serviceimport %s/%s: %s %s from %s", namespace, name, plan.type, ",".join(ips) or "-",
                         ",".join(plan.clusters))
                return stored
            new = {**current, "metadata": {**current["metadata"], "labels": desired["metadata"]["labels"],
                                           "annotations": desired["metadata"]["annotations"]},
                   "spec": desired["spec"], "status": desired["status"]}
            return self.registry.put_if_changed(FEDERATION_SERVICEIMPORTS, namespace, name, new)

    async def _sync_member(self, snapshot: ClusterSnapshot, cname: str, key: str, skey: tuple[str, str],
                           fed_import: Object | None) -> None:
        client = snapshot.clients.get(cname)
        if client is None:
            return
        current = self.copies.get(cname, key)
        wanted = {skey: Wanted(member_copy(fed_import, self.settings.federation_name), fed_import)} if fed_import else {}
        if not wanted and current is None:
            return
        await sync_copies(registry=self.registry, adapter=self.adapter, client=client, cluster=cname, wanted=wanted,
                          existing={skey: current} if current is not None else {}, backoff=self.backoff, only=skey)

    async def _write_conditions(self, snapshot: ClusterSnapshot, cname: str, key: str,
                                planned: list[mcsplan.Condition]) -> None:
        client = snapshot.clients.get(cname)
        export = self.exports.get(cname, key)
        if client is None or export is None:
            return
        old = (export.get("status") or {}).get("conditions")
        conditions = conditions_of(planned, old, (export.get("metadata") or {}).get("generation"))
        if _same_conditions(old, conditions):
            return
        meta = export["metadata"]
        body = {"apiVersion": mcsapi.API_VERSION, "kind": "ServiceExport",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "status": {**(export.get("status") or {}), "conditions": conditions}}
        try:
            await client.put(SERVICEEXPORTS.path(namespace=meta["namespace"], name=meta["name"]) + "/status", body)
        except NotFound:
            pass  # deleted meanwhile: its event enqueues the key

    # ---------------------------------------------------------------- records

    def _known_records(self) -> dict[str, set[str]]:
        if self._records is None:
            records: dict[str, set[str]] = {}
            for o in self.reader.list(DNSRECORDS):
                meta = o.get("metadata") or {}
                if (meta.get("labels") or {}).get(mcsapi.MCS_RECORD_LABEL):
                    owner = (meta.get("annotations") or {}).get(mcsapi.MCS_SERVICE_ANNOTATION, "")
                    records.setdefault(owner, set()).add(meta["name"])
            self._records = records
        return self._records

    def resync(self) -> None:
        self._records = None  # re-read which records are ours on the slow resync
        super().resync()

    def _write_records(self, key: str, namespace: str, name: str, plan: mcsplan.ImportPlan | None,
                       fed_import: Object | None) -> None:
        known = self._known_records()
        desired: dict[str, Object] = {}
        if plan is not None and fed_import is not None:
            ips = tuple((fed_import.get("spec") or {}).get("ips") or ())
            for record in mcsplan.plan_records(name=name, namespace=namespace, plan=plan, ips=ips,
                                               ttl=self.settings.dns_ttl):
                obj = record_object(record)
                obj["metadata"]["name"] = f"mcs.{record.object_name}"[:253].rstrip(".-")
                obj["metadata"]["labels"][mcsapi.MCS_RECORD_LABEL] = "true"
                obj["metadata"]["annotations"] = {mcsapi.MCS_SERVICE_ANNOTATION: key}
                desired[obj["metadata"]["name"]] = obj
        for rname, obj in sorted(desired.items()):
            current = self.registry.find(DNSRECORDS, "", rname)
            if current is None:
                self.registry.create(DNSRECORDS, "", obj)
                log.info("added record %s %s %s", obj["spec"]["name"], obj["spec"]["type"], " ".join(obj["spec"]["targets"]))
            elif current.get("spec") != obj["spec"] or (current["metadata"].get("labels") or {}) != obj["metadata"]["labels"]:
                self.registry.put_if_changed(DNSRECORDS, "", rname, {**current, "metadata": {
                    **current["metadata"], "labels": obj["metadata"]["labels"],
                    "annotations": obj["metadata"]["annotations"]}, "spec": obj["spec"]})
        for rname in sorted(known.get(key, set()) - set(desired)):
            try:
                self.registry.delete(DNSRECORDS, "", rname)
                log.info("removed record %s", rname)
            except APIError as err:
                if not isinstance(err, NotFound):
                    raise
        if desired:
            known[key] = set(desired)
        else:
            known.pop(key, None)
