"""The StatefulSet ordering rules (clusters/statefulplan.py): tables, then properties.

The properties drive the planner with a tiny model of a cluster in which a created pod turns
Ready, and a deleted one disappears, after a random number of steps, and check the rules
at every step: OrderedReady creates an ordinal only when every lower wanted ordinal is
Ready, deletes from the highest down, never acts while a pod terminates, and always
converges to exactly the wanted ordinals.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusters.statefulplan import PARALLEL, PodView, Step, claim_name, ordinal_of, ordinals, plan

READY, PENDING, GOING = PodView(ready=True), PodView(), PodView(ready=False, terminating=True)


def test_creates_the_lowest_missing_ordinal_only_after_the_lower_ones_are_ready() -> None:
    assert plan(replicas=3, pods={}) == [Step("create", 0)]
    assert plan(replicas=3, pods={0: PENDING}) == []
    assert plan(replicas=3, pods={0: READY}) == [Step("create", 1)]
    assert plan(replicas=3, pods={0: READY, 2: READY}) == [Step("create", 1)]  # a deleted pod comes back first
    assert plan(replicas=3, pods={0: READY, 1: READY, 2: READY}) == []


def test_scale_down_deletes_from_the_highest_one_at_a_time_and_waits_for_it() -> None:
    pods = {o: READY for o in range(5)}
    assert plan(replicas=2, pods=pods) == [Step("delete", 4)]
    assert plan(replicas=2, pods={**pods, 4: GOING}) == []
    assert plan(replicas=2, pods={0: READY, 1: READY, 2: READY, 3: READY}) == [Step("delete", 3)]
    assert plan(replicas=2, pods={0: READY, 1: PENDING, 2: READY}) == []  # not while a kept pod is unready


def test_an_ordinal_range_with_a_start_and_a_moved_range() -> None:
    assert list(ordinals(3, start=5)) == [5, 6, 7]
    assert plan(replicas=3, start=5, pods={}) == [Step("create", 5)]
    assert plan(replicas=2, start=2, pods={0: READY, 1: READY, 2: READY, 3: READY}) == [Step("delete", 1)]


def test_failed_pods_are_replaced_under_their_name() -> None:
    assert plan(replicas=2, pods={0: READY, 1: PodView(failed=True)}) == [Step("delete", 1)]


def test_parallel_acts_on_everything_at_once() -> None:
    assert plan(replicas=3, pods={}, policy=PARALLEL) == [Step("create", 0), Step("create", 1), Step("create", 2)]
    assert plan(replicas=1, pods={0: PENDING, 1: PENDING, 2: GOING}, policy=PARALLEL) == [Step("delete", 1)]


def test_names() -> None:
    assert ordinal_of("web", "web-12") == 12
    assert ordinal_of("web", "web-x") is None and ordinal_of("web", "web-01") is None
    assert ordinal_of("web", "web-api-1") is None and ordinal_of("web-api", "web-api-1") == 1
    assert claim_name("www", "web", 3) == "www-web-3"


@settings(max_examples=300, deadline=None)
@given(
    initial=st.dictionaries(st.integers(0, 8), st.booleans(), max_size=6),
    replicas=st.integers(0, 6),
    start=st.integers(0, 3),
    delays=st.lists(st.integers(0, 3), min_size=1, max_size=20),
)
def test_ordered_ready_keeps_its_rules_and_converges(initial, replicas, start, delays) -> None:
    pods: dict[int, dict] = {o: {"ready": r, "due": 0, "going": False} for o, r in initial.items()}
    wanted = set(ordinals(replicas, start))
    tick = 0
    for _ in range(400):
        tick += 1
        for o in list(pods):  # the model cluster: pods turn Ready, terminating ones go
            p = pods[o]
            if p["due"] <= tick:
                if p["going"]:
                    del pods[o]
                else:
                    p["ready"] = True
        views = {o: PodView(ready=p["ready"], terminating=p["going"]) for o, p in pods.items()}
        steps = plan(replicas=replicas, start=start, pods=views)
        assert len(steps) <= 1
        if steps and any(p["going"] for p in pods.values()):
            raise AssertionError("acted while a pod was terminating")
        for step in steps:
            delay = delays[tick % len(delays)]
            if step.action == "create":
                assert step.ordinal in wanted and step.ordinal not in pods
                assert all(pods.get(o, {}).get("ready") for o in wanted if o < step.ordinal)
                pods[step.ordinal] = {"ready": False, "due": tick + delay, "going": False}
            else:
                assert step.ordinal not in wanted
                assert step.ordinal == max(o for o in pods if o not in wanted)
                assert all(pods.get(o, {}).get("ready") for o in wanted)
                pods[step.ordinal].update(going=True, due=tick + delay)
        if not steps and set(pods) == wanted and all(p["ready"] for p in pods.values()):
            break
    assert set(pods) == wanted and all(p["ready"] for p in pods.values())


@given(replicas=st.integers(0, 6), pods=st.dictionaries(st.integers(0, 8), st.sampled_from([READY, PENDING, GOING])))
def test_parallel_never_touches_a_terminating_pod_nor_creates_over_one(replicas, pods) -> None:
    for step in plan(replicas=replicas, pods=pods, policy=PARALLEL):
        if step.action == "create":
            assert step.ordinal not in pods
        else:
            assert not pods[step.ordinal].terminating


def test_a_rolling_update_goes_from_the_highest_down_once_everything_is_ready() -> None:
    old = PodView(ready=True, outdated=True)
    assert plan(replicas=3, pods={0: old, 1: READY, 2: old}) == [Step("delete", 2)]
    assert plan(replicas=3, pods={0: old, 1: old}) == [Step("create", 2)]  # the set is whole first
    assert plan(replicas=3, pods={0: old, 1: old, 2: PENDING}) == []
    assert plan(replicas=2, pods={0: old, 1: old, 2: READY}) == [Step("delete", 2)]  # condemned first
