"""The asynchronous client for Kubernetes-shaped HTTP APIs (the federation's and every member's).

Used by the member clusters (join and lease), the DNS responder (list and watch), the
controllers (talking to member clusters) and the CLI. Errors come back as
:class:`apimachinery.errors.APIError` subclasses built from the server's ``Status`` body,
so callers catch ``NotFound``, ``Conflict`` or ``Gone`` instead of parsing text. A bearer
token goes only where :mod:`apimachinery.transport` allows.
"""

from __future__ import annotations

import json
import ssl
from typing import Any, AsyncIterator

import aiohttp

from apimachinery.transport import warn_token_transport
from apimachinery.errors import APIError, from_status


class APIClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0, token: str | None = None,
                 ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 allow_http_token: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token
        self.allow_http_token = allow_http_token  # issue 19: see apimachinery.transport
        # https: verify the server against ca_file (issue 8's --certificate-authority), else the system CAs.
        self.ssl: ssl.SSLContext | bool = ssl_context or (ssl.create_default_context(cafile=ca_file) if ca_file else True)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "APIClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            warn_token_transport(self.base_url, self.token, allow_http=self.allow_http_token)
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        t = aiohttp.ClientTimeout(total=timeout or self.timeout)
        async with self.session.request(
            method, self.base_url + path, data=data, params=params, headers=headers, timeout=t, ssl=self.ssl
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise error_from_response(resp.status, text)
            if not text:
                return None
            if resp.content_type == "application/json":
                return json.loads(text)
            return text

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("POST", path, body=body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("PUT", path, body=body, **kw)

    async def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("PATCH", path, body=body, content_type="application/merge-patch+json", **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)

    async def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events (``{"type", "object"}``) until the server ends the stream.

        With ``idle_timeout``, bookmarks are asked for (and yielded, type ``BOOKMARK``).
        ``params`` adds query parameters (``labelSelector``, ``fieldSelector``, ``timeoutSeconds``).

        A 410 arrives either as an HTTP error or as an ``ERROR`` event; both raise
        :class:`APIError` with code 410 so the caller relists.
        """
        params = {**(params or {}), "watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if idle_timeout is not None:
            # The server sends a BOOKMARK on an idle watch; silence for longer than
            # ``idle_timeout`` means a hung server, and raises asyncio.TimeoutError.
            params["allowWatchBookmarks"] = "true"
        t = aiohttp.ClientTimeout(total=timeout, sock_connect=self.timeout, sock_read=idle_timeout)
        async with self.session.get(self.base_url + path, params=params, timeout=t, ssl=self.ssl) as resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.text())
            async for line in resp.content:
                line = line.strip()
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    raise from_status(500, event.get("object") or {"kind": "Status", "message": "watch error"})
                yield event


def error_from_response(status: int, text: str) -> APIError:
    """The error class a server's answer stands for (see :func:`apimachinery.errors.from_status`)."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return from_status(status, body)
