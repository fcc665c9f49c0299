"""A work queue of object keys, with client-go's semantics, for controllers fed by informers.

Controllers used to list whole kinds on every wake-up. With informers, a handler only
enqueues the key of what changed (``"namespace/name"``) and a few workers reconcile keys.
The queue makes that safe, as k8s.io/client-go/util/workqueue does:

- **Dirty set**: a key added several times while it waits is queued once.
- **Processing set**: a key handed to a worker is never handed to another one until
  :meth:`WorkQueue.done`; added again meanwhile, it is queued again after ``done``, so the
  newer change is not lost and two workers never reconcile one object at once.
- **Delays**: :meth:`WorkQueue.add_after` adds a key later (a key already waiting keeps the
  earlier of its two times); :meth:`WorkQueue.add_rate_limited` waits a per-key exponential
  backoff (:class:`apimachinery.backoff.Backoff`: 0.05 s doubling, up to 30 s), which
  :meth:`WorkQueue.forget` resets after a success.
- **Shutdown**: :meth:`WorkQueue.shutdown` refuses new keys; keys already queued are still
  handed out, then :meth:`WorkQueue.get` raises :class:`ShutDown` so workers end cleanly.

:func:`run_workers` is the usual worker loop around a ``reconcile(key)`` coroutine. Single
event loop, no threads: no locks. The module imports nothing of ubernetes but the machinery.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from apimachinery import metrics
from apimachinery.backoff import Backoff

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

BASE_DELAY = 0.05  # client-go's DefaultControllerRateLimiter: 5 ms; ours are HTTP round trips
MAX_DELAY = 30.0


class ShutDown(Exception):
    """The queue was shut down and holds nothing more: the worker should return."""


class Requeue(Exception):
    """An expected failure of one key (a member did not answer): retry it after its backoff,
    logged at debug level, with no traceback."""


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = BASE_DELAY, max_delay: float = MAX_DELAY, name: str = "") -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(f"need 0 < base_delay <= max_delay, not {base_delay} and {max_delay}")
        self.name = name
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}  # add_after: key -> (when, timer)
        self._backoff: Backoff[K] = Backoff(initial=base_delay, maximum=max_delay)
        self._requeues: dict[K, int] = {}
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._shutting_down = False
        metrics.track_queue(self)  # workqueue_depth{name} (issue 17)

    # -------------------------------------------------------------- adding

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is queued already; if a worker holds it, after its ``done``."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """:meth:`add` ``key`` in ``delay`` seconds (now if ``delay <= 0``). A key already
        waiting keeps the earlier of its two times."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._waiting[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: K) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> float:
        """:meth:`add_after` ``key`` once its backoff is over; each call doubles the next
        wait (up to ``max_delay``) until :meth:`forget`. Returns the wait."""
        delay = self._backoff.failed(key, "")
        metrics.RETRIES.labels(self.name or "workqueue").inc()
        self._requeues[key] = self._requeues.get(key, 0) + 1
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next :meth:`add_rate_limited` waits ``base_delay`` again.
        (It does not take the key out of the queue.)"""
        self._backoff.succeeded(key)
        self._requeues.pop(key, None)

    def num_requeues(self, key: K) -> int:
        """How many :meth:`add_rate_limited` calls ``key`` had since its last :meth:`forget`."""
        return self._requeues.get(key, 0)

    # -------------------------------------------------------------- taking

    async def get(self) -> K:
        """The next key, once there is one; the caller must call :meth:`done` with it.
        Raises :class:`ShutDown` once the queue is shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name or "work queue")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # A wake-up meant for this getter goes to the next one.
                if waiter.done() and not waiter.cancelled() and self._queue:
                    self._wake_one()
                raise
            finally:
                if waiter in self._getters:
                    self._getters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        """The worker is through with ``key``; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -------------------------------------------------------------- state

    def shutdown(self, *, drain: bool = True) -> None:
        """Refuse new keys and drop delayed ones; queued keys are still handed out (with
        ``drain=False``: dropped too, for a prompt stop), then every :meth:`get` raises
        :class:`ShutDown`."""
        self._shutting_down = True
        if not drain:
            self._queue.clear()
            self._dirty.clear()
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys queued now (not those being processed or waiting out a delay)."""
        return len(self._queue)

    def waiting(self) -> int:
        """Keys waiting out a delay (:meth:`add_after`, :meth:`add_rate_limited`)."""
        return len(self._waiting)

    def processing(self) -> int:
        return len(self._processing)


async def run_workers(queue: WorkQueue[K], reconcile: Callable[[K], Awaitable[object]], n: int = 1) -> None:
    """Run ``n`` workers calling ``await reconcile(key)`` until ``queue`` shuts down.

    A failure is logged and the key retried after its backoff (:meth:`WorkQueue.add_rate_limited`);
    a success resets the backoff (:meth:`WorkQueue.forget`). An unexpected failure is logged
    with its traceback on a key's first failed attempt and briefly after that, so a key that
    fails for minutes does not fill the log; a :class:`Requeue` is logged at debug level only.
    Cancelling this coroutine cancels the workers."""
    if n < 1:
        raise ValueError(f"need at least one worker, not {n}")

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                with metrics.reconciling(queue.name or "workqueue"):  # issue 17
                    await reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = queue.add_rate_limited(key)
                attempt, where = queue.num_requeues(key), f"{queue.name}: " if queue.name else ""
                if isinstance(err, Requeue):
                    log.debug("%sreconcile %r: %s (attempt %d); retrying in %.2f s", where, key, err, attempt, delay)
                elif attempt == 1:
                    log.exception("%sreconcile %r failed; retrying with backoff (%.2f s first)", where, key, delay)
                else:
                    log.warning("%sreconcile %r failed again (attempt %d): %s; retrying in %.2f s",
                                where, key, attempt, err, delay)
            else:
                queue.forget(key)
            finally:
                queue.done(key)
            # A reconcile that never awaited, and a queue that is never empty, would keep the
            # event loop from everything else (lease renewals, watches) for a whole fan-out.
            await asyncio.sleep(0)

    workers = [asyncio.create_task(worker(), name=f"{queue.name or 'workqueue'}-worker-{i}") for i in range(n)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
