"""A small HTTP status endpoint, so an operator can see what the responder serves (the
document itself is :meth:`fedns.app.Responder.status_document`).

``GET /status`` returns JSON: the number of record sets, the zone serial, when the
records were last synced from the federation API and whether they are stale (the API is
unreachable and the responder is serving its last-known records), and replies by rcode.
``GET /healthz`` answers ``ok``; ``GET /metrics`` the same figures and more for Prometheus
(:mod:`fedns.metrics`, issue 17). Off unless ``--status-listen`` is given, because the DNS
port is the product and this one is for people and scrapers.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from apimachinery.metrics import METRICS_PATH, metrics_handler

log = logging.getLogger("fedns.status")


def iso_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def tcp_counters(server: Any) -> dict[str, int]:
    """Why TCP connections ended early (docs/dns.md, "Limits and hardening")."""
    if server is None:
        return {}
    return {
        "rejected": server.rejected,
        "rejectedPerClient": server.rejected_per_client,
        "closedIdle": server.closed_idle,
        "closedLifetime": server.closed_lifetime,
        "clients": len(server.per_client),
    }


class StatusServer:
    """Serves ``document()`` (the responder's :meth:`fedns.app.Responder.status_document`)."""

    def __init__(self, document: Callable[[], dict[str, Any]], *, host: str, port: int,
                 metrics: CollectorRegistry | None = None,
                 refresh: Callable[[], Awaitable[None]] | None = None) -> None:
        self.document = document
        self.metrics = metrics
        # Awaited before /status and /metrics answer: the workers of --workers N are asked
        # for their figures then (fedns.workers).
        self.refresh = refresh
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_get("/healthz", self._healthz)
        if self.metrics is not None:
            metrics = metrics_handler(self.metrics)
            if self.refresh is not None:
                refresh = self.refresh

                async def fresh_metrics(request: web.Request) -> web.StreamResponse:
                    await refresh()
                    return await metrics(request)

                app.router.add_get(METRICS_PATH, fresh_metrics)
            else:
                app.router.add_get(METRICS_PATH, metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - the bound port
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("status on http://%s:%d/status", self.host, self.port)

    async def _status(self, request: web.Request) -> web.Response:
        if self.refresh is not None:
            await self.refresh()
        return web.json_response(self.document())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
