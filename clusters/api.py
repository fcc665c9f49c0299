"""The member cluster's Kubernetes-shaped HTTP API (aiohttp).

What the federation, the tests, kubectl and a curious human talk to. It is the generic API
server (:mod:`apimachinery.server`, issue 11) with the member's kinds (:data:`federation.
resources.MEMBER`: nodes, namespaces, services, endpoints, pods, events, deployments and
replicasets, each with the verbs it really has) over the simulated state
(:mod:`clusters.apistorage`), so a member answers every request the federation's API server
answers with the same codes and ``Status`` bodies, the same selectors, field validation,
patches, server-side apply conflicts, dry run and watch semantics.

What only a member has: ``/info`` (where this simulated cluster is) and ``/chaos`` (the
fault switches, :mod:`clusters.chaos`); the chaos middleware sits outside everything except
``/chaos`` itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from apimachinery import decoding, metrics, server, watchlimits
from clusters import clusterdns, podstreams
from clusters.apistorage import MemberStorage
from clusters.chaos import Chaos
from clusters.state import ClusterState
from clusters.watch import ChangeFeed
from apimachinery.kinds import Kind
from federation.api import reviews
from federation import tables
from federation.resources import MEMBER, REVIEWS

log = logging.getLogger("ubernetes.cluster.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE = web.AppKey("state", ClusterState)
CHAOS = web.AppKey("chaos", Chaos)
ON_CHAOS = web.AppKey("on_chaos", object)
LB_POOL = web.AppKey("lb_pool", str)
FEED = web.AppKey("feed", ChangeFeed)


# --------------------------------------------------------------------------- middlewares


@web.middleware
async def chaos_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/chaos":
        return await handler(request)
    chaos = request.app[CHAOS]
    if chaos.partitioned or (request.path == "/healthz" and chaos.drop_probe()):
        _drop(request)
        return web.Response(status=503)  # never sent: the transport is already gone
    if chaos.apiLatency > 0:
        await asyncio.sleep(chaos.apiLatency)
    return await handler(request)


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


class MemberHooks(server.Hooks):
    """A member has one role: a request that got past its token check may do anything."""

    def review(self, request: web.Request, res: Kind, body: dict[str, Any]) -> dict[str, Any]:
        user = reviews.MEMBER_ADMIN if request.headers.get("Authorization") else None
        return reviews.answer(res.kind, body, user, reviews.everyone_may(
            "a member cluster has one role: any request it lets in may do anything"))


# --------------------------------------------------------------------------- member-only handlers


async def info(request: web.Request) -> web.Response:
    """Not a Kubernetes path: where this simulated cluster is, for humans and the launcher."""
    state = request.app[STATE]
    t = state.topology
    return web.json_response(
        {
            "name": t.name,
            "region": t.region,
            "zones": t.zones,
            "provider": t.provider,
            "podCIDR": t.pod_cidr,
            "lbPool": request.app[LB_POOL],
            "nodes": sorted(state.nodes),
            "services": len(state.services),
            "pods": len(state.pods),
        }
    )


async def get_chaos(request: web.Request) -> web.Response:
    return web.json_response(request.app[CHAOS].to_dict())


async def post_chaos(request: web.Request) -> web.Response:
    chaos = request.app[CHAOS]
    before = chaos.to_dict()
    chaos.apply(await server.read_body(request, "chaos switches"))
    return _chaos_changed(request, before)


async def delete_chaos(request: web.Request) -> web.Response:
    chaos = request.app[CHAOS]
    before = chaos.to_dict()
    chaos.heal()
    return _chaos_changed(request, before)


def _chaos_changed(request: web.Request, before: dict[str, Any]) -> web.Response:
    after = request.app[CHAOS].to_dict()
    changes = {k: v for k, v in after.items() if before.get(k) != v}
    if changes:
        log.warning("chaos: %s", json.dumps(changes, sort_keys=True))
    hook = request.app.get(ON_CHAOS)
    if callable(hook):
        hook()
    return web.json_response(after)


# --------------------------------------------------------------------------- app


def change_feed(state: ClusterState) -> ChangeFeed:
    """The watch feed over every kind the member serves; ``state.on_change`` also wakes it."""
    w = state.workloads
    feed = ChangeFeed(
        {
            "nodes": lambda: state.nodes.values(),
            "namespaces": lambda: state.namespaces.values(),
            "services": lambda: state.services.values(),
            "endpoints": lambda: state.endpoints.values(),
            "pods": lambda: state.pods.values(),
            "events": lambda: state.events.values(),
            "deployments": lambda: w.deployments.values(),
            "replicasets": lambda: w.replicasets.values(),
            # issue 14 (clusters/mcs.py)
            "serviceexports": lambda: state.mcs.exports.values(),
            "serviceimports": lambda: state.mcs.imports.values(),
            "clusterproperties": lambda: state.mcs.properties.values(),
            "configmaps": lambda: state.plain.configmaps.values(),
            "secrets": lambda: state.plain.secrets.values(),
            # issue 14 (clusters/statefulsets.py)
            "statefulsets": lambda: state.stateful.sets.values(),
            "petsets": lambda: state.stateful.petsets.values(),
            "persistentvolumeclaims": lambda: state.stateful.claims.values(),
            # issue 15: kept in state.plain, run by clusters/jobs.py and clusters/daemonsets.py
            "jobs": lambda: state.plain.jobs.values(),
            "cronjobs": lambda: state.plain.cronjobs.values(),
            "daemonsets": lambda: state.plain.daemonsets.values(),
            "ingresses": lambda: state.plain.ingresses.values(),
        },
        next_rv=state.next_rv,
    )
    previous = state.on_change

    def on_change() -> None:
        # Every change, watched or not: a watch that resumes from a resourceVersion must hear
        # each change after it, not one diff of several (the federation's informers watch
        # every member anyway, so this is what a member does in practice).
        previous()
        feed.sync()

    state.on_change = on_change
    return feed


FEED_TASK = web.AppKey("feed_task", asyncio.Task)


async def _start_feed(app: web.Application) -> None:
    app[FEED_TASK] = asyncio.get_running_loop().create_task(app[FEED].run())


async def _stop_feed(app: web.Application) -> None:
    task = app.get(FEED_TASK)
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def make_app(*, state: ClusterState, chaos: Chaos, on_chaos: Callable[[], None] | None = None, lb_pool: str = "",
             watch_window: int = watchlimits.WATCH_WINDOW, future_wait: float = watchlimits.FUTURE_WAIT,
             watch_ping: float = 5.0, seccomp_root: str = "") -> web.Application:
    app = web.Application(middlewares=[chaos_middleware, server.status_middleware],
                          client_max_size=decoding.MAX_REQUEST_BYTES)
    # /metrics (issue 17): a registry of this cluster's own, as one process may host many
    app.middlewares.insert(0, metrics.install(app))
    app[STATE] = state
    app[CHAOS] = chaos
    app[ON_CHAOS] = on_chaos
    app[LB_POOL] = lb_pool
    app[FEED] = change_feed(state)
    app.on_startup.append(_start_feed)
    app.on_cleanup.append(_stop_feed)
    api = server.ResourceAPI(MEMBER + REVIEWS, MemberStorage(state, app[FEED]),
                             tables.KindTables(tables.MEMBER_CLUSTER_PRINTERS), hooks=MemberHooks(),
                             watch_ping=watch_ping, watch_window=watch_window, future_wait=future_wait)
    podstreams.routes(app, pods=state.pods, seccomp_root=seccomp_root,  # pods/log, pods/exec (issue 14)
                      resolve=lambda name, ns: clusterdns.lookup(name, namespace=ns, services=state.services,
                                                                 endpoints=state.endpoints))
    api.routes(app)
    r = app.router
    r.add_get("/info", info)
    r.add_get("/chaos", get_chaos)
    r.add_post("/chaos", post_chaos)
    r.add_patch("/chaos", post_chaos)
    r.add_delete("/chaos", delete_chaos)
    return app
