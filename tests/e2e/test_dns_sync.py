"""Keeping the answers in step with the federation API (fedns.sync).

First against a small in-test HTTP server that speaks the list/watch contract of
docs/architecture.md and can expire history (410) or go away, then against the real
federation API server as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from aiohttp import web

from fedns.app import Responder, Settings
from fedns.sync import DNSRECORDS, RecordSync
from fedns.view import ZoneView
from fedns.zone import ZoneConfig
from tests.conftest import stop_process

G = "web.default.myfed.svc.example.com."


def record(name: str, targets: list[str], rtype: str = "A") -> dict:
    return {"name": name, "type": rtype, "ttl": 5, "targets": targets}


def obj(name: str, spec: dict, rv: int) -> dict:
    return {
        "apiVersion": "federation/v1beta1",
        "kind": "DNSRecord",
        "metadata": {"name": name, "resourceVersion": str(rv)},
        "spec": spec,
    }


class StubAPI:
    """DNSRecord list and watch, with history that can be expired and a server that can stop."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.rv = 0
        self.history: list[tuple[int, str, dict]] = []
        self.oldest = 0  # watches from below this resourceVersion get 410
        self.watchers: set[asyncio.Queue] = set()
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.lists = 0

    def put(self, name: str, spec: dict) -> None:
        self.rv += 1
        kind = "MODIFIED" if name in self.objects else "ADDED"
        self.objects[name] = obj(name, spec, self.rv)
        self._emit(kind, self.objects[name])

    def delete(self, name: str) -> None:
        self.rv += 1
        gone = self.objects.pop(name)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", gone)

    def _emit(self, kind: str, o: dict) -> None:
        self.history.append((self.rv, kind, json.loads(json.dumps(o))))
        for q in self.watchers:
            q.put_nowait((self.rv, kind, o))

    def compact(self) -> None:
        """Forget history and end every watch: the next resume gets 410 Gone."""
        self.oldest = self.rv
        self.history.clear()
        for q in self.watchers:
            q.put_nowait(None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            self.lists += 1
            return web.json_response(
                {"kind": "DNSRecordList", "metadata": {"resourceVersion": str(self.rv)}, "items": list(self.objects.values())}
            )
        since = int(request.query.get("resourceVersion") or 0)
        if since < self.oldest:
            return web.json_response({"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}, status=410)
        q: asyncio.Queue = asyncio.Queue()
        self.watchers.add(q)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            for rv, kind, o in list(self.history):
                if rv > since:
                    await resp.write((json.dumps({"type": kind, "object": o}) + "\n").encode())
            while True:
                item = await q.get()
                if item is None:
                    break
                await resp.write((json.dumps({"type": item[1], "object": item[2]}) + "\n").encode())
        finally:
            self.watchers.discard(q)
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(DNSRECORDS, self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)


async def addresses(port: int, name: str) -> list[str]:
    reply = await ask(port, name)
    return sorted(r.to_text() for rrset in reply.answer for r in rrset if rrset.rdtype == 1)


async def eventually(check, *, within: float = 5.0, every: float = 0.002):
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: {check.__name__}")
        await asyncio.sleep(every)


@pytest.fixture()
async def api():
    stub = StubAPI()
    stub.put("a.web", record(G, ["127.10.1.1"]))
    await stub.start()
    yield stub
    await stub.stop()


def test_events_apply_to_the_view():
    view = ZoneView(ZoneConfig())
    sync = RecordSync(client=None, view=view)  # type: ignore[arg-type]
    sync.apply({"type": "ADDED", "object": obj("a.web", record(G, ["127.0.0.1"]), 5)})
    assert sync.resource_version == "5" and len(view.recordsets) == 1
    sync.apply({"type": "MODIFIED", "object": obj("a.web", record(G, ["127.0.0.2"]), 6)})
    assert view.recordsets[0].rdatas == ("127.0.0.2",)
    sync.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert sync.resource_version == "9"
    sync.apply({"type": "DELETED", "object": obj("a.web", record(G, ["127.0.0.2"]), 10)})
    assert view.recordsets == [] and sync.resource_version == "10"


def test_backoff_is_exponential_with_jitter_and_capped():
    sync = RecordSync(client=None, view=None, rng=lambda: 1.0)  # type: ignore[arg-type]
    assert [round(sync.backoff(n), 3) for n in range(1, 8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    low = RecordSync(client=None, view=None, rng=lambda: 0.0)  # type: ignore[arg-type]
    assert low.backoff(3) == pytest.approx(0.1)


async def test_list_then_watch_changes_show_within_100_ms(api):
    async with Responder(Settings(listen="127.0.0.1:0", federation=api.url)) as r:

        async def synced():
            return await addresses(r.port, G) == ["127.10.1.1"]

        await eventually(synced)
        for i, change in enumerate(
            [
                lambda: api.put("a.web", record(G, ["127.10.1.1", "127.10.2.1"])),
                lambda: api.put("a.new", record("new.example.com.", ["127.0.0.9"])),
                lambda: api.delete("a.new"),
            ]
        ):
            started = time.monotonic()
            change()

            async def shows():
                if i == 0:
                    return await addresses(r.port, G) == ["127.10.1.1", "127.10.2.1"]
                if i == 1:
                    return await addresses(r.port, "new.example.com.") == ["127.0.0.9"]
                return (await ask(r.port, "new.example.com.")).rcode() == dns.rcode.NXDOMAIN

            await eventually(shows, within=1.0)
            assert time.monotonic() - started < 0.1
        assert r.sync.relists == 1 and not r.sync.stale


async def test_410_gone_relists(api):
    async with Responder(Settings(listen="127.0.0.1:0", federation=api.url)) as r:
        await eventually(lambda: _is(addresses(r.port, G), ["127.10.1.1"]))
        # a change the watch never sees, then the history is gone
        saved = set(api.watchers)
        api.watchers = set()
        api.put("a.web", record(G, ["127.10.5.5"]))
        api.watchers = saved
        api.compact()
        await eventually(lambda: _is(addresses(r.port, G), ["127.10.5.5"]), within=3.0)
        assert r.sync.relists == 2 and api.lists == 2


async def _is(coro, expected) -> bool:
    return await coro == expected


async def test_outage_keeps_answers_then_resyncs(api):
    async with Responder(Settings(listen="127.0.0.1:0", federation=api.url, status_listen="127.0.0.1:0")) as r:
        await eventually(lambda: _is(addresses(r.port, G), ["127.10.1.1"]))
        await api.stop()
        await eventually(lambda: _true(r.sync.stale), within=3.0)
        for _ in range(20):  # still answering the last-known records
            assert await addresses(r.port, G) == ["127.10.1.1"]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{r.status.port}/status") as resp:
                status = await resp.json()
        assert status["stale"] is True and status["records"] == 1 and status["lastSync"]
        assert r.sync.failures >= 1
        # the API comes back (same port) with a change made meanwhile
        api.put("a.web", record(G, ["127.10.9.9"]))
        await api.start()
        await eventually(lambda: _is(addresses(r.port, G), ["127.10.9.9"]), within=5.0)
        assert not r.sync.stale


async def _true(value) -> bool:
    return bool(value)


# -- with the real federation API server ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ubernetes() -> list[str]:
    exe = Path(sys.executable).with_name("ubernetes")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "federation"]


def _start_api(port: int, store: str) -> subprocess.Popen:
    return subprocess.Popen(
        _ubernetes() + ["federation-apiserver", "--listen", f"127.0.0.1:{port}", "--store", store, "--no-controllers"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _wait_api(url: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.poll() is not None:
                raise AssertionError(f"API server exited: {proc.stderr.read()}")
            try:
                async with http.get(url + DNSRECORDS) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the API server did not come up")


def _apiserver_available() -> bool:
    try:
        import federation.controlplane  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _apiserver_available(), reason="federation.controlplane is not importable")
async def test_with_the_real_federation_api_server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    store = str(tmp_path / "fed.db")
    proc = _start_api(port, store)
    try:
        await _wait_api(url, proc)
        async with aiohttp.ClientSession() as http, Responder(Settings(listen="127.0.0.1:0", federation=url)) as r:

            async def post(name: str, spec: dict) -> None:
                body = {"apiVersion": "federation/v1beta1", "kind": "DNSRecord", "metadata": {"name": name}, "spec": spec}
                async with http.post(url + DNSRECORDS, json=body) as resp:
                    assert resp.status in (200, 201), await resp.text()

            await post("a.web.default.myfed.svc.example.com", record(G, ["127.10.1.1", "127.10.2.1"]))
            started = time.monotonic()
            await eventually(lambda: _is(addresses(r.port, G), ["127.10.1.1", "127.10.2.1"]), within=3.0)
            assert time.monotonic() - started < 0.5
            async with http.delete(url + DNSRECORDS + "/a.web.default.myfed.svc.example.com") as resp:
                assert resp.status == 200
            await eventually(lambda: _rcode(r.port, G, dns.rcode.NXDOMAIN), within=3.0)
            await post("a.web.default.myfed.svc.example.com", record(G, ["127.10.3.1"]))
            await eventually(lambda: _is(addresses(r.port, G), ["127.10.3.1"]), within=3.0)

            # the API server goes away: answers continue; it comes back: resync
            stop_process(proc)
            await eventually(lambda: _true(r.sync.stale), within=5.0)
            assert await addresses(r.port, G) == ["127.10.3.1"]
            proc = _start_api(port, store)
            await _wait_api(url, proc)
            await post("a.other.example.com", record("other.example.com.", ["127.0.0.8"]))
            await eventually(lambda: _is(addresses(r.port, "other.example.com."), ["127.0.0.8"]), within=5.0)
            assert await addresses(r.port, G) == ["127.10.3.1"]
            assert not r.sync.stale
    finally:
        stop_process(proc)


async def _rcode(port: int, name: str, rcode: int) -> bool:
    return (await ask(port, name)).rcode() == rcode


async def test_static_records_are_served_beside_the_federation(api):
    static = [record("static.example.com.", ["127.0.0.50"])]
    async with Responder(Settings(listen="127.0.0.1:0", federation=api.url, records=static)) as r:
        await eventually(lambda: _is(addresses(r.port, G), ["127.10.1.1"]))
        assert await addresses(r.port, "static.example.com.") == ["127.0.0.50"]
        api.put("a.more", record("more.example.com.", ["127.0.0.51"]))
        await eventually(lambda: _is(addresses(r.port, "more.example.com."), ["127.0.0.51"]), within=1.0)
        assert await addresses(r.port, "static.example.com.") == ["127.0.0.50"]


async def test_a_hung_api_server_is_noticed_by_its_silence():
    """A server that takes the watch and then says nothing (no event, no bookmark) is hung:
    the sync calls the view stale after ``idle_timeout`` instead of waiting out its watch."""
    from apimachinery.client import APIClient

    hung = asyncio.Event()

    async def records(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"kind": "DNSRecordList", "metadata": {"resourceVersion": "7"}, "items": []})
        assert request.query.get("allowWatchBookmarks") == "true"
        resp = web.StreamResponse()
        await resp.prepare(request)
        await hung.wait()  # accepted, then silent
        return resp

    app = web.Application()
    app.router.add_get(DNSRECORDS, records)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = APIClient(f"http://127.0.0.1:{port}")
    sync = RecordSync(client, ZoneView(ZoneConfig()), idle_timeout=0.5)
    task = asyncio.create_task(sync.run())
    try:
        deadline = time.monotonic() + 5
        while not (sync.relists and sync.stale) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sync.relists >= 1 and sync.stale and "no event or bookmark" in (sync.last_error or "")
    finally:
        hung.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await runner.cleanup()
