"""The report viewer's routes over real HTTP on the federation API app (issue 17): list,
open and draw reports under --reports-dir, their picture, uploads (masters only, a size
limit answered with 413 and a Status), and names that try to leave the directory."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from federation.api import auth
from federation.api.apiserver import make_app
from federation.api.registry import Registry, WatchHub
from federation.settings import Settings
from federation.storage.stores import open_store
from federation.ui.routes import UIConfig, install

ADMIN, VIEWER = "admin-token", "viewer-token"
G = "web.default.myfed.svc.example.com."
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def events_text(scenario="cluster-crash"):
    fault = {"kind": "fault", "id": "crash", "fault": "crash", "what": "crash a", "addresses": ["127.1.0.10"], "clusters": ["a"]}
    events = [{"t": 0.0, "kind": "meta", "scenario": scenario, "ttl": 2, "names": [G], "clusters": [{"name": "a"}]},
              {"t": 1.0, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": ["127.1.0.10", "127.2.0.10"]},
              {"t": 2.0, **fault},
              {"t": 3.0, "kind": "condition", "cluster": "a", "phase": "Offline"},
              {"t": 3.5, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": ["127.2.0.10"]},
              {"t": 6.0, "kind": "end"}]
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.fixture
async def viewer(tmp_path):
    reports, outside = tmp_path / "reports", tmp_path / "outside"
    (reports / "cluster-crash").mkdir(parents=True)
    (reports / "cluster-crash" / "events.jsonl").write_text(events_text())
    (reports / "cluster-crash" / "timeline.png").write_bytes(PNG)
    (reports / "cmp" / "kubefed").mkdir(parents=True)
    (reports / "cmp" / "kubefed" / "events.jsonl").write_text(events_text("crash-kubefed") + '{"t": 7, "kind": "di')
    (reports / "broken").mkdir()
    (reports / "broken" / "events.jsonl").write_text('{"t": 0, "kind": "meta"}\nnonsense\n{"t": 1, "kind": "end"}\n')
    outside.mkdir()
    (outside / "events.jsonl").write_text(events_text("secret"))
    (reports / "link-out").symlink_to(outside)
    store = open_store(":memory:")
    tokens = {ADMIN: auth.User("admin", groups=(auth.MASTERS, auth.AUTHENTICATED)),
              VIEWER: auth.User("viewer", groups=(auth.AUTHENTICATED,))}
    registry = Registry(store, WatchHub())
    app = make_app(registry, tokens=tokens)
    install(app, registry, UIConfig(settings=Settings(), reports_dir=reports, report_upload_bytes=64 * 1024))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url(""))
    async with aiohttp.ClientSession(base_url=base, headers={"Authorization": f"Bearer {VIEWER}"}) as session:
        yield session, reports
    await server.close()
    store.close()


async def get(session, path, **kw):
    async with session.get(path, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.read())


async def test_reports_are_listed_opened_and_drawn_but_nothing_outside_the_directory(viewer):
    session, _ = viewer
    code, listed = await get(session, "/ui/api/reports")
    assert code == 200 and listed["kind"] == "ReportList"
    assert sorted(r["name"] for r in listed["items"]) == ["broken", "cluster-crash", "cmp/kubefed"]  # not link-out
    code, report = await get(session, "/ui/api/reports/cluster-crash")
    assert code == 200 and report["picture"] and not report["truncated"]
    (incident,) = report["timeline"]["incidents"]
    assert [(s["step"], s["sinceFault"]) for s in incident["steps"]] == [("fault", 0.0), ("condition", 1.0), ("dns", 1.5)]
    code, nested = await get(session, "/ui/api/reports/cmp/kubefed")
    assert code == 200 and nested["truncated"] and "line 7: cut short" in nested["warnings"][0]
    code, png = await get(session, "/ui/api/reports/cluster-crash/picture")
    assert code == 200 and png == PNG
    code, status = await get(session, "/ui/api/reports/cmp/kubefed/picture")
    assert code == 404 and status["kind"] == "Status" and "no picture" in status["message"]
    code, status = await get(session, "/ui/api/reports/broken")
    assert (code, status["reason"]) == (422, "Invalid") and "broken/events.jsonl, line 2: not JSON" in status["message"]


@pytest.mark.parametrize("path, code", [
    ("/ui/api/reports/link-out", 404),  # a link leading outside the directory
    ("/ui/api/reports/link-out/picture", 404),
    ("/ui/api/reports/nothing-here", 404),
    ("/ui/api/reports/..%2F..%2Fetc", 400),
    ("/ui/api/reports/%2E%2E/outside", 400),
    ("/ui/api/reports/cluster-crash%2F..%2F..%2Foutside", 400),
    ("/ui/api/reports/a%5Cb", 400),
    ("/ui/api/reports/.hidden", 400),
])
async def test_names_that_try_to_leave_the_directory_are_refused_with_a_status(viewer, path, code):
    session, _ = viewer
    got, status = await get(session, URL(path, encoded=True))
    assert got == code and status["kind"] == "Status" and status["code"] == code, status


async def test_a_raw_dot_dot_path_never_reaches_a_file_outside(viewer):
    session, _ = viewer
    got, status = await get(session, URL("/ui/api/reports/../../outside/events.jsonl", encoded=True))
    assert got in (400, 404) and status["kind"] == "Status"


def form(**fields):
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value, filename=None if name == "name" else name)
    return data


async def post(session, data, token=ADMIN, **kw):
    async with session.post("/ui/api/reports", data=data, headers={"Authorization": f"Bearer {token}"}, **kw) as r:
        return r.status, await r.json()


async def test_an_upload_is_checked_stored_under_uploads_and_opened(viewer):
    session, reports = viewer
    code, status = await post(session, form(name="mine", events=events_text().encode()), token=VIEWER)
    assert code == 403 and "report uploads are for group system:masters" in status["message"]
    code, created = await post(session, form(name="mine", events=events_text().encode(), picture=PNG))
    assert code == 201 and created["name"] == "uploads/mine" and created["picture"], created
    assert (reports / "uploads" / "mine" / "timeline.png").read_bytes() == PNG
    code, report = await get(session, "/ui/api/reports/uploads/mine")
    assert code == 200 and report["timeline"]["incidents"][0]["id"] == "crash"
    code, status = await post(session, form(name="mine", events=events_text().encode()))
    assert (code, status["reason"]) == (409, "AlreadyExists")
    for fields, problem in [
        ({"name": "../escape", "events": b"{}"}, "one segment"),
        ({"name": "..", "events": events_text().encode()}, "not starting with '.'"),
        ({"name": "x", "events": b'{"t": 0, "kind": "meta"}\n[]\n{"t": 1, "kind": "end"}\n'}, "line 2: expected a JSON object"),
        ({"name": "x", "report": b"# no events"}, "needs its events.jsonl"),
        ({"name": "x", "events": events_text().encode(), "picture": b"GIF89a"}, "must be a PNG"),
    ]:
        code, status = await post(session, form(**fields))
        assert code == 400 and status["kind"] == "Status" and problem in status["message"], (fields, status)
    assert sorted(p.name for p in (reports / "uploads").iterdir()) == ["mine"]  # nothing half-written


async def test_an_upload_over_the_limit_is_refused_with_413_and_a_status(viewer):
    session, reports = viewer
    big = events_text().encode() * 2000  # ~1 MiB against a 64 KiB limit
    code, status = await post(session, form(name="big", events=big))
    assert (code, status["kind"], status["reason"]) == (413, "Status", "RequestEntityTooLarge"), status
    assert "limit is 65536" in status["message"]
    # chunked, no Content-Length: the limit is counted as the parts arrive
    head = b'--b0undary\r\nContent-Disposition: form-data; name="events"; filename="events.jsonl"\r\n\r\n'

    async def stream():
        yield head
        for i in range(0, len(big), 1 << 16):
            yield big[i:i + (1 << 16)]
        yield b"\r\n--b0undary--\r\n"

    async with session.post("/ui/api/reports", data=stream(), headers={
            "Authorization": f"Bearer {ADMIN}", "Content-Type": "multipart/form-data; boundary=b0undary"}) as r:
        assert r.request_info.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.request_info.headers
        code, status = r.status, await r.json()
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge"), status
    assert "the upload is" not in status["message"] and "limit is 65536" in status["message"]  # no size was announced
    assert not (reports / "uploads" / "big").exists()


async def test_without_a_reports_directory_the_routes_say_so(tmp_path):
    store = open_store(":memory:")
    registry = Registry(store, WatchHub())
    app = make_app(registry)
    install(app, registry, UIConfig(settings=Settings()))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        code, status = await get(session, "/ui/api/reports")
        assert code == 503 and "--reports-dir" in status["message"]
        code, info = await get(session, "/ui/api/info")
        assert info["reports"] is False
    await server.close()
    store.close()
