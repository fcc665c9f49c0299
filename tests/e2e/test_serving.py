"""The APIs' listeners time out stalled TLS handshakes and trickled headers (issue 19).

Real sockets on loopback against :func:`apimachinery.serving.start_site` with short
deadlines: a client that never finishes its handshake, or sends a header a byte at a time,
is disconnected; a normal request and a handler slower than the deadline still complete.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
from aiohttp import web

from apimachinery.serving import start_site
from federation.certs import create_certs


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "0")))
    return web.Response(text="done")


@pytest.fixture
async def site_factory():
    runners = []

    async def make(ssl_context=None, **deadlines):
        app = web.Application()
        app.router.add_get("/", _slow)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = await start_site(runner, "127.0.0.1", 0, ssl_context=ssl_context, **deadlines)
        return site.port

    yield make
    for runner in runners:
        await runner.cleanup()


async def _closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes, limit: float) -> float:
    """Send ``trickle`` a byte every 0.1 s until the server hangs up; seconds it took."""
    started = time.monotonic()
    for i in range(int(limit / 0.1)):
        try:
            writer.write(trickle[i % len(trickle):i % len(trickle) + 1])
            await writer.drain()
            if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                return time.monotonic() - started
        except asyncio.TimeoutError:
            continue
        except (ConnectionError, OSError):
            return time.monotonic() - started
    raise AssertionError(f"the server kept a trickling client for {limit}s")


async def test_trickled_headers_are_cut_off_and_normal_requests_answered(site_factory):
    port = await site_factory(header_timeout=0.5)
    holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    for reader, writer in holders:
        writer.write(b"GET / HTTP/1.1\r\nHo")
    # meanwhile a real client is answered, and a handler slower than the deadline finishes
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /?s=1.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"done"), answer
    writer.close()
    took = await asyncio.gather(*(_closed_after(r, w, b"x-slow: 1\r\n", 5.0) for r, w in holders))
    assert max(took) < 2.0, took  # all 20 were closed (0.5 s deadline, some already passed above)
    for _, w in holders:
        w.close()


async def test_stalled_tls_handshake_is_cut_off(site_factory, tmp_path):
    pki = create_certs(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    port = await site_factory(ssl_context=context, handshake_timeout=0.5, header_timeout=5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # TCP only, no ClientHello
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started < 2.0
    writer.close()
    # a real TLS client gets its answer
    client = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1")
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    writer.close()


def test_a_real_api_server_cuts_off_trickled_headers(tmp_path):
    """The same against a real ``federation-apiserver`` process with its default deadline (10 s):
    50 connections that trickle a header byte every 0.5 s are closed, and /healthz answers
    meanwhile."""
    import socket

    from clusters.testing import http
    from tests.conftest import apiserver

    socks = []
    with apiserver(tmp_path, "--no-controllers") as url:
        try:
            port = int(url.rsplit(":", 1)[1])
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
                s.setblocking(False)
                socks.append(s)
            started, open_ = time.monotonic(), set(range(len(socks)))
            while open_ and time.monotonic() - started < 20:
                for i in list(open_):
                    try:
                        if socks[i].recv(1) == b"":
                            open_.discard(i)
                            continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        open_.discard(i)
                        continue
                    try:
                        socks[i].send(b"x")
                    except OSError:
                        open_.discard(i)
                assert http("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
                time.sleep(0.5)
            took = time.monotonic() - started
            assert not open_, f"{len(open_)} trickling connections still open after {took:.0f} s"
            assert 8 <= took <= 15, took
        finally:
            for s in socks:
                s.close()
