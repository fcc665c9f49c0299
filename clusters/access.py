"""Who may use a member cluster's API and its chaos controls (issue 8).

A member without tokens is open, as a developer's local cluster is (and as before). Once
tokens are configured (``--token-file``, or the access token the agent makes when it
joins with a bootstrap token) every request needs one of them as a bearer token, ``/chaos``
included; only ``/healthz``, ``/livez``, ``/readyz`` and ``/version`` stay public, as
Kubernetes' ``system:public-info-viewer`` role leaves them. A member has one role: any
valid token may do anything on it (the federation's finer rules live in
:mod:`federation.api.auth`). The load-balancer listeners are data plane and stay open.
"""

from __future__ import annotations

import hmac
import json
from typing import Awaitable, Callable

from aiohttp import web

from federation.api.auth import PUBLIC_PATHS, bearer_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(code: int, message: str) -> web.Response:
    reason = {401: "Unauthorized", 403: "Forbidden"}[code]
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(body=json.dumps(body).encode(), status=code, content_type="application/json")


def access_middleware(tokens: set[str]):  # type: ignore[no-untyped-def]
    """A middleware that lets through requests carrying one of ``tokens`` (and public paths)."""

    def valid(token: str) -> bool:
        return any(hmac.compare_digest(token, t) for t in tokens)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        token = bearer_token(header)
        if token and valid(token):
            return await handler(request)
        if not header and request.path in PUBLIC_PATHS:
            return await handler(request)
        if header and not token:
            return _status(401, "Unauthorized: only bearer tokens are accepted")
        if token:
            return _status(401, "Unauthorized")
        what = "the chaos controls" if request.path.startswith("/chaos") else "this cluster's API"
        return _status(401, f"Unauthorized: {what} need a bearer token (tokens are configured on this cluster)")

    return middleware
