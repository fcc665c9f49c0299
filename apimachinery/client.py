"""The asynchronous client for Kubernetes-shaped HTTP APIs (the federation's and every member's).

Used by the member clusters (join and lease), the DNS responder (list and watch), the
controllers (talking to member clusters) and the CLI. Errors come back as
:class:`apimachinery.errors.APIError` subclasses built from the server's ``Status`` body,
so callers catch ``NotFound``, ``Conflict`` or ``Gone`` instead of parsing text. A bearer
token goes only where :mod:`apimachinery.transport` allows.

Several API servers (issue 13: replicas on one etcd) are given as one comma-separated
``base_url`` (``--federation URL1,URL2,URL3``). The client talks to one at a time and
moves to the next when it cannot reach it. A request that never reached a server
(connection refused, no route, connect timeout) goes to the next one at once, whatever
its verb; a read that failed after it was sent (the server died mid-answer, or answered
503) is retried on the next too; a write that failed after it was sent is not retried
here (it may have been applied: the caller's level-triggered loop decides), but the next
request goes elsewhere. Watches move the same way: a watch that cannot connect, or whose
server goes away, raises, and the informer's relist/rewatch lands on the next server
from its last resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, AsyncIterator

import aiohttp

from apimachinery.transport import warn_token_transport
from apimachinery.errors import APIError, from_status


def split_endpoints(urls: str) -> list[str]:
    """``"URL1,URL2"`` as a list, trailing slashes and blanks removed (at least one)."""
    endpoints = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
    if not endpoints:
        raise ValueError(f"no API server address in {urls!r}")
    return endpoints


# Failures that mean the request never reached a server: safe to send anywhere else.
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Failures after sending: the server went away or stopped answering.
LOST = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


class APIClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0, token: str | None = None,
                 ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 allow_http_token: bool = False) -> None:
        self.endpoints = split_endpoints(base_url)
        self._current = 0
        self.timeout = timeout
        self.token = token
        self.allow_http_token = allow_http_token  # issue 19: see apimachinery.transport
        # https: verify the server against ca_file (issue 8's --certificate-authority), else the system CAs.
        self.ssl: ssl.SSLContext | bool = ssl_context or (ssl.create_default_context(cafile=ca_file) if ca_file else True)
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """The API server this client talks to now (the first of several until it fails)."""
        return self.endpoints[self._current]

    def _move_on(self, failed: str) -> None:
        """After ``failed`` did not answer: the next server, unless another request moved already."""
        if len(self.endpoints) > 1 and self.base_url == failed:
            self._current = (self._current + 1) % len(self.endpoints)

    async def __aenter__(self) -> "APIClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            for url in self.endpoints:
                warn_token_transport(url, self.token, allow_http=self.allow_http_token)
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
        for attempt in range(len(self.endpoints)):
            url = self.base_url
            last = attempt == len(self.endpoints) - 1
            try:
                async with self.session.request(
                    method, url + path, data=data, params=params, headers=headers, timeout=t, ssl=self.ssl
                ) as resp:
                    text = await resp.text()
                    if resp.status == 503 and method == "GET" and not last:
                        self._move_on(url)  # that replica cannot serve (its store is away): ask another
                        continue
                    if resp.status >= 400:
                        raise error_from_response(resp.status, text)
                    if not text:
                        return None
                    if resp.content_type == "application/json":
                        return json.loads(text)
                    return text
            except NOT_SENT:
                self._move_on(url)
                if last:
                    raise
            except LOST:
                self._move_on(url)
                if last or method != "GET":
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

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
        url = self.base_url
        try:
            async with self.session.get(url + path, params=params, timeout=t, ssl=self.ssl) as resp:
                if resp.status >= 400:
                    if resp.status == 503:
                        self._move_on(url)
                    raise error_from_response(resp.status, await resp.text())
                async for line in resp.content:
                    line = line.strip()
                    if not line:
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise from_status(500, event.get("object") or {"kind": "Status", "message": "watch error"})
                    yield event
        except LOST:  # NOT_SENT is one of them: the caller rewatches, on the next server
            self._move_on(url)
            raise


def error_from_response(status: int, text: str) -> APIError:
    """The error class a server's answer stands for (see :func:`apimachinery.errors.from_status`)."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return from_status(status, body)
