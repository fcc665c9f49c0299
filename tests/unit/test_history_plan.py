"""The failover history's pure planner (federation/planners/history.py), table-driven."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from federation.planners import history as plan
from federation.printers import history_table

T0 = datetime(2026, 12, 5, 7, 33, 4, 875000, tzinfo=timezone.utc)
IP = "127.0.0.9"


def spec(name, rtype, *targets):
    return {"name": name, "type": rtype, "targets": list(targets)}


def test_answer_changes_merge_an_a_turned_cname_into_one_change():
    before = {"a1": spec("z.example.com.", "A", IP), "g": spec("g.example.com.", "A", "127.0.0.1", IP)}
    after = {"c1": spec("z.example.com.", "CNAME", "r.example.com."), "g": spec("g.example.com.", "A", "127.0.0.1")}
    changes = plan.answer_changes(before, after)
    assert [c.text() for c in changes] == [
        "g.example.com. A 127.0.0.1,127.0.0.9 -> A 127.0.0.1",
        "z.example.com. A 127.0.0.9 -> CNAME r.example.com.",
    ]
    assert all(plan.touches(c, frozenset({IP})) for c in changes)
    assert not any(plan.touches(c, frozenset({"127.0.0.77"})) for c in changes)


@pytest.mark.parametrize("old,new,want", [
    ({"a": "up"}, {"a": "down"}, [("a", "down")]),
    ({"a": "down"}, {"a": "up"}, [("a", "up")]),
    ({}, {"a": "up"}, []),  # a prober's first view
    ({"a": ""}, {"a": "down"}, []),
    ({"a": "up"}, {"a": "up"}, []),
    ({"a": "up"}, {"a": ""}, []),
])
def test_vote_changes_are_flips_only(old, new, want):
    assert plan.vote_changes(old, new) == want


def test_a_record_carries_the_shape_the_dashboard_reads():
    step = plan.Step(T0 + timedelta(seconds=1.083), plan.SERVED, "served", cluster="c", service="default/web", serial=7)
    obj = plan.record_object(step, incident="c.down.x", since_fault=1.083, suffix="abcd")
    assert obj["metadata"]["name"] == "20261205-073305-958000-served-abcd"
    assert obj["spec"] == {"time": "2026-12-05T07:33:05.958000Z", "step": "Served", "incident": "c.down.x",
                           "message": "served", "sinceFault": 1.083, "cluster": "c", "service": "default/web",
                           "serial": 7}
    assert plan.validate(obj) == []
    assert plan.validate({"spec": {"step": "Nope", "time": "x"}})[0][0] == "spec.step"


def test_continues_and_oldest_beyond():
    inc = plan.Incident("i", "c", plan.DOWN, T0)
    assert plan.continues(inc, direction=plan.DOWN, now=T0 + timedelta(seconds=5), window=120)
    assert not plan.continues(inc, direction=plan.UP, now=T0, window=120)
    assert not plan.continues(inc, direction=plan.DOWN, now=T0 + timedelta(seconds=121), window=120)
    records = [plan.record_object(plan.Step(T0 + timedelta(seconds=i), plan.VOTE, "v"), incident="i",
                                  since_fault=i, suffix=str(i)) for i in (2, 0, 1)]
    assert plan.oldest_beyond(records, 1) == [records[1]["metadata"]["name"], records[2]["metadata"]["name"]]


def test_the_history_table_shows_the_latency_between_an_incidents_steps():
    steps = [plan.Step(T0, plan.FAULT, "crash"), plan.Step(T0 + timedelta(seconds=0.5), plan.VERDICT, "down")]
    records = [plan.record_object(s, incident="i", since_fault=(s.time - T0).total_seconds()) for s in steps]
    lines = history_table(records).splitlines()
    assert lines[1].split()[:4] == ["07:33:04.875", "Fault", "-", "0.000s"]
    assert lines[2].split()[:4] == ["07:33:05.375", "Verdict", "+0.500s", "0.500s"]
