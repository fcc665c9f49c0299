"""The member cluster as a real process: its API, simulated pods, LB data plane and chaos switches."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from http.client import RemoteDisconnected

from clusters.testing import ClusterProcess, free_port, http, wait_until

NS = "/api/v1/namespaces/default"


@pytest.fixture(scope="module")
def cluster():
    proc = ClusterProcess(
        name="aws-test-1",
        region="us-east-1",
        zones="us-east-1a,us-east-1b",
        extra=["--nodes-per-zone", "2", "--pod-ready-delay", "0.5"],
    )
    try:
        yield proc.wait_ready()
    finally:
        proc.close()


def lb_service(name: str, port: int, **spec) -> dict:
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": {"type": "LoadBalancer", "ports": [{"port": port}], **spec}}


def get_ingress(cluster, name: str, timeout: float = 10.0) -> dict:
    def ingress():
        status, obj, _ = http("GET", f"{cluster.url}{NS}/services/{name}")
        assert status == 200, obj
        return (obj["status"].get("loadBalancer") or {}).get("ingress")

    return wait_until(ingress, timeout=timeout, what=f"ingress of {name}")[0]


def test_healthz_and_version(cluster):
    status, body, headers = http("GET", cluster.url + "/healthz")
    assert (status, body) == (200, "ok") and headers["Content-Type"].startswith("text/plain")
    status, body, _ = http("GET", cluster.url + "/version")
    assert status == 200 and body["major"] == "1" and body["gitVersion"].startswith("v1.")


def test_nodes_are_labelled_per_zone(cluster):
    status, body, _ = http("GET", cluster.url + "/api/v1/nodes")
    assert status == 200 and body["kind"] == "NodeList"
    zones = {}
    for node in body["items"]:
        labels = node["metadata"]["labels"]
        assert labels["topology.kubernetes.io/region"] == "us-east-1"
        assert labels["failure-domain.beta.kubernetes.io/region"] == "us-east-1"
        assert labels["failure-domain.beta.kubernetes.io/zone"] == labels["topology.kubernetes.io/zone"]
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        zones.setdefault(labels["topology.kubernetes.io/zone"], []).append(node["metadata"]["name"])
    assert zones == {
        "us-east-1a": ["aws-test-1-us-east-1a-node-0", "aws-test-1-us-east-1a-node-1"],
        "us-east-1b": ["aws-test-1-us-east-1b-node-0", "aws-test-1-us-east-1b-node-1"],
    }
    status, body, _ = http("GET", cluster.url + "/api/v1/nodes?labelSelector=topology.kubernetes.io/zone%3Dus-east-1b")
    assert len(body["items"]) == 2
    status, body, _ = http("GET", cluster.url + "/api/v1/nodes/aws-test-1-us-east-1a-node-1")
    assert status == 200 and body["kind"] == "Node"
    status, body, _ = http("GET", cluster.url + "/api/v1/nodes/nope")
    assert status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"


def test_service_crud(cluster):
    url = cluster.url + NS + "/services"
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "crud", "labels": {"tier": "front"}}, "spec": {"ports": [{"port": 80}]}}
    status, created, _ = http("POST", url, body)
    assert status == 201, created
    assert created["metadata"]["resourceVersion"] and created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    status, again, _ = http("POST", url, body)
    assert status == 409 and again["reason"] == "AlreadyExists"

    status, listed, _ = http("GET", url + "?labelSelector=tier%3Dfront")
    assert [s["metadata"]["name"] for s in listed["items"]] == ["crud"]
    status, listed, _ = http("GET", url + "?labelSelector=tier%3Dback")
    assert listed["items"] == []
    status, listed, _ = http("GET", cluster.url + "/api/v1/services")
    assert "crud" in [s["metadata"]["name"] for s in listed["items"]]

    replaced = {**created, "spec": {**created["spec"], "ports": [{"port": 8080}]}}
    status, updated, _ = http("PUT", f"{url}/crud", replaced)
    assert status == 200, updated
    assert updated["spec"]["ports"][0]["port"] == 8080 and updated["metadata"]["generation"] == 2

    # a stale resourceVersion is a 409 Conflict
    status, err, _ = http("PUT", f"{url}/crud", replaced)
    assert status == 409 and err["reason"] == "Conflict" and "crud" in err["message"]

    status, patched, _ = http(
        "PATCH", f"{url}/crud", {"metadata": {"labels": {"tier": None, "x": "y"}}}, content_type="application/merge-patch+json"
    )
    assert status == 200 and patched["metadata"]["labels"] == {"x": "y"}

    status, gone, _ = http("DELETE", f"{url}/crud")
    assert status == 200 and gone["kind"] == "Service" and gone["metadata"]["name"] == "crud"
    status, err, _ = http("GET", f"{url}/crud")
    assert status == 404 and err["kind"] == "Status" and err["message"] == 'services "crud" not found'


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({"metadata": {"name": "bad-port"}, "spec": {"ports": [{"port": 70000}]}}, "spec.ports[0].port", "must be between 1 and 65535"),
        ({"metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 80}]}}, "metadata.name", "DNS-1035 label"),
        ({"metadata": {"name": "bad-proto"}, "spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}}, "spec.ports[0].protocol", "supported values"),
    ],
)
def test_invalid_service_is_422_status(cluster, body, field, fragment):
    status, err, _ = http("POST", cluster.url + NS + "/services", body)
    assert status == 422, err
    assert err["kind"] == "Status" and err["reason"] == "Invalid" and err["code"] == 422
    assert err["message"].startswith(f'Service "{body["metadata"]["name"]}" is invalid: {field}:')
    assert fragment in err["message"]
    assert [c["field"] for c in err["details"]["causes"]] == [field]
    status, _, _ = http("GET", f'{cluster.url}{NS}/services/{body["metadata"]["name"]}')
    assert status == 404  # nothing stored


@pytest.mark.parametrize(
    "method, path, raw, ctype, code, fragment",
    [
        ("POST", NS + "/services", b'{"metadata": ', "application/json", 400, "not valid JSON"),
        ("POST", NS + "/services", b"\xff\xfe garbage", "application/json", 400, "UTF-8"),
        ("POST", NS + "/services", b"", "application/json", 400, "empty"),
        ("POST", NS + "/services", b"[1, 2]", "application/json", 400, "JSON object"),
        ("POST", "/api/v1/namespaces/Bad_NS/services", b"{}", "application/json", 400, "invalid namespace"),
        ("GET", "/api/v1/nosuch", None, None, 404, "could not find"),
        ("GET", NS + "/services?labelSelector=a%20in%20(", None, None, 400, "invalid label selector"),
        ("DELETE", "/api/v1/nodes", None, None, 405, "does not allow"),
    ],
)
def test_malformed_requests_get_status(cluster, method, path, raw, ctype, code, fragment):
    status, err, _ = http(method, cluster.url + path, raw, content_type=ctype or "application/json")
    assert status == code, err
    assert err["kind"] == "Status" and err["code"] == code and fragment in err["message"], err


def test_unsupported_patch_type_and_oversized_body(cluster):
    http("POST", cluster.url + NS + "/services", {"metadata": {"name": "ptype"}, "spec": {"ports": [{"port": 80}]}})
    status, err, _ = http("PATCH", cluster.url + NS + "/services/ptype", b"[]", content_type="text/plain")
    assert status == 415 and err["kind"] == "Status" and err["reason"] == "UnsupportedMediaType"
    # JSON patch is served on every kind (one server, issue 11), as at the federation
    status, patched, _ = http("PATCH", cluster.url + NS + "/services/ptype",
                              b'[{"op": "add", "path": "/metadata/labels", "value": {"p": "1"}}]',
                              content_type="application/json-patch+json")
    assert status == 200 and patched["metadata"]["labels"] == {"p": "1"}, patched
    status, err, _ = http("POST", cluster.url + NS + "/services", b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}')
    assert status == 413 and err["kind"] == "Status"
    assert http("GET", cluster.url + "/healthz")[1] == "ok"
    http("DELETE", cluster.url + NS + "/services/ptype")


def test_pods_become_ready_and_endpoints_list_them(cluster):
    body = {"metadata": {"name": "pods", "annotations": {"ubernetes.io/pods": "3"}}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    status, _, _ = http("POST", cluster.url + NS + "/services", body)
    assert status == 201
    status, pods, _ = http("GET", cluster.url + NS + "/pods?labelSelector=ubernetes.io/service%3Dpods")
    assert status == 200 and len(pods["items"]) == 3
    nodes = [p["spec"]["nodeName"] for p in pods["items"]]
    assert {n.split("-node-")[0].rsplit("-", 1)[-1] for n in nodes} == {"1a", "1b"}  # spread over both zones

    def ready_ips():
        _, ep, _ = http("GET", cluster.url + NS + "/endpoints/pods")
        subsets = ep["subsets"]
        return sorted(a["ip"] for a in subsets[0].get("addresses", [])) if subsets else []

    assert len(ready_ips()) < 3  # not all ready at once: the delay is 0.5 s
    wait_until(lambda: len(ready_ips()) == 3, timeout=5, what="3 ready endpoints")
    _, pods, _ = http("GET", cluster.url + NS + "/pods")
    pod_ips = sorted(p["status"]["podIP"] for p in pods["items"] if p["metadata"]["labels"]["ubernetes.io/service"] == "pods")
    assert ready_ips() == pod_ips
    _, ep, _ = http("GET", cluster.url + NS + "/endpoints/pods")
    assert ep["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    _, one, _ = http("GET", cluster.url + NS + "/pods/pods-0")
    assert one["kind"] == "Pod" and one["status"]["phase"] == "Running"
    status, all_eps, _ = http("GET", cluster.url + "/api/v1/endpoints")
    assert status == 200 and "pods" in [e["metadata"]["name"] for e in all_eps["items"]]
    http("DELETE", cluster.url + NS + "/services/pods")
    assert http("GET", cluster.url + NS + "/endpoints/pods")[0] == 404


def test_load_balancer_answers_then_stops_after_delete(cluster):
    port = free_port()
    status, created, _ = http("POST", cluster.url + NS + "/services", lb_service("web", port))
    assert status == 201
    ingress = get_ingress(cluster, "web")
    ip = ingress["ip"]
    assert ip.startswith(cluster.lb_pool.rsplit(".", 1)[0] + ".")
    assert ingress["ports"] == [{"port": port, "protocol": "TCP"}]

    def answer():
        status, body, headers = http("GET", f"http://{ip}:{port}/hello", timeout=2)
        return (status, body, headers) if status == 200 else None

    status, body, headers = wait_until(answer, timeout=5, what="LB answer")
    assert headers["X-Ubernetes-Cluster"] == "aws-test-1"
    assert body["cluster"] == "aws-test-1" and body["region"] == "us-east-1" and body["provider"] == "aws"
    assert body["service"] == "web" and body["namespace"] == "default"
    assert body["zone"] in ("us-east-1a", "us-east-1b") and body["pod"].startswith("web-")
    zones = {http("GET", f"http://{ip}:{port}/")[1]["zone"] for _ in range(4)}
    assert zones == {"us-east-1a", "us-east-1b"}  # round-robin over pods in both zones

    status, _, _ = http("DELETE", cluster.url + NS + "/services/web")
    assert status == 200

    def refused():
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_until(refused, timeout=5, what="LB listener to stop")


def test_load_balancer_without_ready_pods_answers_503(cluster):
    port = free_port()
    body = lb_service("empty", port)
    body["metadata"]["annotations"] = {"ubernetes.io/pods": "0"}
    http("POST", cluster.url + NS + "/services", body)
    ip = get_ingress(cluster, "empty")["ip"]
    status, body, headers = http("GET", f"http://{ip}:{port}/")
    assert status == 503 and "no ready endpoints" in body["error"] and headers["X-Ubernetes-Cluster"] == "aws-test-1"
    http("DELETE", cluster.url + NS + "/services/empty")


def test_port_change_moves_the_listener_and_type_change_releases(cluster):
    p1, p2 = free_port(), free_port()
    _, created, _ = http("POST", cluster.url + NS + "/services", lb_service("moving", p1))
    ip = get_ingress(cluster, "moving")["ip"]
    wait_until(lambda: http("GET", f"http://{ip}:{p1}/")[0] == 200, timeout=5, what="first port")
    http("PATCH", cluster.url + NS + "/services/moving", {"spec": {"ports": [{"port": p2}]}}, content_type="application/merge-patch+json")
    wait_until(lambda: get_ingress(cluster, "moving")["ports"][0]["port"] == p2, timeout=5, what="status on new port")
    assert http("GET", f"http://{ip}:{p2}/")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, p1), timeout=1)
    status, obj, _ = http("PATCH", cluster.url + NS + "/services/moving", {"spec": {"type": "ClusterIP"}}, content_type="application/merge-patch+json")
    assert status == 200, obj

    def released():
        _, obj, _ = http("GET", cluster.url + NS + "/services/moving")
        return obj["status"]["loadBalancer"] == {} and "nodePort" not in obj["spec"]["ports"][0]

    wait_until(released, timeout=5, what="LB released")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, p2), timeout=1)
    http("DELETE", cluster.url + NS + "/services/moving")


def test_bind_failure_is_reported_not_fatal(cluster):
    # occupy the address the service asks for (the pool's last one), on its port
    first_free = cluster.lb_pool.rsplit(".", 1)[0] + ".14"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = free_port()
    blocker.bind((first_free, port))
    blocker.listen()
    try:
        status, _, _ = http("POST", cluster.url + NS + "/services", lb_service("blocked", port, loadBalancerIP=first_free))
        assert status == 201
        ingress = get_ingress(cluster, "blocked")
        assert ingress["ip"] == first_free
        assert ingress["ports"] == [{"port": port, "protocol": "TCP", "error": "ubernetes.io/BindFailed"}]
        _, events, _ = http("GET", cluster.url + NS + "/events")
        warnings = [e for e in events["items"] if e["involvedObject"]["name"] == "blocked" and e["type"] == "Warning"]
        assert warnings and "cannot listen on" in warnings[0]["message"]
        assert http("GET", cluster.url + "/healthz")[1] == "ok"
    finally:
        blocker.close()
    # once the port is free the periodic resync binds it
    wait_until(lambda: "error" not in get_ingress(cluster, "blocked")["ports"][0], timeout=8, what="rebind")
    wait_until(lambda: http("GET", f"http://{first_free}:{port}/")[1].get("service") == "blocked", timeout=5, what="answer")
    http("DELETE", cluster.url + NS + "/services/blocked")


def test_chaos_switches(cluster):
    port = free_port()
    http("POST", cluster.url + NS + "/services", lb_service("chaotic", port))
    ip = get_ingress(cluster, "chaotic")["ip"]
    wait_until(lambda: http("GET", f"http://{ip}:{port}/")[0] == 200, timeout=5, what="LB answer")
    try:
        # partition: the API drops connections, the data plane keeps serving
        status, state, _ = http("POST", cluster.url + "/chaos", {"partitioned": True})
        assert status == 200 and state["partitioned"] is True
        with pytest.raises((ConnectionError, RemoteDisconnected, OSError)):
            http("GET", cluster.url + "/healthz", timeout=2)
        assert http("GET", f"http://{ip}:{port}/")[0] == 200
        assert http("GET", cluster.url + "/chaos")[1]["partitioned"] is True
        http("POST", cluster.url + "/chaos", {"partitioned": False})
        assert http("GET", cluster.url + "/healthz")[1] == "ok"

        # black-holed data plane: connections are accepted and never answered
        http("POST", cluster.url + "/chaos", {"dataPlaneBlackholed": True})
        with pytest.raises(OSError):  # socket.timeout is an OSError
            http("GET", f"http://{ip}:{port}/", timeout=0.5)
        assert http("GET", cluster.url + "/healthz")[1] == "ok"
        http("POST", cluster.url + "/chaos", {"dataPlaneBlackholed": False})

        # unready pods: endpoints empty, LB answers 503
        http("POST", cluster.url + "/chaos", {"unreadyPods": {"default/chaotic": "all"}})
        wait_until(lambda: http("GET", f"http://{ip}:{port}/")[0] == 503, timeout=5, what="503")
        _, ep, _ = http("GET", cluster.url + NS + "/endpoints/chaotic")
        assert "addresses" not in ep["subsets"][0]

        # latency
        http("POST", cluster.url + "/chaos", {"unreadyPods": None, "apiLatency": 0.3})
        t0 = time.monotonic()
        http("GET", cluster.url + "/healthz")
        assert time.monotonic() - t0 >= 0.3

        status, err, _ = http("POST", cluster.url + "/chaos", {"probeDropFraction": 2})
        assert status == 422 and "probeDropFraction" in err["message"]
    finally:
        http("DELETE", cluster.url + "/chaos")
    wait_until(lambda: http("GET", f"http://{ip}:{port}/")[0] == 200, timeout=5, what="healed LB")
    http("DELETE", cluster.url + NS + "/services/chaotic")


def test_sigterm_exits_zero_quickly():
    proc = ClusterProcess(name="sigterm-test", zones="z1").wait_ready()
    try:
        port = free_port()
        http("POST", proc.url + NS + "/services", lb_service("web", port))
        get_ingress(proc, "web")
        t0 = time.monotonic()
        assert proc.terminate(timeout=5) == 0, proc.logs()
        assert time.monotonic() - t0 < 3
        assert "stopped" in proc.logs()
    finally:
        proc.close()


def test_sigint_exits_zero_and_bad_flags_fail():
    proc = ClusterProcess(name="sigint-test", zones="z1").wait_ready()
    try:
        proc.signal(signal.SIGINT)
        assert proc.proc.wait(5) == 0
    finally:
        proc.close()
    bad = ClusterProcess(name="Bad_Name", zones="z1")
    try:
        assert bad.proc.wait(15) == 2
        assert "Invalid value for '--name'" in bad.logs()
    finally:
        bad.close()


def test_garbage_bytes_do_not_hurt(cluster):
    port = free_port()
    http("POST", cluster.url + NS + "/services", lb_service("garbage", port))
    ip = get_ingress(cluster, "garbage")["ip"]
    for target in (("127.0.0.1", cluster.port), (ip, port)):
        for payload in (b"\x16\x03\x01\x02\x00" + bytes(range(256)), b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"\x00" * 10000):
            with socket.create_connection(target, timeout=2) as s:
                s.sendall(payload)
                try:
                    s.recv(100)
                except OSError:
                    pass
    assert http("GET", cluster.url + "/healthz")[1] == "ok"
    wait_until(lambda: http("GET", f"http://{ip}:{port}/")[0] == 200, timeout=5, what="LB still answering")
    http("DELETE", cluster.url + NS + "/services/garbage")


def test_no_tracebacks_in_logs(cluster):
    """Runs last in this module: nothing above (malformed input, chaos) made the cluster log a crash."""
    assert http("GET", cluster.url + "/healthz")[1] == "ok"
    logs = cluster.logs()
    assert "Traceback" not in logs, logs
