"""clusters.watch.ChangeFeed: watch events from diffs of a member's state, without sockets."""

from __future__ import annotations

import pytest

from clusters.state import ClusterState, Topology
from clusters.watch import ChangeFeed, TooOld


def make(history: int = 100) -> tuple[ClusterState, ChangeFeed]:
    state = ClusterState(Topology("w", "r", ["z1"], "aws", pod_ready_delay=0.0))
    feed = ChangeFeed({"services": lambda: state.services.values(), "pods": lambda: state.pods.values()},
                      next_rv=state.next_rv, history=history)
    return state, feed


def svc(name: str, port: int = 80) -> dict:
    return {"metadata": {"name": name, "annotations": {"ubernetes.io/pods": "1"}}, "spec": {"ports": [{"port": port}]}}


def test_what_exists_at_start_is_the_baseline_not_history():
    state, _ = make()
    state.create_service("default", svc("before"))
    feed = ChangeFeed({"services": lambda: state.services.values()}, next_rv=state.next_rv)
    assert feed.since(int(state.resource_version)) == []
    assert [o["metadata"]["name"] for o in feed.current("services")] == ["before"]


def test_added_modified_deleted_in_resource_version_order():
    state, feed = make()
    start = int(state.resource_version)
    state.create_service("default", svc("web"))
    feed.sync()
    state.patch_service("default", "web", {"spec": {"ports": [{"port": 81}]}})
    feed.sync()
    state.delete_service("default", "web")
    feed.sync()
    events = [(e.plural, e.type, e.object["metadata"]["name"]) for e in feed.since(start)]
    assert ("services", "ADDED", "web") == events[0]
    assert ("pods", "ADDED", "web-0") in events
    assert ("services", "MODIFIED", "web") in events
    assert set(events[-2:]) == {("pods", "DELETED", "web-0"), ("services", "DELETED", "web")}
    seqs = [e.seq for e in feed.since(start)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # a deletion takes a resourceVersion of its own, after everything before it
    deleted = [e for e in feed.since(start) if e.type == "DELETED"]
    assert all(int(e.object["metadata"]["resourceVersion"]) == e.seq for e in deleted)
    assert max(e.seq for e in deleted) == int(state.resource_version)


def test_changes_between_two_looks_are_coalesced():
    state, feed = make()
    start = int(state.resource_version)
    state.create_service("default", svc("brief"))
    state.delete_service("default", "brief")
    feed.sync()
    assert feed.since(start) == []  # never seen, never reported


def test_resuming_from_a_list_resource_version_sees_only_later_changes():
    state, feed = make()
    state.create_service("default", svc("a"))
    feed.sync()
    listed = int(state.resource_version)
    state.create_service("default", svc("b"))
    feed.sync()
    names = {(e.type, e.object["metadata"]["name"]) for e in feed.since(listed)}
    assert ("ADDED", "b") in names and ("ADDED", "a") not in names


def test_a_resource_version_older_than_the_log_is_too_old():
    state, feed = make(history=3)
    start = int(state.resource_version)
    for i in range(4):
        state.create_service("default", svc(f"s{i}"))
    feed.sync()
    with pytest.raises(TooOld):
        feed.since(start)
    assert feed.since(int(state.resource_version)) == []


def test_a_selector_watch_sees_objects_enter_and_leave_its_selection():
    state, feed = make()
    start = int(state.resource_version)
    state.create_service("default", svc("web"))
    feed.sync()
    state.patch_service("default", "web", {"metadata": {"labels": {"fed": "yes"}}})
    feed.sync()
    state.patch_service("default", "web", {"spec": {"ports": [{"port": 81}]}})
    feed.sync()
    state.patch_service("default", "web", {"metadata": {"labels": {"fed": None}}})
    feed.sync()

    def labelled(obj):
        return (obj["metadata"].get("labels") or {}).get("fed") == "yes"

    seen = [ChangeFeed.as_seen(e, labelled) for e in feed.since(start) if e.plural == "services"]
    assert [s[0] for s in seen if s] == ["ADDED", "MODIFIED", "DELETED"]  # no event before it matched
    assert ChangeFeed.as_seen(feed.since(start)[0], lambda o: True)[0] == "ADDED"
