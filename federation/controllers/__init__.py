"""The federation's controllers. Each is a level-triggered reconcile step plus a tiny loop.

The loop (:func:`run_forever`) is kept apart from the logic it drives, because infinite loops
are hard to test: tests call ``reconcile()`` directly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable

from federation.registry import WatchHub
from apimachinery.metrics import reconciling

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
        except Exception:  # noqa: BLE001 - a controller must outlive its bugs
            failures += 1
            if failures == 1:
                log.exception("%s: reconcile failed; retrying with backoff", name)
            delay = min(max_backoff, period * 2**failures) * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)
            continue
        if hub is not None and watches:
            await hub.wait_change(period, watches)
            await asyncio.sleep(min_interval)
        else:
            await asyncio.sleep(period)
