"""The per-service DNS strategies (issue 16): annotations, failover, weights, fail-open and
bounded keep in the pure planner; the responder's weighted schedule."""

from __future__ import annotations

from collections import Counter

import pytest

from federation.planners import dnsstrategy as ds
from federation.planners.dnsplan import ClusterInfo, ServiceInfo, Shard, plan_records
from fedns.records import InvalidRecord, parse_spec
from fedns.weights import schedule

G = "web.default.myfed.svc.example.com."
CLUSTERS = [
    ClusterInfo("us-a", "us-east-1", ("us-east-1a",), True),
    ClusterInfo("us-b", "us-east-1", ("us-east-1b",), True),
    ClusterInfo("eu", "europe-west1", ("europe-west1-b",), True),
]
SHARDS = (Shard("us-a", ("127.10.1.1",), 1), Shard("us-b", ("127.10.2.1",), 1), Shard("eu", ("127.10.3.1",), 1))


def plan(annotations=None, *, shards=SHARDS, clusters=CLUSTERS, **kw):
    strategy, problems = ds.parse(annotations or {})
    records = plan_records(federation="myfed", domain="example.com", ttl=5, clusters=clusters,
                           services=[ServiceInfo("web", "default", shards, (), strategy)], **kw)
    return {(r.name, r.type): r for r in records}, problems


@pytest.mark.parametrize("annotations, kind, problem", [
    ({}, "roundRobin", None),
    ({ds.STRATEGY_ANNOTATION: "nearest"}, "nearest", None),
    ({ds.STRATEGY_ANNOTATION: "geoip"}, "roundRobin", "'geoip' must be one of"),
    ({ds.STRATEGY_ANNOTATION: "weighted"}, "roundRobin", "names no cluster or region"),
    ({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "eu=x"}, "roundRobin", "is not a number"),
    ({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "eu=-1"}, "roundRobin", "must be between"),
    ({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "eu=0"}, "roundRobin", "every weight is 0"),
    ({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "eu"}, "roundRobin", "must be NAME=WEIGHT"),
    ({ds.STRATEGY_ANNOTATION: "failover"}, "roundRobin", "needs a primary"),
    ({ds.STRATEGY_ANNOTATION: "failover", ds.PRIMARY_ANNOTATION: "eu"}, "failover", None),
    ({ds.FAIL_OPEN_ANNOTATION: "maybe"}, "roundRobin", "must be \"true\" or \"false\""),
])
def test_annotations_parse_or_fall_back_with_a_message(annotations, kind, problem):
    strategy, problems = ds.parse(annotations)
    assert strategy.kind == kind
    assert (problems == []) if problem is None else (len(problems) == 1 and problem in problems[0])


def test_unknown_names_are_reported_not_fatal():
    strategy, _ = ds.parse({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "eu=1,mars=2"})
    assert strategy.kind == "weighted"
    assert ["mars" in m for m in ds.unknown_names(strategy, {"eu": "europe-west1"})] == [True]


def test_round_robin_is_unchanged():
    records, _ = plan()
    assert records[(G, "A")].targets == ("127.10.1.1", "127.10.2.1", "127.10.3.1")
    assert records[(G, "A")].strategy == "" and records[(G, "A")].weights == ()


def test_failover_answers_the_primary_alone_while_it_is_healthy():
    ann = {ds.STRATEGY_ANNOTATION: "failover", ds.PRIMARY_ANNOTATION: "europe-west1"}
    records, _ = plan(ann)
    assert records[(G, "A")].targets == ("127.10.3.1",)
    assert records[("web.default.svc.clusterset.local.", "A")].targets == ("127.10.3.1",)
    # Region names keep their own shards.
    assert records[("web.default.myfed.svc.us-east-1.example.com.", "A")].targets == ("127.10.1.1", "127.10.2.1")
    down = (SHARDS[0], SHARDS[1], Shard("eu", ("127.10.3.1",), 1, unreachable=("127.10.3.1",)))
    records, _ = plan(ann, shards=down)
    assert records[(G, "A")].targets == ("127.10.1.1", "127.10.2.1")
    # An ordered list: the first primary with a healthy shard.
    records, _ = plan({ds.STRATEGY_ANNOTATION: "failover", ds.PRIMARY_ANNOTATION: "eu,us-b"}, shards=down)
    assert records[(G, "A")].targets == ("127.10.2.1",)


def test_weights_by_region_and_cluster():
    records, _ = plan({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "us-east-1=70,eu=30"})
    a = records[(G, "A")]
    assert a.strategy == "weighted" and a.weights == (35.0, 35.0, 30.0)
    records, _ = plan({ds.STRATEGY_ANNOTATION: "weighted", ds.WEIGHTS_ANNOTATION: "us-a=1,us-east-1=3"})
    assert records[(G, "A")].weights == (1.0, 3.0, 0.0)  # us-b takes the region's weight; eu none


def test_fail_open_answers_every_last_known_shard():
    dead = tuple(Shard(s.cluster, s.ips, 0) for s in SHARDS)  # no ready endpoint anywhere
    records, _ = plan(shards=dead)
    assert (G, "A") not in records
    records, _ = plan(shards=dead, fail_open=True)
    assert records[(G, "A")].targets == ("127.10.1.1", "127.10.2.1", "127.10.3.1")
    records, _ = plan({ds.FAIL_OPEN_ANNOTATION: "false"}, shards=dead, fail_open=True)
    assert (G, "A") not in records
    records, _ = plan({ds.FAIL_OPEN_ANNOTATION: "true"}, shards=dead)
    assert len(records[(G, "A")].targets) == 3
    # One healthy shard: fail-open does nothing.
    records, _ = plan(shards=dead[:2] + SHARDS[2:], fail_open=True)
    assert records[(G, "A")].targets == ("127.10.3.1",)


def test_bounded_keep_keeps_only_what_the_votes_say_up():
    offline = [CLUSTERS[0], CLUSTERS[1], ClusterInfo("eu", "europe-west1", ("europe-west1-b",), False, offline=True)]
    records, _ = plan(clusters=offline, offline_records="keep")
    assert "127.10.3.1" in records[(G, "A")].targets
    expired = offline[:2] + [ClusterInfo("eu", "europe-west1", ("europe-west1-b",), False, True, keep_expired=True)]
    records, _ = plan(clusters=expired, offline_records="keep")
    assert "127.10.3.1" not in records[(G, "A")].targets
    voted = SHARDS[:2] + (Shard("eu", ("127.10.3.1",), 1, reachable=("127.10.3.1",)),)
    records, _ = plan(clusters=expired, shards=voted, offline_records="keep")
    assert "127.10.3.1" in records[(G, "A")].targets


def test_schedule_spreads_as_weighted():
    cycle = schedule((35.0, 35.0, 30.0))
    got = Counter(cycle)
    assert len(cycle) == 20 and got == {0: 7, 1: 7, 2: 6}
    cycle = schedule((70, 30))
    assert len(cycle) == 10 and cycle.count(1) == 3 and cycle[:2] == [0, 1]  # interleaved
    assert 2 not in schedule((1, 1, 0)) and set(schedule((0, 0))) == {0, 1}


def test_the_responder_checks_weights():
    spec = {"name": G, "type": "A", "targets": ["127.0.0.1", "127.0.0.2"], "strategy": "weighted", "weights": [3, 1]}
    assert parse_spec(spec).weights == (3.0, 1.0)
    for bad in ({"weights": [1]}, {"weights": [1, "x"]}, {"strategy": "random"}):
        with pytest.raises(InvalidRecord):
            parse_spec({**spec, **bad})


def test_queries_that_differ_in_bytes_still_spread_by_weight():
    """dig sends a new cookie each time and Unbound randomises case: each is a new entry in
    the reply cache, which must start at the answer's cursor, not at its first rotation."""
    import dns.edns
    import dns.message

    from fedns.handler import Handler
    from fedns.view import ZoneView
    from fedns.zone import ZoneConfig

    view = ZoneView(ZoneConfig(apexes=("example.com.",)))
    view.replace({"a": {"name": G, "type": "A", "targets": ["127.0.0.1", "127.0.0.2"],
                        "strategy": "weighted", "weights": [3, 1]}})
    handler = Handler(view, reply_cache=100)
    firsts = Counter()
    for i in range(400):
        q = dns.message.make_query(G, "A", use_edns=0, options=[dns.edns.GenericOption(10, i.to_bytes(8, "big"))])
        firsts[dns.message.from_wire(handler.handle(q.to_wire())).answer[0][0].address] += 1
    assert firsts == {"127.0.0.1": 300, "127.0.0.2": 100}
