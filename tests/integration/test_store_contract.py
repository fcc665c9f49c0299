"""The one store contract, run against every backend: an SQLite file, ``:memory:``, and etcd v3
(a real etcd process; skipped with the package to install when etcd is not there).

Revisions are compared with each other, never with fixed numbers: etcd's revision counts
every write of the whole etcd, and the session's etcd is shared by many tests (each on a
key prefix of its own).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pytest

from federation.storage.store import HistoryExpired, SQLiteStore, Store, StoreConflict, StoreNotFound, StoreUnavailable
from federation.storage.stores import open_store

Factory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "memory", "etcd"])
def make_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Factory]:
    opened: list[Store] = []
    if request.param == "etcd":
        url = request.getfixturevalue("etcd_url")
    else:
        url = str(tmp_path / "store.db") if request.param == "sqlite" else ":memory:"

    def make(history: int = 10_000) -> Store:
        store = open_store(url, history=history)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Factory) -> Store:
    return make_store()


def obj(name: str, value: int = 1, namespace: str | None = None) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "spec": {"value": value}}


def rv_of(o: dict) -> int:
    return int(o["metadata"]["resourceVersion"])


def test_create_get_update_delete_and_their_events(store: Store) -> None:
    start = store.revision
    a, ev = store.create("things", "ns", "a", obj("a", namespace="ns"))
    assert ev.type == "ADDED" and ev.rv == rv_of(a) > start and ev.resource == "things" and ev.namespace == "ns"
    assert store.revision == ev.rv
    got = store.get("things", "ns", "a")
    assert got == a and got["spec"] == {"value": 1}
    assert store.get("things", "ns", "missing") is None and store.get("things", "other", "a") is None
    b, ev2 = store.update("things", "ns", "a", obj("a", 2, "ns"), expected_rv=rv_of(a))
    assert ev2.type == "MODIFIED" and rv_of(b) == ev2.rv > ev.rv and store.get("things", "ns", "a")["spec"]["value"] == 2
    c, _ = store.update("things", "ns", "a", obj("a", 3, "ns"), expected_rv=None)  # no precondition
    old, ev3 = store.delete("things", "ns", "a")
    assert ev3.type == "DELETED" and old["spec"]["value"] == 3 and ev3.rv > rv_of(c) and rv_of(old) == ev3.rv
    assert store.get("things", "ns", "a") is None
    events = store.events_page(start, "things")
    assert [(e.type, e.rv) for e in events] == [("ADDED", ev.rv), ("MODIFIED", ev2.rv), ("MODIFIED", rv_of(c)),
                                                ("DELETED", ev3.rv)]
    assert events[-1].object["spec"]["value"] == 3
    assert store.events_since(start) == events


def test_conflicts_and_not_found(store: Store) -> None:
    a, _ = store.create("things", "", "a", obj("a"))
    with pytest.raises(StoreConflict):
        store.create("things", "", "a", obj("a"))
    b, _ = store.update("things", "", "a", obj("a", 2), expected_rv=rv_of(a))
    with pytest.raises(StoreConflict):
        store.update("things", "", "a", obj("a", 3), expected_rv=rv_of(a))  # stale
    with pytest.raises(StoreConflict):
        store.delete("things", "", "a", expected_rv=rv_of(a))
    with pytest.raises(StoreNotFound):
        store.update("things", "", "zz", obj("zz"), expected_rv=None)
    with pytest.raises(StoreNotFound):
        store.update("things", "", "zz", obj("zz"), expected_rv=rv_of(b))
    with pytest.raises(StoreNotFound):
        store.delete("things", "", "zz")
    store.delete("things", "", "a", expected_rv=rv_of(b))
    again, _ = store.create("things", "", "a", obj("a", 9))  # a deleted name can be created again
    assert again["spec"]["value"] == 9 and rv_of(again) > rv_of(b)


def test_list_is_one_revision_in_namespace_then_name_order(store: Store) -> None:
    for ns, name in [("b", "x"), ("a", "z"), ("a-b", "y"), ("a", "m"), ("", "top")]:
        store.create("things", ns, name, obj(name, namespace=ns or None))
    store.create("others", "a", "o", obj("o", namespace="a"))
    items, rv = store.list("things")
    assert [(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items] == [
        ("", "top"), ("a", "m"), ("a", "z"), ("a-b", "y"), ("b", "x")]
    assert rv >= store.revision - 0 and rv >= max(rv_of(i) for i in items)
    assert [i["metadata"]["name"] for i in store.list("things", "a")[0]] == ["m", "z"]
    assert [i["metadata"]["name"] for i in store.list("things", "")[0]] == ["top"]
    assert store.list("nothing") == ([], store.list("nothing")[1])


def test_history_pages_by_count_bytes_and_type(store: Store) -> None:
    start = store.revision
    for i in range(10):
        store.create("things", "", f"t{i}", {"metadata": {"name": f"t{i}"}, "blob": "x" * 1000})
        store.create("others", "", f"o{i}", obj(f"o{i}"))
    store.delete("things", "", "t3")
    page = store.events_page(start, "things", max_events=4)
    assert [e.object["metadata"]["name"] for e in page] == ["t0", "t1", "t2", "t3"]
    assert len(store.events_page(start, "things", max_bytes=2500)) == 3  # stops once past the bytes
    assert len(store.events_page(start, "things", max_bytes=1)) == 1  # and keeps one at least
    assert [e.object["metadata"]["name"] for e in store.events_page(start, types=("DELETED",))] == ["t3"]
    assert store.events_page(store.revision, "things") == []
    assert store.count_events(start, "things", limit=100) == 11 and store.count_events(start, "things", limit=5) == 5
    assert store.count_events(start, limit=1000) == 21
    middle = page[1].rv
    assert [e.rv for e in store.events_page(middle, "things", max_events=2)] == [page[2].rv, page[3].rv]
    assert store.oldest <= start


def test_expired_history_is_gone(make_store: Factory) -> None:
    store = make_store(history=100)
    first, _ = store.create("things", "", "first", obj("first"))
    for i in range(1100):
        store.create("things", "", f"t{i}", obj(f"t{i}"))
    events = store.events_page(store.oldest, max_events=10_000)  # wait for a feed, if any
    assert store.oldest > rv_of(first)
    with pytest.raises(HistoryExpired):
        store.events_page(rv_of(first))
    assert 100 <= len(events) <= 1100 and events[-1].rv == store.revision
    assert [e.rv for e in events] == sorted(e.rv for e in events)


def test_reopen_keeps_everything_acknowledged(make_store: Factory, request: pytest.FixtureRequest) -> None:
    store = make_store()
    if isinstance(store, SQLiteStore) and store.path == ":memory:":
        pytest.skip(":memory: keeps nothing after close, by design")
    for i in range(20):
        store.create("things", "ns", f"t{i}", obj(f"t{i}", i, "ns"))
    last = store.revision
    store.close()
    again = make_store()
    items, rv = again.list("things", "ns")
    assert len(items) == 20 and rv >= last and again.revision >= last
    created, _ = again.create("things", "ns", "new", obj("new", namespace="ns"))
    assert rv_of(created) > last
    assert [e.object["metadata"]["name"] for e in again.events_page(last, "things")] == ["new"]


# ------------------------------------------------------------------ etcd only


@pytest.fixture
def etcd_store(etcd_url: str) -> Iterator[Store]:
    store = open_store(etcd_url)
    yield store
    store.close()


def test_etcd_writes_of_another_replica_reach_this_ones_history_in_order(etcd_url: str) -> None:
    """Two stores on one prefix are two API server replicas: each one's history holds the
    other's writes, in revision order, with the previous object on a change."""
    a, b = open_store(etcd_url), open_store(etcd_url)
    try:
        start = min(a.revision, b.revision)
        seen: list[int] = []
        b.follow(lambda events: seen.extend(e.rv for e in events), lambda: None)  # type: ignore[attr-defined]
        written = []
        for i in range(50):
            created, _ = a.create("things", "", f"t{i}", obj(f"t{i}"))
            written.append(rv_of(created))
        updated, _ = b.update("things", "", "t0", obj("t0", 2), expected_rv=written[0])
        written.append(rv_of(updated))
        deadline = time.monotonic() + 5
        while len(seen) < len(written) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == written
        history = b.events_page(start, "things", max_events=1000)
        assert [e.rv for e in history] == written
        assert history[-1].previous is not None and history[-1].previous["spec"]["value"] == 1
        with pytest.raises(StoreConflict):
            a.update("things", "", "t0", obj("t0", 3), expected_rv=written[0])  # b changed it meanwhile
    finally:
        a.close()
        b.close()


def test_etcd_a_replica_started_later_has_no_history_from_before(etcd_url: str) -> None:
    """As kube-apiserver's watch cache: a replica's history starts when it does; a watch from
    before is 410 Gone there (its client relists), while the replica that was running keeps it."""
    first = open_store(etcd_url)
    try:
        start = first.revision
        created, _ = first.create("things", "", "early", obj("early"))
        late = open_store(etcd_url)
        try:
            with pytest.raises(HistoryExpired):
                late.events_page(start)
            assert late.oldest == rv_of(created) and late.events_page(late.oldest) == []
            assert late.get("things", "", "early") == created
        finally:
            late.close()
        assert [e.rv for e in first.events_page(start, "things")] == [rv_of(created)]
    finally:
        first.close()


def test_etcd_compaction_leaves_a_running_replicas_history(etcd_url: str) -> None:
    store = open_store(etcd_url)
    try:
        created, _ = store.create("things", "", "a", obj("a"))
        store.update("things", "", "a", obj("a", 2), expected_rv=rv_of(created))
        store.compact(store.revision)  # type: ignore[attr-defined]
        store.compact(store.revision)  # type: ignore[attr-defined]  # twice (another replica did): no error
        # The replica that was running keeps its own history (its watch cache).
        assert [e.type for e in store.events_page(rv_of(created) - 1, "things")] == ["ADDED", "MODIFIED"]
    finally:
        store.close()


def test_etcd_unreachable_is_unavailable_not_a_hang(tmp_path) -> None:
    from federation.launch.etcdserver import EtcdCluster, etcd_binary
    from federation.storage.store import StoreOpenError

    if etcd_binary() is None:
        pytest.skip("etcd is not installed")
    cluster = EtcdCluster(tmp_path).start()
    try:
        store = open_store(cluster.url, history=100)
        store.create("things", "", "a", obj("a"))
        cluster.stop_member(0, kill=True)
        began = time.monotonic()
        with pytest.raises(StoreUnavailable) as err:
            store.create("things", "", "b", obj("b"))
        assert err.value.code == 503 and time.monotonic() - began < 6
        store.close()
    finally:
        cluster.stop()
    with pytest.raises(StoreOpenError, match="cannot open store etcd://"):
        open_store(cluster.url)


def test_etcd_store_close_stops_its_threads(etcd_url: str) -> None:
    before = set(threading.enumerate())
    store = open_store(etcd_url)
    store.create("things", "", "a", obj("a"))
    store.close()
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_etcd_compacts_its_history_on_a_schedule(etcd_url: str) -> None:
    """Every interval, etcd's history is compacted to the revision seen one interval before
    (kube-apiserver's compactor), by one replica of however many share the prefix."""
    from federation.storage.etcdclient import EtcdError, b64
    from federation.storage.etcd import EtcdStore

    replicas = [EtcdStore(etcd_url, compact_interval=0.2), EtcdStore(etcd_url, compact_interval=0.2)]
    try:
        created, _ = replicas[0].create("things", "", "a", obj("a"))
        replicas[0].update("things", "", "a", obj("a", 2), expected_rv=rv_of(created))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                replicas[1]._gw.call("/v3/kv/range", {"key": b64(b"x"), "revision": str(rv_of(created))})
            except EtcdError as e:
                assert "compacted" in e.message
                break
            time.sleep(0.1)
        else:
            pytest.fail("etcd's history was not compacted within 5 s")
        assert replicas[1].get("things", "", "a")["spec"]["value"] == 2  # the current state stays
    finally:
        for store in replicas:
            store.close()
