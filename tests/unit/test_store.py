"""The SQLite store: revisions, conflicts, history and durability across reopen."""

import pytest

from federation.storage.store import HistoryExpired, SQLiteStore, StoreConflict, StoreNotFound


def obj(name, value=1):
    return {"metadata": {"name": name}, "spec": {"value": value}}


def test_revisions_rise_and_conflicts_are_detected(tmp_path):
    store = SQLiteStore(str(tmp_path / "s.db"))
    a, ev = store.create("things", "", "a", obj("a"))
    assert a["metadata"]["resourceVersion"] == "1" and ev.type == "ADDED"
    with pytest.raises(StoreConflict):
        store.create("things", "", "a", obj("a"))
    b, _ = store.update("things", "", "a", obj("a", 2), expected_rv=1)
    assert b["metadata"]["resourceVersion"] == "2"
    with pytest.raises(StoreConflict):
        store.update("things", "", "a", obj("a", 3), expected_rv=1)
    with pytest.raises(StoreNotFound):
        store.update("things", "", "zz", obj("zz"), expected_rv=None)
    old, ev = store.delete("things", "", "a")
    assert ev.type == "DELETED" and old["spec"]["value"] == 2 and ev.rv == 3
    assert store.get("things", "", "a") is None
    assert [e.type for e in store.events_since(0)] == ["ADDED", "MODIFIED", "DELETED"]


def test_reopen_keeps_everything_acknowledged(tmp_path):
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    for i in range(20):
        store.create("things", "ns", f"t{i}", obj(f"t{i}", i))
    store.close()
    again = SQLiteStore(path)
    items, rv = again.list("things", "ns")
    assert len(items) == 20 and rv == 20
    created, _ = again.create("things", "ns", "new", obj("new"))
    assert created["metadata"]["resourceVersion"] == "21"
    assert len(again.events_since(19)) == 2


def test_history_compaction_gives_gone():
    store = SQLiteStore(":memory:", history=100)
    for i in range(1500):
        store.create("things", "", f"t{i}", obj(f"t{i}"))
    with pytest.raises(HistoryExpired):
        store.events_since(10)
    assert len(store.events_since(1490)) == 10


def test_history_is_read_in_pages_by_count_bytes_and_type():
    store = SQLiteStore(":memory:")
    for i in range(10):
        store.create("things", "", f"t{i}", {"metadata": {"name": f"t{i}"}, "blob": "x" * 1000})
        store.create("others", "", f"o{i}", obj(f"o{i}"))
    store.delete("things", "", "t3")
    page = store.events_page(0, "things", max_events=4)
    assert [e.rv for e in page] == [1, 3, 5, 7]
    assert len(store.events_page(0, "things", max_bytes=2500)) == 3  # stops once past the bytes, keeps one at least
    assert len(store.events_page(0, "things", max_bytes=1)) == 1
    assert [e.object["metadata"]["name"] for e in store.events_page(0, types=("DELETED",))] == ["t3"]
    assert store.events_page(store.revision, "things") == []
    assert store.count_events(0, "things", limit=100) == 11 and store.count_events(0, "things", limit=5) == 5
    assert store.count_events(0, limit=1000) == 21 and store.oldest == 0


def test_a_page_from_before_the_history_is_gone():
    store = SQLiteStore(":memory:", history=100)
    for i in range(1500):
        store.create("things", "", f"t{i}", obj(f"t{i}"))
    with pytest.raises(HistoryExpired):
        store.events_page(10)
    assert store.oldest == 900 and len(store.events_page(900, max_events=1000)) == 600  # compacted at write 1000
