"""The SQLite store: revisions, conflicts, history and durability across reopen."""

import pytest

from federation.store import HistoryExpired, SQLiteStore, StoreConflict, StoreNotFound


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
