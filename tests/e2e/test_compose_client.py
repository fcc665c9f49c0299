"""The pieces the compose demo adds, without Docker: the demo client and ``--lb-address``.

Pure parts are table-driven (reading DNS answers, the client's lines, the shared LB
address); the rest runs real processes: a member cluster whose load balancers share one
address, our DNS responder serving records that point at it, and ``ubernetes client``
resolving through the responder and connecting to what it gets.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rrset
import pytest
import yaml

from clusters.command import own_address
from clusters.state import SharedAddress
from clusters.testing import Process, free_port, http, wait_until
from federation.cli.democlient import Answer, Attempt, format_attempt, pick, read_answer

ZONE = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."
REGION = "web.default.myfed.svc.us-east-1.example.com."


def response(*rrsets: tuple[str, str, list[str]]) -> dns.message.Message:
    msg = dns.message.make_response(dns.message.make_query(ZONE, "A"))
    for name, rdtype, values in rrsets:
        msg.answer.append(dns.rrset.from_text_list(name, 5, "IN", rdtype, values))
    return dns.message.from_wire(msg.to_wire())  # as it arrives: parsed, indexed


@pytest.mark.parametrize(
    "rrsets,want",
    [
        ([(ZONE, "A", ["10.0.0.2", "10.0.0.1"])], ([], ["10.0.0.1", "10.0.0.2"], 5, None)),
        ([(ZONE, "CNAME", [REGION]), (REGION, "A", ["10.0.0.3"])], ([REGION], ["10.0.0.3"], 5, None)),
        ([(ZONE, "CNAME", [REGION])], ([REGION], [], None, REGION)),  # ask the target next
        ([], ([], [], None, None)),  # NODATA: nothing to follow
    ],
    ids=["a", "cname-with-target", "cname-alone", "empty"],
)
def test_read_answer_walks_the_cname_chain(rrsets, want) -> None:
    assert read_answer(response(*rrsets), ZONE) == want


def test_format_attempt_says_what_dns_answered_and_who_served() -> None:
    when = 1_700_000_000.25
    ok = Attempt(
        when=when, name=ZONE, answer=Answer(cnames=[REGION], addresses=["172.18.0.3"]), address="172.18.0.3", port=8000,
        cluster="aws-us-east-1b", zone="us-east-1b", region="us-east-1", status=200, elapsed_ms=2.4,
    )  # fmt: skip
    line = format_attempt(ok)
    assert line.endswith(
        f"{ZONE} CNAME {REGION} A 172.18.0.3 -> 172.18.0.3:8000 answered by aws-us-east-1b (zone us-east-1b, region us-east-1) in 2 ms"
    )
    assert line[:12].count(":") == 2 and line[8] == "."  # HH:MM:SS.mmm
    failed = Attempt(when=when, name=ZONE, answer=Answer(addresses=["172.18.0.7"]), address="172.18.0.7", port=8000, error="timed out")
    assert format_attempt(failed).endswith(f"{ZONE} A 172.18.0.7 -> 172.18.0.7:8000 failed: timed out")
    nx = Attempt(when=when, name=ZONE, answer=Answer(error="NXDOMAIN"))
    assert format_attempt(nx).endswith(f"{ZONE} NXDOMAIN")
    unavailable = Attempt(
        when=when, name=ZONE, answer=Answer(addresses=["10.0.0.1"]), address="10.0.0.1", port=80,
        cluster="c1", zone="z1", region="r1", status=503, elapsed_ms=1,
    )  # fmt: skip
    assert "answered by c1 (zone z1, region r1) HTTP 503 in 1 ms" in format_attempt(unavailable)


def test_pick_rotates_over_the_answer_in_a_stable_order() -> None:
    answer = ["10.0.0.2", "10.0.0.1", "10.0.0.3"]
    assert [pick(answer, n) for n in range(4)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]


def test_shared_address_gives_every_service_the_one_address() -> None:
    pool = SharedAddress("172.18.0.5")
    assert str(pool.network) == "172.18.0.5/32" and "172.18.0.5" in pool
    assert pool.allocate(("default", "web")) == "172.18.0.5"
    assert pool.allocate(("default", "api")) == "172.18.0.5"
    assert pool.allocate(("default", "db"), "172.18.0.5") == "172.18.0.5"
    assert pool.allocate(("default", "other"), "172.18.0.6") is None  # loadBalancerIP must be this address
    assert sorted(pool.owners()) == [("default", "api"), ("default", "db"), ("default", "web")]
    assert pool.release(("default", "web")) == "172.18.0.5"
    assert pool.release(("default", "web")) is None
    assert pool.allocate(("default", "api")) == "172.18.0.5"


def test_own_address_is_the_source_address_toward_the_federation() -> None:
    assert own_address("http://127.0.0.1:8080") == "127.0.0.1"
    assert own_address(None)  # the host name's address, whatever this machine has


@pytest.fixture()
def shared_cluster():
    address = f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    port = free_port()
    proc = Process([
        sys.executable, "-m", "clusters", "--name", "c-shared", "--region", "r1", "--zones", "r1a",
        "--listen", f"127.0.0.1:{port}", "--lb-address", address, "--pod-ready-delay", "0",
    ])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http("GET", url + "/healthz", timeout=1)[0] == 200, timeout=15, what="cluster API")
        yield url, address, proc
    finally:
        proc.close()


def lb_service(name: str, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": port, "protocol": "TCP"}]},
    }


def ingress(url: str, name: str) -> list[dict]:
    return http("GET", f"{url}/api/v1/namespaces/default/services/{name}")[1]["status"]["loadBalancer"].get("ingress") or []


def test_lb_address_is_shared_by_services_on_different_ports(shared_cluster) -> None:
    url, address, proc = shared_cluster
    web, api = free_port(), free_port()
    for name, port in (("web", web), ("api", api), ("clash", web)):
        assert http("POST", url + "/api/v1/namespaces/default/services", lb_service(name, port))[0] == 201
    for name, port in (("web", web), ("api", api)):
        wait_until(lambda: ingress(url, name) and ingress(url, name)[0]["ip"] == address, timeout=10, what=f"{name} ingress")
        assert ingress(url, name)[0]["ports"] == [{"port": port, "protocol": "TCP"}]
        wait_until(lambda: http("GET", f"http://{address}:{port}/")[0] == 200, timeout=10, what=f"{name} answering")
        assert http("GET", f"http://{address}:{port}/")[1]["service"] == name
    # The same port twice on one address cannot be: the later service says so, like a real LB.
    wait_until(lambda: ingress(url, "clash") and ingress(url, "clash")[0]["ports"][0].get("error") == "ubernetes.io/BindFailed",
               timeout=10, what="the clashing port reported")  # fmt: skip
    assert http("GET", url + "/info")[1]["lbPool"] == f"{address}/32"
    assert f"LB address {address} (shared)" in proc.logs()


def test_lb_address_flags_are_checked() -> None:
    base = [sys.executable, "-m", "clusters", "--name", "c", "--region", "r", "--zones", "z", "--listen", "127.0.0.1:0"]
    out = subprocess.run(base + ["--lb-address", "nope"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "expected an IP address or 'auto'" in out.stderr
    out = subprocess.run(base + ["--lb-address", "127.0.0.9", "--lb-pool", "127.9.0.0/24"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "give --lb-pool or --lb-address, not both" in out.stderr


def test_client_resolves_through_the_responder_and_follows_the_cname(shared_cluster, tmp_path: Path) -> None:
    url, address, _ = shared_cluster
    port = free_port()
    assert http("POST", url + "/api/v1/namespaces/default/services", lb_service("web", port))[0] == 201
    wait_until(lambda: http("GET", f"http://{address}:{port}/")[0] == 200, timeout=10, what="web answering")
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump_all([
        {"name": ZONE, "type": "CNAME", "ttl": 5, "targets": [REGION]},
        {"name": REGION, "type": "A", "ttl": 5, "targets": [address]},
    ]))  # fmt: skip
    dns_port = free_port()
    responder = Process([
        sys.executable, "-m", "fedns", "--federation", "", "--listen", f"127.0.0.1:{dns_port}", "--records", str(records),
    ])  # fmt: skip
    try:
        wait_until(lambda: "serving DNS" in responder.logs(), timeout=15, what="the responder")
        status = tmp_path / "alive"
        out = subprocess.run(
            [sys.executable, "-m", "federation", "client", "--dns", f"127.0.0.1:{dns_port}", "--port", str(port),
             "--count", "3", "--interval", "0.05", "--status-file", str(status), ZONE,
             "web.default.myfed.svc.nowhere.example.com."],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        responder.close()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("client: resolving") and len(lines) == 1 + 3 * 2
    served = [line for line in lines[1:] if ZONE in line]
    assert len(served) == 3
    for line in served:
        assert f"CNAME {REGION} A {address} -> {address}:{port} answered by c-shared (zone r1a, region r1)" in line
    assert all(line.endswith("NXDOMAIN") for line in lines[1:] if "nowhere" in line), lines
    assert status.exists()


def test_client_says_when_nothing_answers(tmp_path: Path) -> None:
    records = tmp_path / "records.yaml"
    closed = free_port()  # nothing listens there
    records.write_text(yaml.safe_dump({"name": ZONE, "type": "A", "ttl": 5, "targets": ["127.0.0.1"]}))
    dns_port = free_port()
    responder = Process([sys.executable, "-m", "fedns", "--federation", "", "--listen", f"127.0.0.1:{dns_port}", "--records", str(records)])
    try:
        wait_until(lambda: "serving DNS" in responder.logs(), timeout=15, what="the responder")
        out = subprocess.run(
            [sys.executable, "-m", "federation", "client", "--dns", f"127.0.0.1:{dns_port}", "--port", str(closed), "--count", "1", ZONE],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        silent = subprocess.run(
            [sys.executable, "-m", "federation", "client", "--dns", f"127.0.0.1:{free_port()}", "--timeout", "0.2", "--count", "1", ZONE],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        responder.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].endswith(f"A 127.0.0.1 -> 127.0.0.1:{closed} failed: connection refused")
    assert "DNS timeout" in silent.stdout.splitlines()[-1] or "refused" in silent.stdout.splitlines()[-1]
