"""The federation's controllers. Each is a level-triggered reconcile step plus a tiny loop.

The loop is kept apart from the logic it drives, because infinite loops are hard to test:
tests call ``reconcile()`` (a whole pass) or ``reconcile_key(key)`` directly.

Two loops: :func:`run_forever` calls a whole-pass step every period or when a store key
changes; :func:`run_keyed` drives a controller that reconciles one object at a time
(issue 11): its informers' handlers put the keys of what changed in its
:class:`apimachinery.workqueue.WorkQueue`, workers reconcile them (a failing key backs off
alone), and a slow periodic resync enqueues everything, to repair what an event missed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable, Protocol

from apimachinery.errors import ServiceUnavailable
from apimachinery.metrics import reconciling
from apimachinery.workqueue import WorkQueue, run_workers
from federation.api.registry import WatchHub

log = logging.getLogger("federation.controllers")


async def run_forever(
    name: str,
    step: Callable[[], Awaitable[None]],
    *,
    hub: WatchHub | None,
    period: float,
    watches: frozenset[str] = frozenset(),
    min_interval: float = 0.05,
    max_backoff: float = 5.0,
) -> None:
    """Call ``step`` every ``period`` seconds, or sooner when one of ``watches`` changes.

    ``watches`` are store keys (``Resource.key``). After a wake-up the loop waits
    ``min_interval`` so that a burst of changes is handled by one reconcile.

    A failing step is retried with exponential backoff and jitter, and logged once per run
    of failures rather than once per attempt.
    """
    failures = 0
    while True:
        try:
            with reconciling(name):  # controller_runtime_reconcile_* (issue 17)
                await step()
            if failures:
                log.info("%s: recovered after %d failed attempts", name, failures)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a controller must outlive its bugs
            failures += 1
            if failures == 1 and isinstance(e, ServiceUnavailable):  # the store is down: one line
                log.warning("%s: reconcile failed: %s; retrying with backoff", name, e)
            elif failures == 1:
                log.exception("%s: reconcile failed; retrying with backoff", name)
            delay = min(max_backoff, period * 2**failures) * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)
            continue
        if hub is not None and watches:
            await hub.wait_change(period, watches)
            await asyncio.sleep(min_interval)
        else:
            await asyncio.sleep(period)


class Coalesced:
    """Call ``fn`` once, soon, however often it is asked for before then: a burst of events
    (an informer's first list, a relist) fans out once."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self._pending = False

    def __call__(self) -> None:
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._pending = False
        self.fn()


class KeyedController(Protocol):
    """What :func:`run_keyed` drives."""

    queue: WorkQueue[str]
    workers: int  # how many keys are reconciled at once

    def resync(self) -> None:
        """Enqueue what a periodic resync covers (every key, or a whole-pass key)."""
        ...

    async def reconcile_key(self, key: str) -> None: ...


async def run_keyed(controller: KeyedController, *, resync_period: float) -> None:
    """Run ``controller``'s workers until its queue is shut down (or this is cancelled),
    calling ``controller.resync()`` at once and then every ``resync_period`` seconds.

    To stop cleanly, shut the queue down (the workers finish the key in hand and return),
    then cancel this if it does not return soon."""

    async def resync() -> None:
        while not controller.queue.shutting_down:
            controller.resync()
            await asyncio.sleep(resync_period)

    ticker = asyncio.create_task(resync(), name=f"{controller.queue.name or 'controller'} resync")
    try:
        await run_workers(controller.queue, controller.reconcile_key, controller.workers)
    finally:
        controller.queue.shutdown()
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
