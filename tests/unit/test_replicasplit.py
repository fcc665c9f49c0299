"""The replica split, as a table: weighted, min/max-limited, "*"-default, Offline and rebalance cases."""

from __future__ import annotations

import random

import pytest

from federation.planners.replicasplit import (
    ClusterPreference as P,
    PreferenceError,
    Preferences,
    parse_preferences,
    plan_replicas,
)

A, B, C = "a", "b", "c"

CASES = [
    # (id, total, ready clusters, preferences, current, expected)
    ("even default", 6, [A, B, C], None, None, {A: 2, B: 2, C: 2}),
    ("uneven rounds up in name order", 7, [A, B, C], None, None, {A: 3, B: 2, C: 2}),
    ("weighted 2:1", 9, [A, B], Preferences({A: P(weight=2), B: P(weight=1)}), None, {A: 6, B: 3}),
    ("weighted 3:1 rounding", 5, [A, B], Preferences({A: P(weight=3), B: P(weight=1)}), None, {A: 4, B: 1}),
    ("max caps, rest moves", 10, [A, B], Preferences({A: P(weight=1, max_replicas=2), B: P(weight=1)}), None, {A: 2, B: 8}),
    ("min first", 4, [A, B], Preferences({A: P(weight=1), B: P(weight=0, min_replicas=3)}), None, {A: 1, B: 3}),
    ("mins beyond total", 3, [A, B], Preferences({A: P(min_replicas=2), B: P(min_replicas=2)}), None, {A: 2, B: 1}),
    ("maxima do not allow", 10, [A, B], Preferences({A: P(max_replicas=2), B: P(max_replicas=3)}), None, {A: 2, B: 3}),
    ("'*' default for unnamed", 6, [A, B, C], Preferences({A: P(weight=4), "*": P(weight=1)}), None, {A: 4, B: 1, C: 1}),
    ("no '*': unnamed get nothing", 6, [A, B, C], Preferences({A: P(weight=1), B: P(weight=1)}), None, {A: 3, B: 3, C: 0}),
    ("weight 0 fills when weighted are full", 5, [A, B], Preferences({A: P(weight=1, max_replicas=2), B: P(weight=0)}), None, {A: 2, B: 3}),
    ("offline cluster left out", 6, [A, C], None, None, {A: 3, C: 3}),
    ("only one ready", 6, [B], None, None, {B: 6}),
    ("none ready", 6, [], None, None, {}),
    ("zero replicas", 0, [A, B], None, None, {A: 0, B: 0}),
    ("returning cluster, rebalance", 6, [A, B, C], Preferences({"*": P()}, rebalance=True), {A: 3, B: 3, C: 0}, {A: 2, B: 2, C: 2}),
    ("returning cluster, no rebalance", 6, [A, B, C], Preferences({"*": P()}), {A: 3, B: 3, C: 0}, {A: 3, B: 3, C: 0}),
    ("no rebalance, scale up towards the weighted share", 9, [A, B, C], None, {A: 3, B: 3, C: 0}, {A: 3, B: 3, C: 3}),
    ("no rebalance, scale down from the fullest", 4, [A, B, C], None, {A: 4, B: 1, C: 1}, {A: 2, B: 1, C: 1}),
    ("no rebalance, current above a new max", 6, [A, B], Preferences({A: P(max_replicas=1), B: P()}), {A: 3, B: 3}, {A: 1, B: 5}),
    ("no rebalance, min raised", 6, [A, B], Preferences({A: P(), B: P(min_replicas=4)}), {A: 5, B: 1}, {A: 2, B: 4}),
]


@pytest.mark.parametrize("total,ready,prefs,current,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(total, ready, prefs, current, expected):
    assert plan_replicas(total, ready, prefs, current=current) == expected


def test_offline_share_moves_and_returns_with_rebalance():
    prefs = Preferences({"*": P()}, rebalance=True)
    before = plan_replicas(6, [A, B, C], prefs)
    during = plan_replicas(6, [A, C], prefs, current=before)
    after = plan_replicas(6, [A, B, C], prefs, current={**during, B: 0})
    assert before == {A: 2, B: 2, C: 2}
    assert during == {A: 3, C: 3}
    assert after == before


def test_sum_equals_total_whenever_maxima_allow():
    rng = random.Random(7)
    for _ in range(2000):
        names = [f"c{i}" for i in range(rng.randint(1, 5))]
        ready = [n for n in names if rng.random() < 0.8]
        clusters = {}
        for n in names + ["*"]:
            if rng.random() < 0.7:
                low = rng.randint(0, 3)
                clusters[n] = P(weight=rng.randint(0, 4), min_replicas=low, max_replicas=rng.choice([None, low + rng.randint(0, 5)]))
        prefs = Preferences(clusters, rebalance=rng.random() < 0.5)
        total = rng.randint(0, 30)
        current = {n: rng.randint(0, 10) for n in ready} if rng.random() < 0.5 else None
        plan = plan_replicas(total, ready, prefs, current=current)
        eligible = [n for n in ready if prefs.for_cluster(n) is not None]
        caps = [prefs.for_cluster(n).max_replicas for n in eligible]
        room = None if any(c is None for c in caps) else sum(caps)
        expected = total if room is None else min(total, room)
        if not eligible:
            expected = 0
        assert sum(plan.values()) == expected, (total, ready, prefs, current, plan)
        assert set(plan) == set(ready)
        for n, count in plan.items():
            pref = prefs.for_cluster(n)
            if pref is None:
                assert count == 0
            elif pref.max_replicas is not None:
                assert count <= pref.max_replicas


PARSE_CASES = [
    (None, Preferences()),
    ('{"rebalance": true, "clusters": {"*": {"weight": 2}}}', Preferences({"*": P(weight=2)}, rebalance=True)),
    ({"clusters": {"a": {"minReplicas": 1, "maxReplicas": 3}}}, Preferences({"a": P(weight=0, min_replicas=1, max_replicas=3)})),
]


@pytest.mark.parametrize("raw,expected", PARSE_CASES)
def test_parse(raw, expected):
    assert parse_preferences(raw) == expected


@pytest.mark.parametrize(
    "raw,message",
    [
        ("{", "not valid JSON"),
        ('{"rebalance": "yes"}', "rebalance: must be true or false"),
        ('{"clusters": {"a": {"weight": -1}}}', "clusters[a].weight: must be a non-negative integer"),
        ('{"clusters": {"a": {"minReplicas": 3, "maxReplicas": 1}}}', "clusters[a].maxReplicas: 1 is below minReplicas 3"),
        ('{"clusters": {"a": {"wieght": 1}}}', "unknown field(s) wieght"),
    ],
)
def test_parse_errors(raw, message):
    with pytest.raises(PreferenceError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse_preferences(raw)
