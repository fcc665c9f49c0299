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
from typing import Any, Awaitable, Callable

import yaml
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from federation import status as st
from federation.jsonpatch import PatchError, apply_json_patch
from federation.meta import SelectorError, merge_patch, parse_selector, selector_matches
from federation.registry import Registry
from federation.resources import ALL, Resource
from federation.store import HistoryExpired

log = logging.getLogger("federation.api")

MAX_BODY = 3 * 1024 * 1024
REGISTRY_KEY = web.AppKey("registry", Registry)
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


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


@web.middleware
async def status_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except st.APIError as err:
        return json_response(err.to_status(), err.code)
    except web.HTTPRequestEntityTooLarge:
        return json_response(st.status_object(413, f"request body is larger than the limit of {MAX_BODY} bytes"), 413)
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
    raw = await request.read()
    if not raw:
        raise st.APIError(400, f"{what}: the request body is empty")
    ctype = request.content_type
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise st.APIError(400, f"{what}: the request body is not UTF-8") from None
    try:
        if "yaml" in ctype:
            body = yaml.safe_load(text)
        else:
            body = json.loads(text)
    except (ValueError, yaml.YAMLError) as err:
        kind = "YAML" if "yaml" in ctype else "JSON"
        raise st.APIError(400, f"{what}: the request body is not valid {kind}: {str(err).splitlines()[0]}") from None
    return body


def _object_body(body: Any, res: Resource, what: str) -> dict[str, Any]:
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
    def __init__(self, registry: Registry, *, watch_ping: float = 5.0) -> None:
        self.registry = registry
        self.watch_ping = watch_ping

    # -------------------------------------------------------------- routing

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.healthz)
        app.router.add_get("/livez", self.healthz)
        app.router.add_get("/version", self.version)
        for res in ALL:
            self._add_resource(app, res)

    def _add_resource(self, app: web.Application, res: Resource) -> None:
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

    # -------------------------------------------------------------- plain endpoints

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def version(self, request: web.Request) -> web.Response:
        return json_response(VERSION)

    # -------------------------------------------------------------- verbs

    @staticmethod
    def _ns(request: web.Request, res: Resource) -> str:
        return request.match_info.get("namespace", "") if res.namespaced else ""

    async def get(self, request: web.Request, res: Resource) -> web.Response:
        return json_response(self.registry.get(res, self._ns(request, res), request.match_info["name"]))

    async def list(self, request: web.Request, res: Resource) -> web.StreamResponse:
        namespace = request.match_info.get("namespace") if res.namespaced else None
        try:
            selector = parse_selector(request.query.get("labelSelector"))
        except SelectorError as err:
            raise st.APIError(400, str(err)) from None
        field_filters = self._field_selector(request.query.get("fieldSelector"))
        if request.query.get("watch") in ("true", "1"):
            return await self.watch(request, res, namespace, selector, field_filters)
        items, rv = self.registry.list(res, namespace)
        items = [o for o in items if self._matches(o, selector, field_filters)]
        return json_response(
            {
                "apiVersion": res.api_version,
                "kind": f"{res.kind}List",
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    @staticmethod
    def _field_selector(text: str | None) -> list[tuple[str, str, str]]:
        filters = []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            op = "!=" if "!=" in part else "="
            key, _, value = part.replace("==", "=").partition(op)
            if key.strip() not in ("metadata.name", "metadata.namespace"):
                raise st.APIError(400, f'field label not supported: {key.strip()}')
            filters.append((key.strip(), op, value.strip()))
        return filters

    @staticmethod
    def _matches(obj: dict[str, Any], selector: list, field_filters: list[tuple[str, str, str]]) -> bool:
        meta = obj.get("metadata") or {}
        if not selector_matches(selector, meta.get("labels")):
            return False
        for key, op, value in field_filters:
            actual = meta.get(key.split(".", 1)[1], "")
            if (actual == value) != (op == "="):
                return False
        return True

    async def create(self, request: web.Request, res: Resource) -> web.Response:
        namespace = self._ns(request, res)
        what = f"creating {res.qualified}"
        body = _object_body(await read_body(request, what), res, what)
        meta = body.get("metadata")
        if res.namespaced and isinstance(meta, dict) and meta.get("namespace") not in (None, "", namespace):
            raise st.APIError(
                400,
                f"the namespace of the provided object ({meta.get('namespace')}) does not match "
                f"the namespace sent on the request ({namespace})",
            )
        return json_response(self.registry.create(res, namespace, body), 201)

    async def replace(self, request: web.Request, res: Resource, subresource: str = "") -> web.Response:
        name = request.match_info["name"]
        what = f'replacing {res.qualified} "{name}"'
        body = _object_body(await read_body(request, what), res, what)
        return json_response(self.registry.replace(res, self._ns(request, res), name, body, subresource=subresource))

    async def patch(self, request: web.Request, res: Resource, subresource: str = "") -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        what = f'patching {res.qualified} "{name}"'
        patch = await read_body(request, what)
        current = self.registry.get(res, namespace, name)
        ctype = request.content_type
        if ctype == "application/json-patch+json":
            try:
                new = apply_json_patch(current, patch)
            except PatchError as err:
                raise st.APIError(422, f"{what}: {err}", reason="Invalid", kind=res.plural, name=name) from None
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json", "application/json"):
            if not isinstance(patch, dict):
                raise st.APIError(400, f"{what}: a merge patch must be a JSON object")
            new = merge_patch(current, patch)
        else:
            raise st.APIError(415, f"{what}: unsupported patch type {ctype!r}")
        if not isinstance(new, dict):
            raise st.APIError(422, f"{what}: the patched object is not an object", reason="Invalid")
        new_meta = new.get("metadata")
        if isinstance(new_meta, dict) and "resourceVersion" not in (patch.get("metadata") or {} if isinstance(patch, dict) else {}):
            # A patch without a resourceVersion applies to whatever is current.
            new_meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return json_response(self.registry.replace(res, namespace, name, new, subresource=subresource))

    async def delete(self, request: web.Request, res: Resource) -> web.Response:
        namespace, name = self._ns(request, res), request.match_info["name"]
        expected = None
        raw = await request.read()
        if raw:
            try:
                options = json.loads(raw)
            except ValueError:
                raise st.APIError(400, f'deleting {res.qualified} "{name}": DeleteOptions is not valid JSON') from None
            pre = (options or {}).get("preconditions") if isinstance(options, dict) else None
            if isinstance(pre, dict) and pre.get("resourceVersion"):
                expected = int(pre["resourceVersion"])
        return json_response(self.registry.delete(res, namespace, name, expected_rv=expected))

    # -------------------------------------------------------------- watch

    async def watch(
        self, request: web.Request, res: Resource, namespace: str | None, selector: list, field_filters: list
    ) -> web.StreamResponse:
        try:
            timeout = float(request.query.get("timeoutSeconds", "1800"))
        except ValueError:
            raise st.APIError(400, "timeoutSeconds must be a number") from None
        rv_text = request.query.get("resourceVersion", "")
        try:
            since = int(rv_text) if rv_text else 0
        except ValueError:
            raise st.APIError(400, f"resourceVersion {rv_text!r} is not valid") from None

        def wanted(ev_resource: str, ev_ns: str, obj: dict[str, Any]) -> bool:
            if ev_resource != res.key or (namespace is not None and ev_ns != namespace):
                return False
            return self._matches(obj, selector, field_filters)

        hub = self.registry.hub
        queue = hub.subscribe()
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        try:
            backlog: list[tuple[str, dict[str, Any], int]] = []
            if since == 0:
                items, last = self.registry.list(res, namespace)
                backlog = [("ADDED", o, last) for o in items if self._matches(o, selector, field_filters)]
            else:
                try:
                    events = self.registry.store.events_since(since, res.key)
                except HistoryExpired as err:
                    raise st.APIError(410, f"too old resource version: {since} ({err})", reason="Expired") from None
                last = since
                for ev in events:
                    if wanted(ev.resource, ev.namespace, ev.object):
                        backlog.append((ev.type, ev.object, ev.rv))
                    last = ev.rv
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for etype, obj, _ in backlog:
                await resp.write(self._line(etype, obj))
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
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
                if wanted(event.resource, event.namespace, event.object):
                    await resp.write(self._line(event.type, event.object))
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


def make_app(registry: Registry) -> web.Application:
    app = web.Application(middlewares=[status_middleware], client_max_size=MAX_BODY)
    app[REGISTRY_KEY] = registry
    API(registry).routes(app)
    return app
