"""The MCS planner: pure, from a service's exports in the clusterset to its ServiceImport,
the exports' conditions and its ``clusterset.local`` records (KEP-1645, the MCS DNS spec).

**Validity.** An export is ``Valid`` when its cluster has the Service and the Service is not
``ExternalName`` (reasons ``NoService``, ``InvalidServiceType``). Only valid exports count.

**Conflicts.** The exports of one service are ordered oldest first (the ServiceExport's
creationTimestamp, then the cluster's name), and the oldest one's values win: headlessness
(the import's type, ``ClusterSetIP`` or ``Headless``), session affinity and its config,
internal traffic policy, traffic distribution, exported labels and annotations. Ports are
the union by name: a port whose name an older export already has with another number or
protocol is left out (so two unnamed single ports, ``80/TCP`` and ``80/UDP``, clash, and
the older wins). Whenever the exports differ in any of these, every valid export gets
``Conflict=True`` with the reasons (``PortConflict``, ``TypeConflict``, ...; joined with
commas, as mcs-api allows) and a message naming the values and the winner; otherwise
``Conflict=False``, ``NoConflicts``. The conformance suite expects the condition on each
export, not only the losers'.

**Backends** of a ClusterSetIP import: each valid, non-headless export in a usable cluster
with a ready endpoint and an address its member serves the export on, with the import's
ports it really has (a port it lost in a conflict is not routed to it).

**Records** (``<svc>.<ns>.svc.clusterset.local``): A of the ClusterSetIP; SRV at the name
(``0 100 <port> <name>``, every port) and at ``_<port>._<proto>.<name>`` (named ports). A
headless import answers A with every ready endpoint of every exporting cluster, one name
per endpoint, ``<hostname>.<clusterid>.<name>`` (the endpoint's hostname, else its pod's
name), and SRV records pointing at those names.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from federation import mcsapi
from federation.planners.dnsplan import Placement, RecordSet, clusterset_name


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str
    port: int
    app_protocol: str = ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"port": self.port, "protocol": self.protocol}
        if self.name:
            out["name"] = self.name
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        return out


@dataclass(frozen=True)
class Endpoint:
    ip: str
    hostname: str
    ready: bool = True


@dataclass(frozen=True)
class ExportedService:
    """What of a member's Service an import is made from."""

    type: str = "ClusterIP"
    headless: bool = False
    ports: tuple[Port, ...] = ()
    session_affinity: str = "None"
    session_affinity_config: str = ""  # canonical JSON, "" when unset
    internal_traffic_policy: str = ""
    traffic_distribution: str = ""
    ip_families: tuple[str, ...] = ("IPv4",)
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class Export:
    cluster: str
    created: str  # the ServiceExport's creationTimestamp (RFC 3339 sorts as text)
    service: ExportedService | None  # None: the cluster has no such Service
    region: str = ""
    zones: tuple[str, ...] = ()
    usable: bool = True  # the cluster is Ready
    address: str = ""  # where its member serves the export
    labels: tuple[tuple[str, str], ...] = ()  # spec.exportedLabels
    annotations: tuple[tuple[str, str], ...] = ()  # spec.exportedAnnotations


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" or "False"
    reason: str
    message: str


@dataclass(frozen=True)
class Backend:
    cluster: str
    region: str
    zones: tuple[str, ...]
    ip: str
    ports: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {"cluster": self.cluster, "region": self.region, "zones": list(self.zones), "ip": self.ip,
                "ports": list(self.ports)}


@dataclass(frozen=True)
class ImportPlan:
    type: str
    ports: tuple[Port, ...]
    session_affinity: str
    session_affinity_config: str
    internal_traffic_policy: str
    traffic_distribution: str
    ip_families: tuple[str, ...]
    clusters: tuple[str, ...]  # the valid exports' clusters, oldest first
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    backends: tuple[Backend, ...] = ()
    # headless: (cluster, region, zones, endpoint) of every ready endpoint
    endpoints: tuple[tuple[str, str, tuple[str, ...], Endpoint], ...] = field(default_factory=tuple)


def validity(export: Export, namespace: str, name: str) -> Condition:
    if export.service is None:
        return Condition(mcsapi.VALID, "False", mcsapi.REASON_NO_SERVICE,
                         f'service "{namespace}/{name}" not found in cluster {export.cluster}')
    if export.service.type == "ExternalName":
        return Condition(mcsapi.VALID, "False", mcsapi.REASON_INVALID_TYPE,
                         f'service "{namespace}/{name}" is of type ExternalName, which cannot be exported')
    return Condition(mcsapi.VALID, "True", mcsapi.REASON_VALID, "the service is exported")


def _union_ports(valid: list[Export]) -> tuple[tuple[Port, ...], dict[str, tuple[Port, ...]]]:
    """The import's ports (by name, oldest first) and, per cluster, the ports it shares with them."""
    by_name: dict[str, Port] = {}
    for export in valid:
        assert export.service is not None
        for port in export.service.ports:
            by_name.setdefault(port.name, port)
    union = tuple(sorted(by_name.values(), key=lambda p: (p.port, p.protocol, p.name)))
    kept = {e.cluster: tuple(p for p in e.service.ports if by_name.get(p.name) == p) for e in valid if e.service}
    return union, kept


def plan_import(exports: list[Export], *, namespace: str, name: str) -> tuple[ImportPlan | None, dict[str, list[Condition]]]:
    """The import of the service ``namespace/name`` (None: no valid export), and each
    exporting cluster's conditions (``Valid``, then ``Conflict``)."""
    conditions: dict[str, list[Condition]] = {}
    valid = []
    for export in sorted(exports, key=lambda e: (e.created, e.cluster)):
        v = validity(export, namespace, name)
        conditions[export.cluster] = [v]
        if v.status == "True":
            valid.append(export)
    if not valid:
        for export in exports:
            conditions[export.cluster].append(Condition(mcsapi.CONFLICT, "False", mcsapi.REASON_NO_CONFLICTS,
                                                        "the service is not exported"))
        return None, conditions
    winner = valid[0]
    ws = winner.service
    assert ws is not None
    union, kept = _union_ports(valid)
    problems: list[tuple[str, str]] = []

    def differs(reason: str, what: str, value) -> None:  # type: ignore[no-untyped-def]
        seen = {e.cluster: value(e) for e in valid}
        if len(set(seen.values())) > 1:
            shown = ", ".join(f"{c}: {v if v not in ('', ()) else 'unset'}" for c, v in seen.items())
            problems.append((reason, f"{what} differ ({shown})"))

    differs(mcsapi.REASON_PORT, "ports", lambda e: ",".join(
        f"{p.name + '=' if p.name else ''}{p.port}/{p.protocol}" for p in sorted(e.service.ports, key=lambda p: (p.port, p.name))))
    differs(mcsapi.REASON_TYPE, "headlessness", lambda e: "headless" if e.service.headless else "ClusterSetIP")
    differs(mcsapi.REASON_AFFINITY, "session affinities", lambda e: e.service.session_affinity)
    differs(mcsapi.REASON_AFFINITY_CONFIG, "session affinity configs", lambda e: e.service.session_affinity_config)
    differs(mcsapi.REASON_TRAFFIC_POLICY, "internal traffic policies", lambda e: e.service.internal_traffic_policy)
    differs(mcsapi.REASON_TRAFFIC_DISTRIBUTION, "traffic distributions", lambda e: e.service.traffic_distribution)
    differs(mcsapi.REASON_LABELS, "exported labels", lambda e: json.dumps(dict(e.labels), sort_keys=True))
    differs(mcsapi.REASON_ANNOTATIONS, "exported annotations", lambda e: json.dumps(dict(e.annotations), sort_keys=True))
    for export in valid:
        if problems:
            said = "; ".join(m for _, m in problems)
            who = ("this export is the oldest: its values are used" if export is winner else
                   f"the oldest export, in cluster {winner.cluster} (created {winner.created}), wins")
            conditions[export.cluster].append(Condition(mcsapi.CONFLICT, "True", ",".join(r for r, _ in problems),
                                                        f"{said}; {who}"))
        else:
            conditions[export.cluster].append(Condition(mcsapi.CONFLICT, "False", mcsapi.REASON_NO_CONFLICTS,
                                                        "the exports of this service agree"))
    for export in exports:
        if len(conditions[export.cluster]) == 1:
            conditions[export.cluster].append(Condition(mcsapi.CONFLICT, "False", mcsapi.REASON_NO_CONFLICTS,
                                                        "the export is not valid"))
    headless = ws.headless
    backends: list[Backend] = []
    endpoints = []
    for export in valid:
        s = export.service
        assert s is not None
        if not export.usable:
            continue
        ready = [ep for ep in s.endpoints if ep.ready]
        if headless:
            if s.headless:
                endpoints += [(export.cluster, export.region, export.zones, ep) for ep in ready]
            continue
        ports = tuple(sorted({p.port for p in kept.get(export.cluster, ()) if p.protocol == "TCP"}))
        if not s.headless and ready and export.address and ports:
            backends.append(Backend(export.cluster, export.region, export.zones, export.address, ports))
    plan = ImportPlan(
        type=mcsapi.HEADLESS if headless else mcsapi.CLUSTERSET_IP,
        ports=union,
        session_affinity=ws.session_affinity,
        session_affinity_config=ws.session_affinity_config,
        internal_traffic_policy=ws.internal_traffic_policy,
        traffic_distribution=ws.traffic_distribution,
        ip_families=ws.ip_families,
        clusters=tuple(e.cluster for e in valid),
        labels=winner.labels,
        annotations=winner.annotations,
        backends=tuple(backends),
        endpoints=tuple(endpoints),
    )
    return plan, conditions


def allocate_ip(cidr: str, taken: set[str], current: str | None = None) -> str | None:
    """A ClusterSetIP of ``cidr``: ``current`` if it is in the range and not another's, else
    the lowest free address (the network address is never handed out); None when full."""
    network = ipaddress.ip_network(cidr, strict=False)
    if current:
        try:
            if ipaddress.ip_address(current) in network and current not in taken:
                return current
        except ValueError:
            pass
    for host in network.hosts():
        if str(host) not in taken:
            return str(host)
    return None


def plan_records(*, name: str, namespace: str, plan: ImportPlan, ips: tuple[str, ...], ttl: int) -> list[RecordSet]:
    """The ``clusterset.local`` record sets of one import (module docstring), sorted."""
    base = clusterset_name(name, namespace)
    out: list[RecordSet] = []
    if plan.type == mcsapi.CLUSTERSET_IP:
        v4 = tuple(ip for ip in ips if ipaddress.ip_address(ip).version == 4)
        v6 = tuple(ip for ip in ips if ipaddress.ip_address(ip).version == 6)
        out += [RecordSet(base, rtype, ttl, family) for rtype, family in (("A", v4), ("AAAA", v6)) if family]
        if not out:
            return []
        if plan.ports:
            out.append(RecordSet(base, "SRV", ttl, tuple(f"0 100 {p.port} {base}" for p in plan.ports)))
        out += [RecordSet(f"_{p.name}._{p.protocol.lower()}.{base}", "SRV", ttl, (f"0 100 {p.port} {base}",))
                for p in plan.ports if p.name]
        return sorted(out, key=lambda r: (r.name, r.type))
    hosts: dict[str, tuple[list[str], Placement | None]] = {}
    addresses: dict[str, list[Placement]] = {"A": [], "AAAA": []}
    for cluster, region, zones, ep in plan.endpoints:
        rtype = "A" if ipaddress.ip_address(ep.ip).version == 4 else "AAAA"
        placement = Placement(ep.ip, cluster, region, zones)
        if all(p.target != ep.ip for p in addresses[rtype]):
            addresses[rtype].append(placement)
        host = f"{ep.hostname}.{cluster}.{base}".lower()
        hosts.setdefault(host, ([], placement))[0].append(ep.ip)
    for rtype, placements in addresses.items():
        if placements:
            placements.sort(key=lambda p: int(ipaddress.ip_address(p.target)))
            out.append(RecordSet(base, rtype, ttl, tuple(p.target for p in placements), tuple(placements)))
    for host, (host_ips, _) in sorted(hosts.items()):
        for rtype in ("A", "AAAA"):
            family = tuple(sorted({ip for ip in host_ips if (ipaddress.ip_address(ip).version == 4) == (rtype == "A")},
                                  key=lambda ip: int(ipaddress.ip_address(ip))))
            if family:
                out.append(RecordSet(host, rtype, ttl, family))
    if hosts and plan.ports:
        out.append(RecordSet(base, "SRV", ttl, tuple(f"0 100 {p.port} {h}" for h in sorted(hosts) for p in plan.ports)))
        out += [RecordSet(f"_{p.name}._{p.protocol.lower()}.{base}", "SRV", ttl,
                          tuple(f"0 100 {p.port} {h}" for h in sorted(hosts))) for p in plan.ports if p.name]
    return sorted(out, key=lambda r: (r.name, r.type))
