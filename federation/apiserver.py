"""The federation API server's HTTP layer: Kubernetes-shaped routes over the registry.

Every route is generated from the resource table in :mod:`federation.resources`, so a
new kind needs no new handler code. Everything that goes wrong becomes a ``Status``
object in one middleware; an unexpected exception is logged and answered with a 500
``Status``, never allowed to take the process down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from apimachinery import decoding, serving, watchlimits
from apimachinery.options import dry_run as parse_dry_run
from apimachinery.watchevents import as_seen
from apimachinery.errors import RequestRefused
from apimachinery import discovery, openapi
from federation import admission, auth, tables
from federation.names import DELETION_PROPAGATION_ANNOTATION, KUBERNETES_NAMESPACES, NAMESPACE_NAME_LABEL, SYSTEM_NAMESPACE
from apimachinery import errors as st
from apimachinery.jsonpatch import PatchError, apply_json_patch
from apimachinery.meta import (
    SelectorError, fields_match, merge_patch, parse_field_selector, parse_selector, selector_matches,
)
from federation.registry import Registry
from apimachinery.kinds import Kind
from federation.resources import ALL, CLUSTERS, SECRETS
from federation.resources import NAMESPACES as MEMBER_NAMESPACES
from federation.store import HistoryExpired
from apimachinery.strategic import ApplyConflict, StrategicPatchError, record_update, server_side_apply, strategic_merge

log = logging.getLogger("federation.api")

MAX_BODY = decoding.MAX_REQUEST_BYTES
REGISTRY_KEY = web.AppKey("registry", Registry)
USER_KEY = "ubernetes.user"  # the authenticated auth.User of a request, when auth is on
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-ubernetes",
    "gitCommit": "ubernetes",
    "gitTreeState": "clean",
    "buildDate": "2026-11-30T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}


# Namespaces are not stored: the federation serves the well-known ones plus every namespace
# an object lives in, read only, because kubectl asks for them (``get ns``, completion).
NAMESPACES = replace(MEMBER_NAMESPACES, verbs=("get", "list"))
WELL_KNOWN_NAMESPACES = (*KUBERNETES_NAMESPACES, SYSTEM_NAMESPACE)
SERVED = ALL + [NAMESPACES]
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
# Fields every kind can be selected by; events add their involvedObject and reason (what
# ``kubectl describe`` asks for), as the real API server does.

def json_response(body: Any, status: int = 200, *, content_type: str = "application/json",
                  warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": content_type})
    for warning in warnings or []:
        resp.headers.add("Warning", f'299 - {json.dumps(warning)}')
    return resp


@web.middleware
async def status_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except st.APIError as err:
        return json_response(err.to_status(), err.code)
    except RequestRefused as err:  # a body or a watch over a limit (apimachinery)
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


def auth_middleware(authenticator: auth.Authenticator):  # type: ignore[no-untyped-def]
    """Bearer-token authentication and :func:`federation.auth.authorize` on every request
    (issue 8). Installed only when a token file is configured; without one the API is open."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        attrs = auth.request_attributes(request.method, request.path, dict(request.query))
        token = auth.bearer_token(request.headers.get("Authorization"))
        user = authenticator.authenticate(token) if token else None
        if user is None:
            if not token and not attrs.is_resource and attrs.path in auth.PUBLIC_PATHS:
                return await handler(request)
            raise st.APIError(401, "Unauthorized", reason="Unauthorized")
        decision = auth.authorize(user, attrs.verb, attrs.resource, attrs.namespace, attrs.name, attrs.subresource,
                                  path=attrs.path)
        if not decision.allowed:
            raise st.APIError(403, auth.forbidden_message(user, attrs, decision.reason), reason="Forbidden",
                              kind=attrs.resource or None, name=attrs.name or None, group=attrs.group or None)
        request[USER_KEY] = user
        return await handler(request)

    return middleware


def _dry(request: web.Request) -> bool:
    """``?dryRun=All`` (apimachinery.options): run the write, store nothing."""
    return parse_dry_run(request.query.getall("dryRun", []))


def check_created_name(request: web.Request, res: Kind, name: Any, namespace: str) -> None:
    """A cluster's credential may create only its own objects: the name is in the body."""
    user = request.get(USER_KEY)
    if user is None:
        return
    decision = auth.created_name_allowed(user, res.plural, str(name or ""))
    if decision is not None and not decision.allowed:
        attrs = auth.Attributes(verb="create", resource=res.plural, namespace=namespace, group=res.group,
                                path=request.path)
        raise st.APIError(403, auth.forbidden_message(user, attrs, decision.reason, name=str(name or "")),
                          reason="Forbidden", kind=res.plural, name=str(name or "") or None, group=res.group or None)


async def read_body(request: web.Request, what: str) -> Any:
    """The request's JSON or YAML body through the shared decoder and its limits (issue 19)."""
    try:
        return await serving.decode_request_body(await request.read(), request.content_type)
    except decoding.DecodeError as err:
        raise st.refused(err, what) from None


def _object_body(body: Any, res: Kind, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise st.APIError(400, f"{what}: the request body must be a {res.kind} object")
    kind = body.get("kind")
    if kind is not None and kind != res.kind:
        raise st.APIError(
            400, f"{what}: the body is a {kind!r}, but this endpoint takes {res.kind} ({res.api_version})"
        )
    api_version = body.get("apiVersion")
    if api_version is not None and api_version != res.api_version:
        raise st.APIError(400, f"{what}: apiVersion {api_version!r} does not match {res.api_version!r}")
    return body


class API:
    def __init__(self, registry: Registry, *, watch_ping: float = 5.0, watch_window: int = watchlimits.WATCH_WINDOW,
                 future_wait: float = watchlimits.FUTURE_WAIT, auto_approve: frozenset[str] = frozenset()) -> None:
        self.registry = registry
        self.watch_ping = watch_ping
        self.watch_window = watch_window
        self.future_wait = future_wait
        self.auto_approve = auto_approve  # Cluster names approved when they join (issue 19)
        self.components = openapi.schemas_for(SERVED)
        self.schemas = {res.key: openapi.SchemaNode(self.components[openapi.schema_name(res)], self.components)
                        for res in SERVED}

    # -------------------------------------------------------------- routing

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.healthz)
        app.router.add_get("/livez", self.healthz)
        app.router.add_get("/version", self.version)
        add_discovery_routes(app, SERVED)
        app.router.add_get("/api/v1/namespaces", self.list_namespaces)
        app.router.add_get("/api/v1/namespaces/{name}", self.get_namespace)
        for res in ALL:
            self._add_resource(app, res)
        app.router.add_post(f"{CLUSTERS.base_path()}/{{name}}/credential", self.cluster_credential)
        approval_path = f"{CLUSTERS.base_path()}/{{name}}/approval"
        app.router.add_get(approval_path, lambda request: self.get(request, CLUSTERS))
        app.router.add_put(approval_path, lambda request: self.replace(request, CLUSTERS, subresource="approval"))

    def _add_resource(self, app: web.Application, res: Kind) -> None:
        def bind(fn: Callable[..., Awaitable[web.StreamResponse]], **fixed: Any):
            async def handler(request: web.Request) -> web.StreamResponse:
                return await fn(request, res, **fixed)

            return handler

        root = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        if res.namespaced:
            collection = f"{root}/namespaces/{{namespace}}/{res.plural}"
            app.router.add_get(f"{root}/{res.plural}", bind(self.list))
        else:
            collection = f"{root}/{res.plural}"
        item = f"{collection}/{{name}}"
        app.router.add_get(collection, bind(self.list))
        app.router.add_post(collection, bind(self.create))
        app.router.add_get(item, bind(self.get))
        app.router.add_put(item, bind(self.replace))
        app.router.add_patch(item, bind(self.patch))
        app.router.add_delete(item, bind(self.delete))
        app.router.add_get(item + "/status", bind(self.get))
        app.router.add_put(item + "/status", bind(self.replace, subresource="status"))
        app.router.add_patch(item + "/status", bind(self.patch, subresource="status"))

    # -------------------------------------------------------------- cluster credentials (issue 8)

    async def cluster_credential(self, request: web.Request) -> web.Response:
        """Issue a token of the cluster's own (user ``system:cluster:<name>``), replacing any
        earlier one. Only its SHA-256 is stored, in ``federation-system/cluster-credential-<name>``."""
        name = request.match_info["name"]
        problem = CLUSTERS.name_check(name)
        if problem:
            raise st.invalid(CLUSTERS.kind, name, [("metadata.name", f"Invalid value: {name!r}: {problem}")],
                             CLUSTERS.group)
        user = request.get(USER_KEY)
        token = auth.new_cluster_token(name)
        secret = auth.credential_secret(name, token, issued_to=user.name if user is not None else "")
        secret_name = secret["metadata"]["name"]
        current = self.registry.find(SECRETS, auth.SYSTEM_NAMESPACE, secret_name)
        admission.check_credential_request(user, name,
                                           issued_to=auth.secret_value(current, "issued-to") if current else None,
                                           cluster_exists=self.registry.find(CLUSTERS, "", name) is not None)
        if current is None:
            self.registry.create(SECRETS, auth.SYSTEM_NAMESPACE, secret)
        else:
            secret["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.registry.replace(SECRETS, auth.SYSTEM_NAMESPACE, secret_name, secret)
        log.info("issued a credential for cluster %s", name)
        self._spend_bootstrap_token(request.get(USER_KEY))
        return json_response({"apiVersion": "federation/v1beta1", "kind": "ClusterCredential",
                              "metadata": {"name": name}, "user": auth.CLUSTER_USER_PREFIX + name,
                              "groups": [auth.CLUSTERS_GROUP], "token": token}, 201)

    def _spend_bootstrap_token(self, user: auth.User | None) -> None:
        """A single-use bootstrap token is deleted once it has got a cluster its first credential."""
        if user is None or not user.name.startswith(auth.BOOTSTRAP_USER_PREFIX):
            return
        name = auth.BOOTSTRAP_SECRET_PREFIX + user.name[len(auth.BOOTSTRAP_USER_PREFIX):]
        secret = self.registry.find(SECRETS, auth.SYSTEM_NAMESPACE, name)
        if secret is not None and auth.secret_value(secret, auth.SINGLE_USE_KEY) == "true":
            self.registry.delete(SECRETS, auth.SYSTEM_NAMESPACE, name)
            log.info("single-use bootstrap token %s spent", name)

    # -------------------------------------------------------------- plain endpoints

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def version(self, request: web.Request) -> web.Response:
        return json_response(VERSION)

    # -------------------------------------------------------------- namespaces (derived, read only)

    def _namespaces(self) -> tuple[list[dict[str, Any]], int]:
        names = set(WELL_KNOWN_NAMESPACES)
        rv = 0
        for res in ALL:
            if res.namespaced:
                items, rv = self.registry.list(res, None)
                names.update((o.get("metadata") or {}).get("namespace") or "default" for o in items)
        return [
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": n, "labels": {NAMESPACE_NAME_LABEL: n}},
             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            for n in sorted(names)
        ], rv

    async def list_namespaces(self, request: web.Request) -> web.Response:
        if request.query.get("watch") in ("true", "1"):
            raise st.APIError(405, "watching namespaces is not supported by the federation API", reason="MethodNotAllowed")
        items, rv = self._namespaces()
        selector = self._selector(request)
        field_filters = self._field_selector(request.query.get("fieldSelector"), NAMESPACES)
        items = [o for o in items if self._matches(o, selector, field_filters)]
        return self._list_response(request, NAMESPACES, items, rv)

    async def get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for ns in self._namespaces()[0]:
            if ns["metadata"]["name"] == name:
                return self._object_response(request, NAMESPACES, ns)
        raise st.not_found("namespaces", name)

    # -------------------------------------------------------------- output

    def _object_response(self, request: web.Request, res: Kind, obj: dict[str, Any], status: int = 200,
                         warnings: list[str] | None = None) -> web.Response:
        if tables.wants_table(request.headers.get("Accept")):
            rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            return json_response(
                tables.to_table(res.plural, [obj], resource_version=rv,
                                include_object=request.query.get("includeObject", "Metadata")),
                status,
            )
        return json_response(obj, status, warnings=warnings)

    def _list_response(self, request: web.Request, res: Kind, items: list[dict[str, Any]], rv: int) -> web.Response:
        if tables.wants_table(request.headers.get("Accept")):
            return json_response(
                tables.to_table(res.plural, items, resource_version=str(rv),
                                include_object=request.query.get("includeObject", "Metadata"))
            )
        return json_response(
            {"apiVersion": res.api_version, "kind": f"{res.kind}List", "metadata": {"resourceVersion": str(rv)},
             "items": items}
        )

    # -------------------------------------------------------------- verbs

    @staticmethod
    def _ns(request: web.Request, res: Kind) -> str:
        return request.match_info.get("namespace", "") if res.namespaced else ""

    async def get(self, request: web.Request, res: Kind) -> web.Response:
        return self._object_response(request, res, self.registry.get(res, self._ns(request, res), request.match_info["name"]))

    @staticmethod
    def _selector(request: web.Request) -> list:
        try:
            return parse_selector(request.query.get("labelSelector"))
        except SelectorError as err:
            raise st.APIError(400, str(err)) from None

    async def list(self, request: web.Request, res: Kind) -> web.StreamResponse:
        namespace = request.match_info.get("namespace") if res.namespaced else None
        selector = self._selector(request)
        field_filters = self._field_selector(request.query.get("fieldSelector"), res)
        if request.query.get("watch") in ("true", "1"):
            return await self.watch(request, res, namespace, selector, field_filters)
        items, rv = self.registry.list(res, namespace)
        items = [o for o in items if self._matches(o, selector, field_filters)]
        return self._list_response(request, res, items, rv)

    @staticmethod
    def _field_selector(text: str | None, res: Kind) -> list[tuple[str, bool, str]]:
        try:
            return parse_field_selector(text, res.field_labels, res.plural)
        except SelectorError as err:
            raise st.APIError(400, str(err)) from None

    @classmethod
    def _matches(cls, obj: dict[str, Any], selector: list, field_filters: list[tuple[str, str, str]]) -> bool:
        meta = obj.get("metadata") or {}
        if not selector_matches(selector, meta.get("labels")):
            return False
        return fields_match(obj, field_filters)

    # -------------------------------------------------------------- writes

    @staticmethod
    def _field_validation(request: web.Request) -> str:
        value = request.query.get("fieldValidation", "Warn") or "Warn"
        if value not in FIELD_VALIDATION:
            raise st.APIError(400, f'fieldValidation must be one of Strict, Warn or Ignore, not {value!r}')
        return value

    def _validate_fields(self, request: web.Request, res: Kind, body: Any, *, what: str) -> list[str]:
        """Unknown fields per ``fieldValidation``: a 400 (Strict), warnings (Warn) or nothing (Ignore)."""
        mode = self._field_validation(request)
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
                400,
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                f'strict decoding error: {", ".join(messages)}',
                kind=res.plural,
            )
        return messages

    def _admit(self, request: web.Request, res: Kind, current: dict[str, Any] | None,
               new: dict[str, Any]) -> dict[str, Any]:
        """Issue 19's rules on a Cluster a non-admin writes (federation/admission.py)."""
        if res.key != CLUSTERS.key:
            return new
        return admission.admit_cluster(request.get(USER_KEY), current, new, auto_approve=self.auto_approve)

    def _track(self, request: web.Request, res: Kind, before: dict[str, Any] | None,
               after: dict[str, Any]) -> dict[str, Any]:
        """Record the writer in managedFields when it names itself (kubectl does) or when the
        object is already under server-side apply, so that apply can see conflicts."""
        manager = request.query.get("fieldManager")
        if not manager and not (before and (before.get("metadata") or {}).get("managedFields")):
            return after
        manager = manager or request.headers.get("User-Agent", "unknown").split("/")[0]
        return record_update(before, after, self.schemas[res.key], manager=manager)

    async def create(self, request: web.Request, res: Kind) -> web.Response:
        namespace = self._ns(request, res)
        what = f"creating {res.qualified}"
        body = _object_body(await read_body(request, what), res, what)
        warnings = self._validate_fields(request, res, body, what=what)
        meta = body.get("metadata")
        if res.namespaced and isinstance(meta, dict) and meta.get("namespace") not in (None, "", namespace):
            raise st.APIError(
                400,
                f"the namespace of the provided object ({meta.get('namespace')}) does not match "
                f"the namespace sent on the request ({namespace})",
            )
        check_created_name(request, res, meta.get("name") if isinstance(meta, dict) else None, namespace)
        body = self._admit(request, res, None, self._track(request, res, None, body))
        created = self.registry.create(res, namespace, body, dry_run=_dry(request))
        return self._object_response(request, res, created, 201, warnings)

    async def replace(self, request: web.Request, res: Kind, subresource: str = "") -> web.Response:
        name = request.match_info["name"]
        what = f'replacing {res.qualified} "{name}"'
        body = _object_body(await read_body(request, what), res, what)
        warnings = self._validate_fields(request, res, body, what=what)
        namespace = self._ns(request, res)
        if not subresource:
            current = self.registry.find(res, namespace, name)
            body = self._admit(request, res, current, self._track(request, res, current, body))
        replaced = self.registry.replace(res, namespace, name, body, subresource=subresource, dry_run=_dry(request))
        return self._object_response(request, res, replaced, warnings=warnings)

    async def patch(self, request: web.Request, res: Kind, subresource: str = "") -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'patching {res.qualified} "{name}"'
        ctype = request.content_type
        if ctype == "application/apply-patch+yaml":
            return await self.apply(request, res, namespace, name, subresource)
        patch = await read_body(request, what)
        current = self.registry.get(res, namespace, name)
        node = self.schemas[res.key]
        warnings: list[str] = []
        if ctype == "application/json-patch+json":
            try:
                new = apply_json_patch(current, patch)
            except PatchError as err:
                raise st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
        elif ctype in ("application/merge-patch+json", "application/json"):
            if not isinstance(patch, dict):
                raise st.APIError(400, f"{what}: a merge patch must be a JSON object")
            warnings = self._validate_fields(request, res, patch, what=what)
            new = merge_patch(current, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if not isinstance(patch, dict):
                raise st.APIError(400, f"{what}: a strategic merge patch must be a JSON object")
            warnings = self._validate_fields(request, res, patch, what=what)
            try:
                new = strategic_merge(current, patch, node)
            except StrategicPatchError as err:
                raise st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
        else:
            raise st.APIError(415, f"{what}: unsupported patch type {ctype!r}")
        if not isinstance(new, dict):
            raise st.APIError(422, f"{what}: the patched object is not an object", reason="Invalid")
        new_meta = new.get("metadata")
        if isinstance(new_meta, dict) and "resourceVersion" not in (patch.get("metadata") or {} if isinstance(patch, dict) else {}):
            # A patch without a resourceVersion applies to whatever is current.
            new_meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if not subresource:
            new = self._admit(request, res, current, self._track(request, res, current, new))
        patched = self.registry.replace(res, namespace, name, new, subresource=subresource, dry_run=_dry(request))
        return self._object_response(request, res, patched, warnings=warnings)

    async def apply(self, request: web.Request, res: Kind, namespace: str, name: str,
                    subresource: str) -> web.Response:
        """Server-side apply: ``PATCH`` with ``application/apply-patch+yaml`` (creates if missing)."""
        what = f'applying {res.qualified} "{name}"'
        manager = request.query.get("fieldManager")
        if not manager:
            raise st.APIError(400, f"{what}: fieldManager is required for apply requests", reason="BadRequest")
        if subresource:
            raise st.APIError(400, f"{what}: server-side apply of the {subresource} subresource is not supported")
        body = _object_body(await read_body(request, what), res, what)
        warnings = self._validate_fields(request, res, body, what=what)
        if ((body.get("metadata") or {}).get("name") or name) != name:
            raise st.APIError(400, f'{what}: the name of the object ({body["metadata"]["name"]}) does not match '
                                   f"the name on the URL ({name})")
        force = request.query.get("force") in ("true", "1")
        current = self.registry.find(res, namespace, name)
        try:
            new = server_side_apply(current, body, self.schemas[res.key], manager=manager, force=force)
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
        new = self._admit(request, res, current, new)
        dry = _dry(request)
        if current is None:
            new.setdefault("metadata", {})["name"] = name
            return self._object_response(request, res, self.registry.create(res, namespace, new, dry_run=dry), 201,
                                         warnings)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._object_response(request, res, self.registry.replace(res, namespace, name, new, dry_run=dry),
                                     warnings=warnings)

    async def delete(self, request: web.Request, res: Kind) -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'deleting {res.qualified} "{name}"'
        options: dict[str, Any] = {}
        if (await request.read()).strip():
            options = await read_body(request, f"{what}: DeleteOptions")
            if not isinstance(options, dict):
                raise st.APIError(400, f"{what}: DeleteOptions must be an object")
        for key in ("propagationPolicy", "orphanDependents", "gracePeriodSeconds"):
            if key not in options and key in request.query:
                value = request.query[key]
                options[key] = value == "true" if key == "orphanDependents" else value
        expected = None
        pre = options.get("preconditions")
        if isinstance(pre, dict) and pre.get("resourceVersion"):
            try:
                expected = int(pre["resourceVersion"])
            except (TypeError, ValueError):
                raise st.APIError(400, f"{what}: preconditions.resourceVersion must be an integer") from None
        policy = self._propagation(options, res, name)
        dry = parse_dry_run(request.query.getall("dryRun", []), options)
        if dry:
            return json_response(self.registry.delete(res, namespace, name, expected_rv=expected, dry_run=True))
        if policy is not None and policy != "Background":
            # Recorded on the object itself, so the DELETED event carries it to whoever
            # cascades the deletion to the member clusters. Background is the default
            # (kubectl sends it on every delete) and costs no extra write.
            current = self.registry.get(res, namespace, name)
            if expected is not None and int(current["metadata"]["resourceVersion"]) != expected:
                raise st.conflict(res.plural, name, res.group)
            marked = json.loads(json.dumps(current))
            marked["metadata"].setdefault("annotations", {})[DELETION_PROPAGATION_ANNOTATION] = policy
            stored = self.registry.put_if_changed(res, namespace, name, marked)
            expected = int(stored["metadata"]["resourceVersion"])
        return json_response(self.registry.delete(res, namespace, name, expected_rv=expected))

    @staticmethod
    def _propagation(options: dict[str, Any], res: Kind, name: str) -> str | None:
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

    # -------------------------------------------------------------- watch

    async def watch(
        self, request: web.Request, res: Kind, namespace: str | None, selector: list, field_filters: list
    ) -> web.StreamResponse:
        try:
            timeout = float(request.query.get("timeoutSeconds", "1800"))
        except ValueError:
            raise st.APIError(400, "timeoutSeconds must be a number") from None
        since = watchlimits.parse_resource_version(request.query.get("resourceVersion"))
        as_table = tables.wants_table(request.headers.get("Accept"))
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1") and not as_table
        include_object = request.query.get("includeObject", "Metadata")
        first = [True]

        def line(etype: str, obj: dict[str, Any]) -> bytes:
            if as_table and etype != "ERROR":
                obj = tables.to_table(res.plural, [obj], include_object=include_object, headers=first[0],
                                      resource_version=str((obj.get("metadata") or {}).get("resourceVersion", "")))
                first[0] = False
            return self._line(etype, obj)

        def wanted(ev_resource: str, ev_ns: str, obj: dict[str, Any]) -> bool:
            if ev_resource != res.key or (namespace is not None and ev_ns != namespace):
                return False
            return self._matches(obj, selector, field_filters)

        store = self.registry.store
        if since > store.revision:
            await watchlimits.wait_for_revision(since, lambda: store.revision, timeout=self.future_wait)
        hub = self.registry.hub
        queue = hub.subscribe()
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        try:
            last = since
            if since == 0:
                items, last = await asyncio.to_thread(self.registry.list, res, namespace)
            else:
                # How far back this watch goes is checked before the stream starts, so a
                # refusal is a plain 410 Status; the history itself is read a page at a time
                # off the event loop below (issue 19).
                replay = await asyncio.to_thread(store.count_events, since, res.key, limit=self.watch_window + 1)
                watchlimits.check_window(since, oldest=store.oldest, replay=replay, window=self.watch_window)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if since == 0:
                for o in items:
                    if self._matches(o, selector, field_filters):
                        await resp.write(line("ADDED", o))
                del items
            else:
                while True:
                    try:
                        page = await asyncio.to_thread(store.events_page, last, res.key,
                                                       max_events=watchlimits.PAGE_EVENTS,
                                                       max_bytes=watchlimits.PAGE_BYTES)
                    except HistoryExpired as err:  # compacted while we streamed: the client relists
                        await resp.write(self._line("ERROR", st.status_object(410, str(err), reason="Expired")))
                        await resp.write_eof()
                        return resp
                    if not page:
                        break
                    for ev in page:
                        if wanted(ev.resource, ev.namespace, ev.object):
                            await resp.write(line(ev.type, ev.object))
                        last = ev.rv
                    del page
            deadline = time.monotonic() + timeout
            last_sent = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or request.transport is None or request.transport.is_closing():
                    break
                if bookmarks and time.monotonic() - last_sent >= self.watch_ping:
                    # Nothing for this watcher for a while (other kinds' events do not count):
                    # say it is alive and how far it has got, so a client can tell a quiet
                    # server from a hung one (allowWatchBookmarks).
                    await resp.write(self._line("BOOKMARK", {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(last)},
                    }))
                    last_sent = time.monotonic()
                try:
                    event = await asyncio.wait_for(queue.get(), min(remaining, self.watch_ping))
                except asyncio.TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if event is None:
                    await resp.write(
                        self._line("ERROR", st.status_object(410, "the watch fell behind; relist", reason="Expired"))
                    )
                    break
                if event.rv <= last:
                    continue
                last = event.rv
                if event.resource != res.key or (namespace is not None and event.namespace != namespace):
                    continue
                seen = as_seen(event.type, event.object, event.previous, lambda o: self._matches(o, selector, field_filters))
                if seen is not None:
                    await resp.write(line(*seen))
                    last_sent = time.monotonic()
            await resp.write_eof()
            return resp
        except (ConnectionResetError, ClientConnectionResetError):
            # The watcher went away; nothing more to send.
            return resp
        finally:
            hub.unsubscribe(queue)

    @staticmethod
    def _line(etype: str, obj: dict[str, Any]) -> bytes:
        return (json.dumps({"type": etype, "object": obj}, separators=(",", ":")) + "\n").encode()


def add_discovery_routes(
    app: web.Application,
    resources: list[Kind],
) -> None:
    """Serve discovery and OpenAPI v3 for ``resources`` on ``app``: ``/api``, ``/apis``,
    ``/api/v1``, ``/apis/<group>[/<version>]`` (legacy and aggregated) and ``/openapi/v3[/...]``.

    The member clusters' API calls this too, with its own resource table.
    """
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

    app.router.add_get("/api", api_root)
    app.router.add_get("/apis", apis_root)
    app.router.add_get("/api/{version}", core_version)
    app.router.add_get("/apis/{group}", group)
    app.router.add_get("/apis/{group}/{version}", group_version)
    app.router.add_get("/openapi/v3", openapi_index)
    app.router.add_get("/openapi/v3/{path:.+}", openapi_document)


def make_app(registry: Registry, *, tokens: dict[str, auth.User] | None = None,
             watch_ping: float = 5.0, watch_window: int = watchlimits.WATCH_WINDOW,
             auto_approve: frozenset[str] = frozenset()) -> web.Application:
    """The API app; ``tokens`` (a parsed token file) turns authentication and authorization on.
    ``watch_ping``: how often an idle watch checks its client and, when asked, sends a BOOKMARK.
    ``watch_window``: how many events of its kind one watch may replay (older: 410 Gone)."""
    middlewares: list[Any] = [status_middleware]
    if tokens is not None:
        authenticator = auth.Authenticator(
            static=tokens, secrets=lambda name: registry.find(SECRETS, auth.SYSTEM_NAMESPACE, name)
        )
        middlewares.append(auth_middleware(authenticator))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[REGISTRY_KEY] = registry
    API(registry, watch_ping=watch_ping, watch_window=watch_window, auto_approve=auto_approve).routes(app)
    return app
