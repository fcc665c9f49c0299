"""The member cluster's Kubernetes-shaped HTTP API (aiohttp).

What the federation, the tests, kubectl and a curious human talk to: ``/healthz``,
``/version``, nodes, namespaces, namespaced services (full CRUD), endpoints, pods and events
(read, pods deletable), and the workload kinds (``apps/v1`` deployments and replicasets), in
the paths and shapes of the real API server so that ``kubectl --server`` and the
federation's controllers need no special cases. ``/chaos`` flips the fault switches.

kubectl is served the way the federation API serves it, with the federation's code
(issue 3): discovery and OpenAPI v3 from :data:`MEMBER` (:func:`federation.apiserver.
add_discovery_routes`), server-side tables (:mod:`federation.tables`, with the member
printers), strategic merge patch and server-side apply (:mod:`apimachinery.strategic`),
``fieldValidation``, and ``?watch=true`` on every list from :class:`clusters.watch.ChangeFeed`.

Every error leaves as a Kubernetes ``Status`` (the middleware renders
:class:`~apimachinery.errors.APIError`, aiohttp's own HTTP errors and unexpected exceptions
alike), so a malformed request is a 4xx that names the problem and never takes the process
down. The chaos middleware sits outside everything except ``/chaos`` itself.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import platform
import sys
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from apimachinery import decoding, serving, watchlimits
from apimachinery.options import dry_run as parse_dry_run
from apimachinery.errors import RequestRefused
from clusters.chaos import Chaos
from clusters.state import ClusterState, filter_by_selector
from clusters.watch import ChangeFeed, TooOld
from clusters.workloads import deletion_policy
from apimachinery import openapi
from federation import tables
from federation.apiserver import add_discovery_routes
from apimachinery.meta import SelectorError, check_dns_label, fields_match, merge_patch, parse_field_selector
from apimachinery.kinds import Kind
from federation.resources import DEPLOYMENTS, ENDPOINTS, EVENTS, MEMBER, NAMESPACES, NODES, PODS, REPLICASETS, SERVICES
from apimachinery.errors import APIError, not_found, refused, status_object
from apimachinery.strategic import ApplyConflict, StrategicPatchError, server_side_apply, strategic_merge

log = logging.getLogger("ubernetes.cluster.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
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
SCHEMAS = {res.plural: openapi.root_node(res, MEMBER) for res in (SERVICES, DEPLOYMENTS)}
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
WATCH_TIMEOUT_MAX = 3600.0
DRY_RUN = "ubernetes.dry_run_state"  # the request's scratch state, when it is a dry run
BOOKMARK_PERIOD = 5.0  # seconds of silence before a watch with allowWatchBookmarks gets a BOOKMARK

STATE = web.AppKey("state", ClusterState)
CHAOS = web.AppKey("chaos", Chaos)
ON_CHAOS = web.AppKey("on_chaos", object)
LB_POOL = web.AppKey("lb_pool", str)
FEED = web.AppKey("feed", ChangeFeed)
WATCH_LIMITS = web.AppKey("watch_limits", tuple)  # (events one watch may replay, seconds a future RV waits)


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
    except RequestRefused as err:  # a body or a watch over a limit (apimachinery)
        return status_response(refused(err).to_status())
    except web.HTTPException as err:
        if err.status < 400:
            raise
        if err.status == 413:  # worded as the federation words it: one limit, one message
            return status_response(refused(decoding.too_large(None, decoding.MAX_REQUEST_BYTES)).to_status())
        message = {
            404: f"the server could not find the requested resource ({request.method} {request.path})",
            405: f"the server does not allow this method on the requested resource ({request.method} {request.path})",
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


async def read_json(request: web.Request, what: str = "") -> Any:
    """The request's body through the decoder and limits the federation uses (issue 19):
    JSON, or YAML when the content type says so."""
    try:
        return await serving.decode_request_body(await request.read(), request.content_type)
    except decoding.DecodeError as err:
        raise refused(err, what) from None


def check_fits(obj: Any, what: str) -> None:
    """An object built from a patch, before it is stored: within the decoder's limits."""
    try:
        decoding.check_object(obj, what="the patched object")
    except decoding.DecodeError as err:
        raise refused(err, what) from None


def json_response(body: Any, status: int = 200, *, warnings: list[str] | None = None) -> web.Response:
    resp = web.json_response(body, status=status)
    for warning in warnings or []:
        resp.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return resp


def object_response(request: web.Request, res: Kind, obj: dict[str, Any], status: int = 200, *,
                    warnings: list[str] | None = None) -> web.Response:
    """One object, or a one-row Table when kubectl asks for one (``get NAME``)."""
    if tables.wants_table(request.headers.get("Accept")):
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        return json_response(_table(request, res, [obj], rv), status)
    return json_response(obj, status, warnings=warnings)


def _table(request: web.Request, res: Kind, items: list[dict[str, Any]], rv: str, *, headers: bool = True) -> dict[str, Any]:
    return tables.to_table(res.plural, items, resource_version=rv, headers=headers,
                           include_object=request.query.get("includeObject", "Metadata"),
                           printers_by_plural=tables.MEMBER_CLUSTER_PRINTERS)


def selected(items: list[dict[str, Any]], request: web.Request, res: Kind) -> list[dict[str, Any]]:
    """``items`` that match the request's label and field selectors, in name order."""
    try:
        picked = filter_by_selector(items, request.query.get("labelSelector"))
        filters = parse_field_selector(request.query.get("fieldSelector"), res.field_labels, res.plural)
    except SelectorError as err:
        raise APIError(400, str(err)) from None
    picked = [o for o in picked if fields_match(o, filters)]
    picked.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return picked


async def list_response(request: web.Request, res: Kind, items: list[dict[str, Any]]) -> web.StreamResponse:
    """A list (or Table), or, with ``?watch=true``, a stream of watch events."""
    state = request.app[STATE]
    feed = request.app[FEED]
    feed.sync()  # so the list's resourceVersion and the watch log agree
    if request.query.get("watch") in ("1", "true", "True"):
        return await watch(request, res)
    picked = selected(items, request, res)
    rv = state.resource_version
    if tables.wants_table(request.headers.get("Accept")):
        return json_response(_table(request, res, picked, rv))
    return json_response({"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": {"resourceVersion": rv},
                          "items": picked})


async def watch(request: web.Request, res: Kind) -> web.StreamResponse:
    """``?watch=true``: one JSON line per ADDED/MODIFIED/DELETED event of ``res`` (Tables when asked).

    Without a resourceVersion the objects that exist come first as ADDED, as a real API
    server sends them; with one, what happened after it (``410 Expired`` if that is
    older than the feed remembers or more than the watch window of this kind, as at the
    federation; a resourceVersion above the current one waits 3 s, then ``504``;
    :mod:`apimachinery.watchlimits`). The replay is the feed's in-memory log, bounded by
    its length, so it needs no paging."""
    feed, state = request.app[FEED], request.app[STATE]
    try:
        timeout = min(float(request.query.get("timeoutSeconds") or WATCH_TIMEOUT_MAX), WATCH_TIMEOUT_MAX)
    except ValueError:
        raise APIError(400, "timeoutSeconds must be a number") from None
    since = watchlimits.parse_resource_version(request.query.get("resourceVersion"))
    namespace = request.match_info.get("ns")
    as_table = tables.wants_table(request.headers.get("Accept"))
    bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1") and not as_table
    first = [True]

    def wanted(obj: dict[str, Any]) -> bool:
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return bool(selected([obj], request, res))

    def line(etype: str, obj: dict[str, Any]) -> bytes:
        if as_table and etype != "ERROR":
            rv = str(obj["metadata"].get("resourceVersion", ""))
            obj = _table(request, res, [obj], rv, headers=first[0])
            first[0] = False
        return (json.dumps({"type": etype, "object": obj}, separators=(",", ":")) + "\n").encode()

    selected([], request, res)  # a malformed selector is a 400 before the stream starts
    if since > int(state.resource_version):  # the same rules as the federation's watch (issue 19)
        await watchlimits.wait_for_revision(since, lambda: int(state.resource_version),
                                            timeout=request.app[WATCH_LIMITS][1])
        feed.sync()
    if since == 0:
        cursor = int(state.resource_version)
        backlog = [("ADDED", o) for o in selected(feed.current(res.plural), request, res) if wanted(o)]
    else:
        try:
            events = feed.since(since)
        except TooOld:
            events = []
        watchlimits.check_window(since, oldest=feed.horizon, replay=sum(e.plural == res.plural for e in events),
                                 window=request.app[WATCH_LIMITS][0])
        cursor = events[-1].seq if events else since
        backlog = [seen for e in events if e.plural == res.plural and (seen := ChangeFeed.as_seen(e, wanted))]
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    feed.watchers += 1
    try:
        await resp.prepare(request)
        for etype, obj in backlog:
            await resp.write(line(etype, obj))
        deadline = time.monotonic() + timeout
        last_sent = time.monotonic()
        while (remaining := deadline - time.monotonic()) > 0:
            await feed.wait(min(remaining, BOOKMARK_PERIOD))
            if request.transport is None or request.transport.is_closing():
                break
            try:
                events = feed.since(cursor)
            except TooOld as err:
                await resp.write(line("ERROR", status_object(410, f"the watch fell behind; relist ({err})", reason="Expired")))
                break
            for event in events:
                cursor = event.seq
                seen = ChangeFeed.as_seen(event, wanted) if event.plural == res.plural else None
                if seen is not None:
                    await resp.write(line(*seen))
                    last_sent = time.monotonic()
            if bookmarks and time.monotonic() - last_sent >= BOOKMARK_PERIOD:
                # Nothing for this watcher for a while: say it is alive and how far it got.
                await resp.write(line("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                                   "metadata": {"resourceVersion": str(cursor)}}))
                last_sent = time.monotonic()
        await resp.write_eof()
    except (ConnectionResetError, ClientConnectionResetError):
        pass  # the watcher went away
    finally:
        feed.watchers -= 1
    return resp


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


# ---- writes: field validation, patches, server-side apply


def _field_validation(request: web.Request, res: Kind, body: Any) -> list[str]:
    """Unknown fields per ``fieldValidation``: a 400 (Strict), warnings (Warn, the default) or
    nothing (Ignore), worded as the federation API (and the real API server) words them."""
    mode = request.query.get("fieldValidation") or "Warn"
    if mode not in FIELD_VALIDATION:
        raise APIError(400, f"fieldValidation must be one of Strict, Warn or Ignore, not {mode!r}")
    node = SCHEMAS.get(res.plural)
    if mode == "Ignore" or node is None or not isinstance(body, dict):
        return []
    unknown = [f for f in openapi.unknown_fields(node, body)
               if not f.startswith(("$", "metadata.managedFields")) and "$" not in f]
    if not unknown:
        return []
    messages = [f'unknown field "{f}"' for f in unknown]
    if mode == "Strict":
        raise APIError(400, f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                            f'strict decoding error: {", ".join(messages)}', kind=res.plural)
    return messages


def _for_replace(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """A patched object to hand to replace: it keeps the resourceVersion the patch named, if any
    (a precondition), and otherwise applies to whatever is current."""
    pmeta = patch.get("metadata") if isinstance(patch, dict) and isinstance(patch.get("metadata"), dict) else {}
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"]["resourceVersion"] = pmeta.get("resourceVersion")
    return obj


async def patch_object(request: web.Request, res: Kind, *, current: dict[str, Any] | None,
                       merge: Callable[[dict[str, Any]], dict[str, Any]],
                       replace: Callable[[dict[str, Any]], dict[str, Any]],
                       create: Callable[[dict[str, Any]], dict[str, Any]],
                       json_patch: Callable[[Any], dict[str, Any]] | None = None) -> web.Response:
    """``PATCH`` by content type: merge (``merge``), strategic merge (merged with the kind's
    OpenAPI schema, then ``replace``), JSON patch (``json_patch``, where the kind has it) and
    server-side apply (``application/apply-patch+yaml``; ``create`` when absent)."""
    name = request.match_info["name"]
    what = f'patching {res.qualified} "{name}"'
    ctype = request.content_type
    if ctype == "application/apply-patch+yaml":
        return await apply_object(request, res, current=current, replace=replace, create=create)
    if current is None:
        raise not_found(res.plural, name, res.group)
    if ctype == "application/json-patch+json" and json_patch is not None:
        return object_response(request, res, json_patch(await read_json(request)))
    if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json", "application/json"):
        supported = "application/merge-patch+json, application/strategic-merge-patch+json" + (
            ", application/json-patch+json" if json_patch is not None else "") + " or application/apply-patch+yaml"
        raise APIError(415, f'the patch type "{ctype}" is not supported; use {supported}', reason="UnsupportedMediaType")
    patch = await read_json(request)
    if not isinstance(patch, dict):
        raise APIError(400, f"{what}: a merge patch must be a JSON object")
    warnings = _field_validation(request, res, patch)
    if ctype == "application/strategic-merge-patch+json":
        try:
            merged = strategic_merge(copy.deepcopy(current), patch, SCHEMAS.get(res.plural))
        except StrategicPatchError as err:
            raise APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
        if not isinstance(merged, dict):
            raise APIError(422, f"{what}: the patched object is not an object", reason="Invalid")
        check_fits(merged, what)
        obj = replace(_for_replace(merged, patch))
    else:
        check_fits(merge_patch(copy.deepcopy(current), patch), what)
        obj = merge(patch)
    return object_response(request, res, obj, warnings=warnings)


async def apply_object(request: web.Request, res: Kind, *, current: dict[str, Any] | None,
                       replace: Callable[[dict[str, Any]], dict[str, Any]],
                       create: Callable[[dict[str, Any]], dict[str, Any]]) -> web.Response:
    """Server-side apply (``kubectl apply --server-side``): the applied fields merged into the
    live object, created if missing. The member keeps no managedFields, so a field another
    manager set is overwritten instead of reported as a conflict."""
    name = request.match_info["name"]
    what = f'applying {res.qualified} "{name}"'
    manager = request.query.get("fieldManager")
    if not manager:
        raise APIError(400, f"{what}: fieldManager is required for apply requests", reason="BadRequest")
    body = await read_json(request, what)
    if not isinstance(body, dict):
        raise APIError(400, f"{what}: the request body must be a {res.kind} object")
    warnings = _field_validation(request, res, body)
    if ((body.get("metadata") or {}).get("name") or name) != name:
        raise APIError(400, f"{what}: the name of the object does not match the name on the URL ({name})")
    try:
        new = server_side_apply(copy.deepcopy(current), body, SCHEMAS.get(res.plural), manager=manager,
                                force=request.query.get("force") in ("true", "1"))
    except (ApplyConflict, StrategicPatchError) as err:
        raise APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
    check_fits(new, what)
    new.setdefault("metadata", {})["name"] = name
    new["metadata"].pop("managedFields", None)
    if current is None:
        return object_response(request, res, create(new), 201, warnings=warnings)
    new["metadata"]["resourceVersion"] = None
    return object_response(request, res, replace(new), warnings=warnings)


# ---- workloads (issue 7): Deployments, ReplicaSets, deleting pods


async def writable(request: web.Request) -> ClusterState:
    """The state a write changes: the cluster's own, or with ``dryRun=All`` (in the query, or
    in a DELETE's DeleteOptions, where kubectl puts it) a scratch copy: the whole write
    runs, validation, allocation, controllers' bookkeeping, and nothing of it stays
    (apimachinery.options)."""
    state = request.app[STATE]
    options = None
    if request.method == "DELETE" and (await request.read()).strip():
        options = await read_json(request, "DeleteOptions")
    if not parse_dry_run(request.query.getall("dryRun", []), options):
        return state
    if DRY_RUN not in request:
        request[DRY_RUN] = state.scratch()
    return request[DRY_RUN]


async def delete_options(request: web.Request) -> str:
    """The propagation policy of a DELETE (DeleteOptions body or query), Background by default."""
    options = await read_json(request, "DeleteOptions") if (await request.read()).strip() else None
    return deletion_policy(options, dict(request.query))


async def list_deployments(request: web.Request) -> web.StreamResponse:
    return await list_response(request, DEPLOYMENTS, _ns_items(request.app[STATE].workloads.deployments, request))


async def create_deployment(request: web.Request) -> web.Response:
    ns = request.match_info["ns"]
    _check_ns(ns)
    body = await read_json(request)
    warnings = _field_validation(request, DEPLOYMENTS, body)
    obj = (await writable(request)).workloads.create_deployment(ns, body)
    log.info("deployment %s/%s created (%d replicas)", ns, obj["metadata"]["name"], obj["spec"]["replicas"])
    return object_response(request, DEPLOYMENTS, obj, 201, warnings=warnings)


async def get_deployment(request: web.Request) -> web.Response:
    obj = request.app[STATE].workloads.get_deployment(request.match_info["ns"], request.match_info["name"])
    return object_response(request, DEPLOYMENTS, obj)


async def replace_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    body = await read_json(request)
    warnings = _field_validation(request, DEPLOYMENTS, body)
    obj = (await writable(request)).workloads.replace_deployment(ns, name, body)
    return object_response(request, DEPLOYMENTS, obj, warnings=warnings)


async def patch_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    workloads = (await writable(request)).workloads
    return await patch_object(
        request, DEPLOYMENTS, current=workloads.deployments.get((ns, name)),
        merge=lambda patch: workloads.patch_deployment(ns, name, patch),
        replace=lambda obj: workloads.replace_deployment(ns, name, obj),
        create=lambda obj: workloads.create_deployment(ns, obj),
        json_patch=lambda patch: workloads.patch_deployment(ns, name, patch, json_patch=True),
    )


async def delete_deployment(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    policy = await delete_options(request)
    obj = (await writable(request)).workloads.delete_deployment(ns, name, policy=policy)
    log.info("deployment %s/%s deleted (propagation %s)", ns, name, policy)
    return json_response(obj)


async def list_replicasets(request: web.Request) -> web.StreamResponse:
    return await list_response(request, REPLICASETS, _ns_items(request.app[STATE].workloads.replicasets, request))


async def get_replicaset(request: web.Request) -> web.Response:
    obj = request.app[STATE].workloads.get_replicaset(request.match_info["ns"], request.match_info["name"])
    return object_response(request, REPLICASETS, obj)


async def delete_replicaset(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    policy = await delete_options(request)
    return json_response((await writable(request)).workloads.delete_replicaset(ns, name, policy=policy))


async def delete_pod(request: web.Request) -> web.Response:
    return json_response((await writable(request)).workloads.delete_pod(request.match_info["ns"], request.match_info["name"]))


# ---- nodes and namespaces


async def list_nodes(request: web.Request) -> web.StreamResponse:
    return await list_response(request, NODES, list(request.app[STATE].nodes.values()))


async def get_node(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.nodes:
        raise not_found("nodes", name)
    return object_response(request, NODES, state.nodes[name])


async def list_namespaces(request: web.Request) -> web.StreamResponse:
    return await list_response(request, NAMESPACES, list(request.app[STATE].namespaces.values()))


async def get_namespace(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.namespaces:
        raise not_found("namespaces", name)
    return object_response(request, NAMESPACES, state.namespaces[name])


async def create_namespace(request: web.Request) -> web.Response:
    state = await writable(request)
    return object_response(request, NAMESPACES, state.create_namespace(await read_json(request)), 201)


def _check_ns(ns: str) -> None:
    problem = check_dns_label(ns)
    if problem:
        raise APIError(400, f'invalid namespace "{ns}" in the request path: {problem}')


# ---- services


async def list_services(request: web.Request) -> web.StreamResponse:
    return await list_response(request, SERVICES, _ns_items(request.app[STATE].services, request))


async def create_service(request: web.Request) -> web.Response:
    ns = request.match_info["ns"]
    _check_ns(ns)
    body = await read_json(request)
    warnings = _field_validation(request, SERVICES, body)
    obj = (await writable(request)).create_service(ns, body)
    log.info("service %s/%s created (type %s)", ns, obj["metadata"]["name"], obj["spec"]["type"])
    return object_response(request, SERVICES, obj, 201, warnings=warnings)


async def get_service(request: web.Request) -> web.Response:
    obj = request.app[STATE].get_service(request.match_info["ns"], request.match_info["name"])
    return object_response(request, SERVICES, obj)


async def replace_service(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    body = await read_json(request)
    warnings = _field_validation(request, SERVICES, body)
    return object_response(request, SERVICES, (await writable(request)).replace_service(ns, name, body), warnings=warnings)


async def patch_service(request: web.Request) -> web.Response:
    """Merge, strategic merge (what ``kubectl apply`` sends on a re-apply) and server-side
    apply. JSON patch stays unsupported (415) on the member's services."""
    ns, name = request.match_info["ns"], request.match_info["name"]
    state = await writable(request)
    return await patch_object(
        request, SERVICES, current=state.services.get((ns, name)),
        merge=lambda patch: state.patch_service(ns, name, patch),
        replace=lambda obj: state.replace_service(ns, name, obj),
        create=lambda obj: state.create_service(ns, obj),
    )


async def delete_service(request: web.Request) -> web.Response:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = (await writable(request)).delete_service(ns, name)
    log.info("service %s/%s deleted", ns, name)
    return json_response(obj)


# ---- endpoints, pods, events (read only; pods deletable above)


async def list_endpoints(request: web.Request) -> web.StreamResponse:
    return await list_response(request, ENDPOINTS, _ns_items(request.app[STATE].endpoints, request))


async def get_endpoints(request: web.Request) -> web.Response:
    return object_response(request, ENDPOINTS, _one(request.app[STATE].endpoints, request, "endpoints"))


async def list_pods(request: web.Request) -> web.StreamResponse:
    return await list_response(request, PODS, _ns_items(request.app[STATE].pods, request))


async def get_pod(request: web.Request) -> web.Response:
    return object_response(request, PODS, _one(request.app[STATE].pods, request, "pods"))


async def list_events(request: web.Request) -> web.StreamResponse:
    ns = request.match_info.get("ns")
    items = [e for e in request.app[STATE].events.values() if ns is None or e["metadata"]["namespace"] == ns]
    return await list_response(request, EVENTS, items)


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
        },
        next_rv=state.next_rv,
    )
    previous = state.on_change

    def on_change() -> None:
        previous()
        if feed.watchers:
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
             watch_window: int = watchlimits.WATCH_WINDOW, future_wait: float = watchlimits.FUTURE_WAIT) -> web.Application:
    app = web.Application(middlewares=[chaos_middleware, status_middleware], client_max_size=decoding.MAX_REQUEST_BYTES)
    app[STATE] = state
    app[CHAOS] = chaos
    app[ON_CHAOS] = on_chaos
    app[LB_POOL] = lb_pool
    app[FEED] = change_feed(state)
    app[WATCH_LIMITS] = (watch_window, future_wait)
    app.on_startup.append(_start_feed)
    app.on_cleanup.append(_stop_feed)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/livez", healthz)
    r.add_get("/readyz", healthz)
    r.add_get("/version", version)
    r.add_get("/info", info)
    add_discovery_routes(app, MEMBER)
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
