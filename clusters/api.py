"""The member cluster's Kubernetes-shaped HTTP API (aiohttp).

What the federation, the tests and a curious human talk to: ``/healthz``, ``/version``,
nodes, namespaces, and namespaced services (full CRUD), endpoints, pods and events (read
only), in the paths and shapes of the real API server so that ``kubectl --server`` and the
federation's controllers need no special cases. ``/chaos`` flips the fault switches.

Every error leaves as a Kubernetes ``Status`` (the middleware renders
:class:`~federation.status.APIError`, aiohttp's own HTTP errors and unexpected exceptions
alike), so a malformed request is a 4xx that names the problem and never takes the process
down. The chaos middleware sits outside everything except ``/chaos`` itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import sys
from typing import Any, Awaitable, Callable

from aiohttp import web

from clusters.chaos import Chaos
from clusters.state import ClusterState, filter_by_selector
from clusters.workloads import deletion_policy
from federation.meta import SelectorError, check_dns_label
from federation.status import APIError, not_found, status_object

log = logging.getLogger("ubernetes.cluster.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json", "application/json")
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-ubernetes",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
    "compiler": platform.python_implementation().lower(),
    "platform": f"{sys.platform}/{platform.machine() or 'unknown'}",
}
RESOURCES = [
    ("nodes", "Node", False, ["get", "list"]),
    ("namespaces", "Namespace", False, ["create", "get", "list"]),
    ("services", "Service", True, ["create", "delete", "get", "list", "patch", "update"]),
    ("services/status", "Service", True, ["get"]),
    ("endpoints", "Endpoints", True, ["get", "list"]),
    ("pods", "Pod", True, ["delete", "get", "list"]),
    ("events", "Event", True, ["get", "list"]),
]
APPS_RESOURCES = [
    ("deployments", "Deployment", True, ["create", "delete", "get", "list", "patch", "update"]),
    ("deployments/status", "Deployment", True, ["get"]),
    ("replicasets", "ReplicaSet", True, ["delete", "get", "list"]),
]

STATE = web.AppKey("state", ClusterState)
CHAOS = web.AppKey("chaos", Chaos)
ON_CHAOS = web.AppKey("on_chaos", object)
LB_POOL = web.AppKey("lb_pool", str)


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


@web.middleware
async def status_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as err:
        return status_response(err.to_status())
    except web.HTTPException as err:
        if err.status < 400:
            raise
        message = {
            404: f"the server could not find the requested resource ({request.method} {request.path})",
            405: f"the server does not allow this method on the requested resource ({request.method} {request.path})",
            413: "the request body is too large",
        }.get(err.status, err.text or err.reason)
        return status_response(status_object(err.status, message))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as err:  # never let a request take the process down
        log.exception("internal error serving %s %s", request.method, request.path)
        return status_response(status_object(500, f"internal error: {type(err).__name__}: {err}"))


def status_response(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=body["code"])


# --------------------------------------------------------------------------- helpers


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise APIError(400, "the request body is empty; expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise APIError(400, "the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise APIError(400, f"invalid JSON in request body: {err.msg} at line {err.lineno} column {err.colno}") from None


def list_response(kind: str, items: list[dict[str, Any]], state: ClusterState, request: web.Request) -> web.Response:
    if request.query.get("watch") in ("1", "true", "True"):
        raise APIError(405, "watch is not supported by the simulated member cluster; list instead", reason="MethodNotAllowed")
    try:
        selected = filter_by_selector(items, request.query.get("labelSelector"))
    except SelectorError as err:
        raise APIError(400, str(err)) from None
    selected.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return web.json_response(
        {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": state.resource_version}, "items": selected}
    )


def _ns_items(objects: dict, request: web.Request) -> list[dict[str, Any]]:
    ns = request.match_info.get("ns")
    return [o for (n, _), o in objects.items() if ns is None or n == ns]


def _one(objects: dict, request: web.Request, plural: str) -> dict[str, Any]:
    key = (request.match_info["ns"], request.match_info["name"])
    try:
        return objects[key]
    except KeyError:
        raise not_found(plural, key[1]) from None


# --------------------------------------------------------------------------- handlers


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok", content_type="text/plain")


async def version(request: web.Request) -> web.Response:
    return web.json_response(VERSION)


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


async def api_versions(request: web.Request) -> web.Response:
    host = request.host or ""
    return web.json_response(
        {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
    )


async def api_resources(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {"name": n, "singularName": "" if "/" in n else k.lower(), "namespaced": ns, "kind": k, "verbs": v}
                for n, k, ns, v in RESOURCES
            ],
        }
    )


async def api_groups(request: web.Request) -> web.Response:
    apps = {"groupVersion": "apps/v1", "version": "v1"}
    return web.json_response(
        {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps", "versions": [apps], "preferredVersion": apps}]}
    )


async def apps_resources(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "kind": "APIResourceList",
            "groupVersion": "apps/v1",
            "resources": [
                {"name": n, "singularName": "" if "/" in n else k.lower(), "namespaced": ns, "kind": k, "verbs": v,
                 **({"shortNames": ["deploy"]} if n == "deployments" else {"shortNames": ["rs"]} if n == "replicasets" else {})}
                for n, k, ns, v in APPS_RESOURCES
            ],
        }
    )


# ---- workloads (issue 7): Deployments, ReplicaSets, deleting pods


def apps_list_response(kind: str, items: list[dict[str, Any]], state: ClusterState, request: web.Request) -> web.Response:
    resp = list_response(kind, items, state, request)
    body = json.loads(resp.body)  # type: ignore[arg-type]
    body["apiVersion"] = "apps/v1"
    return web.json_response(body)


async def delete_options(request: web.Request) -> str:
    """The propagation policy of a DELETE (DeleteOptions body or query), Background by default."""
    raw = await request.read()
    options = None
    if raw.strip():
        try:
            options = json.loads(raw)
        except ValueError:
            raise APIError(400, "DeleteOptions is not valid JSON") from None
    return deletion_policy(options, dict(request.query))


async def list_deployments(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return apps_list_response("Deployment", _ns_items(state.workloads.deployments, request), state, request)


async def create_deployment(request: web.Request) -> web.Response:
    ns = request.match_info["ns"]
    _check_ns(ns)
    obj = request.app[STATE].workloads.create_deployment(ns, await read_json(request))
    log.info("deployment %s/%s created (%d replicas)", ns, obj["metadata"]["name"], obj["spec"]["replicas"])
    return web.json_response(obj, status=201)


async def get_deployment(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].workloads.get_deployment(request.match_info["ns"], request.match_info["name"]))


async def replace_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    return web.json_response(request.app[STATE].workloads.replace_deployment(ns, name, await read_json(request)))


async def patch_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    json_patch = request.content_type == "application/json-patch+json"
    if request.content_type not in MERGE_PATCH_TYPES and not json_patch:
        raise APIError(
            415,
            f'the patch type "{request.content_type}" is not supported; use application/merge-patch+json or application/json-patch+json',
            reason="UnsupportedMediaType",
        )
    obj = request.app[STATE].workloads.patch_deployment(ns, name, await read_json(request), json_patch=json_patch)
    return web.json_response(obj)


async def delete_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    policy = await delete_options(request)
    obj = request.app[STATE].workloads.delete_deployment(ns, name, policy=policy)
    log.info("deployment %s/%s deleted (propagation %s)", ns, name, policy)
    return web.json_response(obj)


async def list_replicasets(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return apps_list_response("ReplicaSet", _ns_items(state.workloads.replicasets, request), state, request)


async def get_replicaset(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].workloads.get_replicaset(request.match_info["ns"], request.match_info["name"]))


async def delete_replicaset(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    policy = await delete_options(request)
    return web.json_response(request.app[STATE].workloads.delete_replicaset(ns, name, policy=policy))


async def delete_pod(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].workloads.delete_pod(request.match_info["ns"], request.match_info["name"]))


async def list_nodes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return list_response("Node", list(state.nodes.values()), state, request)


async def get_node(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.nodes:
        raise not_found("nodes", name)
    return web.json_response(state.nodes[name])


async def list_namespaces(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return list_response("Namespace", list(state.namespaces.values()), state, request)


async def get_namespace(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.namespaces:
        raise not_found("namespaces", name)
    return web.json_response(state.namespaces[name])


async def create_namespace(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(state.create_namespace(await read_json(request)), status=201)


def _check_ns(ns: str) -> None:
    problem = check_dns_label(ns)
    if problem:
        raise APIError(400, f'invalid namespace "{ns}" in the request path: {problem}')


async def list_services(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return list_response("Service", _ns_items(state.services, request), state, request)


async def create_service(request: web.Request) -> web.Response:
    ns = request.match_info["ns"]
    _check_ns(ns)
    body = await read_json(request)
    obj = request.app[STATE].create_service(ns, body)
    log.info("service %s/%s created (type %s)", ns, obj["metadata"]["name"], obj["spec"]["type"])
    return web.json_response(obj, status=201)


async def get_service(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].get_service(request.match_info["ns"], request.match_info["name"]))


async def replace_service(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = request.app[STATE].replace_service(ns, name, await read_json(request))
    return web.json_response(obj)


async def patch_service(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    if request.content_type not in MERGE_PATCH_TYPES:
        raise APIError(
            415,
            f'the patch type "{request.content_type}" is not supported; use application/merge-patch+json',
            reason="UnsupportedMediaType",
        )
    obj = request.app[STATE].patch_service(ns, name, await read_json(request))
    return web.json_response(obj)


async def delete_service(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = request.app[STATE].delete_service(ns, name)
    log.info("service %s/%s deleted", ns, name)
    return web.json_response(obj)


async def list_endpoints(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return list_response("Endpoints", _ns_items(state.endpoints, request), state, request)


async def get_endpoints(request: web.Request) -> web.Response:
    return web.json_response(_one(request.app[STATE].endpoints, request, "endpoints"))


async def list_pods(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return list_response("Pod", _ns_items(state.pods, request), state, request)


async def get_pod(request: web.Request) -> web.Response:
    return web.json_response(_one(request.app[STATE].pods, request, "pods"))


async def list_events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ns = request.match_info.get("ns")
    items = [e for e in state.events.values() if ns is None or e["metadata"]["namespace"] == ns]
    return list_response("Event", items, state, request)


async def get_chaos(request: web.Request) -> web.Response:
    return web.json_response(request.app[CHAOS].to_dict())


async def post_chaos(request: web.Request) -> web.Response:
    chaos = request.app[CHAOS]
    before = chaos.to_dict()
    chaos.apply(await read_json(request))
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


def make_app(*, state: ClusterState, chaos: Chaos, on_chaos: Callable[[], None] | None = None, lb_pool: str = "") -> web.Application:
    app = web.Application(middlewares=[chaos_middleware, status_middleware], client_max_size=1024 * 1024)
    app[STATE] = state
    app[CHAOS] = chaos
    app[ON_CHAOS] = on_chaos
    app[LB_POOL] = lb_pool
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/livez", healthz)
    r.add_get("/readyz", healthz)
    r.add_get("/version", version)
    r.add_get("/info", info)
    r.add_get("/api", api_versions)
    r.add_get("/api/v1", api_resources)
    r.add_get("/apis", api_groups)
    r.add_get("/api/v1/nodes", list_nodes)
    r.add_get("/api/v1/nodes/{name}", get_node)
    r.add_get("/api/v1/namespaces", list_namespaces)
    r.add_post("/api/v1/namespaces", create_namespace)
    r.add_get("/api/v1/namespaces/{name}", get_namespace)
    r.add_get("/api/v1/services", list_services)
    r.add_get("/api/v1/namespaces/{ns}/services", list_services)
    r.add_post("/api/v1/namespaces/{ns}/services", create_service)
    r.add_get("/api/v1/namespaces/{ns}/services/{name}", get_service)
    r.add_get("/api/v1/namespaces/{ns}/services/{name}/status", get_service)
    r.add_put("/api/v1/namespaces/{ns}/services/{name}", replace_service)
    r.add_patch("/api/v1/namespaces/{ns}/services/{name}", patch_service)
    r.add_delete("/api/v1/namespaces/{ns}/services/{name}", delete_service)
    for plural, lister, getter in (("endpoints", list_endpoints, get_endpoints), ("pods", list_pods, get_pod)):
        r.add_get(f"/api/v1/{plural}", lister)
        r.add_get(f"/api/v1/namespaces/{{ns}}/{plural}", lister)
        r.add_get(f"/api/v1/namespaces/{{ns}}/{plural}/{{name}}", getter)
    r.add_delete("/api/v1/namespaces/{ns}/pods/{name}", delete_pod)
    r.add_get("/apis/apps/v1", apps_resources)
    apps = "/apis/apps/v1"
    r.add_get(f"{apps}/deployments", list_deployments)
    r.add_get(f"{apps}/namespaces/{{ns}}/deployments", list_deployments)
    r.add_post(f"{apps}/namespaces/{{ns}}/deployments", create_deployment)
    r.add_get(f"{apps}/namespaces/{{ns}}/deployments/{{name}}", get_deployment)
    r.add_get(f"{apps}/namespaces/{{ns}}/deployments/{{name}}/status", get_deployment)
    r.add_put(f"{apps}/namespaces/{{ns}}/deployments/{{name}}", replace_deployment)
    r.add_patch(f"{apps}/namespaces/{{ns}}/deployments/{{name}}", patch_deployment)
    r.add_delete(f"{apps}/namespaces/{{ns}}/deployments/{{name}}", delete_deployment)
    r.add_get(f"{apps}/replicasets", list_replicasets)
    r.add_get(f"{apps}/namespaces/{{ns}}/replicasets", list_replicasets)
    r.add_get(f"{apps}/namespaces/{{ns}}/replicasets/{{name}}", get_replicaset)
    r.add_delete(f"{apps}/namespaces/{{ns}}/replicasets/{{name}}", delete_replicaset)
    r.add_get("/api/v1/events", list_events)
    r.add_get("/api/v1/namespaces/{ns}/events", list_events)
    r.add_get("/chaos", get_chaos)
    r.add_post("/chaos", post_chaos)
    r.add_patch("/chaos", post_chaos)
    r.add_delete("/chaos", delete_chaos)
    return app
