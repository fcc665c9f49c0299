"""The federation API server: the generic server (:mod:`apimachinery.server`) with the
federation's kinds (:mod:`federation.resources`), its registry as the storage
(:mod:`federation.api.storage`), and what only the federation has: bearer-token
authentication and authorization (issue 8), the admission rules on Clusters (issue 19),
and the routes that issue a cluster its credential and approve it.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from apimachinery import errors as st
from apimachinery import metrics, server, watchlimits
from apimachinery.kinds import Kind
from federation.api import admission, auth, reviews
from federation import tables
from federation.api.storage import SERVED, FederationStorage
from federation.api.registry import Registry
from federation.resources import CLUSTERS, SECRETS

log = logging.getLogger("federation.api")

REGISTRY_KEY = web.AppKey("registry", Registry)
USER_KEY = "ubernetes.user"  # the authenticated auth.User of a request, when auth is on


def auth_middleware(authenticator: auth.Authenticator):  # type: ignore[no-untyped-def]
    """Bearer-token authentication and :func:`federation.api.auth.authorize` on every request
    (issue 8). Installed only when a token file is configured; without one the API is open."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        attrs = auth.request_attributes(request.method, request.path, dict(request.query))
        token = auth.bearer_token(request.headers.get("Authorization"))
        user = authenticator.authenticate(token) if token else None
        if user is None:
            if not token and not attrs.is_resource and auth.is_public(attrs.path):
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


class FederationAdmission(server.Hooks):
    def __init__(self, auto_approve: frozenset[str]) -> None:
        self.auto_approve = auto_approve  # Cluster names approved when they join (issue 19)

    def check_create(self, request: web.Request, res: Kind, name: str, namespace: str) -> None:
        check_created_name(request, res, name, namespace)

    def review(self, request: web.Request, res: Kind, body: dict[str, Any]) -> dict[str, Any]:
        """``kubectl auth can-i`` / ``whoami``: the request's user and the rules enforced on it."""
        user = request.get(USER_KEY)
        if user is None:  # no token file: the API is open to all
            return reviews.answer(res.kind, body, None, reviews.everyone_may("this API has no authentication"))

        def decide(verb: str, resource: str, namespace: str, name: str, subresource: str, *, path: str) -> auth.Decision:
            return auth.authorize(user, verb, resource, namespace, name, subresource, path=path)

        return reviews.answer(res.kind, body, user, decide)

    def admit(self, request: web.Request, res: Kind, current: dict[str, Any] | None,
              new: dict[str, Any]) -> dict[str, Any]:
        """Issue 19's rules on a Cluster a non-admin writes (federation/admission.py)."""
        if res.key != CLUSTERS.key:
            return new
        return admission.admit_cluster(request.get(USER_KEY), current, new, auto_approve=self.auto_approve)


class Credentials:
    """``POST .../clusters/{name}/credential``: a cluster's own token (issue 8)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

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
        return server.json_response({"apiVersion": "federation/v1beta1", "kind": "ClusterCredential",
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



def make_app(registry: Registry, *, tokens: dict[str, auth.User] | None = None,
             watch_ping: float = 5.0, watch_window: int = watchlimits.WATCH_WINDOW,
             auto_approve: frozenset[str] = frozenset()) -> web.Application:
    """The API app; ``tokens`` (a parsed token file) turns authentication and authorization on.
    ``watch_ping``: how often an idle watch checks its client and, when asked, sends a BOOKMARK.
    ``watch_window``: how many events of its kind one watch may replay (older: 410 Gone)."""
    middlewares: list[Any] = [server.status_middleware]
    if tokens is not None:
        authenticator = auth.Authenticator(
            static=tokens, secrets=lambda name: registry.find(SECRETS, auth.SYSTEM_NAMESPACE, name)
        )
        middlewares.append(auth_middleware(authenticator))
    app = web.Application(middlewares=middlewares, client_max_size=server.MAX_BODY)
    # /metrics (issue 17): this app's requests, and the process's controllers and runtime
    app.middlewares.insert(0, metrics.install(app, process=True))
    app[REGISTRY_KEY] = registry
    storage = FederationStorage(registry)
    storage.ensure_well_known_namespaces()
    api = server.ResourceAPI(SERVED, storage, tables.KindTables(),
                             hooks=FederationAdmission(auto_approve), watch_ping=watch_ping, watch_window=watch_window)
    api.routes(app)
    app.router.add_post(f"{CLUSTERS.base_path()}/{{name}}/credential", Credentials(registry).cluster_credential)
    approval_path = f"{CLUSTERS.base_path()}/{{name}}/approval"

    async def get_approval(request: web.Request) -> web.StreamResponse:
        return await api.get(request, CLUSTERS)

    async def put_approval(request: web.Request) -> web.StreamResponse:
        return await api.replace(request, CLUSTERS, subresource="approval")

    app.router.add_get(approval_path, get_approval)
    app.router.add_put(approval_path, put_approval)
    return app
