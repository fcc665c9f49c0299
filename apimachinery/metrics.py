"""Prometheus metrics of the API machinery: requests, watches, reconciles, work queues (issue 17).

The federation's API server and every member cluster are :class:`apimachinery.server.ResourceAPI`
apps, so one middleware (:func:`metrics_middleware`) counts the requests of both, under
kube-apiserver's names and labels: ``apiserver_request_total{verb, dry_run, group, version,
resource, subresource, scope, component, code}``, ``apiserver_request_duration_seconds``
(watches excluded, as Kubernetes does: they last as long as the client wants) and
``apiserver_longrunning_requests`` (the watches open now). The labels are read from the route
the request matched, never from the raw path, so a scanner's random paths cannot make new
series: a request no route matched counts with an empty resource.

One process may host many member clusters (``ubernetes cluster-host``), so each app keeps
its own :class:`prometheus_client.CollectorRegistry` (:data:`REGISTRY_KEY`) and its
``/metrics`` shows only its own requests. What belongs to the process rather than to one app
(controllers, work queues, Python's own collectors) lives in prometheus_client's default
registry, which the federation API server serves beside its app registry.

Controllers: :func:`reconciling` times one reconcile under controller-runtime's names
(``controller_runtime_reconcile_total{controller, result}``, ``..._errors_total``,
``..._time_seconds``); :func:`track_queue` makes a :class:`apimachinery.workqueue.WorkQueue`
report client-go's ``workqueue_depth{name}`` when scraped. docs/metrics.md lists every family.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, Awaitable, Callable, Iterable, Iterator, Protocol

import prometheus_client
from aiohttp import web
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Kubernetes exposes no ``*_created`` series beside its counters; dashboards written for it
# do not expect them (prometheus_client's switch is process-wide).
prometheus_client.disable_created_metrics()

METRICS_PATH = "/metrics"
REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"  # what kube-apiserver sends; every Prometheus reads it
COMPONENT = "apiserver"  # kube-apiserver's value of the ``component`` label

# kube-apiserver's buckets for apiserver_request_duration_seconds (1.32)
REQUEST_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
                   10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
# controller-runtime's buckets for controller_runtime_reconcile_time_seconds
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
                     0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30,
                     40, 50, 60)

ROUTE_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component")
WATCH_LABELS = ("verb", "group", "version", "resource", "subresource", "scope", "component")


# --------------------------------------------------------------------------- what a request is


def route_labels(method: str, template: str, query: Any, content_type: str) -> dict[str, str]:
    """kube-apiserver's labels of a request to the route ``template`` (aiohttp's canonical
    form: ``/api/v1/namespaces/{namespace}/services/{name}``), without ``code``.

    The verb is Kubernetes' reported verb: GET, LIST, WATCH, POST, PUT, PATCH, APPLY (a patch
    of type apply-patch+yaml), DELETE, DELETECOLLECTION; the scope is ``resource`` (one named
    object), ``namespace`` or ``cluster`` (a collection); a non-resource path has neither."""
    labels = {"verb": method, "dry_run": "All" if query.get("dryRun") == "All" else "", "group": "",
              "version": "", "resource": "", "subresource": "", "scope": "", "component": COMPONENT}
    parts = [p for p in template.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return labels  # discovery, OpenAPI, /healthz, /metrics, /chaos...: a non-resource request
    namespaced = len(rest) >= 3 and rest[0] == "namespaces" and rest[1] == "{namespace}"
    if namespaced:
        rest = rest[2:]
    named = len(rest) >= 2 and rest[1] == "{name}"
    labels.update(group=group, version=version, resource=rest[0],
                  subresource=rest[2] if named and len(rest) > 2 else "",
                  scope="resource" if named else ("namespace" if namespaced else "cluster"))
    watch = query.get("watch") in ("true", "1", "True")
    if method in ("GET", "HEAD"):
        labels["verb"] = "GET" if named else ("WATCH" if watch else "LIST")
    elif method == "PATCH" and content_type == "application/apply-patch+yaml":
        labels["verb"] = "APPLY"
    elif method == "DELETE" and not named:
        labels["verb"] = "DELETECOLLECTION"
    return labels


def _template(request: web.Request) -> str:
    """The matched route's template; "" when no route matched (a 404 or 405)."""
    try:
        resource = request.match_info.route.resource
    except AttributeError:
        return ""
    return resource.canonical if resource is not None else ""


# --------------------------------------------------------------------------- the API server's families


class APIMetrics:
    """kube-apiserver's request families, on one app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, "
            "scope, component, and HTTP response code.",
            [*ROUTE_LABELS, "code"], registry=registry)
        self.duration = Histogram(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, "
            "subresource, scope and component (watches excluded).",
            ROUTE_LABELS, buckets=REQUEST_BUCKETS, registry=registry)
        self.longrunning = Gauge(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests (watches) broken out by verb, group, version, "
            "resource, scope and component.",
            WATCH_LABELS, registry=registry)


def metrics_middleware(api: APIMetrics):  # type: ignore[no-untyped-def]
    """Counts and times every request of an app; it must be the app's outermost middleware,
    so a request refused by authentication or admission counts with its real code."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        labels = route_labels(request.method, _template(request), request.query, request.content_type)
        watching = labels["verb"] == "WATCH"
        if watching:
            open_now = api.longrunning.labels(*(labels[k] for k in WATCH_LABELS))
            open_now.inc()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as err:
            code = err.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            code = 499  # the client went away first (nginx's and Kubernetes' "client closed request")
            raise
        finally:
            if watching:
                open_now.dec()
            else:
                api.duration.labels(*(labels[k] for k in ROUTE_LABELS)).observe(time.perf_counter() - started)
            api.requests.labels(*(labels[k] for k in ROUTE_LABELS), str(code)).inc()

    return middleware


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of ``registries`` in turn (their family names must not overlap)."""
    return b"".join(generate_latest(r) for r in registries)


def metrics_handler(*registries: CollectorRegistry) -> Handler:
    async def metrics(request: web.Request) -> web.Response:
        resp = web.Response(body=exposition(*registries))
        resp.headers["Content-Type"] = TEXT_FORMAT
        return resp

    return metrics


def install(app: web.Application, *, process: bool = False) -> Any:
    """Give ``app`` a registry of its own, kube-apiserver's request families on it and
    ``GET /metrics``; returns the middleware to put first in the app's chain. ``process``: also
    serve the process-wide registry (controllers, work queues, the Python runtime)."""
    registry = CollectorRegistry()
    app[REGISTRY_KEY] = registry
    served = (registry, PROCESS_REGISTRY) if process else (registry,)
    app.router.add_get(METRICS_PATH, metrics_handler(*served))
    return metrics_middleware(APIMetrics(registry))


# --------------------------------------------------------------------------- controllers


RECONCILES = Counter("controller_runtime_reconcile_total",
                     "Total number of reconciliations per controller, by result (success, error).",
                     ["controller", "result"])
RECONCILE_ERRORS = Counter("controller_runtime_reconcile_errors_total",
                           "Total number of reconciliation errors per controller.", ["controller"])
RECONCILE_TIME = Histogram("controller_runtime_reconcile_time_seconds",
                           "Length of time per reconciliation per controller.", ["controller"],
                           buckets=RECONCILE_BUCKETS)
RETRIES = Counter("workqueue_retries_total", "Total number of retries handled by workqueue.", ["name"])


class reconciling:  # noqa: N801 - used as ``with reconciling(name):``
    """Times one reconcile of ``controller`` and counts it as a success or an error; a
    cancelled one (the process is stopping) is not counted."""

    __slots__ = ("controller", "started")

    def __init__(self, controller: str) -> None:
        self.controller = controller
        self.started = 0.0

    def __enter__(self) -> "reconciling":
        self.started = time.perf_counter()
        return self

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if etype is not None and not issubclass(etype, Exception):
            return False  # CancelledError, KeyboardInterrupt: not a result
        RECONCILE_TIME.labels(self.controller).observe(time.perf_counter() - self.started)
        RECONCILES.labels(self.controller, "success" if etype is None else "error").inc()
        if etype is not None:
            RECONCILE_ERRORS.labels(self.controller).inc()
        return False


class _Queue(Protocol):
    name: str

    def __len__(self) -> int: ...


class _QueueDepth:
    """client-go's ``workqueue_depth{name}``, read from the live queues at scrape time."""

    def __init__(self) -> None:
        self.queues: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue.", labels=["name"])
        depth: dict[str, int] = {}
        for queue in list(self.queues):
            if not queue.shutting_down:
                depth[queue.name] = depth.get(queue.name, 0) + len(queue)
        for name, n in sorted(depth.items()):
            family.add_metric([name], n)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # collected live: nothing to check at registration


_DEPTH = _QueueDepth()
PROCESS_REGISTRY.register(_DEPTH)  # type: ignore[arg-type]


def track_queue(queue: _Queue) -> None:
    """Report ``queue``'s depth under its name while it lives (unnamed queues are not reported)."""
    if queue.name:
        _DEPTH.queues.add(queue)
