"""The dashboard's routes on the federation API server: the page at ``/ui/`` and its
helpers under ``/ui/api/`` (DNS answers, fault buttons, experiment reports).

The static files are public (they hold no data); every ``/ui/api/`` call goes through the
API server's authentication like any API call (federation/api/auth.py), and the fault
buttons only for ``system:masters``. Faults are forwarded to the launcher's fault API
(federation/launch/control.py) with the launcher's own token: the API server is a
same-host client of it, sending the ``Host`` it expects and no ``Origin``, so the fault
API's protections against web pages stay as they are.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from apimachinery import errors as st
from apimachinery.client import APIClient
from federation.api.registry import Registry
from federation.resources import CLUSTERS, SERVICES
from federation.settings import Settings
from federation.ui import dnsanswers, reports

STATIC = Path(__file__).parent / "static"
# What a cluster's button asks of the launcher: its route and the body for one cluster.
FAULTS = {"crash": "crash", "partition": "partition", "blackhole": "blackhole", "heal": "heal"}
# An 18 s fast cluster-crash run wrote a 102 KB events.jsonl; the 260 s compare timeline at the
# same probe rates comes to about 1.5 MB: 32 MiB leaves room for long runs and faster probes.
REPORT_UPLOAD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class UIConfig:
    settings: Settings
    dns: tuple[str, int] | None = None  # the responder the DNS panel asks
    launcher_url: str | None = None  # the launcher's fault API (None: no fault buttons)
    launcher_token: str | None = None
    ca_file: str | None = None  # to verify the launcher's HTTPS certificate
    reports_dir: Path | None = None  # experiment reports the viewer lists (None: no report viewer)
    report_upload_bytes: int = REPORT_UPLOAD_BYTES


def places_of(service: dict[str, Any], clusters: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(zone, region) of every cluster holding a shard of ``service``."""
    by_name = {c["metadata"]["name"]: c.get("status") or {} for c in clusters}
    places = []
    for shard in (service.get("status") or {}).get("shards") or []:
        status = by_name.get(shard.get("cluster"), {})
        for zone in status.get("zones") or []:
            if status.get("region"):
                places.append((zone, status["region"]))
    return places


class UI:
    def __init__(self, registry: Registry, config: UIConfig) -> None:
        self.registry = registry
        self.config = config

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    async def info(self, request: web.Request) -> web.Response:
        s = self.config.settings
        return web.json_response({"federation": s.federation_name, "domain": s.domain,
                                  "dns": f"{self.config.dns[0]}:{self.config.dns[1]}" if self.config.dns else None,
                                  "faults": self.config.launcher_url is not None,
                                  "reports": self.config.reports_dir is not None})

    async def dns(self, request: web.Request) -> web.Response:
        if self.config.dns is None:
            raise st.APIError(503, "this API server was not told where the DNS responder is (--dns-responder)")
        ns, name = request.query.get("namespace", "default"), request.query.get("name", "")
        service = self.registry.get(SERVICES, ns, name)  # NotFound leaves as a Status
        clusters, _ = self.registry.list(CLUSTERS)
        s = self.config.settings
        names = dnsanswers.level_names(name, ns, federation=s.federation_name, domain=s.domain,
                                       places=places_of(service, clusters))
        host, port = self.config.dns
        return web.json_response({"service": f"{ns}/{name}", "answers": await dnsanswers.answers(names, host=host, port=port)})

    def _launcher(self) -> APIClient:
        if self.config.launcher_url is None:
            raise st.APIError(503, "the launcher's fault API is off for this API server (--launcher-url)")
        return APIClient(self.config.launcher_url, timeout=30.0, token=self.config.launcher_token,
                         ca_file=self.config.ca_file)

    async def faults(self, request: web.Request) -> web.Response:
        async with self._launcher() as launcher:
            return web.json_response(await _reach(launcher.get("/faults")))

    async def fault(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in FAULTS:
            raise st.APIError(404, f"unknown fault {action!r}; the dashboard knows {', '.join(FAULTS)}")
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise st.APIError(400, "the body must be JSON: {\"cluster\": NAME}") from None
        cluster = body.get("cluster") if isinstance(body, dict) else None
        if not isinstance(cluster, str) or not cluster:
            raise st.APIError(400, 'this fault needs {"cluster": NAME}')
        async with self._launcher() as launcher:
            return web.json_response(await _reach(launcher.post(f"/faults/{FAULTS[action]}", {"clusters": [cluster]})))

    def _reports(self) -> Path:
        if self.config.reports_dir is None:
            raise st.APIError(503, "this API server was not told where experiment reports are (--reports-dir)")
        return self.config.reports_dir

    async def report_list(self, request: web.Request) -> web.Response:
        # file reads, parsing and the figures run in a thread: the watches on this loop keep flowing
        return web.json_response({"kind": "ReportList", "items": await asyncio.to_thread(reports.list_reports, self._reports())})

    async def report(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(reports.open_report, self._reports(), request.match_info["name"]))

    async def report_picture(self, request: web.Request) -> web.StreamResponse:
        where = reports.resolve(self._reports(), request.match_info["name"])
        for picture in reports.PICTURES:
            if (where / picture).is_file():
                return web.FileResponse(where / picture, headers={"Content-Type": "image/png"})
        raise st.APIError(404, f'reports "{request.match_info["name"]}" has no picture (matplotlib was not installed for its run)')

    async def report_upload(self, request: web.Request) -> web.Response:
        root = self._reports()
        parts = await reports.read_upload(request, self.config.report_upload_bytes)
        return web.json_response(await asyncio.to_thread(reports.store_upload, root, parts), status=201)


async def _reach(call: Any) -> Any:
    try:
        return await call
    except OSError as err:
        raise st.APIError(502, f"cannot reach the launcher's fault API: {err}") from None


def install(app: web.Application, registry: Registry, config: UIConfig) -> None:
    ui = UI(registry, config)
    app.router.add_get("/ui", ui.redirect)
    app.router.add_get("/ui/", ui.index)
    app.router.add_static("/ui/static/", STATIC)
    app.router.add_get("/ui/api/info", ui.info)
    app.router.add_get("/ui/api/dns", ui.dns)
    app.router.add_get("/ui/api/faults", ui.faults)
    app.router.add_post("/ui/api/faults/{action}", ui.fault)
    app.router.add_get("/ui/api/reports", ui.report_list)
    app.router.add_post("/ui/api/reports", ui.report_upload)
    app.router.add_get("/ui/api/reports/{name:.+}/picture", ui.report_picture)
    app.router.add_get("/ui/api/reports/{name:.+}", ui.report)
