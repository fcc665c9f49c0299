"""A small HTTP status endpoint, so an operator can see what the responder serves.

``GET /status`` returns JSON: the number of record sets, the zone serial, when the
records were last synced from the federation API and whether they are stale (the API is
unreachable and the responder is serving its last-known records), and replies by rcode.
``GET /healthz`` answers ``ok``. Off unless ``--status-listen`` is given, because the DNS
port is the product and this one is for people.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from fedns.app import Responder

log = logging.getLogger("fedns.status")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _tcp_counters(server: Any) -> dict[str, int]:
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


def status_document(responder: "Responder") -> dict[str, Any]:
    view, handler, sync = responder.view, responder.handler, responder.sync
    return {
        "records": len(view.recordsets),
        "objects": len(view.specs),
        "serial": view.serial,
        "zones": list(view.config.apexes),
        "identity": handler.identity,
        "lastSync": _iso(sync.last_sync) if sync else None,
        "lastChange": _iso(view.last_change),
        "stale": sync.stale if sync else False,
        "federation": sync.client.base_url if sync else None,
        "lastError": sync.last_error if sync else None,
        "queries": handler.stats(),
        "dropped": handler.dropped,
        "truncated": handler.truncated,
        "errors": handler.errors,
        "tcpConnections": len(responder.server.connections) if responder.server else 0,
        "tcp": _tcp_counters(responder.server),
        "problems": list(view.problems),
        "transfers": handler.transfers,
        "refusedTransfers": handler.refused_transfers,
        "notify": {
            "sent": responder.notifier.sent,
            "acked": responder.notifier.acked,
            "failed": responder.notifier.failed,
        },
    }


class StatusServer:
    def __init__(self, responder: "Responder", *, host: str, port: int) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - the bound port
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("status on http://%s:%d/status", self.host, self.port)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(status_document(self.responder))

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
