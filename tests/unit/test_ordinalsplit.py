"""The ordinal split of a federated StatefulSet (federation/planners/ordinalsplit.py).

Tables for the rule as docs/workloads.md states it, then a property: over random sequences
of member failures, returns, slow members and scale changes, driven through a model of
members that settle on their range some steps later, no ordinal ever runs in two clusters,
and once everything is Ready and settled the ranges are the target split.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.planners.ordinalsplit import ClusterView, Range, assign, held_elsewhere, target_ranges
from federation.planners.replicasplit import parse_preferences, plan_replicas


def test_targets_are_consecutive_ranges_in_cluster_name_order() -> None:
    assert target_ranges({"c": 1, "a": 2, "b": 2}) == {"a": Range(0, 2), "b": Range(2, 4), "c": Range(4, 5)}
    assert Range(0, 3).text() == "0-2" and Range(4, 5).text() == "4" and Range(2, 2).text() == "none"
    assert Range.parse("0-2") == Range(0, 3) and Range.parse("4") == Range(4, 5) and Range.parse("x").size == 0


def test_a_fresh_set_gets_its_targets() -> None:
    views = {"a": ClusterView(ready=True), "b": ClusterView(ready=True)}
    out = assign(counts={"a": 2, "b": 2}, clusters=views)
    assert (out["a"].range, out["b"].range) == (Range(0, 2), Range(2, 4))


def test_an_unready_cluster_keeps_its_ordinals_and_nobody_else_gets_them() -> None:
    views = {"a": ClusterView(ready=True, current=Range(0, 2)), "b": ClusterView(ready=False, current=Range(2, 4))}
    out = assign(counts={"a": 4}, clusters=views)  # the split over the Ready clusters wants all 4 in a
    assert out["a"].range == Range(0, 2) and out["a"].target == Range(0, 4) and "b" not in out
    assert held_elsewhere(views) == {"b": Range(2, 4)}


def test_growing_waits_until_the_other_cluster_has_let_go() -> None:
    # 4 -> 6 over a, b: a's target 0-2 overlaps b's 2-3, so a waits while b moves to 3-5
    views = {"a": ClusterView(ready=True, current=Range(0, 2)), "b": ClusterView(ready=True, current=Range(2, 4))}
    out = assign(counts={"a": 3, "b": 3}, clusters=views)
    assert out["a"].range == Range(0, 2) and out["b"].range == Range(3, 6) and out["b"].held == Range(2, 6)
    moving = {"a": ClusterView(ready=True, current=Range(0, 2)),
              "b": ClusterView(ready=True, current=Range(3, 6), held_before=Range(2, 6), settled=False)}
    assert assign(counts={"a": 3, "b": 3}, clusters=moving)["a"].range == Range(0, 2)  # b may still run web-2
    settled = {"a": ClusterView(ready=True, current=Range(0, 2)), "b": ClusterView(ready=True, current=Range(3, 6))}
    assert assign(counts={"a": 3, "b": 3}, clusters=settled)["a"].range == Range(0, 3)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True),
    script=st.lists(st.tuples(st.sampled_from(["fail", "return", "scale", "settle", "slow"]), st.integers(0, 3),
                              st.integers(0, 9)), max_size=40),
)
def test_no_ordinal_ever_runs_in_two_clusters(names, script) -> None:
    prefs = parse_preferences(None)
    ready = {n: True for n in names}
    spec: dict[str, Range | None] = {n: None for n in names}  # the copy's range
    held_note: dict[str, Range] = {n: Range(0, 0) for n in names}
    pods: dict[str, set[int]] = {n: set() for n in names}  # what the member really runs
    slow: set[str] = set()  # members that have not acted on their copy's last change
    total = 3

    def member_acts(n: str) -> None:
        r = spec[n]
        pods[n] = set(range(r.start, r.stop)) if r is not None else set()

    def federation_pass() -> None:
        views = {n: ClusterView(ready=ready[n], current=spec[n], held_before=held_note[n],
                                settled=n not in slow) for n in names}
        counts = plan_replicas(total, [n for n in names if ready[n]], prefs)
        for n, a in assign(counts=counts, clusters=views).items():
            if spec[n] != a.range:
                spec[n] = a.range
                slow.add(n)
            held_note[n] = a.held

    for action, i, value in script + [("return", k, 0) for k in range(4)] + [("settle", k, 0) for k in range(4)] * 3:
        n = names[i % len(names)]
        if action == "fail":
            ready[n] = False
        elif action == "return":
            ready[n] = True
        elif action == "scale":
            total = value
        elif action == "settle" and ready[n]:
            member_acts(n)
            slow.discard(n)
        elif action == "slow":
            slow.add(n)
        federation_pass()
        for n in names:  # a member that is not slow acts at once, reachable or not
            if n not in slow:
                member_acts(n)
        for a in names:
            for b in names:
                if a < b:
                    assert not pods[a] & pods[b], (pods, spec)
    for _ in range(6):  # everything Ready and quick: the split converges to the targets
        federation_pass()
        for n in names:
            member_acts(n)
            slow.discard(n)
    counts = plan_replicas(total, names, prefs)
    assert {n: spec[n] for n in names} == target_ranges(counts)
