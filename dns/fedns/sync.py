"""Keeps the responder's view in step with the federation's DNSRecord objects.

List, then watch from the list's resourceVersion, as every Kubernetes informer does:

- ADDED and MODIFIED put the object's spec in the view, DELETED removes it, BOOKMARK
  only moves the resourceVersion on;
- a watch that ends normally (the server's or our own timeout) is resumed from the last
  resourceVersion, without a relist;
- ``410 Gone`` (the history we asked for is gone) relists at once;
- any other failure (connection refused, reset, a 5xx) keeps the last-known records
  serving, marks the view stale, and retries with exponential backoff and jitter
  capped at ``max_backoff`` (2 s); the next success is a relist, because an API server
  that restarted may have a different history (a ``:memory:`` store starts again at 1).

The loop is tiny (:meth:`RecordSync.run`) and the steps it drives (:meth:`RecordSync.relist`,
:meth:`RecordSync.watch_once`) are separate, so tests can drive them one by one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

from apimachinery.client import APIClient
from apimachinery.errors import APIError, Gone

from fedns.view import ZoneView

log = logging.getLogger("fedns.sync")

DNSRECORDS = "/apis/federation/v1beta1/dnsrecords"


class RecordSync:
    def __init__(
        self,
        client: APIClient,
        view: ZoneView,
        *,
        path: str = DNSRECORDS,
        max_backoff: float = 2.0,
        first_backoff: float = 0.05,
        watch_timeout: float = 300.0,
        idle_timeout: float | None = 15.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.view = view
        self.path = path
        self.max_backoff = max_backoff
        self.first_backoff = first_backoff
        self.watch_timeout = watch_timeout
        # The API server sends a BOOKMARK every 5 s on an idle watch; 15 s of silence is a
        # hung server, noticed then instead of at the end of the 300 s watch.
        self.idle_timeout = idle_timeout
        self.rng = rng
        self.resource_version: str | None = None
        self.connected = False
        self.last_sync: float | None = None  # wall time of the last list or event received
        self.last_error: str | None = None
        self.relists = 0
        self.failures = 0

    @property
    def stale(self) -> bool:
        """True while the API cannot be reached (or before the first list)."""
        return not self.connected

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential, with jitter in the upper half."""
        ceiling = min(self.max_backoff, self.first_backoff * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self.rng())

    async def run(self) -> None:
        attempt = gone = 0
        while True:
            try:
                if self.resource_version is None:
                    await self.relist()
                started = time.monotonic()
                events = await self.watch_once()
                attempt = gone = 0
                if events == 0 and time.monotonic() - started < 0.5:
                    await asyncio.sleep(self.first_backoff)  # a server that ends watches at once
            except asyncio.CancelledError:
                raise
            except APIError as err:
                if isinstance(err, Gone):
                    log.info("watch of %s expired (410 Gone); relisting", self.path)
                    self.resource_version = None
                    gone += 1
                    if gone > 1:  # 410 even from a fresh list: do not spin
                        await asyncio.sleep(self.backoff(gone - 1))
                    continue
                attempt = await self._failed(attempt, f"{err.code} {err.message}")
            except Exception as err:  # connection refused, reset, bad JSON, ...
                attempt = await self._failed(attempt, f"{type(err).__name__}: {err}".rstrip(": "))

    async def _failed(self, attempt: int, why: str) -> int:
        attempt += 1
        self.failures += 1
        if self.connected or attempt == 1:
            log.warning(
                "federation API %s unreachable (%s); serving the last-known %d record sets, retrying",
                self.client.base_url,
                why,
                self.view.record_count,
            )
        self.connected = False
        self.last_error = why
        self.resource_version = None  # relist when the API returns
        await asyncio.sleep(self.backoff(attempt))
        return attempt

    async def relist(self) -> None:
        body = await self.client.get(self.path)
        if not isinstance(body, dict):
            raise ValueError(f"GET {self.path} did not return a list")
        items = body.get("items") or []
        specs = {}
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            if name:
                specs[name] = item.get("spec") or {}
        self.view.replace(specs)
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        if self.resource_version is None:
            self.resource_version = "0"
        if not self.connected:
            log.info("synced %d DNSRecord objects from %s", len(specs), self.client.base_url)
        self.connected = True
        self.last_sync = time.time()
        self.last_error = None
        self.relists += 1

    async def watch_once(self) -> int:
        """Apply events until the stream ends; returns how many arrived."""
        count = 0
        started = time.monotonic()
        try:
            async for event in self.client.watch(
                self.path, resource_version=self.resource_version, timeout=self.watch_timeout,
                idle_timeout=self.idle_timeout,
            ):
                count += 1
                self.apply(event)
        except asyncio.TimeoutError:
            if time.monotonic() - started < self.watch_timeout - 1:
                # Silent past idle_timeout: no event and no bookmark, so the server hangs.
                raise ConnectionError(f"no event or bookmark for {self.idle_timeout:g}s") from None
            # our own watch timeout: resume from the last resourceVersion
        return count

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if kind in ("ADDED", "MODIFIED") and name:
            self.view.put(name, obj.get("spec") or {})
        elif kind == "DELETED" and name:
            self.view.delete(name)
        rv = meta.get("resourceVersion")
        if rv:
            self.resource_version = str(rv)
        self.connected = True
        self.last_sync = time.time()
