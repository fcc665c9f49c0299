"""Issue 19's decoding bombs and history replay, sent to a real federation API server and a
real member cluster: each is refused with a 4xx ``Status`` (or the watch answer Kubernetes
gives), fast, with memory bounded, and every other request keeps being answered."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from clusters.testing import ClusterProcess, http
from tests.conftest import apiserver_process
from tests.unit.test_decoding import alias_bomb

FED_SVC = "/api/v1/namespaces/default/services"
WINDOW = 40  # the federation's --watch-window here: a short history is enough to go past it


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(name, base URL, pid, log reader) for the federation API and a member cluster."""
    work = tmp_path_factory.mktemp("bombs")
    member = ClusterProcess(name="bomb-target", extra=["--pods-per-service", "0"])
    try:
        member.wait_ready()
        with apiserver_process(work, "--no-controllers", "--watch-window", str(WINDOW)) as (url, proc):
            yield [("federation", url, proc.pid, lambda: (work / "apiserver.log").read_text()),
                   ("member", member.url, member.pid, member.logs)]
    finally:
        member.close()


def service(name: str, **annotations: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
            "spec": {"ports": [{"port": 80}]}}


def post(url: str, raw: bytes, ctype: str = "application/json", timeout: float = 10.0):
    started = time.monotonic()
    status, body, _ = http("POST", url + FED_SVC, raw, content_type=ctype, timeout=timeout)
    return status, body, time.monotonic() - started


def assert_status(body, code: int, needle: str) -> None:
    assert isinstance(body, dict) and body.get("kind") == "Status", body
    assert body["code"] == code and needle in body["message"], body
    assert "Traceback" not in body["message"] and len(body["message"]) < 500


def healthz_seconds(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
        assert resp.read() == b"ok"
    return time.monotonic() - started


def test_the_alias_bomb_gets_a_400_fast_and_memory_stays_put(servers):
    bomb = alias_bomb()
    assert len(bomb) < 600  # the was 483 bytes: 9**7 = 4.8 million strings once expanded
    for name, url, pid, _ in servers:
        before = rss_mib(pid)
        status, body, seconds = post(url, bomb, "application/yaml")
        assert status == 400 and seconds < 1, (name, body)
        assert_status(body, 400, "anchors and aliases")
        assert rss_mib(pid) - before < 20, name
        assert http("GET", f"{url}{FED_SVC}/bomb")[0] == 404, name


def test_deep_json_is_a_400_without_a_traceback_and_the_server_keeps_serving(servers):
    for levels in (485, 100_000):
        deep = service("deep")
        deep["spec"]["x"] = json.loads("[" * 480 + "]" * 480) if levels == 485 else None
        raw = json.dumps(deep).encode() if levels == 485 else b'{"spec": ' + b"[" * levels + b"]" * levels + b"}"
        for name, url, _, logs in servers:
            status, body, seconds = post(url, raw)
            assert status == 400 and seconds < 2, (name, body)
            assert_status(body, 400, "nested more than 100 levels")
    for name, url, _, logs in servers:
        assert "Traceback" not in logs(), name
        assert http("POST", url + FED_SVC, service("after-deep"))[0] == 201, name
        status, listed, _ = http("GET", url + FED_SVC)
        assert status == 200 and "after-deep" in [s["metadata"]["name"] for s in listed["items"]], name


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(servers, number):
    raw = json.dumps(service("nan")).replace('"port": 80', f'"port": 80, "weight": {number}').encode()
    for name, url, _, _ in servers:
        status, body, _ = post(url, raw)
        assert status == 400, (name, body)
        assert_status(body, 400, "not finite")
        assert http("GET", f"{url}{FED_SVC}/nan")[0] == 404, name


def test_an_oversized_object_is_refused_the_same_way_by_both(servers):
    big = json.dumps(service("big", note="x" * (2_500_000))).encode()  # the 2.5 MB annotation
    huge = json.dumps(service("huge", note="x" * (4 * 1024 * 1024))).encode()  # over the request limit
    answers = {}
    for name, url, _, _ in servers:
        status, body, _ = post(url, big)
        assert status == 413, (name, body)
        assert_status(body, 413, "limit is 1572864")
        status, too_big, _ = post(url, huge)
        assert status == 413, (name, too_big)
        # The federation says what it was doing first ("creating services: "); the rest is one text.
        answers[name] = (body["reason"], body["message"][body["message"].index("Request entity"):], too_big["message"])
        # Under the limit is fine on both, so nothing the federation takes is refused by members.
        assert http("POST", url + FED_SVC, service("fits", note="x" * 1_000_000))[0] == 201, name
    assert answers["federation"] == answers["member"]


def test_a_merge_patch_cannot_grow_an_object_past_the_limit(servers):
    for name, url, _, _ in servers:
        assert http("POST", url + FED_SVC, service("grow", a="x" * 1_000_000))[0] == 201, name
        status, body, _ = http("PATCH", f"{url}{FED_SVC}/grow", {"metadata": {"annotations": {"b": "y" * 1_000_000}}},
                               content_type="application/merge-patch+json")
        assert status == 413, (name, body)
        assert_status(body, 413, "limit is 1572864")
        _, current, _ = http("GET", f"{url}{FED_SVC}/grow")
        assert "b" not in current["metadata"]["annotations"], name


@pytest.mark.parametrize("rv", ["99999999999999999999", "abc", "-1"])
def test_an_overflowing_or_malformed_resource_version_is_a_400(servers, rv):
    for name, url, _, logs in servers:
        status, body, _ = http("GET", f"{url}{FED_SVC}?watch=true&resourceVersion={rv}", timeout=5)
        assert status == 400, (name, body)
        assert_status(body, 400, "invalid resource version")
        assert "Traceback" not in logs(), name


def test_a_resource_version_from_the_future_gets_a_504_within_seconds(servers):
    for name, url, _, _ in servers:
        _, listed, _ = http("GET", url + FED_SVC)
        future = int(listed["metadata"]["resourceVersion"]) + 1_000_000
        started = time.monotonic()
        status, body, _ = http("GET", f"{url}{FED_SVC}?watch=true&resourceVersion={future}", timeout=10)
        seconds = time.monotonic() - started
        assert status == 504 and 2 <= seconds < 6, (name, body, seconds)
        assert_status(body, 504, "Too large resource version")
        assert body["reason"] == "Timeout" and body["details"]["retryAfterSeconds"] == 1


def test_a_watch_from_resource_version_1_after_many_writes_is_410(servers):
    name, url, pid, _ = servers[0]
    for i in range(WINDOW + 5):
        assert http("POST", url + FED_SVC, service(f"w{i}"))[0] == 201
    before = rss_mib(pid)
    status, body, _ = http("GET", f"{url}{FED_SVC}?watch=true&resourceVersion=1", timeout=5)
    assert status == 410, body
    assert_status(body, 410, "too old resource version")
    assert body["reason"] == "Expired" and rss_mib(pid) - before < 20
    # From the list's resourceVersion, as a client does after a 410, the watch works.
    _, listed, _ = http("GET", url + FED_SVC)
    status, _, _ = http("GET", f"{url}{FED_SVC}?watch=true&timeoutSeconds=1&resourceVersion="
                               f"{listed['metadata']['resourceVersion']}", timeout=5)
    assert status == 200


def open_watch(url: str, query: str) -> socket.socket:
    """A watch whose client reads nothing (yet): the raw request on a socket."""
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(f"GET {FED_SVC}?watch=true&{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def test_the_member_refuses_a_watch_from_before_its_window(servers):
    _, url, _, _ = servers[1]
    assert http("POST", url + FED_SVC, service("churn"))[0] == 201
    _, start, _ = http("GET", f"{url}{FED_SVC}/churn")
    # The member records an event per change while someone watches (its feed diffs state).
    watcher = open_watch(url, "timeoutSeconds=30")
    try:
        for i in range(1001):  # the member's window is the default, 1000 events of a kind
            status, _, _ = http("PATCH", f"{url}{FED_SVC}/churn", {"metadata": {"labels": {"n": str(i)}}},
                                content_type="application/merge-patch+json")
            assert status == 200
    finally:
        watcher.close()
    status, body, _ = http("GET", f"{url}{FED_SVC}?watch=true&resourceVersion={start['metadata']['resourceVersion']}",
                           timeout=5)
    assert status == 410, body
    assert_status(body, 410, "too old resource version")


def test_healthz_stays_fast_while_a_long_history_streams(servers):
    """A watch replaying ~30 MB of history to a client that reads slowly: the server reads
    it a page at a time off its event loop, so /healthz answers meanwhile and RSS stays flat."""
    _, url, pid, _ = servers[0]
    _, listed, _ = http("GET", url + FED_SVC)
    start = listed["metadata"]["resourceVersion"]
    for i in range(WINDOW - 10):
        assert http("POST", url + FED_SVC, service(f"fat{i}", blob="x" * 1_000_000), timeout=10)[0] == 201
    before = rss_mib(pid)
    sock = open_watch(url, f"timeoutSeconds=30&resourceVersion={start}")
    received = [0]
    stop = threading.Event()

    def slow_reader() -> None:
        while not stop.is_set() and received[0] < 40_000_000:
            chunk = sock.recv(256 * 1024)
            if not chunk:
                return
            received[0] += len(chunk)
            time.sleep(0.05)  # about 5 MB/s: the replay takes seconds

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    try:
        latencies, peak = [], before
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            latencies.append(healthz_seconds(url))
            peak = max(peak, rss_mib(pid))
            time.sleep(0.1)
        assert received[0] > 1_000_000, "the watch sent nothing"
        assert max(latencies) < 0.5, latencies
        assert peak - before < 100, (before, peak)
    finally:
        stop.set()
        sock.close()
        reader.join(5)


async def test_a_copy_the_member_refuses_backs_off_until_the_service_changes(servers):
    """nodePort 80 is a valid port to the federation and outside every member's node-port
    range: the member answers 422 on each try. The propagation controller, in this process
    against the real member, tries again after 1 s, 2 s, 4 s..., not on every pass, and at
    once when the federated Service changes."""
    from federation.controllers.members import MemberClients
    from federation.controllers.propagation import PropagationController
    from federation.api.registry import Registry, WatchHub
    from federation.resources import CLUSTERS, EVENTS, SERVICES
    from federation.settings import Settings
    from federation.storage.store import SQLiteStore

    member_url = servers[1][1]
    registry = Registry(SQLiteStore(":memory:"), WatchHub())
    cluster = registry.create(CLUSTERS, "", {"metadata": {"name": "bomb-target"}, "spec": {
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": member_url}]}})
    registry.replace(CLUSTERS, "", "bomb-target", {**cluster, "status": {"conditions": [
        {"type": "Ready", "status": "True"}, {"type": "Offline", "status": "False"}]}}, subresource="status")
    registry.create(SERVICES, "default", {"metadata": {"name": "refused"},
                                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}})
    members = MemberClients(timeout=2.0)
    controller = PropagationController(registry, Settings(), members)

    def refusals() -> list[dict]:
        return [e for e in registry.list(EVENTS)[0] if e.get("reason") == "RefusedByCluster"]

    try:
        passes, started = 0, time.monotonic()
        while time.monotonic() - started < 3.5:
            await controller.reconcile()
            passes += 1
            await asyncio.sleep(0.05)
        assert passes >= 20
        tries = refusals()
        assert 2 <= len(tries) <= 3, [e["message"] for e in tries]  # at 0 s, 1 s and 3 s
        assert "422" in tries[0]["message"] and "nodePort" in tries[0]["message"]
        assert http("GET", f"{member_url}{FED_SVC}/refused")[0] == 404
        # The user fixes the Service: the copy is made on the next pass, no waiting out the backoff.
        fixed = registry.get(SERVICES, "default", "refused")
        fixed["spec"]["ports"][0]["nodePort"] = 30080
        registry.replace(SERVICES, "default", "refused", fixed)
        await controller.reconcile()
        assert http("GET", f"{member_url}{FED_SVC}/refused")[0] == 200
        assert len(refusals()) == len(tries) and len(controller.backoff) == 0
    finally:
        await controller.close()  # its informers on the member
        await members.close()
        http("DELETE", f"{member_url}{FED_SVC}/refused")
