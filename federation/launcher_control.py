"""The launcher's fault API: the faults that need the process table, over HTTP (issue 5).

``ubernetes up`` serves this next to the federation (``--control-listen``, default
``127.0.0.1:8079``) so that ``ubernetes chaos crash|start|flap|zone-down|region-down|
stop-api|start-api|heal-all`` can reach processes only the launcher holds. Every route is a
POST with a JSON body and answers with the launcher's view (``GET /faults``):

| route | body | does |
|---|---|---|
| ``/faults/crash`` | ``{"clusters": [...]}`` or ``{"zone": z}`` or ``{"region": r}`` | SIGKILL those members |
| ``/faults/start`` | the same | start them again (they rejoin by themselves) |
| ``/faults/flap`` | ``{"cluster": c, "period": k}`` | kill, wait k s, start, wait k s, ... |
| ``/faults/stop-api``, ``/faults/start-api`` | none | SIGKILL / start the federation API server |
| ``/faults/heal`` | none | stop every flap, start every stopped member and the API |
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from federation.localfed import LocalFederation
from federation.status import APIError, status_object

FED = web.AppKey("fed", LocalFederation)


def _names(fed: LocalFederation, body: dict[str, Any]) -> list[str]:
    if body.get("zone"):
        names = fed.clusters_in(zone=str(body["zone"]))
    elif body.get("region"):
        names = fed.clusters_in(region=str(body["region"]))
    else:
        names = [str(n) for n in body.get("clusters") or []]
    known = {c.name for c in fed.topology.clusters}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise APIError(404, f"no such cluster(s): {', '.join(unknown) or '(none selected)'}; known: {', '.join(sorted(known))}")
    return names


def state(fed: LocalFederation) -> dict[str, Any]:
    return {
        "apiserver": "running" if fed.children.get("apiserver") and fed.children["apiserver"].running else "stopped",
        "clusters": {c.name: ("running" if fed.children.get(c.name) and fed.children[c.name].running else "stopped")
                     for c in fed.topology.clusters},
        "flapping": sorted(fed._flaps),
    }


async def handle(request: web.Request) -> web.Response:
    fed = request.app[FED]
    action = request.match_info["action"]
    try:
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise APIError(400, "the body must be a JSON object")
        if action == "crash":
            await fed.crash(_names(fed, body))
        elif action == "start":
            await fed.restart(_names(fed, body))
        elif action == "flap":
            name = _names(fed, {"clusters": [body.get("cluster")]})[0]
            fed.start_flap(name, period=float(body.get("period", 5)))
        elif action == "stop-api":
            await fed.stop_api()
        elif action == "start-api":
            await fed.start_api()
        elif action == "heal":
            for name in list(fed._flaps):
                fed.stop_flap(name)
            if not (fed.children.get("apiserver") and fed.children["apiserver"].running):
                await fed.start_api()
            await fed.restart([c.name for c in fed.topology.clusters])
        else:
            raise APIError(404, f"unknown fault action {action!r}")
    except APIError as err:
        body = err.to_status()
        return web.json_response(body, status=body["code"])
    except (ValueError, TypeError) as err:
        return web.json_response(status_object(400, f"bad request: {err}"), status=400)
    return web.json_response(state(fed))


async def show(request: web.Request) -> web.Response:
    return web.json_response(state(request.app[FED]))


async def start_control(fed: LocalFederation, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app[FED] = fed
    app.router.add_get("/faults", show)
    app.router.add_post("/faults/{action}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
