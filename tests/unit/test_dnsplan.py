"""Table-driven tests of the DNS record planner (pure)."""

import pytest

from federation.planners.dnsplan import ClusterInfo, Port, ServiceInfo, Shard, plan_records

FED, DOMAIN = "myfed", "example.com"
A1 = ClusterInfo("a1", "us-east-1", ("us-east-1a",), True)
A2 = ClusterInfo("a2", "us-east-1", ("us-east-1b",), True)
G1 = ClusterInfo("g1", "europe-west1", ("europe-west1-b",), True)
MZ = ClusterInfo("mz", "us-west-2", ("us-west-2a", "us-west-2b"), True)


def svc(*shards, ports=()):
    return ServiceInfo("web", "default", tuple(shards), tuple(ports))


def plan(clusters, services):
    return {
        (r.name, r.type): r.targets
        for r in plan_records(federation=FED, domain=DOMAIN, ttl=5, clusters=list(clusters), services=list(services))
    }


Z1 = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."
Z2 = "web.default.myfed.svc.us-east-1b.us-east-1.example.com."
R1 = "web.default.myfed.svc.us-east-1.example.com."
ZG = "web.default.myfed.svc.europe-west1-b.europe-west1.example.com."
RG = "web.default.myfed.svc.europe-west1.example.com."
GL = "web.default.myfed.svc.example.com."
CS = "web.default.svc.clusterset.local."

CASES = [
    (
        "all healthy",
        [A1, A2, G1],
        [svc(Shard("a1", ("127.10.1.1",), 2), Shard("a2", ("127.10.2.1",), 2), Shard("g1", ("127.10.3.1",), 1))],
        {
            (Z1, "A"): ("127.10.1.1",),
            (Z2, "A"): ("127.10.2.1",),
            (R1, "A"): ("127.10.1.1", "127.10.2.1"),
            (ZG, "A"): ("127.10.3.1",),
            (RG, "A"): ("127.10.3.1",),
            (GL, "A"): ("127.10.1.1", "127.10.2.1", "127.10.3.1"),
            (CS, "A"): ("127.10.1.1", "127.10.2.1", "127.10.3.1"),
        },
    ),
    (
        "an offline cluster's zone becomes a CNAME to its region",
        [ClusterInfo("a1", "us-east-1", ("us-east-1a",), False), A2, G1],
        [svc(Shard("a1", ("127.10.1.1",), 2), Shard("a2", ("127.10.2.1",), 2), Shard("g1", ("127.10.3.1",), 1))],
        {
            (Z1, "CNAME"): (R1,),
            (Z2, "A"): ("127.10.2.1",),
            (R1, "A"): ("127.10.2.1",),
            (ZG, "A"): ("127.10.3.1",),
            (RG, "A"): ("127.10.3.1",),
            (GL, "A"): ("127.10.2.1", "127.10.3.1"),
            (CS, "A"): ("127.10.2.1", "127.10.3.1"),
        },
    ),
    (
        "a region with no healthy shard is a CNAME to the global name",
        [A1, A2, G1],
        [svc(Shard("a1", ("127.10.1.1",), 1), Shard("a2", ("127.10.2.1",), 1), Shard("g1", ("127.10.3.1",), 0))],
        {
            (Z1, "A"): ("127.10.1.1",),
            (Z2, "A"): ("127.10.2.1",),
            (R1, "A"): ("127.10.1.1", "127.10.2.1"),
            (ZG, "CNAME"): (RG,),
            (RG, "CNAME"): (GL,),
            (GL, "A"): ("127.10.1.1", "127.10.2.1"),
            (CS, "A"): ("127.10.1.1", "127.10.2.1"),
        },
    ),
    (
        "no healthy shard anywhere: CNAMEs, and no global record",
        [A1, G1],
        [svc(Shard("a1", (), 2), Shard("g1", ("127.10.3.1",), 0))],
        {(Z1, "CNAME"): (R1,), (R1, "CNAME"): (GL,), (ZG, "CNAME"): (RG,), (RG, "CNAME"): (GL,)},
    ),
    (
        "every zone of a multi-zone cluster gets its zone name",
        [MZ],
        [svc(Shard("mz", ("127.10.4.1",), 2))],
        {
            ("web.default.myfed.svc.us-west-2a.us-west-2.example.com.", "A"): ("127.10.4.1",),
            ("web.default.myfed.svc.us-west-2b.us-west-2.example.com.", "A"): ("127.10.4.1",),
            ("web.default.myfed.svc.us-west-2.example.com.", "A"): ("127.10.4.1",),
            (GL, "A"): ("127.10.4.1",),
            (CS, "A"): ("127.10.4.1",),
        },
    ),
    (
        "an unjoined cluster leaves no record behind (its shard is ignored)",
        [A2],
        [svc(Shard("a1", ("127.10.1.1",), 2), Shard("a2", ("127.10.2.1",), 2))],
        {(Z2, "A"): ("127.10.2.1",), (R1, "A"): ("127.10.2.1",), (GL, "A"): ("127.10.2.1",), (CS, "A"): ("127.10.2.1",)},
    ),
    ("a deleted service leaves no record behind", [A1, A2], [], {}),
    (
        "IPv6 ingresses give AAAA records",
        [A1],
        [svc(Shard("a1", ("fd00::1", "127.10.1.1"), 1))],
        {
            (Z1, "A"): ("127.10.1.1",), (Z1, "AAAA"): ("fd00::1",),
            (R1, "A"): ("127.10.1.1",), (R1, "AAAA"): ("fd00::1",),
            (GL, "A"): ("127.10.1.1",), (GL, "AAAA"): ("fd00::1",),
            (CS, "A"): ("127.10.1.1",), (CS, "AAAA"): ("fd00::1",),
        },
    ),
]


@pytest.mark.parametrize("title,clusters,services,expected", CASES, ids=[c[0] for c in CASES])
def test_plan(title, clusters, services, expected):
    assert plan(clusters, services) == expected


def test_srv_records_for_named_ports_at_levels_with_addresses():
    records = plan([A1, G1], [svc(Shard("a1", ("127.10.1.1",), 1), ports=[Port("http", "TCP", 80), Port("", "TCP", 81)])])
    assert records[(f"_http._tcp.{Z1}", "SRV")] == (f"0 100 80 {Z1}",)
    assert records[(f"_http._tcp.{GL}", "SRV")] == (f"0 100 80 {GL}",)
    assert records[(f"_http._tcp.{CS}", "SRV")] == (f"0 100 80 {CS}",)
    # No SRV at a CNAME level, and none for an unnamed port.
    assert not any(name.endswith(ZG) and rtype == "SRV" for name, rtype in records)
    assert not any("_81" in name for name, _ in records)


def test_names_are_lower_case_and_ttl_applied():
    records = plan_records(
        federation="MyFed", domain="Example.COM.", ttl=7,
        clusters=[ClusterInfo("a1", "US-East-1", ("US-East-1a",), True)],
        services=[svc(Shard("a1", ("127.10.1.1",), 1))],
    )
    assert all(r.name == r.name.lower() and r.ttl == 7 for r in records)
    assert {r.name for r in records} >= {"web.default.myfed.svc.us-east-1a.us-east-1.example.com."}


def test_address_records_carry_each_target_placement():
    records = plan_records(
        federation=FED, domain=DOMAIN, ttl=5, clusters=[A1, G1],
        services=[svc(Shard("a1", ("127.10.1.1",), 1), Shard("g1", ("127.10.3.1",), 1))],
    )
    glob = next(r for r in records if r.name == GL and r.type == "A")
    assert [(p.target, p.cluster, p.region, p.zones) for p in glob.placements] == [
        ("127.10.1.1", "a1", "us-east-1", ("us-east-1a",)),
        ("127.10.3.1", "g1", "europe-west1", ("europe-west1-b",)),
    ]


def test_every_record_object_name_is_a_valid_and_distinct_kubernetes_name():
    from apimachinery.meta import check_label_name

    long_service = ServiceInfo("s" * 60, "n" * 60, (Shard("a1", ("127.10.1.1",), 1),),
                               (Port("http", "TCP", 80), Port("metrics", "TCP", 9090)))
    records = plan_records(
        federation=FED, domain=DOMAIN, ttl=5, clusters=[A1, A2, G1],
        services=[svc(Shard("a1", ("127.10.1.1",), 1), ports=[Port("http", "TCP", 80)]), long_service],
    )
    names = [r.object_name for r in records]
    assert any(r.type == "SRV" for r in records)
    assert all(check_label_name(n) is None and len(n) <= 253 for n in names), names
    assert len(set(names)) == len(names)
