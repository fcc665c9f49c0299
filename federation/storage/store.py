"""The federation's one source of truth: objects plus a history of changes.

One small interface (:class:`Store`) with one implementation on SQLite, which serves both
the default file store and ``:memory:`` for tests. Every write takes the next global
resourceVersion (as etcd's revision does), stores the object and appends a watch event in
one transaction, so a watch can resume from any resourceVersion still in the history and
an acknowledged write survives a SIGKILL of the process.

Durability choice: WAL journal with ``synchronous=NORMAL``. A commit in WAL mode is in the
WAL file when ``commit()`` returns, so killing the process loses nothing acknowledged; only
a power loss or kernel crash could lose the last transactions, which this emulator accepts
for the write rate it gains (documented in docs/architecture.md).

Opening a file store is guarded twice (docs/security.md, "Store integrity"):

- **One owner.** The store holds an exclusive ``flock`` on ``PATH.lock`` beside the database
  for as long as it is open. Two API servers on one file would each keep their own idea of the
  current resourceVersion, so their writes would collide (``UNIQUE constraint failed``) and
  neither would see the other's events; the second opener is refused, naming the holder's pid.
- **Not damaged.** ``PRAGMA quick_check`` runs before anything else reads or writes the file;
  a garbage, truncated or partly overwritten file is refused with one clear sentence instead
  of a traceback at start or a 500 on some later watch. A zero-length file is what SQLite
  calls an empty database, so it opens as a new, empty store.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

from apimachinery import errors as st


class StoreOpenError(Exception):
    """The store cannot be opened. The message names the file and what to do about it, and
    is meant to be shown as is (the API server exits with it, no traceback)."""


class StoreLocked(StoreOpenError):
    """Another process (or another open store in this one) holds the store's lock."""


class StoreDamaged(StoreOpenError):
    """The file is not a readable SQLite database, or SQLite's quick_check finds damage."""


class StoreConflict(Exception):
    """The object exists already (create) or its resourceVersion is stale (update/delete)."""


class StoreNotFound(Exception):
    pass


class StoreUnavailable(st.ServiceUnavailable):
    """The store cannot answer now (no etcd member reachable, or none with a leader): a 503
    ``Status`` for the client, which may retry; raised after a bounded wait, never a hang."""


class HistoryExpired(Exception):
    """A watch asked for a resourceVersion older than the retained history (410 Gone)."""


@dataclass(frozen=True)
class Event:
    rv: int
    resource: str
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    object: dict[str, Any]
    # The object before a MODIFIED change, when the writer had it (the registry does; the
    # stored history does not): a selector watch hears an object leave its selection.
    previous: dict[str, Any] | None = None


class Store(Protocol):
    # True when other processes write the same store (etcd): its events then reach the
    # registry's hub from the store's own feed, in revision order (``follow``), and the
    # registry does not publish its writes itself (federation/store_etcd.py).
    shared: bool

    # ``consistent=False`` is a read at any resourceVersion (``?resourceVersion=0``): a store
    # without its quorum may answer it from a copy that is behind, and ``stale_reason()``
    # then says why (a ``Warning`` header for the client); None when it is known current.
    def get(self, resource: str, namespace: str, name: str, *, consistent: bool = True) -> dict[str, Any] | None: ...
    def list(self, resource: str, namespace: str | None = None, *,
             consistent: bool = True) -> tuple[list[dict[str, Any]], int]: ...
    def stale_reason(self) -> str | None: ...
    def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Event]: ...
    def update(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], expected_rv: int | None
    ) -> tuple[dict[str, Any], Event]: ...
    def delete(
        self, resource: str, namespace: str, name: str, expected_rv: int | None = None
    ) -> tuple[dict[str, Any], Event]: ...
    def events_since(self, rv: int, resource: str | None = None) -> list[Event]: ...
    def events_page(self, rv: int, resource: str | None = None, *, types: tuple[str, ...] = (),
                    max_events: int = 100, max_bytes: int = 4 << 20) -> list[Event]: ...
    def count_events(self, rv: int, resource: str | None = None, *, limit: int) -> int: ...
    @property
    def oldest(self) -> int: ...
    @property
    def revision(self) -> int: ...
    def close(self) -> None: ...


# The tables and their columns, in order: what an existing file must hold to be our store.
_SCHEMA = {
    "objects": ("resource", "namespace", "name", "rv", "body"),
    "events": ("rv", "resource", "namespace", "type", "body"),
    "revision": ("id", "rv"),
}
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def in_memory(path: str) -> bool:
    """``:memory:`` (and ``""``, SQLite's private temporary database) has no file to guard."""
    return path in (":memory:", "")


def lock_path(path: str) -> str:
    """The sidecar lock file of the store at ``path``: beside the database file itself, so two
    spellings of one file (relative, absolute, through a symlink) meet on one lock."""
    return os.path.realpath(path) + ".lock"


class StoreLock:
    """An exclusive ``flock`` on ``PATH.lock``, held while the store is open.

    The kernel drops the lock when the holder's descriptor closes, so a SIGKILLed API server
    leaves no stale lock behind; the file itself stays (removing it would let two openers lock
    two different files of one name). The holder writes its pid into it for the refusal."""

    def __init__(self, store: str) -> None:
        self.path = lock_path(store)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreOpenError(f"cannot open store {store}: cannot create its lock file {self.path}: "
                                 f"{e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise StoreLocked(
                f"store {store} is in use by another process ({holder} holds {self.path}); "
                "two API servers on one store would lose each other's writes and events: "
                "stop the other one first, or give this one another store file"
            ) from None
        except OSError as e:
            os.close(fd)
            raise StoreOpenError(f"cannot lock store {store} ({self.path}): {e.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid only words a refusal; a full disk must not leak the held lock
        # Closes the descriptor (so drops the lock) even for a store nobody closed.
        self._release = weakref.finalize(self, os.close, fd)
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            pid = int(os.pread(fd, 32, 0).decode("ascii", "replace").strip())
        except (OSError, ValueError):
            return "a process that has not written its pid yet"
        return f"pid {pid}"

    def release(self) -> None:
        if self._release.alive:
            try:
                os.ftruncate(self._fd, 0)  # no stale pid for the next reader
            except OSError:
                pass
            self._release()


def damaged(path: str, detail: str) -> StoreDamaged:
    return StoreDamaged(f"store {path} is damaged: {detail}; restore it from a backup or move it aside "
                        "(with its -wal and -shm files, if any)")


def _open_error(path: str, error: sqlite3.DatabaseError) -> StoreOpenError:
    detail = str(error) or type(error).__name__
    if getattr(error, "sqlite_errorname", None) in _DAMAGED:
        return damaged(path, detail)
    return StoreOpenError(f"cannot open store {path}: {detail}")


class SQLiteStore:
    """SQLite-backed :class:`Store`. ``path`` may be ``:memory:``.

    A file store is locked for its lifetime and checked before use; opening raises
    :class:`StoreLocked`, :class:`StoreDamaged` or :class:`StoreOpenError` with a message
    meant for the user."""

    shared = False  # one process owns the file (StoreLock): the registry publishes its writes

    def __init__(self, path: str, *, history: int = 10_000) -> None:
        self.path = path
        self.history = history
        self._lock = threading.Lock()
        self._file_lock = None if in_memory(path) else StoreLock(path)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as e:
            self._release_file()
            raise _open_error(path, e) from None
        try:
            self._open()
        except BaseException as e:
            self._db.close()
            self._release_file()
            if isinstance(e, sqlite3.DatabaseError):
                raise _open_error(path, e) from None
            raise

    def _open(self) -> None:
        if not in_memory(self.path):
            self._check()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS objects (
                resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                rv INTEGER NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (resource, namespace, name));
            CREATE TABLE IF NOT EXISTS events (
                rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL,
                type TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY CHECK (id = 1), rv INTEGER NOT NULL);
            INSERT OR IGNORE INTO revision (id, rv) VALUES (1, 0);
            """
        )
        self._rv = self._db.execute("SELECT rv FROM revision WHERE id = 1").fetchone()[0]
        row = self._db.execute("SELECT MIN(rv) FROM events").fetchone()
        # The oldest resourceVersion a watch may resume from.
        self._oldest = (row[0] - 1) if row[0] is not None else self._rv
        self._writes = 0

    def _check(self) -> None:
        """Refuse a damaged file, or a sound one holding someone else's tables, before the
        schema script writes to it. quick_check reads every page of every table (it skips
        only integrity_check's index-against-table cross-checks), so it costs O(file size)."""
        problems = [str(r[0]) for r in self._db.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            # One line per problem, without SQLite's "*** in database main ***" headings.
            lines = [line.strip() for p in problems for line in p.splitlines()]
            lines = [line for line in lines if line and not line.startswith("***")]
            raise damaged(self.path, "; ".join(lines[:3]) or "quick_check failed")
        for table, columns in _SCHEMA.items():
            found = tuple(r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall())
            if found and found != columns:
                raise StoreOpenError(
                    f"cannot open store {self.path}: it is not a federation store (its table {table} has "
                    f"columns {', '.join(found)}; a store's has {', '.join(columns)})"
                )

    def _release_file(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()

    @property
    def revision(self) -> int:
        return self._rv

    @property
    def oldest(self) -> int:
        """The oldest resourceVersion a watch may resume from (older: 410 Gone)."""
        return self._oldest

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release_file()

    def stale_reason(self) -> str | None:
        return None  # one process owns the file: every read is current

    def get(self, resource: str, namespace: str, name: str, *, consistent: bool = True) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE resource=? AND namespace=? AND name=?", (resource, namespace, name)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, resource: str, namespace: str | None = None, *,
             consistent: bool = True) -> tuple[list[dict[str, Any]], int]:
        # Rows are read under the lock, decoded outside it: a big list read in a worker
        # thread must not hold up writes on the event loop while it parses JSON.
        with self._lock:
            if namespace is None:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE resource=? ORDER BY namespace, name", (resource,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE resource=? AND namespace=? ORDER BY name", (resource, namespace)
                ).fetchall()
            rv = self._rv
        return [json.loads(r[0]) for r in rows], rv

    def _current_rv(self, resource: str, namespace: str, name: str) -> int | None:
        row = self._db.execute(
            "SELECT rv FROM objects WHERE resource=? AND namespace=? AND name=?", (resource, namespace, name)
        ).fetchone()
        return row[0] if row else None

    def _write(self, resource: str, namespace: str, name: str, obj: dict[str, Any] | None, etype: str,
               deleted: dict[str, Any] | None = None) -> tuple[dict[str, Any], Event]:
        rv = self._rv + 1
        if obj is not None:
            obj = dict(obj)
            obj["metadata"] = dict(obj.get("metadata") or {})
            obj["metadata"]["resourceVersion"] = str(rv)
            body = json.dumps(obj, separators=(",", ":"))
            self._db.execute(
                "INSERT OR REPLACE INTO objects (resource, namespace, name, rv, body) VALUES (?,?,?,?,?)",
                (resource, namespace, name, rv, body),
            )
        else:
            assert deleted is not None
            obj = deleted
            body = json.dumps(obj, separators=(",", ":"))
            self._db.execute("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", (resource, namespace, name))
        self._db.execute(
            "INSERT INTO events (rv, resource, namespace, type, body) VALUES (?,?,?,?,?)",
            (rv, resource, namespace, etype, body),
        )
        self._db.execute("UPDATE revision SET rv=? WHERE id=1", (rv,))
        self._rv = rv
        self._writes += 1
        return obj, Event(rv, resource, namespace, etype, obj)

    def _transaction(self, fn):  # type: ignore[no-untyped-def]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn()
            except BaseException:
                self._db.execute("ROLLBACK")
                self._rv = self._db.execute("SELECT rv FROM revision WHERE id = 1").fetchone()[0]
                raise
            self._db.execute("COMMIT")
            if self._writes >= 1000:
                self._compact()
            return result

    def _compact(self) -> None:
        self._writes = 0
        floor = self._rv - self.history
        if floor > self._oldest:
            self._db.execute("DELETE FROM events WHERE rv <= ?", (floor,))
            self._oldest = floor

    def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Event]:
        def run():  # type: ignore[no-untyped-def]
            if self._current_rv(resource, namespace, name) is not None:
                raise StoreConflict("exists")
            return self._write(resource, namespace, name, obj, "ADDED")

        return self._transaction(run)

    def update(self, resource: str, namespace: str, name: str, obj: dict[str, Any],
               expected_rv: int | None) -> tuple[dict[str, Any], Event]:
        def run():  # type: ignore[no-untyped-def]
            current = self._current_rv(resource, namespace, name)
            if current is None:
                raise StoreNotFound(name)
            if expected_rv is not None and expected_rv != current:
                raise StoreConflict("stale")
            return self._write(resource, namespace, name, obj, "MODIFIED")

        return self._transaction(run)

    def delete(self, resource: str, namespace: str, name: str,
               expected_rv: int | None = None) -> tuple[dict[str, Any], Event]:
        def run():  # type: ignore[no-untyped-def]
            row = self._db.execute(
                "SELECT rv, body FROM objects WHERE resource=? AND namespace=? AND name=?", (resource, namespace, name)
            ).fetchone()
            if row is None:
                raise StoreNotFound(name)
            if expected_rv is not None and expected_rv != row[0]:
                raise StoreConflict("stale")
            old = json.loads(row[1])
            # The DELETED event carries the object at a new resourceVersion, as the API server does.
            old["metadata"]["resourceVersion"] = str(self._rv + 1)
            return self._write(resource, namespace, name, None, "DELETED", deleted=old)

        return self._transaction(run)

    def events_since(self, rv: int, resource: str | None = None) -> list[Event]:
        with self._lock:
            if rv < self._oldest:
                raise HistoryExpired(f"too old resource version: {rv} ({self._oldest})")
            if resource is None:
                rows = self._db.execute(
                    "SELECT rv, resource, namespace, type, body FROM events WHERE rv > ? ORDER BY rv", (rv,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT rv, resource, namespace, type, body FROM events WHERE rv > ? AND resource=? ORDER BY rv",
                    (rv, resource),
                ).fetchall()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    @staticmethod
    def _filters(rv: int, resource: str | None, types: tuple[str, ...]) -> tuple[str, list[Any]]:
        where, args = "rv > ?", [rv]
        if resource is not None:
            where, args = where + " AND resource = ?", args + [resource]
        if types:
            where += f" AND type IN ({','.join('?' * len(types))})"
            args += list(types)
        return where, args

    def events_page(self, rv: int, resource: str | None = None, *, types: tuple[str, ...] = (),
                    max_events: int = 100, max_bytes: int = 4 << 20) -> list[Event]:
        """The next events after ``rv``, oldest first: at most ``max_events``, and no more rows
        than reach ``max_bytes`` of stored JSON (always at least one). Meant for a worker
        thread: a watch or a controller reads a long history a page at a time, so neither the
        memory nor the event loop holds all of it at once (issue 19)."""
        where, args = self._filters(rv, resource, types)
        rows: list[tuple[Any, ...]] = []
        size = 0
        with self._lock:
            if rv < self._oldest:
                raise HistoryExpired(f"too old resource version: {rv} ({self._oldest})")
            cursor = self._db.execute(
                f"SELECT rv, resource, namespace, type, body FROM events WHERE {where} ORDER BY rv LIMIT ?",
                (*args, max_events),
            )
            for row in cursor:
                rows.append(row)
                size += len(row[4])
                if size >= max_bytes:
                    break
            cursor.close()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def count_events(self, rv: int, resource: str | None = None, *, limit: int) -> int:
        """How many events follow ``rv`` (of ``resource``), counting no further than ``limit``."""
        where, args = self._filters(rv, resource, ())
        with self._lock:
            row = self._db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE {where} LIMIT ?)",
                                   (*args, limit)).fetchone()
        return int(row[0])
