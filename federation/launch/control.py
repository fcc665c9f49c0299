"""The launcher's fault API: the faults that need the process table, over HTTP (issue 5).

``ubernetes up`` serves this next to the federation (``--control-listen``, default
``127.0.0.1:8079``) so that ``ubernetes chaos crash|start|flap|zone-down|region-down|
stop-api|start-api|kill-apiserver|kill-leader|kill-etcd|partition-etcd|heal`` can reach
processes only the launcher holds. Every route is a
POST with a JSON body and answers with the launcher's view (``GET /faults``):

| route | body | does |
|---|---|---|
| ``/faults/crash`` | ``{"clusters": [...]}`` or ``{"zone": z}`` or ``{"region": r}`` | SIGKILL those members |
| ``/faults/start`` | the same | start them again (they rejoin by themselves) |
| ``/faults/flap`` | ``{"cluster": c, "period": k}`` | kill, wait k s, start, wait k s, ... |
| ``/faults/stop-api``, ``/faults/start-api`` | none | SIGKILL / start the federation API server(s) |
| ``/faults/kill-apiserver``, ``/faults/start-apiserver`` | ``{"index": n}`` | SIGKILL / start API server n (HA) |
| ``/faults/kill-leader`` | none | SIGKILL the API server holding the controllers' Lease |
| ``/faults/kill-etcd``, ``/faults/start-etcd`` | ``{"index": n}`` | SIGKILL / start etcd member n (HA) |
| ``/faults/partition-etcd``, ``/faults/heal-etcd`` | ``{"index": n}`` | cut API server n off from etcd / heal it |
| ``/faults/partition``, ``/faults/blackhole`` | ``{"clusters": [...]}`` | flip those members' own switch (the dashboard's buttons) |
| ``/faults/heal`` | ``{"clusters": [...]}`` | start those members if stopped, else clear their switches |
| ``/faults/heal`` | none | stop every flap, heal etcd links, start every stopped etcd member, member and API server |

Indices are 0-based, in the order ``GET /faults`` lists them.

In netns mode (``up --netns``, issue 16) the network faults are packet-level instead
(:class:`federation.launch.netnsrun.PacketFaults`: iptables, links, our delaying relay),
and ``GET /faults`` says ``"mode": "netns"`` so ``ubernetes chaos`` sends them here:

| route | body | does |
|---|---|---|
| ``/faults/partition`` | ``{"cluster": c, "direction": "both"\|"in"\|"out"}`` (or ``"clusters"``) | drop packets between c and the federation API |
| ``/faults/blackhole`` | ``{"cluster": c}`` (or ``"clusters"``) | drop TCP to c's LB pool |
| ``/faults/loss`` | ``{"cluster": c, "percent": p, "direction": ...}`` | drop p % of c's packets at random |
| ``/faults/latency`` | ``{"cluster": c, "ms": m, "jitterMs": j}`` | delay c's answers by m +- j ms |
| ``/faults/link-down`` | ``{"cluster": c}`` or ``{"zone": z}`` or ``{"region": r}`` | their links down |
| ``/faults/flap`` | the same and ``"period": k`` | their links down k s, up k s, ... |
| ``/faults/slow-dns`` | ``{"ms": m, "jitterMs": j}`` | delay the DNS responder's answers |
| ``/faults/heal`` | ``{"clusters": [...]}`` or none | also heals the packet faults on those (or all) |

The API can SIGKILL every process, so it admits only its own user (issue 19):

- with tokens on (the default), every request needs the admin's bearer token, and the API
  serves HTTPS with the demo certificate, so the token never crosses plain HTTP;
- the ``Host`` header must name the listener (a loopback name or the listen address), which
  defeats DNS rebinding; a request carrying an ``Origin`` other than the listener's is
  refused, so a web page in the user's browser cannot post to it;
- a POST body must be ``application/json`` (a cross-site form or ``text/plain`` POST is
  refused with 415 before anything runs).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web

from apimachinery.serving import start_site
from federation.launch.localfed import LocalFederation
from apimachinery.errors import APIError, status_object
from federation.planners import history
from federation.planners.history import DOWN, UP
from federation.resources import FAILOVERRECORDS

log = logging.getLogger("federation.launch.control")

FED = web.AppKey("fed", LocalFederation)
HOSTS = web.AppKey("hosts", frozenset)
PACKET = web.AppKey("packet", object)  # netnsrun.PacketFaults in netns mode, else None
PACKET_VERBS = ("partition", "blackhole", "loss", "latency", "link-down", "flap", "slow-dns")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


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


def _index(body: dict[str, Any]) -> int:
    try:
        return int(body["index"])
    except (KeyError, TypeError, ValueError):
        raise APIError(400, 'this fault needs {"index": N} (0-based; GET /faults lists them)') from None


async def state(fed: LocalFederation, packet: Any = None) -> dict[str, Any]:
    leader = await fed.leader() if len(fed.api_ports) > 1 else None
    return {
        "mode": "netns" if packet is not None else "app",
        **({"packetFaults": packet.state()} if packet is not None else {}),
        "apiserver": "running" if fed.api_running(0) else "stopped",
        "apiservers": [
            {"index": i, "url": fed.replica_url(i), "state": "running" if fed.api_running(i) else "stopped",
             "leader": i == leader, "etcdPartitioned": bool(fed.relays and fed.relays[i][0].partitioned)}
            for i in range(len(fed.api_ports))
        ],
        "etcd": [{"index": i, "endpoint": m.endpoint, "state": "running" if m.proc is not None else "stopped"}
                 for i, m in enumerate(fed.etcd.members)] if fed.etcd is not None else [],
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
        packet = request.app[PACKET]
        if packet is not None and action == "heal":  # then the app-level heal below as well
            await packet.heal(_names(fed, body) if body else None)
        if packet is not None and action in PACKET_VERBS:
            await packet_fault(fed, packet, action, body)
        elif action == "crash":
            names, at = _names(fed, body), time.time()
            await fed.crash(names)
            await record_faults(fed, names, at, direction=DOWN, message="chaos crash: {} SIGKILLed by the launcher")
        elif action == "start":
            names, at = _names(fed, body), time.time()
            await fed.restart(names)
            await record_faults(fed, names, at, direction=UP, message="chaos start: {} started again by the launcher")
        elif action == "flap":
            name = _names(fed, {"clusters": [body.get("cluster")]})[0]
            fed.start_flap(name, period=float(body.get("period", 5)))
        elif action == "stop-api":
            await fed.stop_api()
        elif action == "start-api":
            await fed.start_api()
        elif action == "kill-apiserver":
            await fed.stop_api(_replica(fed, body))
        elif action == "start-apiserver":
            await fed.start_api(_replica(fed, body))
        elif action == "kill-leader":
            await fed.kill_leader()
        elif action == "kill-etcd":
            await fed.kill_etcd(_index(body))
        elif action == "start-etcd":
            await fed.start_etcd_member(_index(body))
        elif action in ("partition-etcd", "heal-etcd"):
            fed.partition_etcd(_index(body), heal=action == "heal-etcd")
        elif action in ("partition", "blackhole"):  # a member's own switch (the dashboard's buttons)
            for name in _names(fed, body):
                await fed.chaos(name, {"partitioned": True} if action == "partition" else {"dataPlaneBlackholed": True})
        elif action == "heal" and body:  # these clusters only: started if stopped, switches cleared
            names = _names(fed, body)
            for name in names:
                fed.stop_flap(name)
            stopped = [n for n in names if not (fed.children.get(n) and fed.children[n].running)]
            await fed.restart(stopped)
            for name in set(names) - set(stopped):
                await fed.chaos(name, None)
        elif action == "heal":
            for name in list(fed._flaps):
                fed.stop_flap(name)
            await fed.heal_control_plane()
            await fed.restart([c.name for c in fed.topology.clusters])
        else:
            raise APIError(404, f"unknown fault action {action!r}")
    except APIError as err:
        body = err.to_status()
        return web.json_response(body, status=body["code"])
    except (ValueError, TypeError) as err:
        return web.json_response(status_object(400, f"bad request: {err}"), status=400)
    return web.json_response(await state(fed, request.app[PACKET]))


async def packet_fault(fed: LocalFederation, packet: Any, action: str, body: dict[str, Any]) -> None:
    """One chaos verb as a packet-level fault (netns mode); bad input is a 400 or 404 Status."""
    from federation.launch.netnsplan import NetnsPlanError

    params = {"direction": str(body.get("direction", "both")), "percent": float(body.get("percent", 0)),
              "ms": float(body.get("ms", 0)), "jitter_ms": float(body.get("jitterMs", 0)),
              "period": float(body.get("period", 5))}
    if action == "slow-dns":
        selections: list[dict[str, Any]] = [{}]
    elif action in ("link-down", "flap") and (body.get("zone") or body.get("region")):
        _names(fed, body)  # a 404 naming the known clusters when nothing matches
        selections = [{"zone": body.get("zone") or None, "region": body.get("region") or None}]
    else:
        names = _names(fed, {"clusters": body.get("clusters") or [body.get("cluster")]})
        selections = [{"cluster": n} for n in names]
    try:
        for where in selections:
            await packet.apply(action, **where, **params)
    except NetnsPlanError as err:
        raise APIError(400, str(err)) from None


async def record_faults(fed: LocalFederation, names: list[str], at: float, *, direction: str, message: str) -> None:
    """The failover history's Fault step of each member (issue 17): the incident its probes,
    votes and verdict join. A federation that cannot take it (stopped API) loses only this."""
    when = datetime.fromtimestamp(at, timezone.utc)
    for name in names:
        incident = history.incident_id(name, direction, when)
        step = history.Step(when, history.FAULT, message.format(name), cluster=name,
                            details={"direction": direction, "source": "launcher"})
        try:
            await fed.api.post(FAILOVERRECORDS.path(), history.record_object(step, incident=incident, since_fault=0.0))
        except Exception as err:  # noqa: BLE001 - the fault happened; its record is a nicety
            log.warning("could not record the fault of %s: %s", name, err)


def _replica(fed: LocalFederation, body: dict[str, Any]) -> int:
    index = _index(body)
    if not 0 <= index < len(fed.api_ports):
        raise APIError(404, f"no API server {index}; there are {len(fed.api_ports)} (0-based)")
    return index


async def show(request: web.Request) -> web.Response:
    return web.json_response(await state(request.app[FED], request.app[PACKET]))


def _refuse(code: int, message: str) -> web.Response:
    return web.json_response(status_object(code, message), status=code)


def refusal(request: web.Request) -> web.Response | None:
    """Why ``request`` may not reach the fault API, as a ``Status`` response (None: it may)."""
    hosts = request.app[HOSTS]
    if request.headers.get("Host", "").lower() not in hosts:
        return _refuse(403, "the Host header does not name this fault API")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower().split("://", 1)[-1] not in hosts:
        return _refuse(403, f"cross-origin requests are refused (Origin {origin})")
    token = request.app[FED].admin_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _refuse(401, "the fault API needs the federation admin's bearer token")
    if request.method == "POST" and request.content_type != "application/json":
        return _refuse(415, f"the body must be application/json, not {request.content_type or 'empty'}")
    return None


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    return refusal(request) or await handler(request)


def listener_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` values that name a listener on ``host:port``."""
    shown = f"[{host}]" if ":" in host else host
    return frozenset(f"{name.lower()}:{port}" for name in (*LOOPBACK_NAMES, shown))


async def start_control(fed: LocalFederation, host: str, port: int, *, packet: Any = None,
                        also: tuple[str, ...] = ()) -> web.AppRunner:
    """The fault API on ``host:port``, and on ``also`` (netns mode: the root namespace's link
    address, so the API server's dashboard in its own namespace reaches it) on the same port."""
    app = web.Application(middlewares=[guard])
    app[FED] = fed
    app[PACKET] = packet
    app[HOSTS] = frozenset().union(*(listener_hosts(h, port) for h in (host, *also)))
    app.router.add_get("/faults", show)
    app.router.add_post("/faults/{action}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    for where in (host, *also):
        await start_site(runner, where, port, ssl_context=fed.server_ssl_context())
    return runner


def control_url(fed: LocalFederation, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if fed.tls else 'http'}://{shown}:{port}"
