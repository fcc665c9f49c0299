"""A bounded, in-memory history of store events in revision order: the etcd store's watch cache.

The SQLite store keeps its own history in a table. On etcd, each API server replica keeps
the latest events of its key prefix here, fed in order by one etcd watch (as
kube-apiserver's watch cache is), and serves watches that resume from a resourceVersion out
of it: one etcd watch per replica however many clients watch, and a replay never touches
etcd. What falls out of the window (more than ``capacity`` events ago) is gone: a watch
from before :attr:`oldest` is 410 Gone and the client relists.

Thread-safe: the feeding thread appends, the event loop and worker threads read.
"""

from __future__ import annotations

import bisect
import threading
import time

from federation.storage.store import Event, HistoryExpired


class EventLog:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._rvs: list[int] = []
        self._sizes: list[int] = []
        self._oldest = 0
        self._newest = 0

    @property
    def oldest(self) -> int:
        """The oldest revision a watch may resume from: every event after it is held."""
        return self._oldest

    @property
    def newest(self) -> int:
        """The revision the log has reached: every event up to it is held (or was trimmed)."""
        return self._newest

    def start(self, rv: int) -> None:
        """Forget everything; the history continues after ``rv``."""
        with self._cond:
            self._events, self._rvs, self._sizes = [], [], []
            self._oldest = self._newest = rv
            self._cond.notify_all()

    def append(self, events: list[tuple[Event, int]], newest: int) -> None:
        """Add ``events`` (each with its stored size in bytes), all newer than what is held;
        the log has then reached ``newest`` (at least the last event's revision)."""
        with self._cond:
            for event, size in events:
                self._events.append(event)
                self._rvs.append(event.rv)
                self._sizes.append(size)
            self._newest = max(self._newest, newest)
            excess = len(self._events) - self.capacity
            if excess > max(16, self.capacity // 8):  # trim in batches: a list's front is costly
                self._oldest = self._rvs[excess - 1]
                del self._events[:excess], self._rvs[:excess], self._sizes[:excess]
            self._cond.notify_all()

    def advance(self, rv: int) -> None:
        """Nothing happened under the prefix up to ``rv`` (an etcd progress notification)."""
        with self._cond:
            if rv > self._newest:
                self._newest = rv
                self._cond.notify_all()

    def wait_for(self, rv: int, timeout: float) -> bool:
        """Wait until the log has reached ``rv``; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._newest < rv:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _check(self, rv: int) -> int:
        if rv < self._oldest:
            raise HistoryExpired(f"too old resource version: {rv} ({self._oldest})")
        return bisect.bisect_right(self._rvs, rv)

    def page(self, rv: int, resource: str | None = None, *, types: tuple[str, ...] = (),
             max_events: int = 100, max_bytes: int = 4 << 20) -> list[Event]:
        """As :meth:`federation.storage.store.Store.events_page`."""
        out: list[Event] = []
        size = 0
        with self._cond:
            for i in range(self._check(rv), len(self._events)):
                event = self._events[i]
                if (resource is not None and event.resource != resource) or (types and event.type not in types):
                    continue
                out.append(event)
                size += self._sizes[i]
                if len(out) >= max_events or size >= max_bytes:
                    break
        return out

    def count(self, rv: int, resource: str | None = None, *, limit: int) -> int:
        """How many events follow ``rv`` (up to ``limit``); from before :attr:`oldest` it
        counts what is held (the caller compares ``rv`` with :attr:`oldest`, as with SQLite)."""
        n = 0
        with self._cond:
            for i in range(bisect.bisect_right(self._rvs, rv), len(self._events)):
                if resource is None or self._events[i].resource == resource:
                    n += 1
                    if n >= limit:
                        break
        return n
