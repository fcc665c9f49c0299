"""``/metrics`` of every process after real traffic (issue 17): the families are there, and
the values moved by exactly what the test sent.

Real processes on loopback: a federation API server with tokens (who may scrape, request
counts by verb, resource and code, open watches), a federation with controllers and a member
that joins it (lease renewals seen by the member, reconciles, cluster health, fault to
detection after the member is killed), and the DNS responder (queries by type, replies by
rcode, latency, records and serial), queried with dnspython. The text is read with
prometheus_client's own parser, as a scraper would.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from clusters.testing import ClusterProcess, Process, free_port, http, wait_until
from tests.conftest import apiserver

NS = "/api/v1/namespaces/default"
Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str, token: str | None = None) -> Samples:
    status, text, headers = http("GET", url + "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    return sum(v for n, got, v in samples if n == name and all(got.get(k) == want for k, want in labels.items()))


def families(samples: Samples) -> set[str]:
    return {n for n, _, _ in samples}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


# --------------------------------------------------------------------------- federation API server


@pytest.fixture(scope="module")
def fed_with_tokens(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("metrics-fed")
    tokens = work / "tokens.csv"
    tokens.write_text('admin-token,admin,1,"system:masters"\n'
                      'prom-token,prometheus,2,"system:monitoring"\n'
                      'reader-token,reader,3,"readers"\n')
    with apiserver(work, "--token-file", str(tokens), "--no-controllers") as url:
        yield url


def test_federation_metrics_need_the_monitoring_group_or_an_admin(fed_with_tokens):
    url = fed_with_tokens
    status, body, _ = http("GET", url + "/metrics")
    assert status == 401 and body["reason"] == "Unauthorized"
    status, body, _ = http("GET", url + "/metrics", headers={"Authorization": "Bearer reader-token"})
    assert status == 403 and "system:monitoring" in body["message"], body
    assert "apiserver_request_total" in families(scrape(url, "prom-token"))
    assert "apiserver_request_total" in families(scrape(url, "admin-token"))


def test_federation_counts_requests_by_verb_resource_and_code(fed_with_tokens):
    url = fed_with_tokens
    admin = {"Authorization": "Bearer admin-token"}
    before = scrape(url, "prom-token")
    for i in range(3):
        status, body, _ = http("POST", f"{url}{NS}/services", service(f"m{i}"), headers=admin)
        assert status == 201, body
    assert http("POST", f"{url}{NS}/services", service("m0"), headers=admin)[0] == 409
    assert http("POST", f"{url}{NS}/services", service("r1"), headers={"Authorization": "Bearer reader-token"})[0] == 403
    assert http("GET", f"{url}{NS}/services/nope", headers=admin)[0] == 404
    assert http("GET", f"{url}{NS}/services", headers=admin)[0] == 200
    after = scrape(url, "prom-token")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    post = {"verb": "POST", "resource": "services", "group": "", "version": "v1", "scope": "namespace"}
    assert moved("apiserver_request_total", **post, code="201") == 3
    assert moved("apiserver_request_total", **post, code="409") == 1
    assert moved("apiserver_request_total", **post, code="403") == 1
    assert moved("apiserver_request_total", verb="GET", resource="services", scope="resource", code="404") == 1
    assert moved("apiserver_request_total", verb="LIST", resource="services", code="200") == 1
    assert moved("apiserver_request_duration_seconds_count", **post) == 5
    assert moved("apiserver_request_duration_seconds_sum", **post) > 0
    # the store: four creates reached it (three stored, the duplicate refused there); the 403 never did
    assert moved("ubernetes_store_request_duration_seconds_count", operation="create", resource="services",
                 store="sqlite") == 4
    assert moved("ubernetes_store_request_duration_seconds_count", operation="get", resource="services") == 1  # the 404
    assert moved("ubernetes_store_request_duration_seconds_count", operation="list", resource="services") == 1
    # the two scrapes before this one are counted too (a non-resource GET)
    assert moved("apiserver_request_total", verb="GET", resource="", code="200") >= 1
    # the process's own families are served beside the app's
    assert {"process_resident_memory_bytes", "python_gc_objects_collected_total"} <= families(after)


def test_open_watches_are_a_gauge(fed_with_tokens):
    url = fed_with_tokens
    host, port = url.removeprefix("http://").split(":")
    watch_labels = {"verb": "WATCH", "resource": "services", "scope": "namespace"}
    assert value(scrape(url, "prom-token"), "apiserver_longrunning_requests", **watch_labels) == 0
    sock = socket.create_connection((host, int(port)), timeout=5)
    try:
        sock.sendall(f"GET {NS}/services?watch=true HTTP/1.1\r\nHost: {host}\r\n"
                     "Authorization: Bearer admin-token\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert value(scrape(url, "prom-token"), "apiserver_longrunning_requests", **watch_labels) == 1
    finally:
        sock.close()
    # An event makes the server write to the closed watch, and see that it is gone.
    http("POST", f"{url}{NS}/services", service("wake"), headers={"Authorization": "Bearer admin-token"})
    wait_until(lambda: value(scrape(url, "prom-token"), "apiserver_longrunning_requests", **watch_labels) == 0,
               timeout=10, what="the watch gauge back at 0")
    ended = scrape(url, "prom-token")
    assert value(ended, "apiserver_request_total", verb="WATCH", resource="services") == 1
    assert value(ended, "apiserver_request_duration_seconds_count", verb="WATCH") == 0  # as Kubernetes: excluded


# --------------------------------------------------------------------------- a member, controllers, health


@pytest.fixture
def federation_and_member(tmp_path: Path):
    with apiserver(tmp_path, "--health-period", "0.2", "--health-timeout", "0.3", "--failure-threshold", "2") as url:
        member = ClusterProcess(name="metrics-1", federation=url, extra=["--lease-period", "0.2"])
        try:
            yield url, member.wait_ready()
        finally:
            member.close()


def test_member_lease_controllers_health_and_fault_to_detection(federation_and_member):
    fed, member = federation_and_member
    name = "metrics-1"
    wait_until(lambda: value(scrape(fed), "cluster_ready_state", member_cluster=name) == 1, timeout=15,
               what="the member Ready in the federation's metrics")
    # The member: its own requests, and its lease renewals as it sees them.
    first = scrape(member.url)
    for i in range(2):
        assert http("POST", f"{member.url}{NS}/services", service(f"s{i}"))[0] == 201
    wait_until(lambda: value(scrape(member.url), "ubernetes_member_lease_renewals_total", result="success")
               >= value(first, "ubernetes_member_lease_renewals_total", result="success") + 2,
               timeout=5, what="two more lease renewals")
    later = scrape(member.url)
    assert (value(later, "apiserver_request_total", verb="POST", resource="services", code="201")
            - value(first, "apiserver_request_total", verb="POST", resource="services", code="201")) == 2
    renewals = value(later, "ubernetes_member_lease_renewal_duration_seconds_count")
    assert renewals == value(later, "ubernetes_member_lease_renewals_total", result="success") >= 2
    assert 0 < value(later, "ubernetes_member_lease_renewal_duration_seconds_sum") < renewals * 2.0
    # Only the federation serves the process-wide families (one process may host many members).
    assert "controller_runtime_reconcile_total" not in families(later)

    # The federation: reconciles of its controllers, cluster health.
    fed_now = scrape(fed)
    assert value(fed_now, "controller_runtime_reconcile_total", controller="health", result="success") >= 2
    assert value(fed_now, "controller_runtime_reconcile_time_seconds_count", controller="health") >= 2
    assert value(fed_now, "kubefedcluster_total", state="ready") == 1
    assert value(fed_now, "ubernetes_cluster_health_state", cluster=name, state="Ready") == 1
    assert value(fed_now, "ubernetes_cluster_probes_total", cluster=name, result="ok") >= 1
    assert value(fed_now, "ubernetes_fault_to_detection_seconds_count") == 0

    killed = time.monotonic()
    member.signal(signal.SIGKILL)
    wait_until(lambda: value(scrape(fed), "kubefedcluster_total", state="offline") == 1, timeout=10,
               what="the member Offline in the federation's metrics")
    seen = time.monotonic() - killed
    down = scrape(fed)
    assert value(down, "cluster_ready_state", member_cluster=name) == 0
    assert value(down, "ubernetes_cluster_health_transitions_total", cluster=name, to="Offline") == 1
    assert value(down, "ubernetes_cluster_probes_total", cluster=name, result="unreachable") >= 2
    assert value(down, "ubernetes_fault_to_detection_seconds_count", verdict="Offline") == 1
    # From the last good probe (before the kill) to the second failed one: more than one
    # probe period, less than the test waited plus the period before the kill.
    detection = value(down, "ubernetes_fault_to_detection_seconds_sum", verdict="Offline")
    assert 0.2 <= detection <= seen + 0.5, (detection, seen)


def test_a_member_with_tokens_wants_one_for_metrics(tmp_path: Path):
    tokens = tmp_path / "member-tokens.csv"
    tokens.write_text('member-token,admin,1,"system:masters"\n')
    member = ClusterProcess(name="metrics-2", extra=["--token-file", str(tokens)])
    try:
        member.wait_ready()
        status, body, _ = http("GET", member.url + "/metrics")
        assert status == 401 and body["reason"] == "Unauthorized"
        assert http("GET", member.url + "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
        samples = scrape(member.url, "member-token")
        # the two refusals are counted: the metrics middleware is outside the token check
        assert value(samples, "apiserver_request_total", verb="GET", resource="", code="401") == 2
        # Its data-plane votes: an address that answers HTTP (its own API) and one that does not.
        auth = {"Authorization": "Bearer member-token"}
        up, down = f"127.0.0.1:{member.port}", f"127.0.0.1:{free_port()}"
        body = {"targets": [up, down], "period": 0.1, "timeout": 0.3, "failureThreshold": 1}
        assert http("POST", member.url + "/probes", body, headers=auth)[0] == 200

        def voted() -> bool:
            now = scrape(member.url, "member-token")
            return (value(now, "ubernetes_dataplane_vote", target=up, verdict="up") == 1
                    and value(now, "ubernetes_dataplane_vote", target=down, verdict="down") == 1)

        wait_until(voted, timeout=5, what="the member's votes in its metrics")
    finally:
        member.close()


# --------------------------------------------------------------------------- the DNS responder


G = "web.default.myfed.svc.example.com."


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("metrics-dns")
    records = work / "records.yaml"
    records.write_text(yaml.safe_dump_all([
        {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]},
        {"name": "v6.example.com.", "type": "AAAA", "ttl": 5, "targets": ["fd00::1"]},
    ]))
    dns_port, status_port = free_port(), free_port()
    proc = Process([sys.executable, "-m", "fedns", "--listen", f"127.0.0.1:{dns_port}",
                    "--federation", "http://127.0.0.1:9",  # nothing there: the file's records, stale
                    "--records", str(records), "--status-listen", f"127.0.0.1:{status_port}"])
    try:
        url = f"http://127.0.0.1:{status_port}"

        def up() -> bool:
            assert proc.alive(), proc.logs()
            try:
                return http("GET", url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=15, what="the responder's status endpoint")
        yield dns_port, url
    finally:
        proc.close()


def test_responder_counts_queries_by_type_and_rcode(responder):
    port, url = responder
    before = scrape(url)
    ask = lambda name, rdtype="A": dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=3)  # noqa: E731
    for i in range(5):
        assert ask(f"nope{i}.example.com.").rcode() == dns.rcode.NXDOMAIN
    for _ in range(3):
        assert ask(G).rcode() == dns.rcode.NOERROR
    assert ask("v6.example.com.", "AAAA").answer
    assert ask("outside.example.org.").rcode() == dns.rcode.REFUSED
    soa = ask("example.com.", "SOA")
    reply = dns.query.tcp(dns.message.make_query(G, "A"), "127.0.0.1", port=port, timeout=3)
    assert reply.answer
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a message too short to answer: dropped
        s.sendto(b"\x00\x01\x02", ("127.0.0.1", port))
    wait_until(lambda: value(scrape(url), "ubernetes_dns_dropped_total") > value(before, "ubernetes_dns_dropped_total"),
               timeout=5, what="the dropped message counted")
    after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("coredns_dns_responses_total", rcode="NXDOMAIN") == 5
    assert moved("coredns_dns_responses_total", rcode="NOERROR") == 3 + 1 + 1 + 1  # A (UDP), AAAA, SOA, A (TCP)
    assert moved("coredns_dns_responses_total", rcode="REFUSED") == 1
    assert moved("coredns_dns_requests_total", type="A") == 5 + 3 + 1 + 1
    assert moved("coredns_dns_requests_total", type="AAAA") == 1
    assert moved("coredns_dns_requests_total", type="SOA") == 1
    assert moved("coredns_dns_requests_total", type="other") == 1  # the three bytes
    assert moved("coredns_dns_request_duration_seconds_count") == 13
    assert 0 < moved("coredns_dns_request_duration_seconds_sum") < 13 * 0.05
    assert moved("ubernetes_dns_dropped_total") == 1
    assert value(after, "ubernetes_dns_records") == 2
    assert value(after, "ubernetes_dns_zone_serial") == soa.answer[0][0].serial
    assert value(after, "ubernetes_dns_stale") == 1  # the federation it was given is not there
    assert value(after, "ubernetes_dns_zone_transfers_total", result="ok") == 0
