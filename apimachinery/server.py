"""One Kubernetes-shaped HTTP API server, built from a table of kinds (issue 11).

The federation's API server and every member cluster are instances of :class:`ResourceAPI`
with their own kinds and their own :class:`~apimachinery.storage.Storage`, so what clients
can tell apart is the same by construction: the routes (from each :class:`Kind`'s verbs and
subresources), the ``Status`` of every error (one middleware), label and field selectors,
``fieldValidation``, merge / strategic merge / JSON patch, server-side apply with
managedFields and its 409 conflicts, ``dryRun=All`` on every write verb, DeleteOptions
(propagation policy, preconditions), ``deletecollection``, Tables for kubectl, and watch
(initial ADDED list or replay from a resourceVersion, 410 past the window, a wait for a
future one, bookmarks, selector transitions).

What differs per server comes in as data or hooks: the kinds, the storage, how Tables are
printed (:class:`Tables`), and admission (:class:`Hooks`: the federation's rules on who may
write which Cluster). Routes of one server only (the federation's cluster credentials, the
member's ``/chaos``) are added to the same aiohttp app beside these.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import platform
import sys
import time
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from apimachinery import decoding, discovery, openapi, serving, watchlimits
from apimachinery import errors as st
from apimachinery.errors import RequestRefused
from apimachinery.jsonpatch import PatchError, apply_json_patch
from apimachinery.kinds import Kind
from apimachinery.meta import (
    SelectorError, check_dns_label, fields_match, merge_patch, parse_field_selector, parse_selector, selector_matches,
)
from apimachinery.options import dry_run as parse_dry_run
from apimachinery.storage import FellBehind, Object, Storage
from apimachinery.strategic import ApplyConflict, StrategicPatchError, record_update, server_side_apply, strategic_merge
from apimachinery.watchevents import as_seen

log = logging.getLogger("apimachinery.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = decoding.MAX_REQUEST_BYTES
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
WATCH_TIMEOUT = 1800.0  # a watch without timeoutSeconds
WATCH_TIMEOUT_MAX = 3600.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml")
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-ubernetes",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-30T00:00:00Z",
    "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
    "compiler": platform.python_implementation().lower(),
    "platform": f"{sys.platform}/{platform.machine() or 'unknown'}",
}


# --------------------------------------------------------------------------- responses


def json_response(body: Any, status: int = 200, *, content_type: str = "application/json",
                  warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": content_type})
    for warning in warnings or []:
        resp.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return resp


def watch_line(etype: str, obj: Object) -> bytes:
    return (json.dumps({"type": etype, "object": obj}, separators=(",", ":")) + "\n").encode()


@web.middleware
async def status_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything that goes wrong leaves as a ``Status``; nothing takes the process down."""
    try:
        return await handler(request)
    except st.APIError as err:
        return json_response(err.to_status(), err.code)
    except RequestRefused as err:  # a body or a watch over a limit
        return json_response(st.refused(err).to_status(), err.code)
    except web.HTTPRequestEntityTooLarge:
        return json_response(st.refused(decoding.too_large(None, MAX_BODY)).to_status(), 413)
    except web.HTTPNotFound:
        return json_response(st.status_object(404, f"the server could not find the requested resource ({request.path})"), 404)
    except web.HTTPMethodNotAllowed as err:
        return json_response(
            st.status_object(405, f"the server does not allow this method on the requested resource ({err.method})"), 405
        )
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 - the last line of defence: answer, log, keep serving
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(st.status_object(500, "an internal error occurred; see the server log"), 500)


async def read_body(request: web.Request, what: str) -> Any:
    """The request's JSON or YAML body through the shared decoder and its limits (issue 19)."""
    try:
        return await serving.decode_request_body(await request.read(), request.content_type)
    except decoding.DecodeError as err:
        raise st.refused(err, what) from None


def check_fits(obj: Any, what: str) -> None:
    """An object built from a patch, before it is stored: within the decoder's limits."""
    try:
        decoding.check_object(obj, what="the patched object")
    except decoding.DecodeError as err:
        raise st.refused(err, what) from None


def object_body(body: Any, res: Kind, what: str) -> Object:
    if not isinstance(body, dict):
        raise st.APIError(400, f"{what}: the request body must be a JSON object (a {res.kind} object)")
    kind = body.get("kind")
    if kind is not None and kind != res.kind:
        raise st.APIError(400, f"{what}: the body is a {kind!r}, but this endpoint takes {res.kind} ({res.api_version})")
    api_version = body.get("apiVersion")
    if api_version is not None and api_version != res.api_version:
        raise st.APIError(400, f"{what}: apiVersion {api_version!r} does not match {res.api_version!r}")
    return body


def patch_failed(what: str, err: Exception, res: Kind, name: str) -> st.APIError:
    """A JSON patch that cannot apply: 422, with the reason as a cause (kubectl prints causes)."""
    return st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name, group=res.group,
                       causes=[{"reason": "FieldValueInvalid", "field": "patch", "message": str(err)}])


def propagation_policy(options: dict[str, Any], res: Kind, name: str) -> str | None:
    """DeleteOptions' propagationPolicy or orphanDependents (not both), checked."""
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if policy is not None and orphan is not None:
        raise st.invalid(res.kind, name, [("propagationPolicy", "Invalid value: orphanDependents and "
                                           "propagationPolicy cannot both be set")], res.group)
    if policy is not None:
        if policy not in PROPAGATION_POLICIES:
            raise st.invalid(res.kind, name, [("propagationPolicy", f"Unsupported value: {policy!r}: supported "
                                               "values: Orphan, Background, Foreground")], res.group)
        return str(policy)
    if orphan is not None:
        return "Orphan" if orphan else "Background"
    return None


def paginate(request: web.Request, items: list[Object]) -> tuple[list[Object], str, int] | None:
    """``limit`` and ``continue``: one page of ``items`` (in the storage's order: namespace,
    name), the token for the next page ("" at the end) and how many remain; None without a
    limit. A token names the last key served, so a page after a change resumes where the
    last one ended (the objects are read as they are now, not at the first page's
    resourceVersion: docs/kubectl.md)."""
    token = request.query.get("continue") or ""
    try:
        limit = int(request.query.get("limit") or 0)
    except ValueError:
        raise st.APIError(400, "limit must be an integer") from None
    if limit <= 0 and not token:
        return None
    start = 0
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            after_key = (str(after["ns"]), str(after["name"]))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise st.APIError(400, f"invalid continue token {token!r}", reason="BadRequest") from None
        start = next((i for i, o in enumerate(items) if _key(o) > after_key), len(items))
    end = len(items) if limit <= 0 else start + limit
    chunk = items[start:end]
    if end >= len(items) or not chunk:
        return chunk, "", 0
    ns, name = _key(chunk[-1])
    next_token = base64.urlsafe_b64encode(json.dumps({"ns": ns, "name": name}).encode()).decode()
    return chunk, next_token, len(items) - end


def _key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def scale_of(obj: Object) -> Object:
    """An object with spec.replicas as ``autoscaling/v1`` Scale (what ``kubectl scale`` reads)."""
    meta = obj.get("metadata") or {}
    selector = ((obj.get("spec") or {}).get("selector") or {})
    labels = selector.get("matchLabels") if isinstance(selector, dict) else None
    terms = [f"{k}={v}" for k, v in sorted((labels or {}).items())]
    for expr in (selector.get("matchExpressions") or []) if isinstance(selector, dict) else []:
        values = ",".join(expr.get("values") or [])
        op = str(expr.get("operator", "")).lower()
        key = expr.get("key", "")
        terms.append({"in": f"{key} in ({values})", "notin": f"{key} notin ({values})",
                      "exists": key, "doesnotexist": f"!{key}"}.get(op, key))
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0), "selector": ",".join(terms)},
    }


# --------------------------------------------------------------------------- per-server parts


class Tables(Protocol):
    """How a server prints its kinds for kubectl (``Accept: ...;as=Table``)."""

    def wants(self, accept: str | None) -> bool: ...

    def render(self, res: Kind, items: list[Object], *, resource_version: str, headers: bool,
               include_object: str) -> Object: ...


class Hooks:
    """Admission: a server's own rules on a write, after decoding and before storing."""

    def check_create(self, request: web.Request, res: Kind, name: str, namespace: str) -> None:
        """Refuse a create by name before anything else (the federation: a cluster's own objects)."""

    def admit(self, request: web.Request, res: Kind, current: Object | None, new: Object) -> Object:
        return new

    def review(self, request: web.Request, res: Kind, body: Object) -> Object:
        """The answer to a create of a virtual kind (:attr:`Kind.virtual`)."""
        raise st.APIError(405, f"{res.qualified} is not served here", reason="MethodNotAllowed")


class ResourceAPI:
    def __init__(self, kinds: list[Kind], storage: Storage, tables: Tables, *, hooks: Hooks | None = None,
                 watch_ping: float = 5.0, watch_window: int = watchlimits.WATCH_WINDOW,
                 future_wait: float = watchlimits.FUTURE_WAIT) -> None:
        self.kinds = kinds
        self.storage = storage
        self.tables = tables
        self.hooks = hooks or Hooks()
        self.watch_ping = watch_ping
        self.watch_window = watch_window
        self.future_wait = future_wait
        components = openapi.schemas_for(kinds)
        self.schemas = {res.key: openapi.SchemaNode(components[openapi.schema_name(res)], components)
                        for res in kinds}

    # -------------------------------------------------------------- routing

    def routes(self, app: web.Application) -> None:
        """Health, version, discovery, OpenAPI, and every kind's verbs on ``app``."""
        for path in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(path, healthz)
        for path in ("/version", "/version/"):
            app.router.add_get(path, version)
        add_discovery_routes(app, self.kinds)
        for res in self.kinds:
            self._add_kind(app, res)

    def _add_kind(self, app: web.Application, res: Kind) -> None:
        def bind(fn: Callable[..., Awaitable[web.StreamResponse]], **fixed: Any) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                return await fn(request, res, **fixed)

            return handler

        verbs = set(res.verbs)
        root = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        if res.virtual:
            app.router.add_post(f"{root}/{res.plural}", bind(self.review))
            return
        if res.namespaced:
            collection = f"{root}/namespaces/{{namespace}}/{res.plural}"
            if "list" in verbs:
                app.router.add_get(f"{root}/{res.plural}", bind(self.list))
        else:
            collection = f"{root}/{res.plural}"
        item = f"{collection}/{{name}}"
        if "list" in verbs:
            app.router.add_get(collection, bind(self.list))
        if "create" in verbs:
            app.router.add_post(collection, bind(self.create))
        if "deletecollection" in verbs:
            app.router.add_delete(collection, bind(self.delete_collection))
        if "get" in verbs:
            app.router.add_get(item, bind(self.get))
        if "update" in verbs:
            app.router.add_put(item, bind(self.replace))
        if "patch" in verbs:
            app.router.add_patch(item, bind(self.patch))
        if "delete" in verbs:
            app.router.add_delete(item, bind(self.delete))
        for sub in res.subresources:
            if sub == "scale":
                app.router.add_get(f"{item}/scale", bind(self.get_scale))
                app.router.add_put(f"{item}/scale", bind(self.write_scale))
                app.router.add_patch(f"{item}/scale", bind(self.write_scale))
                continue
            app.router.add_get(f"{item}/{sub}", bind(self.get))
            app.router.add_put(f"{item}/{sub}", bind(self.replace, subresource=sub))
            app.router.add_patch(f"{item}/{sub}", bind(self.patch, subresource=sub))

    # -------------------------------------------------------------- output

    def object_response(self, request: web.Request, res: Kind, obj: Object, status: int = 200,
                        warnings: list[str] | None = None) -> web.Response:
        if self.tables.wants(request.headers.get("Accept")):
            rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            return json_response(self._table(request, res, [obj], rv), status, warnings=warnings)
        return json_response(obj, status, warnings=warnings)

    def list_response(self, request: web.Request, res: Kind, items: list[Object], rv: int,
                      warnings: list[str] | None = None) -> web.Response:
        if self.tables.wants(request.headers.get("Accept")):
            return json_response(self._table(request, res, items, str(rv)), warnings=warnings)
        return json_response({"apiVersion": res.api_version, "kind": f"{res.kind}List",
                              "metadata": {"resourceVersion": str(rv)}, "items": items}, warnings=warnings)

    def _table(self, request: web.Request, res: Kind, items: list[Object], rv: str, *, headers: bool = True) -> Object:
        return self.tables.render(res, items, resource_version=rv, headers=headers,
                                  include_object=request.query.get("includeObject", "Metadata"))

    # -------------------------------------------------------------- reads

    @staticmethod
    def _ns(request: web.Request, res: Kind) -> str:
        return request.match_info.get("namespace", "") if res.namespaced else ""

    @staticmethod
    def _consistent(request: web.Request) -> bool:
        """False for ``?resourceVersion=0``, a read at any version (Kubernetes serves those
        from its watch cache): without its quorum the storage may answer it from a copy
        that is behind, and says so in a ``Warning``; a consistent read fails (503) instead."""
        return request.query.get("resourceVersion") != "0"

    def _stale(self, consistent: bool) -> list[str]:
        reason = None if consistent else self.storage.stale_reason()
        return [f"this read may be stale: {reason}"] if reason else []

    async def get(self, request: web.Request, res: Kind) -> web.Response:
        consistent = self._consistent(request)
        obj = self.storage.get(res, self._ns(request, res), request.match_info["name"], consistent=consistent)
        return self.object_response(request, res, obj, warnings=self._stale(consistent))

    @staticmethod
    def selectors(request: web.Request, res: Kind) -> Callable[[Object], bool]:
        """The request's label and field selectors as one test (a malformed one is a 400)."""
        try:
            labels = parse_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"), res.field_labels, res.plural)
        except SelectorError as err:
            raise st.APIError(400, str(err)) from None

        def matches(obj: Object) -> bool:
            return selector_matches(labels, (obj.get("metadata") or {}).get("labels")) and fields_match(obj, fields)

        return matches

    async def list(self, request: web.Request, res: Kind) -> web.StreamResponse:
        namespace = request.match_info.get("namespace") if res.namespaced else None
        matches = self.selectors(request, res)
        if request.query.get("watch") in ("true", "1", "True"):
            if "watch" not in res.verbs:
                raise st.APIError(405, f"watching {res.qualified} is not supported by this server",
                                  reason="MethodNotAllowed")
            return await self.watch(request, res, namespace, matches)
        consistent = self._consistent(request)
        items, rv = self.storage.list(res, namespace, consistent=consistent)
        warnings = self._stale(consistent)
        items = [o for o in items if matches(o)]
        page = paginate(request, items)
        if page is None:
            return self.list_response(request, res, items, rv, warnings=warnings)
        chunk, token, remaining = page
        resp = self.list_response(request, res, chunk, rv, warnings=warnings)
        if token and not self.tables.wants(request.headers.get("Accept")):
            body = json.loads(resp.body)
            body["metadata"].update({"continue": token, "remainingItemCount": remaining})
            resp = json_response(body, warnings=warnings)
        return resp

    # -------------------------------------------------------------- writes

    def validate_fields(self, request: web.Request, res: Kind, body: Any, *, what: str) -> list[str]:
        """Unknown fields per ``fieldValidation``: a 400 (Strict), warnings (Warn) or nothing (Ignore)."""
        mode = request.query.get("fieldValidation", "Warn") or "Warn"
        if mode not in FIELD_VALIDATION:
            raise st.APIError(400, f"fieldValidation must be one of Strict, Warn or Ignore, not {mode!r}")
        if mode == "Ignore" or not isinstance(body, dict):
            return []
        unknown = [f for f in openapi.unknown_fields(self.schemas[res.key], body)
                   if not f.startswith(("$", "metadata.managedFields"))]
        unknown = [f for f in unknown if "$setElementOrder/" not in f and "$patch" not in f and "$retainKeys" not in f
                   and "$deleteFromPrimitiveList/" not in f]
        if not unknown:
            return []
        messages = [f'unknown field "{f}"' for f in unknown]
        if mode == "Strict":
            raise st.APIError(
                400, f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                     f'strict decoding error: {", ".join(messages)}', kind=res.plural,
            )
        return messages

    def _track(self, request: web.Request, res: Kind, before: Object | None, after: Object) -> Object:
        """Record the writer in managedFields when it names itself (kubectl does) or when the
        object is already under server-side apply, so that apply can see conflicts."""
        manager = request.query.get("fieldManager")
        if not manager and not (before and (before.get("metadata") or {}).get("managedFields")):
            return after
        manager = manager or request.headers.get("User-Agent", "unknown").split("/")[0]
        return record_update(before, after, self.schemas[res.key], manager=manager)

    @staticmethod
    def _dry(request: web.Request) -> bool:
        return parse_dry_run(request.query.getall("dryRun", []))

    async def create(self, request: web.Request, res: Kind) -> web.Response:
        namespace = self._ns(request, res)
        what = f"creating {res.qualified}"
        if res.namespaced:
            problem = check_dns_label(namespace)
            if problem:
                raise st.APIError(400, f'invalid namespace "{namespace}" in the request path: {problem}')
        body = object_body(await read_body(request, what), res, what)
        warnings = self.validate_fields(request, res, body, what=what)
        meta = body.get("metadata")
        if res.namespaced and isinstance(meta, dict) and meta.get("namespace") not in (None, "", namespace):
            raise st.APIError(
                400, f"the namespace of the provided object ({meta.get('namespace')}) does not match "
                     f"the namespace sent on the request ({namespace})",
            )
        self.hooks.check_create(request, res, str((meta.get("name") if isinstance(meta, dict) else None) or ""), namespace)
        body = self.hooks.admit(request, res, None, self._track(request, res, None, body))
        created = self.storage.create(res, namespace, body, dry_run=self._dry(request))
        return self.object_response(request, res, created, 201, warnings)

    async def replace(self, request: web.Request, res: Kind, subresource: str = "") -> web.Response:
        name = request.match_info["name"]
        what = f'replacing {res.qualified} "{name}"'
        body = object_body(await read_body(request, what), res, what)
        warnings = self.validate_fields(request, res, body, what=what)
        namespace = self._ns(request, res)
        if not subresource:
            current = self.storage.find(res, namespace, name)
            body = self.hooks.admit(request, res, current, self._track(request, res, current, body))
        replaced = self.storage.replace(res, namespace, name, body, subresource=subresource, dry_run=self._dry(request))
        return self.object_response(request, res, replaced, warnings=warnings)

    async def patch(self, request: web.Request, res: Kind, subresource: str = "") -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'patching {res.qualified} "{name}"'
        ctype = request.content_type
        if ctype == "application/apply-patch+yaml":
            return await self.apply(request, res, namespace, name, subresource)
        if ctype not in PATCH_TYPES and ctype != "application/json":
            raise st.APIError(415, f'the patch type "{ctype}" is not supported; use {", ".join(PATCH_TYPES)}',
                              reason="UnsupportedMediaType")
        patch = await read_body(request, what)
        current = self.storage.get(res, namespace, name)
        warnings: list[str] = []
        if ctype == "application/json-patch+json":
            try:
                new = apply_json_patch(current, patch)
            except PatchError as err:
                raise patch_failed(what, err, res, name) from None
        else:
            if not isinstance(patch, dict):
                raise st.APIError(400, f"{what}: a merge patch must be a JSON object")
            warnings = self.validate_fields(request, res, patch, what=what)
            if ctype == "application/strategic-merge-patch+json":
                try:
                    new = strategic_merge(copy.deepcopy(current), patch, self.schemas[res.key])
                except StrategicPatchError as err:
                    raise st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
            else:
                new = merge_patch(copy.deepcopy(current), patch)
        if not isinstance(new, dict):
            raise st.APIError(422, f"{what}: the patched object is not an object", reason="Invalid")
        check_fits(new, what)
        new_meta = new.get("metadata")
        patch_meta = (patch.get("metadata") or {}) if isinstance(patch, dict) else {}
        if isinstance(new_meta, dict) and "resourceVersion" not in (patch_meta if isinstance(patch_meta, dict) else {}):
            # A patch without a resourceVersion applies to whatever is current.
            new_meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if not subresource:
            new = self.hooks.admit(request, res, current, self._track(request, res, current, new))
        patched = self.storage.replace(res, namespace, name, new, subresource=subresource, dry_run=self._dry(request))
        return self.object_response(request, res, patched, warnings=warnings)

    async def apply(self, request: web.Request, res: Kind, namespace: str, name: str, subresource: str) -> web.Response:
        """Server-side apply: ``PATCH`` with ``application/apply-patch+yaml`` (creates if missing)."""
        what = f'applying {res.qualified} "{name}"'
        manager = request.query.get("fieldManager")
        if not manager:
            raise st.APIError(400, f"{what}: fieldManager is required for apply requests", reason="BadRequest")
        if subresource:
            raise st.APIError(400, f"{what}: server-side apply of the {subresource} subresource is not supported")
        body = object_body(await read_body(request, what), res, what)
        warnings = self.validate_fields(request, res, body, what=what)
        if ((body.get("metadata") or {}).get("name") or name) != name:
            raise st.APIError(400, f'{what}: the name of the object ({body["metadata"]["name"]}) does not match '
                                   f"the name on the URL ({name})")
        current = self.storage.find(res, namespace, name)
        if current is None and "create" not in res.verbs:
            raise st.not_found(res.plural, name, res.group)
        try:
            new = server_side_apply(current, body, self.schemas[res.key], manager=manager,
                                    force=request.query.get("force") in ("true", "1"))
        except ApplyConflict as err:
            listed = "\n".join(f'- conflict with "{m}": {p}' for m, p in err.conflicts)
            causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": p}
                      for m, p in err.conflicts]
            raise st.APIError(
                409, f"Apply failed with {len(err.conflicts)} conflict{'s' if len(err.conflicts) > 1 else ''}: {listed}",
                reason="Conflict", kind=res.plural, name=name, group=res.group, causes=causes,
            ) from None
        except StrategicPatchError as err:
            raise st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
        check_fits(new, what)
        new = self.hooks.admit(request, res, current, new)
        dry = self._dry(request)
        if current is None:
            new.setdefault("metadata", {})["name"] = name
            return self.object_response(request, res, self.storage.create(res, namespace, new, dry_run=dry), 201,
                                        warnings)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.object_response(
            request, res, self.storage.replace(res, namespace, name, new, subresource="", dry_run=dry),
            warnings=warnings)

    async def _delete_options(self, request: web.Request, what: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if (await request.read()).strip():
            options = await read_body(request, f"{what}: DeleteOptions")
            if not isinstance(options, dict):
                raise st.APIError(400, f"{what}: DeleteOptions must be an object")
        for key in ("propagationPolicy", "orphanDependents", "gracePeriodSeconds"):
            if key not in options and key in request.query:
                value = request.query[key]
                options[key] = value.lower() == "true" if key == "orphanDependents" else value
        return options

    async def delete(self, request: web.Request, res: Kind) -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'deleting {res.qualified} "{name}"'
        options = await self._delete_options(request, what)
        expected = None
        pre = options.get("preconditions")
        if isinstance(pre, dict) and pre.get("resourceVersion"):
            try:
                expected = int(pre["resourceVersion"])
            except (TypeError, ValueError):
                raise st.APIError(400, f"{what}: preconditions.resourceVersion must be an integer") from None
        policy = propagation_policy(options, res, name) or "Background"
        dry = parse_dry_run(request.query.getall("dryRun", []), options)
        return json_response(self.storage.delete(res, namespace, name, expected_rv=expected, policy=policy, dry_run=dry))

    async def delete_collection(self, request: web.Request, res: Kind) -> web.Response:
        """``DELETE`` on a collection: every object the selectors match, one by one; the
        answer is the list of what was deleted (``kubectl delete --all`` deletes by name)."""
        namespace = request.match_info.get("namespace") if res.namespaced else None
        options = await self._delete_options(request, f"deleting {res.qualified}")
        policy = propagation_policy(options, res, "") or "Background"
        dry = parse_dry_run(request.query.getall("dryRun", []), options)
        matches = self.selectors(request, res)
        items, _ = self.storage.list(res, namespace)
        deleted = []
        for obj in items:
            if not matches(obj):
                continue
            meta = obj["metadata"]
            try:
                deleted.append(self.storage.delete(res, meta.get("namespace", ""), meta["name"], expected_rv=None,
                                                   policy=policy, dry_run=dry))
            except st.NotFound:
                continue  # gone meanwhile: what the caller wanted
        _, rv = self.storage.list(res, namespace)
        return self.list_response(request, res, deleted, rv)

    async def review(self, request: web.Request, res: Kind) -> web.Response:
        """A create of a virtual kind: the server's hook answers it, nothing is stored."""
        what = f"creating {res.qualified}"
        body = object_body(await read_body(request, what), res, what)
        answered = self.hooks.review(request, res, body)
        answered.update(apiVersion=res.api_version, kind=res.kind)
        answered.setdefault("metadata", {})
        return json_response(answered, 201)

    # -------------------------------------------------------------- scale (autoscaling/v1)

    async def get_scale(self, request: web.Request, res: Kind) -> web.Response:
        return json_response(scale_of(self.storage.get(res, self._ns(request, res), request.match_info["name"])))

    async def write_scale(self, request: web.Request, res: Kind) -> web.Response:
        """``PUT``/``PATCH`` of ``.../scale`` (``kubectl scale``): the object's spec.replicas."""
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'scaling {res.qualified} "{name}"'
        body = await read_body(request, what)
        current = self.storage.get(res, namespace, name)
        scale = scale_of(current)
        if request.method == "PATCH":
            if request.content_type == "application/json-patch+json":
                try:
                    scale = apply_json_patch(scale, body)
                except PatchError as err:
                    raise patch_failed(what, err, res, name) from None
            elif isinstance(body, dict):
                scale = merge_patch(scale, body)
            else:
                raise st.APIError(400, f"{what}: a merge patch must be a JSON object")
        elif isinstance(body, dict) and body.get("kind") in (None, "Scale"):
            scale = body
        else:
            raise st.APIError(400, f"{what}: the request body must be an autoscaling/v1 Scale")
        replicas = ((scale.get("spec") or {}) if isinstance(scale.get("spec"), dict) else {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise st.invalid("Scale", name, [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than "
                                                              "or equal to 0")], "autoscaling")
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        rv = (scale.get("metadata") or {}).get("resourceVersion") if isinstance(scale.get("metadata"), dict) else None
        new["metadata"]["resourceVersion"] = rv or current["metadata"]["resourceVersion"]
        new = self.hooks.admit(request, res, current, self._track(request, res, current, new))
        stored = self.storage.replace(res, namespace, name, new, subresource="", dry_run=self._dry(request))
        return json_response(scale_of(stored))

    # -------------------------------------------------------------- watch

    async def watch(self, request: web.Request, res: Kind, namespace: str | None,
                    matches: Callable[[Object], bool]) -> web.StreamResponse:
        try:
            timeout = min(float(request.query.get("timeoutSeconds") or WATCH_TIMEOUT), WATCH_TIMEOUT_MAX)
        except ValueError:
            raise st.APIError(400, "timeoutSeconds must be a number") from None
        since = watchlimits.parse_resource_version(request.query.get("resourceVersion"))
        as_table = self.tables.wants(request.headers.get("Accept"))
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1") and not as_table
        # client-go's WatchList: the current objects first whatever the resourceVersion, then a
        # bookmark that says they are all there (k8s.io/initial-events-end).
        initial_events = request.query.get("sendInitialEvents") in ("true", "1")
        if initial_events:
            since = 0
        first = [True]

        def line(etype: str, obj: Object) -> bytes:
            if as_table and etype not in ("ERROR", "BOOKMARK"):
                rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                obj = self._table(request, res, [obj], rv, headers=first[0])
                first[0] = False
            return watch_line(etype, obj)

        def ours(ev_resource: str, ev_namespace: str) -> bool:
            return ev_resource == res.key and (namespace is None or ev_namespace == namespace)

        def replayed(ev: Any) -> tuple[str, Object] | None:
            """A change from the history: where the history lost the object as it was (the
            federation's stored log keeps only the new one), a MODIFIED object that does not
            match is sent as DELETED, since it may have matched before; a client that did
            not hold it drops nothing."""
            if ev.type == "MODIFIED" and ev.previous is None and not matches(ev.object):
                return ("DELETED", ev.object)
            return as_seen(ev.type, ev.object, ev.previous, matches)

        source = self.storage.watch
        if since > source.revision():
            await watchlimits.wait_for_revision(since, source.revision, timeout=self.future_wait)
        subscription = source.subscribe()
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        try:
            last = since
            if since == 0:
                items, last = await self.storage.snapshot(res, namespace)
            else:
                # How far back this watch goes is checked before the stream starts, so a
                # refusal is a plain 410 Status; the history is then read a page at a time.
                replay = await source.count_events(since, res, self.watch_window + 1)
                watchlimits.check_window(since, oldest=source.oldest(), replay=replay, window=self.watch_window)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if since == 0:
                for o in items:
                    if matches(o):
                        await resp.write(line("ADDED", o))
                del items
                if initial_events and bookmarks:
                    await resp.write(watch_line("BOOKMARK", {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(last), "annotations": {INITIAL_EVENTS_END: "true"}},
                    }))
            else:
                while True:
                    try:
                        page = await source.events_page(last, res)
                    except st.Gone as err:  # compacted while we streamed: the client relists
                        await resp.write(watch_line("ERROR", st.status_object(410, err.message, reason="Expired")))
                        await resp.write_eof()
                        return resp
                    if not page:
                        break
                    for ev in page:
                        if ours(ev.resource, ev.namespace) and (seen := replayed(ev)) is not None:
                            await resp.write(line(*seen))
                        last = max(last, ev.rv)
                    del page
            deadline = time.monotonic() + timeout
            last_sent = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or request.transport is None or request.transport.is_closing():
                    break
                if bookmarks and time.monotonic() - last_sent >= self.watch_ping:
                    # Nothing for this watcher for a while (other kinds' events do not count):
                    # say it is alive and how far it has got (allowWatchBookmarks).
                    await resp.write(watch_line("BOOKMARK", {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(last)},
                    }))
                    last_sent = time.monotonic()
                try:
                    event = await subscription.next(min(remaining, self.watch_ping))
                except FellBehind:
                    await resp.write(watch_line("ERROR", st.status_object(410, "the watch fell behind; relist",
                                                                          reason="Expired")))
                    break
                if event is None or event.rv <= last:
                    continue
                last = event.rv
                if not ours(event.resource, event.namespace):
                    continue
                seen = as_seen(event.type, event.object, event.previous, matches)
                if seen is not None:
                    await resp.write(line(*seen))
                    last_sent = time.monotonic()
            await resp.write_eof()
            return resp
        except (ConnectionResetError, ClientConnectionResetError):
            return resp  # the watcher went away; nothing more to send
        finally:
            subscription.close()


# --------------------------------------------------------------------------- plain endpoints


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok", content_type="text/plain")


async def version(request: web.Request) -> web.Response:
    return json_response(VERSION)


def add_discovery_routes(
    app: web.Application,
    resources: list[Kind],
) -> None:
    """Serve discovery and OpenAPI v3 for ``resources`` on ``app``: ``/api``, ``/apis``,
    ``/api/v1``, ``/apis/<group>[/<version>]`` (legacy and aggregated) and ``/openapi/v3[/...]``."""
    index_body = openapi.index(resources)

    def aggregated_or(request: web.Request, core: bool, legacy: dict[str, Any]) -> web.Response:
        ctype = discovery.negotiate_aggregated(request.headers.get("Accept"))
        if ctype is None:
            return json_response(legacy)
        api_version = "apidiscovery.k8s.io/" + ("v2" if "v=v2;" in ctype else "v2beta1")
        body = discovery.aggregated_discovery(resources, core=core, api_version=api_version)
        return json_response(body, content_type=ctype)

    async def api_root(request: web.Request) -> web.Response:
        host = request.host or "127.0.0.1"
        return aggregated_or(request, True, discovery.api_versions(host))

    async def apis_root(request: web.Request) -> web.Response:
        return aggregated_or(request, False, discovery.api_group_list(resources))

    async def core_version(request: web.Request) -> web.Response:
        body = discovery.api_resource_list(resources, "", request.match_info["version"])
        if body is None:
            raise web.HTTPNotFound()
        return json_response(body)

    async def group(request: web.Request) -> web.Response:
        body = discovery.api_group(resources, request.match_info["group"])
        if body is None:
            raise web.HTTPNotFound()
        return json_response(body)

    async def group_version(request: web.Request) -> web.Response:
        body = discovery.api_resource_list(resources, request.match_info["group"], request.match_info["version"])
        if body is None:
            raise web.HTTPNotFound()
        return json_response(body)

    async def openapi_index(request: web.Request) -> web.Response:
        return json_response(index_body)

    async def openapi_document(request: web.Request) -> web.Response:
        parts = request.match_info["path"].strip("/").split("/")
        doc = None
        if len(parts) == 2 and parts[0] == "api":
            doc = openapi.document(resources, "", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = openapi.document(resources, parts[1], parts[2])
        if doc is None:
            raise web.HTTPNotFound()
        resp = json_response(doc)
        if request.query.get("hash"):
            resp.headers["Cache-Control"] = "public, immutable"
        return resp

    for slash in ("", "/"):  # a real API server serves both (kr8s asks for /api/; issue 18)
        app.router.add_get("/api" + slash, api_root)
        app.router.add_get("/apis" + slash, apis_root)
        app.router.add_get("/api/{version}" + slash, core_version)
        app.router.add_get("/apis/{group}" + slash, group)
        app.router.add_get("/apis/{group}/{version}" + slash, group_version)
    app.router.add_get("/openapi/v3", openapi_index)
    app.router.add_get("/openapi/v3/{path:.+}", openapi_document)
