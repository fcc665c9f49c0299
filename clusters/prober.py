"""A member cluster's data-plane prober: it probes the other members' LB addresses and reports.

Part of data-plane health checking (issue 5, ``docs/failover.md``). The federation asks each
member, every data-plane period, with ``POST /probes``:

    {"targets": ["127.10.2.1:8000", ...], "period": 0.5, "timeout": 0.5, "failureThreshold": 2}

The member sets its target list (the other members' shards; the federation leaves the
member's own out), keeps probing them in the background at that rate, and answers with its
current view, one vote per address:

    {"cluster": "aws-us-east-1a", "verdicts": {"127.10.2.1:8000": "up", ...}, "messages": {...}}

The request goes through the API's chaos middleware like any other, so a member partitioned
from the control plane cannot vote, which is what a real partition does. The probes
themselves leave from the member, so they see what a client near that member would see.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from apimachinery.metrics import REGISTRY_KEY
from federation.probing import AddressProber
from apimachinery.errors import invalid

log = logging.getLogger("ubernetes.cluster.prober")


class MemberProber:
    def __init__(self, name: str) -> None:
        self.name = name
        self.prober = AddressProber()
        self._task: asyncio.Task[None] | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_post("/probes", self.handle)
        app.router.add_get("/probes", self.show)
        registry = app.get(REGISTRY_KEY)
        if registry is not None:  # the member's /metrics (issue 17)
            registry.register(self)  # type: ignore[arg-type]

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # collected live

    def collect(self) -> list[GaugeMetricFamily]:
        """``ubernetes_dataplane_vote{target, verdict}``: 1 for this member's current vote on
        each LB address it probes (``up``, ``down``, ``unknown`` before enough probes)."""
        family = GaugeMetricFamily("ubernetes_dataplane_vote",
                                   "This member's vote on another member's LB address: 1 for the current verdict.",
                                   labels=["target", "verdict"])
        for target, verdict in sorted(self.prober.verdicts().items()):
            for v in ("up", "down", "unknown"):
                family.add_metric([target, v], 1 if (verdict or "unknown") == v else 0)
        return [family]

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("targets", []), list):
            raise invalid("Probes", "probes", [("targets", "Invalid value: must be a list of \"ip:port\"")])
        p = self.prober
        p.period = float(body.get("period", p.period))
        p.timeout = float(body.get("timeout", p.timeout))
        p.failure_threshold = int(body.get("failureThreshold", p.failure_threshold))
        p.set_targets([str(t) for t in body.get("targets", [])])
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(p.run(), name="prober")
            log.info("probing %d LB address(es) of other members every %gs", len(body.get("targets", [])), p.period)
        return await self.show(request)

    async def show(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"cluster": self.name, "verdicts": self.prober.verdicts(), "messages": self.prober.messages()}
        return web.json_response(body)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
