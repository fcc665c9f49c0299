"""Where the federation keeps its objects: SQLite and memory stores, etcd, the watch event log."""
