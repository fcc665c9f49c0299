"""Server-side table printing: ``meta.k8s.io/v1`` ``Table`` objects for kubectl.

kubectl asks for lists with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and
prints whatever columns the server sends, so the columns a user sees come from the
server, not from kubectl's compiled-in printers. The column logic is the one our own CLI
prints with (:data:`federation.printers.TABLES`): a column appears once, in one module.

Conventions kept from the real API server:

- no ``NAMESPACE`` column: kubectl adds it itself for ``-A`` from each row's object
  metadata, which is why every row carries a ``PartialObjectMetadata`` (or the whole
  object with ``includeObject=Object``, which ``--sort-by`` and ``-o custom-columns`` need);
- the ``-o wide`` columns are sent too, with ``priority: 1``, and kubectl hides them
  unless asked;
- a kind without a printer gets ``NAME`` and ``AGE``, as a custom resource does.

Everything is a pure function of objects and ``now``; :func:`table_specs` lets a member
cluster add printers for its own kinds (pods, nodes, endpoints...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from federation import printers

TABLE_MEDIA = ("application/json;as=Table;v=v1;g=meta.k8s.io", "application/json;as=Table;v=v1beta1;g=meta.k8s.io")

COLUMN_DESCRIPTIONS = {
    "NAME": "Name must be unique within a namespace.",
    "AGE": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}


@dataclass(frozen=True)
class Printer:
    """How one kind prints: every column (wide ones with priority 1) and a row function."""

    columns: Sequence[tuple[str, int]]
    row: Callable[[dict[str, Any], datetime], list[Any]]


def from_cli_spec(spec: printers.TableSpec) -> Printer:
    """Adapt one of the CLI's printers: wide columns that the normal view lacks get priority 1."""
    normal = spec.columns(all_namespaces=False, wide=False)
    wide = spec.columns(all_namespaces=False, wide=True)
    columns = [(name, 0 if name in normal else 1) for name in wide]

    def row(obj: dict[str, Any], now: datetime) -> list[Any]:
        return spec.row(obj, now, all_namespaces=False, wide=True)

    return Printer(columns, row)


def default_printer() -> Printer:
    return Printer([("NAME", 0), ("AGE", 0)], lambda obj, now: [(obj.get("metadata") or {}).get("name", ""), printers.age(obj, now)])


# --- printers for the member clusters' own kinds, as kubectl shows them ----------------


def _pod_row(pod: dict[str, Any], now: datetime) -> list[Any]:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    total = len(spec.get("containers") or []) or len(statuses)
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    phase = status.get("phase") or "Pending"
    if phase in ("Succeeded", "Failed"):  # kubectl shows the last container's end: Completed, Error
        ended = [((s.get("state") or {}).get("terminated") or {}).get("reason") for s in statuses]
        phase = next((r for r in reversed(ended) if r), phase)
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return [
        meta.get("name", ""), f"{ready}/{total}", status.get("reason") or phase, restarts, printers.age(pod, now),
        status.get("podIP") or printers.NONE, spec.get("nodeName") or printers.NONE, printers.NONE, printers.NONE,
    ]


def _node_row(node: dict[str, Any], now: datetime) -> list[Any]:
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    ready = printers.condition_status(node, "Ready")
    state = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = meta.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict)}
    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""), state, ",".join(roles) or printers.NONE, printers.age(node, now),
        info.get("kubeletVersion") or "", addrs.get("InternalIP") or printers.NONE,
        addrs.get("ExternalIP") or printers.NONE, info.get("osImage") or printers.UNKNOWN,
        info.get("kernelVersion") or printers.UNKNOWN, info.get("containerRuntimeVersion") or printers.UNKNOWN,
    ]


def _endpoints_row(ep: dict[str, Any], now: datetime) -> list[Any]:
    found = []
    for subset in ep.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or [] if isinstance(p, dict)] or [None]
        for addr in subset.get("addresses") or []:
            for port in ports:
                found.append(f"{addr.get('ip')}:{port}" if port else str(addr.get("ip")))
    shown = ",".join(found[:3]) + (f" + {len(found) - 3} more..." if len(found) > 3 else "")
    return [(ep.get("metadata") or {}).get("name", ""), shown or printers.NONE, printers.age(ep, now)]


def _namespace_row(ns: dict[str, Any], now: datetime) -> list[Any]:
    return [(ns.get("metadata") or {}).get("name", ""), (ns.get("status") or {}).get("phase") or "Active", printers.age(ns, now)]


def _secret_row(secret: dict[str, Any], now: datetime) -> list[Any]:
    data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
    return [(secret.get("metadata") or {}).get("name", ""), secret.get("type") or "Opaque", len(data),
            printers.age(secret, now)]


MEMBER_PRINTERS: dict[str, Printer] = {
    "secrets": Printer([("NAME", 0), ("TYPE", 0), ("DATA", 0), ("AGE", 0)], _secret_row),
    "pods": Printer(
        [("NAME", 0), ("READY", 0), ("STATUS", 0), ("RESTARTS", 0), ("AGE", 0), ("IP", 1), ("NODE", 1),
         ("NOMINATED NODE", 1), ("READINESS GATES", 1)],
        _pod_row,
    ),
    "nodes": Printer(
        [("NAME", 0), ("STATUS", 0), ("ROLES", 0), ("AGE", 0), ("VERSION", 0), ("INTERNAL-IP", 1),
         ("EXTERNAL-IP", 1), ("OS-IMAGE", 1), ("KERNEL-VERSION", 1), ("CONTAINER-RUNTIME", 1)],
        _node_row,
    ),
    "endpoints": Printer([("NAME", 0), ("ENDPOINTS", 0), ("AGE", 0)], _endpoints_row),
    "namespaces": Printer([("NAME", 0), ("STATUS", 0), ("AGE", 0)], _namespace_row),
}


def table_specs(extra: Mapping[str, Printer] | None = None) -> dict[str, Printer]:
    """Printers by plural: the CLI's (clusters, services, dnsrecords, leases, events), the
    member kinds', then ``extra`` (which wins)."""
    specs = {plural: from_cli_spec(spec) for plural, spec in printers.TABLES.items()}
    specs.update(MEMBER_PRINTERS)
    specs.update(extra or {})
    return specs


def _member_service_row(svc: dict[str, Any], now: datetime) -> list[Any]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    return [meta.get("name", ""), spec.get("type") or "ClusterIP", spec.get("clusterIP") or printers.NONE,
            printers.external_ip(svc), printers.format_ports(svc), printers.age(svc, now),
            printers.format_labels(spec.get("selector"))]


# A member cluster's own services print as kubectl prints them from a real cluster (no shards).
MEMBER_SERVICE_PRINTER = Printer(
    [("NAME", 0), ("TYPE", 0), ("CLUSTER-IP", 0), ("EXTERNAL-IP", 0), ("PORT(S)", 0), ("AGE", 0), ("SELECTOR", 1)],
    _member_service_row,
)


def _pod_template_cells(obj: dict[str, Any]) -> list[Any]:
    """CONTAINERS, IMAGES and SELECTOR, the wide columns of the workload kinds."""
    spec = obj.get("spec") or {}
    containers = [c for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    selector = (spec.get("selector") or {}).get("matchLabels") if isinstance(spec.get("selector"), dict) else None
    return [",".join(str(c.get("name", "")) for c in containers) or printers.NONE,
            ",".join(str(c.get("image", "")) for c in containers) or printers.NONE,
            printers.format_labels(selector)]


def _member_deployment_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [(obj.get("metadata") or {}).get("name", ""), f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
            int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0), printers.age(obj, now),
            *_pod_template_cells(obj)]


def _replicaset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [(obj.get("metadata") or {}).get("name", ""), int(spec.get("replicas") or 0), int(status.get("replicas") or 0),
            int(status.get("readyReplicas") or 0), printers.age(obj, now), *_pod_template_cells(obj)]


_WORKLOAD_WIDE = [("CONTAINERS", 1), ("IMAGES", 1), ("SELECTOR", 1)]
# A member's Deployments and ReplicaSets print as kubectl prints them (the federation's
# Deployments add the clusters they are split over instead).
MEMBER_DEPLOYMENT_PRINTER = Printer(
    [("NAME", 0), ("READY", 0), ("UP-TO-DATE", 0), ("AVAILABLE", 0), ("AGE", 0), *_WORKLOAD_WIDE], _member_deployment_row
)
REPLICASET_PRINTER = Printer(
    [("NAME", 0), ("DESIRED", 0), ("CURRENT", 0), ("READY", 0), ("AGE", 0), *_WORKLOAD_WIDE], _replicaset_row
)


def _configmap_row(cm: dict[str, Any], now: datetime) -> list[Any]:
    data = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [(cm.get("metadata") or {}).get("name", ""), data, printers.age(cm, now)]


MEMBER_PRINTERS["configmaps"] = Printer([("NAME", 0), ("DATA", 0), ("AGE", 0)], _configmap_row)


# Jobs, CronJobs, DaemonSets and Ingresses (issue 15): kubectl 1.32's columns for each.
def _job_status_cell(job: dict[str, Any]) -> str:
    true = {c.get("type") for c in (job.get("status") or {}).get("conditions") or []
            if isinstance(c, dict) and c.get("status") == "True"}
    for ctype in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if ctype in true:
            return ctype
    return "Running"


def _job_row(job: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    completions = spec.get("completions")
    succeeded = int(status.get("succeeded") or 0)
    shown = f"{succeeded}/{completions}" if completions is not None else f"{succeeded}/1 of {spec.get('parallelism', 1)}"
    start, end = printers.parse_timestamp(status.get("startTime")), printers.parse_timestamp(status.get("completionTime"))
    duration = printers.human_duration(((end or now) - start).total_seconds()) if start else ""
    return [(job.get("metadata") or {}).get("name", ""), _job_status_cell(job), shown, duration, printers.age(job, now),
            *_pod_template_cells(job)]


def _cronjob_row(cj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    last = printers.parse_timestamp(status.get("lastScheduleTime"))
    template = ((spec.get("jobTemplate") or {}).get("spec") or {})
    return [(cj.get("metadata") or {}).get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or printers.NONE,
            str(bool(spec.get("suspend"))), len(status.get("active") or []),
            printers.human_duration((now - last).total_seconds()) if last else printers.NONE, printers.age(cj, now),
            *_pod_template_cells({"spec": template})]


def _daemonset_row(ds: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    counts = [int(status.get(k) or 0) for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                                                 "updatedNumberScheduled", "numberAvailable")]
    return [(ds.get("metadata") or {}).get("name", ""), *counts, printers.format_labels(node_selector),
            printers.age(ds, now), *_pod_template_cells(ds)]


def _ingress_row(ing: dict[str, Any], now: datetime) -> list[Any]:
    spec = ing.get("spec") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if isinstance(r, dict) and r.get("host")]
    addresses = [i.get("ip") or i.get("hostname") for i in ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                 if isinstance(i, dict)]
    return [(ing.get("metadata") or {}).get("name", ""), spec.get("ingressClassName") or printers.NONE,
            ",".join(hosts) or "*", ",".join(a for a in addresses if a), "443" if spec.get("tls") else "80",
            printers.age(ing, now)]


MEMBER_PRINTERS.update({
    "jobs": Printer([("NAME", 0), ("STATUS", 0), ("COMPLETIONS", 0), ("DURATION", 0), ("AGE", 0), *_WORKLOAD_WIDE], _job_row),
    "cronjobs": Printer([("NAME", 0), ("SCHEDULE", 0), ("TIMEZONE", 0), ("SUSPEND", 0), ("ACTIVE", 0), ("LAST SCHEDULE", 0),
                         ("AGE", 0), *_WORKLOAD_WIDE], _cronjob_row),
    "daemonsets": Printer([("NAME", 0), ("DESIRED", 0), ("CURRENT", 0), ("READY", 0), ("UP-TO-DATE", 0), ("AVAILABLE", 0),
                           ("NODE SELECTOR", 0), ("AGE", 0), *_WORKLOAD_WIDE], _daemonset_row),
    "ingresses": Printer([("NAME", 0), ("CLASS", 0), ("HOSTS", 0), ("ADDRESS", 0), ("PORTS", 0), ("AGE", 0)], _ingress_row),
})


def _propagated(printer: Printer) -> Printer:
    """A member kind's printer plus KubeFed's propagation status (issue 15): CLUSTERS, the
    placed clusters whose copy is as wanted of all placed, and PROPAGATION, the condition."""
    from federation.planners.propagationstatus import summary

    columns = list(printer.columns)
    at = next((i for i, (name, _) in enumerate(columns) if name == "AGE"), len(columns))

    def row(obj: dict[str, Any], now: datetime) -> list[Any]:
        cells = printer.row(obj, now)
        return cells[:at] + list(summary(obj.get("status"))) + cells[at:]

    return Printer(columns[:at] + [("CLUSTERS", 0), ("PROPAGATION", 0)] + columns[at:], row)


def _ftc_row(ftc: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = ftc.get("spec") or {}, ftc.get("status") or {}
    target = spec.get("targetType") or {}
    kind = ".".join(p for p in (target.get("kind"), target.get("group")) if p)  # Deployment.apps, ConfigMap
    return [(ftc.get("metadata") or {}).get("name", ""), kind,
            spec.get("propagation", "Enabled"), status.get("propagationController", "<none>"), printers.age(ftc, now)]


FEDERATED_KIND_PRINTERS = {
    plural: _propagated(MEMBER_PRINTERS[plural])
    for plural in ("configmaps", "secrets", "namespaces", "jobs", "cronjobs", "daemonsets", "ingresses")
}
FEDERATED_KIND_PRINTERS["federatedtypeconfigs"] = Printer(
    [("NAME", 0), ("KIND", 0), ("PROPAGATION", 0), ("CONTROLLER", 0), ("AGE", 0)], _ftc_row)
FEDERATION_PRINTERS = table_specs(FEDERATED_KIND_PRINTERS)
MEMBER_CLUSTER_PRINTERS = table_specs(
    {"services": MEMBER_SERVICE_PRINTER, "deployments": MEMBER_DEPLOYMENT_PRINTER, "replicasets": REPLICASET_PRINTER}
)


# Multi-Cluster Services (issue 14): the columns kubectl shows for the MCS kinds.
def _serviceimport_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    clusters = [c.get("cluster", "") for c in (obj.get("status") or {}).get("clusters") or [] if isinstance(c, dict)]
    return [(obj.get("metadata") or {}).get("name", ""), spec.get("type", ""), ",".join(spec.get("ips") or []) or printers.NONE,
            ",".join(clusters) or printers.NONE, printers.age(obj, now)]


def _serviceexport_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
    cell = lambda t: (conditions[t].get("status", "") + (f" ({conditions[t].get('reason')})" if conditions[t].get("reason") else "")  # noqa: E731
                      if t in conditions else printers.NONE)
    return [(obj.get("metadata") or {}).get("name", ""), cell("Valid"), cell("Conflict"), printers.age(obj, now)]


def _clusterproperty_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [(obj.get("metadata") or {}).get("name", ""), (obj.get("spec") or {}).get("value", ""), printers.age(obj, now)]


SERVICEIMPORT_PRINTER = Printer([("NAME", 0), ("TYPE", 0), ("IP", 0), ("CLUSTERS", 0), ("AGE", 0)], _serviceimport_row)
MEMBER_CLUSTER_PRINTERS.update({
    "serviceimports": SERVICEIMPORT_PRINTER,
    "serviceexports": Printer([("NAME", 0), ("VALID", 0), ("CONFLICT", 0), ("AGE", 0)], _serviceexport_row),
    "clusterproperties": Printer([("NAME", 0), ("VALUE", 0), ("AGE", 0)], _clusterproperty_row),
})
FEDERATION_PRINTERS["serviceimports"] = SERVICEIMPORT_PRINTER


# StatefulSets, PetSets and claims (issue 14), kubectl's columns (a 1.3 PetSet's DESIRED/CURRENT).
def _statefulset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [(obj.get("metadata") or {}).get("name", ""), f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
            printers.age(obj, now), *_pod_template_cells(obj)[:2]]


def _petset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [(obj.get("metadata") or {}).get("name", ""), int(spec.get("replicas") or 0), int(status.get("replicas") or 0),
            printers.age(obj, now)]


def _claim_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    modes = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return [(obj.get("metadata") or {}).get("name", ""), status.get("phase", "Pending"), spec.get("volumeName", ""),
            (status.get("capacity") or {}).get("storage", ""),
            ",".join(modes.get(m, m) for m in status.get("accessModes") or []), spec.get("storageClassName") or "",
            spec.get("volumeAttributesClassName") or printers.NONE, printers.age(obj, now), spec.get("volumeMode", "")]


MEMBER_CLUSTER_PRINTERS.update({
    "statefulsets": Printer([("NAME", 0), ("READY", 0), ("AGE", 0), ("CONTAINERS", 1), ("IMAGES", 1)], _statefulset_row),
    "petsets": Printer([("NAME", 0), ("DESIRED", 0), ("CURRENT", 0), ("AGE", 0)], _petset_row),
    "persistentvolumeclaims": Printer([("NAME", 0), ("STATUS", 0), ("VOLUME", 0), ("CAPACITY", 0), ("ACCESS MODES", 0),
                                       ("STORAGECLASS", 0), ("VOLUMEATTRIBUTESCLASS", 0), ("AGE", 0), ("VOLUMEMODE", 1)],
                                      _claim_row),
})

# --- negotiation and rendering --------------------------------------------------------


def wants_table(accept: str | None) -> bool:
    """Whether the first media type in ``Accept`` that we can serve is a meta.k8s.io Table."""
    for part in (accept or "").split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
        media = part.split(";")[0].strip()
        if media in ("application/json", "*/*", "application/*") and not params.get("as"):
            return False
    return False


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _row(obj: dict[str, Any], printer: Printer, now: datetime, include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": printer.row(obj, now)}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = partial_metadata(obj)
    return row


def column_definitions(printer: Printer) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": "string",
            "format": "name" if name == "NAME" else "",
            "description": COLUMN_DESCRIPTIONS.get(name, ""),
            "priority": priority,
        }
        for name, priority in printer.columns
    ]


def to_table(
    plural: str,
    objs: Sequence[dict[str, Any]],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    printers_by_plural: Mapping[str, Printer] | None = None,
    now: datetime | None = None,
    headers: bool = True,
) -> dict[str, Any]:
    """A ``Table`` of ``objs``. ``headers=False`` leaves out the column definitions."""
    printer = (printers_by_plural or FEDERATION_PRINTERS).get(plural) or default_printer()
    now = now or datetime.now(timezone.utc)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(printer) if headers else [],
        "rows": [_row(o, printer, now, include_object) for o in objs],
    }


class KindTables:
    """These printers as the generic API server's :class:`apimachinery.server.Tables`: the
    federation's by default, a member's with :data:`MEMBER_CLUSTER_PRINTERS`."""

    def __init__(self, printers: Mapping[str, Printer] | None = None) -> None:
        self.printers = printers

    @staticmethod
    def wants(accept: str | None) -> bool:
        return wants_table(accept)

    def render(self, res: Any, items: list[dict[str, Any]], *, resource_version: str, headers: bool,
               include_object: str) -> dict[str, Any]:
        return to_table(res.plural, items, resource_version=resource_version, headers=headers,
                        include_object=include_object, printers_by_plural=self.printers)


def text_table(printer: Printer, objs: Sequence[dict[str, Any]], now: datetime, *, all_namespaces: bool = False,
               wide: bool = False) -> str:
    """The CLI's text of a kind that has only a server-side printer (the same columns kubectl
    prints for it): wide columns with ``-o wide``, ``NAMESPACE`` first with ``-A``."""
    shown = [i for i, (_, priority) in enumerate(printer.columns) if wide or priority == 0]
    headers = [printer.columns[i][0] for i in shown]
    rows = []
    for obj in objs:
        cells = printer.row(obj, now)
        row = [str(cells[i]) for i in shown]
        if all_namespaces:
            row.insert(0, (obj.get("metadata") or {}).get("namespace", ""))
        rows.append(row)
    return printers.format_table((["NAMESPACE"] if all_namespaces else []) + headers, rows)

