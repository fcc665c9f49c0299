"""Pure formatting for the kubectl-style CLI: tables, ages, ports, shards, describe text.

Everything here is a function of objects (plain dicts as the API returns them) and a
``now`` timestamp, with no I/O, so the table-driven tests in ``tests/unit/test_cli_printers.py``
pin the output down column by column. The shell that talks HTTP lives in
``federation.cli.kubectl``.

The formats follow kubectl's own printers where kubectl has one (the age format of
``duration.HumanDuration``, ``80/TCP`` ports, ``<none>`` and ``<pending>`` placeholders,
columns padded by three spaces). One deliberate difference: kubectl cuts a long
``EXTERNAL-IP`` to 16 characters unless ``-o wide``; a federated service's whole point is
its list of ingresses across clusters, so we print them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from federation.names import LAST_APPLIED_ANNOTATION

NONE = "<none>"
UNKNOWN = "<unknown>"
PENDING = "<pending>"

SERVICE_INGRESSES_ANNOTATION = "federation.kubernetes.io/service-ingresses"
# Annotations `describe` leaves out: one is shown as the Shards table, the other is apply's
# bookkeeping (kubectl hides it too).
HIDDEN_ANNOTATIONS = (SERVICE_INGRESSES_ANNOTATION, LAST_APPLIED_ANNOTATION)


# --- time -----------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def human_duration(seconds: float) -> str:
    """kubectl's AGE format (apimachinery ``duration.HumanDuration``): 5s, 3m12s, 5h4m, 2d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(obj: dict[str, Any], now: datetime) -> str:
    created = parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return UNKNOWN
    return human_duration((now - created).total_seconds())


def describe_time(value: Any) -> str:
    """kubectl describe's timestamps: RFC 1123 with a numeric zone."""
    parsed = parse_timestamp(value)
    if parsed is None:
        return str(value) if value else NONE
    return parsed.strftime("%a, %d %b %Y %H:%M:%S %z")


# --- tables ---------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align columns as kubectl's tabwriter does (min width 6, padding 3, last column bare)."""
    if not headers:
        return ""
    all_rows = [list(headers)] + [[str(c) for c in r] for r in rows]
    widths = [max(6, max(len(r[i]) for r in all_rows) + 3) for i in range(len(headers) - 1)]
    lines = []
    for r in all_rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(headers) - 1)] + [r[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_labels(labels: dict[str, Any] | None) -> str:
    """``a=1,b=2`` sorted by key, ``<none>`` when empty (labels.FormatLabels)."""
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _join(values: Sequence[Any] | None) -> str:
    values = [str(v) for v in values or [] if v not in (None, "")]
    return ",".join(values) if values else NONE


# --- clusters -------------------------------------------------------------------------


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def condition_status(obj: dict[str, Any], type_: str) -> str:
    cond = condition(obj, type_)
    status = (cond or {}).get("status")
    return status if status in ("True", "False", "Unknown") else "Unknown"


def cluster_api_address(obj: dict[str, Any]) -> str:
    """The address for clients anywhere (clientCIDR 0.0.0.0/0), else the first one listed."""
    entries = [e for e in (obj.get("spec") or {}).get("serverAddressByClientCIDRs") or [] if isinstance(e, dict)]
    for entry in entries:
        if entry.get("clientCIDR") in ("0.0.0.0/0", "::/0") and entry.get("serverAddress"):
            return entry["serverAddress"]
    for entry in entries:
        if entry.get("serverAddress"):
            return entry["serverAddress"]
    return NONE


CLUSTER_COLUMNS = ["NAME", "READY", "OFFLINE", "PROVIDER", "REGION", "ZONES", "AGE"]
CLUSTER_WIDE_COLUMNS = CLUSTER_COLUMNS + ["API-ADDRESS"]


def cluster_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    row = [
        meta.get("name", ""),
        condition_status(obj, "Ready"),
        condition_status(obj, "Offline"),
        spec.get("provider") or NONE,
        status.get("region") or NONE,
        _join(status.get("zones")),
        age(obj, now),
    ]
    if wide:
        row.append(cluster_api_address(obj))
    return row


# --- services -------------------------------------------------------------------------


def format_ports(svc: dict[str, Any]) -> str:
    """kubectl's PORT(S): ``80/TCP``, ``80:30080/TCP`` with a node port, comma-joined."""
    parts = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        if not isinstance(port, dict):
            continue
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            parts.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            parts.append(f"{port.get('port')}/{protocol}")
    return ",".join(parts) if parts else NONE


def ingress_addresses(svc: dict[str, Any]) -> list[str]:
    lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    out = []
    for ing in lb:
        if isinstance(ing, dict):
            addr = ing.get("ip") or ing.get("hostname")
            if addr:
                out.append(str(addr))
    return out


def external_ip(svc: dict[str, Any]) -> str:
    """kubectl's EXTERNAL-IP: LB ingresses plus spec.externalIPs; ``<pending>`` for an LB with none."""
    spec = svc.get("spec") or {}
    type_ = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if type_ in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if type_ == "LoadBalancer":
        found = ingress_addresses(svc) + external
        return ",".join(found) if found else PENDING
    if type_ == "ExternalName":
        return spec.get("externalName") or NONE
    return UNKNOWN


def shards(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-cluster shards: ``status.shards``, else Federation v1.7's service-ingresses
    annotation; [] if neither is there or readable."""
    in_status = (svc.get("status") or {}).get("shards")
    if isinstance(in_status, list):
        return [s for s in in_status if isinstance(s, dict)]
    raw = ((svc.get("metadata") or {}).get("annotations") or {}).get(SERVICE_INGRESSES_ANNOTATION)
    if not raw:
        return []
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    found = data.get("shards") if isinstance(data, dict) else None
    return [s for s in found or [] if isinstance(s, dict)]


def shard_healthy(shard: dict[str, Any]) -> bool:
    """The shard's own ``healthy`` verdict; without one, an ingress and a ready endpoint."""
    if "healthy" in shard:
        return shard.get("healthy") is True
    return bool(shard_ingress(shard)) and _int(shard.get("readyEndpoints")) > 0


def shard_ingress(shard: dict[str, Any]) -> list[str]:
    out = []
    for ing in shard.get("ingress") or []:
        if isinstance(ing, dict) and (ing.get("ip") or ing.get("hostname")):
            out.append(str(ing.get("ip") or ing.get("hostname")))
        elif isinstance(ing, str):
            out.append(ing)
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def shard_count(svc: dict[str, Any]) -> str:
    """``ready/total`` shards, ``0/0`` when the annotation is missing."""
    found = shards(svc)
    return f"{sum(1 for s in found if shard_healthy(s))}/{len(found)}"


SERVICE_COLUMNS = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE"]
SERVICE_WIDE_EXTRA = ["SELECTOR"]


def service_columns(*, all_namespaces: bool = False, wide: bool = False) -> list[str]:
    cols = (["NAMESPACE"] if all_namespaces else []) + SERVICE_COLUMNS
    return cols + (SERVICE_WIDE_EXTRA if wide else [])


def service_row(svc: dict[str, Any], now: datetime, *, all_namespaces: bool = False, wide: bool = False) -> list[str]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    row = [meta.get("namespace", "")] if all_namespaces else []
    row += [
        meta.get("name", ""),
        spec.get("type") or "ClusterIP",
        spec.get("clusterIP") or NONE,
        external_ip(svc),
        format_ports(svc),
        shard_count(svc),
        age(svc, now),
    ]
    if wide:
        row.append(format_labels(spec.get("selector")))
    return row


# --- deployments (issue 7) ------------------------------------------------------------


DEPLOYMENT_COLUMNS = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "CLUSTERS", "AGE"]
DEPLOYMENT_WIDE_COLUMNS = DEPLOYMENT_COLUMNS + ["CONTAINERS", "IMAGES", "SELECTOR"]


def deployment_clusters(obj: dict[str, Any]) -> str:
    """``done/placed``: clusters whose copy has all its replicas available, of those placed."""
    entries = [c for c in (obj.get("status") or {}).get("clusters") or [] if isinstance(c, dict)]
    done = sum(
        1 for c in entries
        if c.get("clusterReady") and _int(c.get("availableReplicas")) >= _int(c.get("desiredReplicas"))
    )
    return f"{done}/{len(entries)}"


def deployment_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas", 1)
    row = [
        (obj.get("metadata") or {}).get("name", ""),
        f"{_int(status.get('readyReplicas'))}/{_int(desired)}",
        str(_int(status.get("updatedReplicas"))),
        str(_int(status.get("availableReplicas"))),
        deployment_clusters(obj),
        age(obj, now),
    ]
    if wide:
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        row += [
            ",".join(str(c.get("name", "")) for c in containers if isinstance(c, dict)) or NONE,
            ",".join(str(c.get("image", "")) for c in containers if isinstance(c, dict)) or NONE,
            format_labels((spec.get("selector") or {}).get("matchLabels")),
        ]
    return row


REVISION_COLUMNS = ["NAME", "CONTROLLER", "REVISION", "AGE"]


def revision_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    owner = next((r for r in refs if isinstance(r, dict) and r.get("controller")), None)
    return [
        (obj.get("metadata") or {}).get("name", ""),
        f"deployment.apps/{owner.get('name')}" if owner else NONE,
        str(_int(obj.get("revision"))),
        age(obj, now),
    ]


# --- DNS records and leases ----------------------------------------------------------


DNSRECORD_COLUMNS = ["NAME", "TYPE", "TTL", "TARGETS"]
DNSRECORD_WIDE_COLUMNS = DNSRECORD_COLUMNS + ["OBJECT"]


def dnsrecord_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    spec = obj.get("spec") or {}
    ttl = spec.get("ttl")
    row = [
        spec.get("name") or (obj.get("metadata") or {}).get("name", ""),
        spec.get("type") or UNKNOWN,
        NONE if ttl is None else str(ttl),
        _join(spec.get("targets")),
    ]
    if wide:
        row.append((obj.get("metadata") or {}).get("name", ""))
    return row


LEASE_COLUMNS = ["NAME", "HOLDER", "AGE"]


def lease_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    spec = obj.get("spec") or {}
    return [(obj.get("metadata") or {}).get("name", ""), spec.get("holderIdentity") or "", age(obj, now)]


EVENT_COLUMNS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def event_time(event: dict[str, Any]) -> datetime | None:
    return parse_timestamp(event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp"))


def event_row(event: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    involved = event.get("involvedObject") or {}
    seen = event_time(event)
    return [
        human_duration((now - seen).total_seconds()) if seen else UNKNOWN,
        event.get("type") or "Normal",
        event.get("reason") or "",
        f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
        event.get("message") or "",
    ]


def sort_events(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first, as kubectl lists them."""
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(events, key=lambda e: event_time(e) or epoch)


def events_for(obj: dict[str, Any], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events whose involvedObject is ``obj`` (same kind and name; same uid when both carry one)."""
    meta = obj.get("metadata") or {}
    found = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != obj.get("kind") or involved.get("name") != meta.get("name"):
            continue
        if (involved.get("namespace") or "") != (meta.get("namespace") or ""):
            continue
        if involved.get("uid") and meta.get("uid") and involved["uid"] != meta["uid"]:
            continue
        found.append(event)
    return sort_events(found)


FAILOVERRECORD_COLUMNS = ["TIME", "STEP", "CLUSTER", "SERVICE", "SINCE-FAULT", "MESSAGE"]
FAILOVERRECORD_WIDE_COLUMNS = FAILOVERRECORD_COLUMNS + ["INCIDENT", "SERIAL", "NAME"]


def failoverrecord_row(obj: dict[str, Any], now: datetime, *, wide: bool = False) -> list[str]:
    spec = obj.get("spec") or {}
    since = spec.get("sinceFault")
    row = [str(spec.get("time") or ""), str(spec.get("step") or ""), str(spec.get("cluster") or NONE),
           str(spec.get("service") or NONE), f"{since:.3f}s" if isinstance(since, (int, float)) else UNKNOWN,
           str(spec.get("message") or "")]
    if wide:
        serial = spec.get("serial")
        row += [str(spec.get("incident") or ""), NONE if serial is None else str(serial),
                (obj.get("metadata") or {}).get("name", "")]
    return row


HISTORY_COLUMNS = ["TIME", "STEP", "+LATENCY", "SINCE-FAULT", "CLUSTER", "SERVICE", "MESSAGE"]
HISTORY_WIDE_COLUMNS = HISTORY_COLUMNS[:-1] + ["SERIAL", "INCIDENT", "MESSAGE"]


def history_table(records: Sequence[dict[str, Any]], *, wide: bool = False) -> str:
    """``ubernetes history``: the records in the order given (oldest first), each with the
    time since the previous step of its incident (``+LATENCY``) and since its first step."""
    last: dict[str, datetime] = {}
    rows = []
    for record in records:
        spec = record.get("spec") or {}
        when = parse_timestamp(spec.get("time"))
        incident = str(spec.get("incident") or "")
        before = last.get(incident)
        latency = f"+{(when - before).total_seconds():.3f}s" if when and before else "-"
        if when:
            last[incident] = when
        since = spec.get("sinceFault")
        row = [when.strftime("%H:%M:%S.%f")[:-3] if when else UNKNOWN, str(spec.get("step") or ""), latency,
               f"{since:.3f}s" if isinstance(since, (int, float)) else UNKNOWN,
               str(spec.get("cluster") or NONE), str(spec.get("service") or NONE)]
        if wide:
            serial = spec.get("serial")
            row += [NONE if serial is None else str(serial), incident]
        rows.append(row + [str(spec.get("message") or "")])
    return format_table(HISTORY_WIDE_COLUMNS if wide else HISTORY_COLUMNS, rows)


@dataclass(frozen=True)
class TableSpec:
    """How one resource prints as a table."""

    columns: Callable[..., list[str]]
    row: Callable[..., list[str]]


def _fixed(normal: list[str], wide_columns: list[str]) -> Callable[..., list[str]]:
    def columns(*, all_namespaces: bool = False, wide: bool = False) -> list[str]:
        cols = list(wide_columns if wide else normal)
        return (["NAMESPACE"] + cols) if all_namespaces else cols

    return columns


def _namespaced_row(row: Callable[..., list[str]]) -> Callable[..., list[str]]:
    def build(obj: dict[str, Any], now: datetime, *, all_namespaces: bool = False, wide: bool = False) -> list[str]:
        cells = row(obj, now, wide=wide)
        return ([(obj.get("metadata") or {}).get("namespace", "")] + cells) if all_namespaces else cells

    return build


TABLES: dict[str, TableSpec] = {
    "clusters": TableSpec(_fixed(CLUSTER_COLUMNS, CLUSTER_WIDE_COLUMNS), _namespaced_row(cluster_row)),
    "services": TableSpec(service_columns, service_row),
    "dnsrecords": TableSpec(_fixed(DNSRECORD_COLUMNS, DNSRECORD_WIDE_COLUMNS), _namespaced_row(dnsrecord_row)),
    "leases": TableSpec(_fixed(LEASE_COLUMNS, LEASE_COLUMNS), _namespaced_row(lease_row)),
    "events": TableSpec(_fixed(EVENT_COLUMNS, EVENT_COLUMNS), _namespaced_row(event_row)),
    "deployments": TableSpec(_fixed(DEPLOYMENT_COLUMNS, DEPLOYMENT_WIDE_COLUMNS), _namespaced_row(deployment_row)),
    "controllerrevisions": TableSpec(_fixed(REVISION_COLUMNS, REVISION_COLUMNS), _namespaced_row(revision_row)),
    "failoverrecords": TableSpec(_fixed(FAILOVERRECORD_COLUMNS, FAILOVERRECORD_WIDE_COLUMNS),
                                 _namespaced_row(failoverrecord_row)),
}


def table(
    plural: str, objs: Sequence[dict[str, Any]], now: datetime, *, all_namespaces: bool = False, wide: bool = False
) -> str:
    spec = TABLES[plural]
    headers = spec.columns(all_namespaces=all_namespaces, wide=wide)
    rows = [spec.row(o, now, all_namespaces=all_namespaces, wide=wide) for o in objs]
    return format_table(headers, rows)


# --- describe -------------------------------------------------------------------------


def _field_block(fields: Sequence[tuple[str, Any]]) -> list[str]:
    """``Key:  value`` lines aligned like kubectl describe; list values continue underneath."""
    width = max(len(k) for k, _ in fields) + 3
    lines = []
    for key, value in fields:
        values = value if isinstance(value, list) else [value]
        values = values or [NONE]
        lines.append(f"{key + ':':<{width}}{values[0]}".rstrip())
        lines.extend((" " * width + str(v)).rstrip() for v in values[1:])
    return lines


def _map_lines(mapping: dict[str, Any] | None, *, hide: Sequence[str] = ()) -> list[str]:
    items = [f"{k}={v}" if not isinstance(v, str) or "\n" not in v else f"{k}: {v}" for k, v in sorted((mapping or {}).items()) if k not in hide]
    return items or [NONE]


def _sub_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "  ") -> list[str]:
    """A describe sub-table: headers, dashes, rows, two spaces between columns."""
    all_rows = [list(headers), ["-" * len(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in all_rows) + 2 for i in range(len(headers) - 1)]
    out = []
    for r in all_rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(headers) - 1)] + [r[-1]]
        out.append((indent + "".join(cells)).rstrip())
    return out


def aggregate_events(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold events that say the same thing (type, reason, source, message) into one with a
    count, first and last time, as the Kubernetes event recorder does, oldest last-seen first."""
    folded: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for event in sort_events(events):
        key = (
            str(event.get("type") or "Normal"),
            str(event.get("reason") or ""),
            str((event.get("source") or {}).get("component") or ""),
            str(event.get("message") or ""),
        )
        count = max(_int(event.get("count")), 1)
        seen = folded.get(key)
        if seen is None:
            folded[key] = {**event, "count": count, "firstTimestamp": event.get("firstTimestamp") or event.get("lastTimestamp")}
            continue
        seen["count"] += count
        first, other = parse_timestamp(seen.get("firstTimestamp")), parse_timestamp(event.get("firstTimestamp"))
        if other is not None and (first is None or other < first):
            seen["firstTimestamp"] = event.get("firstTimestamp")
        if event.get("lastTimestamp"):
            seen["lastTimestamp"] = event["lastTimestamp"]
    return sort_events(list(folded.values()))


def _events_lines(events: Sequence[dict[str, Any]], now: datetime | None) -> list[str]:
    """kubectl describe's Events section: ``5m (x3 over 10m)`` when an event repeated."""
    if not events:
        return ["Events:  <none>"]
    now = now or datetime.now(timezone.utc)
    rows = []
    for event in aggregate_events(events):
        seen = event_time(event)
        when = human_duration((now - seen).total_seconds()) if seen else UNKNOWN
        count = _int(event.get("count"))
        first = parse_timestamp(event.get("firstTimestamp"))
        if count > 1 and first is not None:
            when += f" (x{count} over {human_duration((now - first).total_seconds())})"
        source = (event.get("source") or {}).get("component") or ""
        rows.append([event.get("type") or "Normal", event.get("reason") or "", when, source, event.get("message") or ""])
    return ["Events:"] + _sub_table(["Type", "Reason", "Age", "From", "Message"], rows)


def describe_cluster(obj: dict[str, Any], events: Sequence[dict[str, Any]] = (), now: datetime | None = None) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    addresses = [
        f"{e.get('serverAddress', '')} (clientCIDR {e.get('clientCIDR', '')})"
        for e in spec.get("serverAddressByClientCIDRs") or []
        if isinstance(e, dict)
    ]
    lines = _field_block(
        [
            ("Name", meta.get("name", "")),
            ("Labels", _map_lines(meta.get("labels"))),
            ("Annotations", _map_lines(meta.get("annotations"), hide=HIDDEN_ANNOTATIONS)),
            ("API Version", obj.get("apiVersion", "federation/v1beta1")),
            ("Kind", obj.get("kind", "Cluster")),
            ("CreationTimestamp", describe_time(meta.get("creationTimestamp"))),
            ("Provider", spec.get("provider") or NONE),
            ("Region", status.get("region") or NONE),
            ("Zones", _join(status.get("zones"))),
            ("API Addresses", addresses or [NONE]),
        ]
    )
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if conditions:
        lines.append("Conditions:")
        lines += _sub_table(
            ["Type", "Status", "LastProbeTime", "LastTransitionTime", "Reason", "Message"],
            [
                [
                    c.get("type", ""),
                    c.get("status", ""),
                    describe_time(c.get("lastProbeTime")),
                    describe_time(c.get("lastTransitionTime")),
                    c.get("reason", ""),
                    c.get("message", ""),
                ]
                for c in conditions
            ],
        )
    else:
        lines.append("Conditions:  <none>")
    lines += _events_lines(events, now)
    return "\n".join(lines) + "\n"


def _port_fields(port: dict[str, Any]) -> list[tuple[str, Any]]:
    protocol = port.get("protocol") or "TCP"
    fields: list[tuple[str, Any]] = [("Port", f"{port.get('name') or '<unset>'}  {port.get('port')}/{protocol}")]
    target = port.get("targetPort", port.get("port"))
    fields.append(("TargetPort", f"{target}/{protocol}"))
    if port.get("nodePort"):
        fields.append(("NodePort", f"{port.get('name') or '<unset>'}  {port['nodePort']}/{protocol}"))
    return fields


def describe_service(svc: dict[str, Any], events: Sequence[dict[str, Any]] = (), now: datetime | None = None) -> str:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    fields: list[tuple[str, Any]] = [
        ("Name", meta.get("name", "")),
        ("Namespace", meta.get("namespace", "")),
        ("Labels", _map_lines(meta.get("labels"))),
        ("Annotations", _map_lines(meta.get("annotations"), hide=HIDDEN_ANNOTATIONS)),
        ("CreationTimestamp", describe_time(meta.get("creationTimestamp"))),
        ("Selector", format_labels(spec.get("selector"))),
        ("Type", spec.get("type") or "ClusterIP"),
        ("IP", spec.get("clusterIP") or NONE),
    ]
    if spec.get("externalIPs"):
        fields.append(("External IPs", ",".join(spec["externalIPs"])))
    ingresses = ingress_addresses(svc)
    if (spec.get("type") == "LoadBalancer") or ingresses:
        fields.append(("LoadBalancer Ingress", ", ".join(ingresses) if ingresses else PENDING))
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            fields += _port_fields(port)
    fields.append(("Session Affinity", spec.get("sessionAffinity") or "None"))
    found = shards(svc)
    fields.append(("Shards", f"{shard_count(svc)} healthy" if found else NONE))
    lines = _field_block(fields)
    if found:
        lines += _sub_table(
            ["Cluster", "Ingress", "ReadyEndpoints", "Healthy"],
            [
                [
                    s.get("cluster", ""),
                    ",".join(shard_ingress(s)) or NONE,
                    str(_int(s.get("readyEndpoints"))),
                    str(shard_healthy(s)),
                ]
                for s in found
            ],
        )
    lines += _events_lines(events, now)
    return "\n".join(lines) + "\n"


DESCRIBERS: dict[str, Callable[..., str]] = {
    "clusters": describe_cluster,
    "services": describe_service,
}
