"""Which store a ``--store`` value names: an etcd cluster (``etcd://HOST:PORT[,...][/prefix]``),
an SQLite file (the embedded default), or ``:memory:`` (tests)."""

from __future__ import annotations

from federation.storage.store import SQLiteStore, Store
from federation.storage.etcd import EtcdStore, is_etcd_url


def open_store(path: str, *, history: int = 10_000) -> Store:
    if is_etcd_url(path):
        return EtcdStore(path, history=history)
    return SQLiteStore(path, history=history)
