"""Listening sockets for the APIs, with the time limits aiohttp leaves open (issue 19).

A client that opens a TLS connection and never finishes the handshake, or that trickles a
request's headers a byte at a time, holds a connection (and its memory) for as long as it
likes: asyncio waits 60 s for a handshake and aiohttp's first deadline is its 75 s
keep-alive. Every API of ubernetes (the federation, each member, the launcher's fault API)
listens through :func:`start_site`, which bounds both:

- the TLS handshake must finish within ``handshake_timeout`` seconds;
- the first request's headers must be complete within ``header_timeout`` seconds of the
  connection (after the handshake); later requests on a kept-alive connection are bounded
  by aiohttp's keep-alive timeout.

A watch or a slow handler is not affected: the deadline only looks at whether a request
has arrived, not at how long it takes to answer. :func:`decode_request_body` is the body
decoder (:mod:`apimachinery.decoding`, pure) for a server's event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from apimachinery import protobuf
from apimachinery.decoding import MAX_REQUEST_BYTES, check_object, decode_body, is_protobuf, too_large

HANDSHAKE_TIMEOUT = 10.0
HEADER_TIMEOUT = 10.0


class _DeadlineHandler(RequestHandler):
    """aiohttp's handler, closed if no complete request arrives in time."""

    __slots__ = ("_header_timeout",)

    def __init__(self, manager: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._loop.call_later(self._header_timeout, self._headers_due)

    def _headers_due(self) -> None:
        if self._request_count == 0 and self.transport is not None:
            self.force_close()


class DeadlineSite(web.TCPSite):
    """A :class:`aiohttp.web.TCPSite` whose connections have the deadlines above."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, reuse_address: bool = True,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
                 **kwargs: Any) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_address=reuse_address, **kwargs)
        self.handshake_timeout = handshake_timeout
        self.header_timeout = header_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        handler_kwargs = dict(server._kwargs)  # the runner's own handler settings (keep-alive, sizes)

        def protocol() -> RequestHandler:
            return _DeadlineHandler(server, loop=server._loop, header_timeout=self.header_timeout, **handler_kwargs)

        extra = {"ssl_handshake_timeout": self.handshake_timeout} if self._ssl_context is not None else {}
        self._server = await loop.create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port, **extra,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


async def start_site(runner: web.BaseRunner, host: str | None, port: int, *,
                     ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> DeadlineSite:
    """Listen on ``host:port`` for ``runner`` (set up already); ``site.port`` is the bound port."""
    site = DeadlineSite(runner, host, port, ssl_context=ssl_context, **kwargs)
    await site.start()
    return site


OFF_LOOP_BYTES = 64 * 1024  # bodies above this are decoded in a worker thread


def decode_any(raw: bytes, content_type: str = "application/json") -> Any:
    """A request body as JSON values: JSON, YAML, or Kubernetes protobuf (kubectl's typed
    clients, issue 18), within the same limits."""
    if not is_protobuf(content_type):
        return decode_body(raw, content_type)
    if len(raw) > MAX_REQUEST_BYTES:
        raise too_large(len(raw), MAX_REQUEST_BYTES)
    value = protobuf.decode(raw)
    check_object(value, what="the decoded object")
    return value


async def decode_request_body(raw: bytes, content_type: str = "application/json") -> Any:
    """:func:`decode_any` for an event loop: a large body (a 3 MiB YAML takes seconds) is
    decoded in a worker thread, so ``/healthz`` and other requests keep being answered."""
    if len(raw) <= OFF_LOOP_BYTES:
        return decode_any(raw, content_type)
    return await asyncio.to_thread(decode_any, raw, content_type)
