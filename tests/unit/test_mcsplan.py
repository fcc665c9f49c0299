"""The MCS planner (federation/planners/mcsplan.py), table-driven: validity, conflicts and
the oldest export winning, backends, ClusterSetIP allocation and the clusterset.local records."""

from __future__ import annotations

import pytest

from federation.planners.mcsplan import (
    Endpoint, Export, ExportedService, Port, allocate_ip, plan_import, plan_records,
)

HTTP = Port("http", "TCP", 80)
UP = (Endpoint("10.1.1.1", "web-0"),)


def svc(**kw) -> ExportedService:
    return ExportedService(**{"ports": (HTTP,), "endpoints": UP, **kw})


def export(cluster: str, created: str, service: ExportedService | None = None, **kw) -> Export:
    return Export(cluster=cluster, created=created, service=service if service is not None else svc(),
                  address=f"127.9.9.{created[-1]}", **kw)


def conds(conditions, cluster):
    return {c.type: (c.status, c.reason) for c in conditions[cluster]}


@pytest.mark.parametrize("service, valid", [
    (None, ("False", "NoService")),
    (svc(type="ExternalName", ports=()), ("False", "InvalidServiceType")),
    (svc(), ("True", "Valid")),
])
def test_validity(service, valid):
    e = Export("a", "1", service)
    plan, conditions = plan_import([e], namespace="ns", name="web")
    assert conds(conditions, "a")["Valid"] == valid
    assert (plan is None) == (valid[0] == "False")


@pytest.mark.parametrize("second, reason, ports", [
    (svc(), None, (HTTP,)),
    (svc(ports=(HTTP, Port("stcp", "SCTP", 142))), "PortConflict", (HTTP, Port("stcp", "SCTP", 142))),
    (svc(ports=(Port("http", "TCP", 81),)), "PortConflict", (HTTP,)),
    (svc(headless=True), "TypeConflict", (HTTP,)),
    (svc(session_affinity="ClientIP"), "SessionAffinityConflict", (HTTP,)),
    (svc(ports=(Port("http", "TCP", 81),), session_affinity="ClientIP"), "PortConflict,SessionAffinityConflict", (HTTP,)),
])
def test_the_oldest_export_wins_and_every_export_hears_of_a_conflict(second, reason, ports):
    older, newer = export("a", "2026-01-01T00:00:01Z"), export("b", "2026-01-01T00:00:02Z", second)
    plan, conditions = plan_import([newer, older], namespace="ns", name="web")
    assert plan.ports == tuple(sorted(ports, key=lambda p: (p.port, p.protocol, p.name)))
    assert plan.type == "ClusterSetIP" and plan.session_affinity == "None"
    assert plan.clusters == ("a", "b")
    for cluster in ("a", "b"):
        assert conds(conditions, cluster)["Conflict"] == (("True", reason) if reason else ("False", "NoConflicts"))
    if reason:
        assert "in cluster a" in conditions["b"][1].message and "oldest" in conditions["a"][1].message


def test_unnamed_ports_with_one_number_and_two_protocols_clash():
    a = export("a", "1", svc(ports=(Port("", "TCP", 53),)))
    b = export("b", "2", svc(ports=(Port("", "UDP", 53),)))
    plan, conditions = plan_import([a, b], namespace="ns", name="dns")
    assert plan.ports == (Port("", "TCP", 53),)
    assert conds(conditions, "b")["Conflict"] == ("True", "PortConflict")


def test_backends_are_usable_ready_exports_with_the_ports_they_kept():
    exports = [
        export("a", "1"),
        export("b", "2", svc(ports=(Port("http", "TCP", 81),))),  # lost its port: no backend
        export("c", "3", svc(endpoints=(Endpoint("10.3.1.1", "web-0", ready=False),))),  # nothing ready
        export("d", "4", usable=False),  # its cluster is not Ready
        export("e", "5", region="eu", zones=("eu-1",)),
    ]
    plan, _ = plan_import(exports, namespace="ns", name="web")
    assert [(b.cluster, b.ip, b.ports) for b in plan.backends] == [("a", "127.9.9.1", (80,)), ("e", "127.9.9.5", (80,))]


def test_exported_labels_of_the_oldest_win():
    a = export("a", "1", labels=(("x", "1"),))
    b = export("b", "2", labels=(("y", "1"),))
    plan, conditions = plan_import([b, a], namespace="ns", name="web")
    assert plan.labels == (("x", "1"),)
    assert conds(conditions, "a")["Conflict"] == ("True", "LabelsConflict")


@pytest.mark.parametrize("taken, current, want", [
    (set(), None, "127.240.0.1"),
    ({"127.240.0.1"}, None, "127.240.0.2"),
    ({"127.240.0.1"}, "127.240.0.7", "127.240.0.7"),
    ({"127.240.0.7"}, "127.240.0.7", "127.240.0.1"),  # someone else's now
    (set(), "10.0.0.1", "127.240.0.1"),  # outside the range (the range changed)
    ({f"127.240.0.{i}" for i in range(1, 15)}, None, None),  # full
])
def test_allocate_ip(taken, current, want):
    assert allocate_ip("127.240.0.0/28", taken, current) == want


def test_records_of_a_clusterset_ip_import():
    plan, _ = plan_import([export("a", "1")], namespace="ns", name="web")
    base = "web.ns.svc.clusterset.local."
    got = {(r.name, r.type): r.targets for r in plan_records(name="web", namespace="ns", plan=plan,
                                                            ips=("127.240.0.1",), ttl=5)}
    assert got == {(base, "A"): ("127.240.0.1",), (base, "SRV"): (f"0 100 80 {base}",),
                   (f"_http._tcp.{base}", "SRV"): (f"0 100 80 {base}",)}
    assert plan_records(name="web", namespace="ns", plan=plan, ips=(), ttl=5) == []  # no IP yet: no name


def test_records_of_a_headless_import():
    a = export("a", "1", svc(headless=True, endpoints=(Endpoint("10.1.1.1", "db-0"), Endpoint("10.1.1.2", "db-1", False))))
    b = export("b", "2", svc(headless=True, endpoints=(Endpoint("10.2.1.1", "db-0"),)))
    plan, _ = plan_import([a, b], namespace="ns", name="db")
    assert plan.type == "Headless"
    base = "db.ns.svc.clusterset.local."
    got = {(r.name, r.type): r.targets for r in plan_records(name="db", namespace="ns", plan=plan, ips=(), ttl=5)}
    assert got == {
        (base, "A"): ("10.1.1.1", "10.2.1.1"),
        (f"db-0.a.{base}", "A"): ("10.1.1.1",),
        (f"db-0.b.{base}", "A"): ("10.2.1.1",),
        (base, "SRV"): (f"0 100 80 db-0.a.{base}", f"0 100 80 db-0.b.{base}"),
        (f"_http._tcp.{base}", "SRV"): (f"0 100 80 db-0.a.{base}", f"0 100 80 db-0.b.{base}"),
    }
