"""What one watch may ask for: the resourceVersion rules both API servers apply.

A watch names a resourceVersion to start after. Issue 19 found three ways to abuse that:

- **History replay**: a watch from ``resourceVersion=1`` made the federation read its whole
  history into memory on the event loop (264 MB to 3.4 GB RSS, ``/healthz`` 21 s). A watch
  may replay at most :data:`WATCH_WINDOW` events of its kind; older than that is
  ``410 Gone`` (reason ``Expired``), as a Kubernetes watch cache answers a resourceVersion
  it no longer holds, and the client relists. What is replayed is read in pages
  (:data:`PAGE_EVENTS` events, :data:`PAGE_BYTES` bytes) in a worker thread.
- **A resourceVersion from the future** was an endless silent watch. Kubernetes' watch
  cache waits up to 3 s for the store to catch up, then answers ``504`` (reason
  ``Timeout``) "Too large resource version"; so does :func:`wait_for_revision`.
- **An overflowing resourceVersion** (``99999999999999999999``) reached SQLite and came back
  as a 500; :func:`parse_resource_version` refuses anything that is not a non-negative
  64-bit integer with a 400.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from apimachinery.errors import RequestRefused

MAX_RESOURCE_VERSION = 2**63 - 1  # etcd's revision is an int64
WATCH_WINDOW = 1000  # events of the watched kind one watch may replay
FUTURE_WAIT = 3.0  # seconds a watch from a future resourceVersion waits (Kubernetes: 3 s)
PAGE_EVENTS = 100
PAGE_BYTES = 4 * 1024 * 1024


def parse_resource_version(text: str | None) -> int:
    """A watch's ``resourceVersion`` query parameter; ``""`` (or absent) is 0, "from now"."""
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_RESOURCE_VERSION:
        raise RequestRefused(f"invalid resource version {text[:40]!r}: must be a non-negative 64-bit integer",
                             code=400, reason="BadRequest")
    return int(text)


def too_old(rv: int, oldest: int) -> RequestRefused:
    """410 Gone, in the words of Kubernetes' watch cache."""
    return RequestRefused(f"too old resource version: {rv} ({oldest})", code=410, reason="Expired")


def check_window(rv: int, *, oldest: int, replay: int, window: int = WATCH_WINDOW) -> None:
    """Refuse a watch whose history is gone (``rv < oldest``) or longer than ``window`` events
    of its kind (``replay``: how many follow ``rv``, counted no further than ``window + 1``)."""
    if rv < oldest:
        raise too_old(rv, oldest)
    if replay > window:
        raise RequestRefused(f"too old resource version: {rv}: more than {window} events of this kind follow it; "
                             "list, then watch from the list's resourceVersion", code=410, reason="Expired")


def too_large(rv: int, current: int) -> RequestRefused:
    """504, as Kubernetes answers a resourceVersion its store has not reached."""
    return RequestRefused(f"Too large resource version: {rv}, current: {current}", code=504, reason="Timeout",
                          causes=[{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                          retry_after=1)


async def wait_for_revision(rv: int, current: Callable[[], int], *, timeout: float = FUTURE_WAIT,
                            poll: float = 0.05) -> None:
    """Return once ``current()`` reaches ``rv``; raise :func:`too_large` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while current() < rv:
        if time.monotonic() >= deadline:
            raise too_large(rv, current())
        await asyncio.sleep(poll)
