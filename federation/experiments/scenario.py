"""Scenario files: topology, settings, probes, a timed list of faults, and expectations.

```yaml
name: cluster-crash
description: SIGKILL one member; DNS must drop it and clients must move on.
topology:            # the format of `ubernetes up -f` (LB pools are always picked afresh)
  clusters: [...]
  services: [...]
settings: {}         # federation flags in camelCase: healthPeriod, dnsTtl, offlineRecords, ...
controlPlane: sqlite # or etcd-ha: three etcd members and three API servers, as `up --ha` (issue 13)
probes:
  dns: {names: [global, "region:us-east-1", "zone:us-east-1a"], rate: 5}
  clients: {name: global, count: 3, rate: 4, timeout: 1}
  writes: {rate: 10}  # ConfigMaps created through the API all along: acknowledged, refused, lost
timeline:
  duration: 30
  faults:
  - {id: crash, at: 5, fault: crash, cluster: aws-us-east-1a, heal: 20}
expect: [converges, no-stale-after-ttl, no-false-failover, clients-recover, recovers]
targets: {convergenceMedian: 3}     # benchmark figures: reported, never asserted
fast: {timeScale: 0.6, settings: {dnsTtl: 2}}   # the form the test suite runs
compare: {timeline: {...}}          # the timeline `experiment compare` uses (slow profiles)
```

Everything is checked when the file is read, and every problem names its field.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from federation.planners import dnsplan
from federation.launch.topology import ClusterSpec, Topology, TopologyError, parse_topology

FAULTS = {
    # kind: fields it needs
    "crash": ("cluster",),
    "zone-outage": ("zone",),
    "region-outage": ("region",),
    "partition": ("cluster",),
    "blackhole": ("cluster",),
    "flap": ("cluster", "period"),
    "control-plane-outage": (),
    "degrade": ("cluster", "service"),
    "latency": ("cluster", "seconds"),
    "drop-probes": ("cluster", "fraction"),
    # the control plane (issue 13); kill-etcd needs controlPlane etcd-ha
    "kill-leader": (),
    "kill-apiserver": ("index",),
    "kill-etcd": ("index",),
}
# What runs the federation API: one API server on an SQLite file, or `up --ha`'s three etcd
# members and three API servers with leader-elected controllers.
CONTROL_PLANES = {"sqlite": {"apiReplicas": 1, "etcdMembers": 0}, "etcd-ha": {"apiReplicas": 3, "etcdMembers": 3}}
EXPECTATIONS = (
    "converges",  # every shard whose data plane died left every answer before the heal
    "no-stale-after-ttl",  # no answer held a dead address later than convergence + one TTL
    "no-false-failover",  # no healthy shard ever left an answer
    "dns-always-answers",  # every DNS query got a NOERROR answer
    "clients-recover",  # no client failure later than convergence + TTL + the client timeout
    "clients-unaffected",  # no client failure at all
    "recovers",  # every healed shard came back into DNS before the end
    "detects",  # every fault changed a condition or a data-plane verdict
    "no-lost-writes",  # every write the API acknowledged is stored at the end, once
    "leads-again",  # after every fault a leader renewed the controllers' Lease before the end
)
# Federation flags a scenario or profile may set: camelCase key -> (flag, type).
SETTINGS = {
    "healthPeriod": ("--health-period", float),
    "healthTimeout": ("--health-timeout", float),
    "failureThreshold": ("--failure-threshold", int),
    "successThreshold": ("--success-threshold", int),
    "dnsTtl": ("--dns-ttl", int),
    "offlineRecords": ("--offline-records", str),
    "dataplaneChecks": ("--dataplane-checks", bool),
    "dataplanePeriod": ("--dataplane-period", float),
    "dataplaneTimeout": ("--dataplane-timeout", float),
    "dataplaneFailureThreshold": ("--dataplane-failure-threshold", int),
}
DEFAULT_SETTINGS = {
    "healthPeriod": 1.0, "healthTimeout": 1.0, "failureThreshold": 3, "successThreshold": 1, "dnsTtl": 5,
    "offlineRecords": "keep", "dataplaneChecks": True, "dataplanePeriod": 0.5, "dataplaneTimeout": 0.5,
    "dataplaneFailureThreshold": 2,
}
TIME_SETTINGS = ("healthPeriod", "healthTimeout", "dnsTtl", "dataplanePeriod", "dataplaneTimeout")
# The comparison of `experiment compare`: what each system's settings were.
PROFILES: dict[str, dict[str, Any]] = {
    # Federation v1 (Kubernetes 1.3): a probe every 40 s, one failure is enough, TTL 180 s;
    # an unhealthy cluster's records are removed; no data-plane checks.
    "federation-v1": {"healthPeriod": 40, "healthTimeout": 5, "failureThreshold": 1, "successThreshold": 1,
                      "dnsTtl": 180, "offlineRecords": "remove", "dataplaneChecks": False},
    # KubeFed: 10 s period, 3 failures, 3 s timeout, TTL 180; an Offline cluster's records are kept.
    "kubefed": {"healthPeriod": 10, "healthTimeout": 3, "failureThreshold": 3, "successThreshold": 1,
                "dnsTtl": 180, "offlineRecords": "keep", "dataplaneChecks": False},
    "ubernetes": {},
}


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    at: float
    heal: float | None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        what = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}({what})" if what else self.kind


@dataclass(frozen=True)
class DNSProbe:
    names: tuple[str, ...]  # absolute names
    rate: float = 5.0


@dataclass(frozen=True)
class ClientProbe:
    name: str
    port: int
    count: int = 3
    rate: float = 4.0
    timeout: float = 1.0


@dataclass(frozen=True)
class WriteProbe:
    rate: float = 10.0
    timeout: float = 2.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    topology: Topology
    settings: dict[str, Any]
    dns: DNSProbe
    clients: ClientProbe | None
    duration: float
    faults: tuple[Fault, ...]
    expect: tuple[str, ...]
    targets: dict[str, float]
    fast: dict[str, Any]
    compare: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    control_plane: str = "sqlite"
    writes: WriteProbe | None = None

    @property
    def api_replicas(self) -> int:
        return int(CONTROL_PLANES[self.control_plane]["apiReplicas"])

    @property
    def etcd_members(self) -> int:
        return int(CONTROL_PLANES[self.control_plane]["etcdMembers"])

    @property
    def ttl(self) -> int:
        return int(self.effective_settings()["dnsTtl"])

    def effective_settings(self) -> dict[str, Any]:
        return {**DEFAULT_SETTINGS, **self.settings}

    def apiserver_args(self) -> list[str]:
        args: list[str] = []
        for key, value in self.settings.items():
            flag, kind = SETTINGS[key]
            if kind is bool:
                args.append(flag if value else flag.replace("--", "--no-", 1))
            else:
                args += [flag, str(value)]
        return args


def _fail(source: str, where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{source}: {where}: {problem}")


def check_settings(settings: Any, *, source: str, where: str) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise _fail(source, where, "must be a mapping of setting to value")
    out = {}
    for key, value in settings.items():
        if key not in SETTINGS:
            raise _fail(source, f"{where}.{key}", f"unknown setting; known: {', '.join(SETTINGS)}")
        kind = SETTINGS[key][1]
        if kind is bool and not isinstance(value, bool):
            raise _fail(source, f"{where}.{key}", f"{value!r}: must be true or false")
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise _fail(source, f"{where}.{key}", f"{value!r}: must be a number >= 0")
        if key == "offlineRecords" and value not in dnsplan.OFFLINE_POLICIES:
            raise _fail(source, f"{where}.{key}", f"{value!r}: must be keep or remove")
        out[key] = kind(value)
    return out


def resolve_name(spec: str, *, service: str, namespace: str, topology: Topology) -> str:
    """``global``, ``region:<r>``, ``zone:<z>``, ``clusterset`` or an absolute name."""
    fed, domain = topology.federation, topology.domain.strip(".").lower() + "."
    if spec == "global":
        return dnsplan.global_name(service, namespace, fed, domain)
    if spec == "clusterset":
        return dnsplan.clusterset_name(service, namespace)
    if spec.startswith("region:"):
        return dnsplan.region_name(service, namespace, fed, spec.split(":", 1)[1], domain)
    if spec.startswith("zone:"):
        zone = spec.split(":", 1)[1]
        regions = {c.region for c in topology.clusters if zone in c.zones}
        if len(regions) != 1:
            raise ValueError(f"zone {zone!r} is in no cluster of the topology")
        return dnsplan.zone_name(service, namespace, fed, zone, regions.pop(), domain)
    if spec.endswith("."):
        return spec.lower()
    raise ValueError(f"{spec!r}: use global, clusterset, region:<name>, zone:<name> or an absolute name ending in '.'")


def _check_control_plane_fault(params: dict[str, Any], kind: str, control_plane: str, *, source: str, where: str) -> None:
    if kind not in ("kill-apiserver", "kill-etcd"):
        return
    plane = CONTROL_PLANES[control_plane]
    count = plane["apiReplicas"] if kind == "kill-apiserver" else plane["etcdMembers"]
    what = "API server" if kind == "kill-apiserver" else "etcd member"
    index = params["index"]
    if count == 0:
        raise _fail(source, where, f"a {kind} fault needs controlPlane etcd-ha (controlPlane {control_plane} runs no etcd)")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise _fail(source, f"{where}.index", f"{index!r}: must be an {what} index from 0 to {count - 1} "
                    f"(controlPlane {control_plane})")


def _faults(doc: Any, *, source: str, topology: Topology, duration: float,
            control_plane: str = "sqlite") -> tuple[Fault, ...]:
    if not isinstance(doc, list):
        raise _fail(source, "timeline.faults", "must be a list")
    clusters = {c.name for c in topology.clusters}
    zones = {z for c in topology.clusters for z in c.zones}
    regions = {c.region for c in topology.clusters}
    out = []
    for i, f in enumerate(doc):
        where = f"timeline.faults[{i}]"
        if not isinstance(f, dict):
            raise _fail(source, where, "must be a mapping")
        kind = f.get("fault")
        if kind not in FAULTS:
            raise _fail(source, f"{where}.fault", f"{kind!r}: must be one of {', '.join(FAULTS)}")
        params = {k: v for k, v in f.items() if k not in ("id", "at", "heal", "fault")}
        for needed in FAULTS[kind]:
            if needed not in params:
                raise _fail(source, where, f"a {kind} fault needs {needed!r}")
        _check_control_plane_fault(params, kind, control_plane, source=source, where=where)
        for key, known, what in (("cluster", clusters, "cluster"), ("zone", zones, "zone"), ("region", regions, "region")):
            if key in params and params[key] not in known:
                raise _fail(source, f"{where}.{key}", f"{params[key]!r} is not a {what} of the topology")
        at = f.get("at")
        heal = f.get("heal")
        if not isinstance(at, (int, float)) or not 0 <= at < duration:
            raise _fail(source, f"{where}.at", f"{at!r}: must be seconds within the duration ({duration:g})")
        if heal is not None and (not isinstance(heal, (int, float)) or not at < heal <= duration):
            raise _fail(source, f"{where}.heal", f"{heal!r}: must be seconds after 'at' and within the duration")
        out.append(Fault(str(f.get("id") or f"{kind}-{i}"), kind, float(at), None if heal is None else float(heal), params))
    ids = [f.id for f in out]
    if len(set(ids)) != len(ids):
        raise _fail(source, "timeline.faults", "fault ids must be unique")
    return tuple(sorted(out, key=lambda f: f.at))


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{source}: must be a mapping with name, topology, timeline")
    return from_dict(doc, source=source)


def from_dict(doc: dict[str, Any], *, source: str = "scenario") -> Scenario:
    try:
        topology = parse_topology(yaml.safe_dump(doc.get("topology") or {}), source=f"{source}: topology")
    except TopologyError as err:
        raise ScenarioError(str(err)) from None
    services = [o for o in topology.objects if o.get("kind") == "Service"]
    if not services:
        raise _fail(source, "topology.services", "needs at least one LoadBalancer Service")
    first = services[0]
    svc_name = first["metadata"]["name"]
    svc_ns = first["metadata"].get("namespace") or "default"
    ports = [p for p in (first.get("spec") or {}).get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
    if not ports:
        raise _fail(source, "topology.services[0].spec.ports", "needs a TCP port for the clients")
    settings = check_settings(doc.get("settings"), source=source, where="settings")
    probes = doc.get("probes") or {}
    dns_doc = probes.get("dns") or {}
    try:
        names = tuple(
            resolve_name(str(n), service=svc_name, namespace=svc_ns, topology=topology)
            for n in dns_doc.get("names") or ["global"]
        )
        client_doc = probes.get("clients")
        clients = None
        if client_doc is not False:
            client_doc = client_doc or {}
            clients = ClientProbe(
                name=resolve_name(str(client_doc.get("name", "global")), service=svc_name, namespace=svc_ns, topology=topology),
                port=int(client_doc.get("port") or ports[0]["port"]),
                count=int(client_doc.get("count", 3)),
                rate=float(client_doc.get("rate", 4)),
                timeout=float(client_doc.get("timeout", 1.0)),
            )
    except (ValueError, TypeError) as err:
        raise _fail(source, "probes", str(err)) from None
    control_plane = doc.get("controlPlane", "sqlite")
    if control_plane not in CONTROL_PLANES:
        raise _fail(source, "controlPlane", f"{control_plane!r}: must be one of {', '.join(CONTROL_PLANES)}")
    writes_doc = probes.get("writes")
    writes = None
    if writes_doc:
        if not isinstance(writes_doc, dict):
            writes_doc = {}
        rate, timeout = writes_doc.get("rate", 10), writes_doc.get("timeout", 2)
        for key, value in (("rate", rate), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise _fail(source, f"probes.writes.{key}", f"{value!r}: must be a number > 0")
        writes = WriteProbe(rate=float(rate), timeout=float(timeout))
    timeline = doc.get("timeline") or {}
    duration = timeline.get("duration")
    if not isinstance(duration, (int, float)) or duration <= 0:
        raise _fail(source, "timeline.duration", f"{duration!r}: must be seconds > 0")
    faults = _faults(timeline.get("faults") or [], source=source, topology=topology, duration=float(duration),
                     control_plane=control_plane)
    expect = doc.get("expect") or []
    for e in expect:
        if e not in EXPECTATIONS:
            raise _fail(source, "expect", f"{e!r}: must be one of {', '.join(EXPECTATIONS)}")
    for section in ("fast", "compare", "targets"):
        if not isinstance(doc.get(section) or {}, dict):
            raise _fail(source, section, "must be a mapping")
    return Scenario(
        name=str(doc.get("name") or source),
        description=str(doc.get("description") or "").strip(),
        topology=topology,
        settings=settings,
        dns=DNSProbe(names=names, rate=float(dns_doc.get("rate", 5))),
        clients=clients,
        duration=float(duration),
        faults=faults,
        expect=tuple(expect),
        targets={k: float(v) for k, v in (doc.get("targets") or {}).items()},
        fast=dict(doc.get("fast") or {}),
        compare=dict(doc.get("compare") or {}),
        raw=doc,
        control_plane=control_plane,
        writes=writes,
    )


def _scaled_timeline(timeline: dict[str, Any], scale: float) -> dict[str, Any]:
    out = copy.deepcopy(timeline)
    out["duration"] = round(float(out["duration"]) * scale, 3)
    for f in out.get("faults") or []:
        for key in ("at", "heal", "period"):
            if isinstance(f.get(key), (int, float)) and not isinstance(f.get(key), bool):
                f[key] = round(float(f[key]) * scale, 3)
    return out


def fast_form(scenario: Scenario) -> Scenario:
    """The short form the test suite runs: the ``fast`` section's timeScale and settings."""
    doc = copy.deepcopy(scenario.raw)
    scale = float(scenario.fast.get("timeScale", 1.0))
    doc["timeline"] = _scaled_timeline(doc["timeline"], scale)
    doc["settings"] = {**(doc.get("settings") or {}), **(scenario.fast.get("settings") or {})}
    return from_dict(doc, source=f"{scenario.name} (fast)")


def scale_settings(settings: dict[str, Any], scale: float) -> dict[str, Any]:
    """Time settings times ``scale``, kept above what the machine can honour."""
    out = dict(settings)
    for key in TIME_SETTINGS:
        if key in out:
            floor = 1 if key == "dnsTtl" else 0.5  # below 0.5 s a loaded 2-core machine misses probes
            value = max(floor, float(out[key]) * scale)
            out[key] = int(round(value)) if key == "dnsTtl" else round(value, 3)
    return out


def profile_form(scenario: Scenario, profile: str, *, time_scale: float = 1.0) -> Scenario:
    """The scenario under one comparison profile, on the ``compare`` timeline, times ``time_scale``."""
    if profile not in PROFILES:
        raise ScenarioError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    doc = copy.deepcopy(scenario.raw)
    timeline = scenario.compare.get("timeline") or doc["timeline"]
    doc["timeline"] = _scaled_timeline(timeline, time_scale)
    settings = {**DEFAULT_SETTINGS, **(doc.get("settings") or {}), **PROFILES[profile]}
    doc["settings"] = scale_settings(settings, time_scale)
    doc["name"] = f"{scenario.name} [{profile}]"
    return from_dict(doc, source=f"{scenario.name} ({profile})")


def control_plane_form(scenario: Scenario, control_plane: str) -> Scenario:
    """The scenario, as written (its own timeline and settings), on another control plane:
    what ``experiment compare --control-plane`` runs side by side."""
    if control_plane not in CONTROL_PLANES:
        raise ScenarioError(f"unknown control plane {control_plane!r}; known: {', '.join(CONTROL_PLANES)}")
    doc = copy.deepcopy(scenario.raw)
    doc["controlPlane"] = control_plane
    doc["name"] = f"{scenario.name} [{control_plane}]"
    return from_dict(doc, source=f"{scenario.name} ({control_plane})")


def with_fresh_pools(topology: Topology, rng: random.Random | None = None) -> Topology:
    """The same topology with LB pools picked at random in 127/8, so runs can share a machine."""
    rng = rng or random.Random()
    base = (rng.randint(20, 250), rng.randint(0, 255))
    clusters = tuple(
        replace(c, lb_pool=f"127.{base[0]}.{(base[1] + i) % 256}.0/28") for i, c in enumerate(topology.clusters)
    )
    return replace(topology, clusters=clusters)


__all__ = ["ClusterSpec", "Scenario", "ScenarioError", "Fault", "parse_scenario", "fast_form", "profile_form",
           "control_plane_form", "with_fresh_pools", "PROFILES", "CONTROL_PLANES", "EXPECTATIONS", "FAULTS"]
