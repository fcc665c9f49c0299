"""End to end: compose.yaml with a real Docker daemon, from the image build to a failover.

Opt in (``make test-compose`` sets UBERNETES_COMPOSE_E2E=1); plain ``make test`` skips it.
It starts dockerd if none answers (docker/start-dockerd.sh, and stops it again at the end),
makes the local base image once (docker/make-base-image.sh: debootstrap, cached in dockerd's
data root), builds our image on it with the legacy builder and host networking, brings the
project up under a unique name with its ports on a random loopback address (so a running
demo or ``make up`` is not in the way), and then checks from the host what a user would:

- every service turns healthy; the four clusters are Ready in the federation API;
- DNS answers the zone, region and global names with the containers' own addresses;
- the client's connections reach the cluster of its zone;
- Prometheus (docker/prometheus.Dockerfile) reports every scrape target ``up`` through its
  HTTP API, one per container that serves /metrics, and a query for a federation metric
  (``kubefedcluster_total``) returns the four Ready clusters;
- after ``compose kill`` of that cluster, its zone name becomes a CNAME to its region and the
  client's connections move to the other cluster of the region.

Everything the test made (containers, network, volume, its image tag) is removed in a
``finally``, even when a check fails. The compose command is ``$UBERNETES_COMPOSE`` if set
(e.g. ``docker-compose`` or ``docker compose``), else ``docker compose`` when that works,
else ``docker-compose``. When dockerd cannot run here the test skips and says why, unless
UBERNETES_REQUIRE_DOCKER=1, where it fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import dns.message
import dns.query
import dns.rdatatype
import pytest

from clusters.testing import http
from federation.cli.kubectl import Server

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
BASE_IMAGE = os.environ.get("UBERNETES_BASE_IMAGE", "local/python:3.11-bookworm")
CLUSTERS = {  # service -> (cluster, region, zone)
    "cluster-aws-us-east-1a": ("aws-us-east-1a", "us-east-1", "us-east-1a"),
    "cluster-aws-us-east-1b": ("aws-us-east-1b", "us-east-1", "us-east-1b"),
    "cluster-aws-eu-west-1a": ("aws-eu-west-1a", "eu-west-1", "eu-west-1a"),
    "cluster-gcp-europe-west1-b": ("gcp-europe-west1-b", "europe-west1", "europe-west1-b"),
}
SERVICES = ["federation", "dns", *CLUSTERS, "client", "prometheus"]
# Where each container serves /metrics, as Prometheus reaches it (docker/prometheus.yml).
SCRAPED = {"federation": "federation:8080", "dns": "dns:9153", **{s: f"{s}:9100" for s in CLUSTERS}}
SVC = "web.default.myfed.svc"
DOMAIN = "example.com."
VICTIM = "cluster-aws-us-east-1a"
SURVIVOR = "cluster-aws-us-east-1b"

pytestmark = [
    pytest.mark.skipif(not os.environ.get("UBERNETES_COMPOSE_E2E"), reason="opt-in: run with `make test-compose`"),
    pytest.mark.timeout(900),
]


def run(argv: list[str], *, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def say(line: str) -> None:
    print(f"[compose-e2e {time.strftime('%H:%M:%S')}] {line}", flush=True)


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as err:  # a check that cannot run yet is a check that has not passed
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def compose_command() -> list[str]:
    chosen = os.environ.get("UBERNETES_COMPOSE")
    if chosen:
        return shlex.split(chosen)
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is None:
        run(["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose"], timeout=300)
    return ["docker-compose"]


def free_loopback_address(ports: list[int]) -> str:
    """A 127.x.y.1 where none of our published ports is taken (TCP, and UDP for DNS)."""
    for _ in range(50):
        ip = f"127.{random.randint(100, 199)}.{random.randint(1, 250)}.1"
        try:
            for port in ports:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) if port == 1053 else (socket.SOCK_STREAM,):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((ip, port))
        except OSError:
            continue
        return ip
    raise AssertionError("no free loopback address for the published ports")


@pytest.fixture(scope="module")
def docker_daemon() -> Any:
    started = time.monotonic()
    proc = run([str(DOCKER_DIR / "start-dockerd.sh")], check=False, timeout=300)
    if proc.returncode == 3:
        reason = "dockerd cannot run on this machine: " + " | ".join((proc.stderr.strip().splitlines() or ["?"])[-3:])
        if os.environ.get("UBERNETES_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    we_started = "started dockerd" in proc.stdout
    say(f"{proc.stdout.strip().splitlines()[-1]} ({time.monotonic() - started:.1f} s)")
    try:
        yield
    finally:
        if we_started:
            say(run([str(DOCKER_DIR / "stop-dockerd.sh")], check=False, timeout=60).stdout.strip())


class Project:
    """One compose project under a unique name, and what the test needs to ask of it."""

    def __init__(self, compose: list[str], name: str, env: dict[str, str]) -> None:
        self.compose, self.name, self.env = compose, name, env

    def __call__(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, "-p", self.name, "-f", str(ROOT / "compose.yaml"), *args], timeout=timeout, check=check, env=self.env)

    def containers(self) -> dict[str, dict[str, str]]:
        """service -> {id, status} of the project's containers (running or not)."""
        out = run([
            "docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.name}",
            "--format", '{{.ID}}\t{{.Label "com.docker.compose.service"}}\t{{.Status}}',
        ]).stdout
        found = {}
        for line in out.splitlines():
            cid, service, status = line.split("\t")
            found[service] = {"id": cid, "status": status}
        return found

    def address(self, service: str) -> str:
        cid = self.containers()[service]["id"]
        return run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid]).stdout.strip()

    def client_log(self) -> list[str]:
        return self("logs", "--no-color", "client", check=False).stdout.splitlines()


def a_records(ip: str, name: str) -> tuple[list[str], list[str]]:
    """(CNAME targets, sorted A addresses) of one query to the published responder."""
    response = dns.query.udp(dns.message.make_query(name, "A"), ip, port=1053, timeout=2)
    cnames = [str(rr.target) for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME for rr in rrset]
    addresses = sorted(rr.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset)
    return cnames, addresses


def served_by(lines: list[str]) -> list[tuple[str, str, bool]]:
    """(time, cluster, via CNAME) of every successful client attempt in its log."""
    found = []
    for line in lines:
        m = re.search(r"(\d\d:\d\d:\d\d\.\d{3}) (\S+) (.*)answered by (\S+)", line)
        if m:
            found.append((m.group(1), m.group(4), "CNAME" in m.group(3)))
    return found


def test_compose_demo_end_to_end(docker_daemon: Any) -> None:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    compose = compose_command()
    version = run([*compose, "version"], check=False).stdout.strip().splitlines()
    say(f"compose: {shlex.join(compose)} ({version[0] if version else '?'})")

    mark = time.monotonic()
    base = run([str(DOCKER_DIR / "make-base-image.sh"), BASE_IMAGE], timeout=600)
    timings["base image"] = time.monotonic() - mark
    say(base.stdout.strip().splitlines()[-1])

    name = f"ubernetes-e2e-{os.getpid()}-{random.randint(1000, 9999)}"
    image = f"ubernetes-e2e:{name}"
    prometheus_image = f"ubernetes-e2e-prometheus:{name}"
    host_ip = free_loopback_address([8080, 1053, 9090, 9101, 9102, 9103, 9104])
    env = {**os.environ, "UBERNETES_IMAGE": image, "UBERNETES_PROMETHEUS_IMAGE": prometheus_image,
           "UBERNETES_HOST_IP": host_ip, "DOCKER_BUILDKIT": "0"}
    project = Project(compose, name, env)
    try:
        mark = time.monotonic()
        run(["docker", "build", "-q", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", image, "."], timeout=600, env=env)
        timings["image build"] = time.monotonic() - mark
        say(f"built {image} on {BASE_IMAGE} in {timings['image build']:.1f} s")
        mark = time.monotonic()
        run(["docker", "build", "-q", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
             "-f", "docker/prometheus.Dockerfile", "-t", prometheus_image, "docker"], timeout=600, env=env)
        timings["prometheus image build"] = time.monotonic() - mark
        say(f"built {prometheus_image} in {timings['prometheus image build']:.1f} s")

        mark = time.monotonic()
        project("up", "-d", "--no-build", timeout=300)

        def all_healthy() -> bool:
            status = {s: c["status"] for s, c in project.containers().items()}
            bad = [s for s in SERVICES if "(healthy)" not in status.get(s, "")]
            if any("Exited" in status.get(s, "") for s in SERVICES):
                raise AssertionError(f"a container exited: {status}")
            return not bad

        wait_for(all_healthy, timeout=120, what="every service healthy")
        timings["up until all healthy"] = time.monotonic() - mark
        say(f"project {name} healthy in {timings['up until all healthy']:.1f} s, published on {host_ip}")

        api = Server(f"http://{host_ip}:8080")

        def clusters_ready() -> bool:
            items = api.get("/apis/federation/v1beta1/clusters")["items"]
            ready = {
                c["metadata"]["name"]
                for c in items
                if any(cond["type"] == "Ready" and cond["status"] == "True" for cond in c.get("status", {}).get("conditions", []))
            }
            return ready == {c for c, _, _ in CLUSTERS.values()}

        wait_for(clusters_ready, timeout=30, what="four Ready clusters")

        addresses = {service: project.address(service) for service in CLUSTERS}
        assert len(set(addresses.values())) == 4 and all(addresses.values()), addresses
        say(f"cluster containers: {addresses}")
        zone_name = {s: f"{SVC}.{zone}.{region}.{DOMAIN}" for s, (_, region, zone) in CLUSTERS.items()}
        expected = {name: ([], [addresses[s]]) for s, name in zone_name.items()}
        for region in {region for _, region, _ in CLUSTERS.values()}:
            expected[f"{SVC}.{region}.{DOMAIN}"] = ([], sorted(addresses[s] for s, (_, r, _) in CLUSTERS.items() if r == region))
        expected[f"{SVC}.{DOMAIN}"] = ([], sorted(addresses.values()))

        def dns_complete() -> bool:
            return all(a_records(host_ip, qname) == want for qname, want in expected.items())

        mark = time.monotonic()
        wait_for(dns_complete, timeout=30, what="zone, region and global names answering the containers' addresses")
        say(f"DNS answers all {len(expected)} names from the host ({time.monotonic() - mark:.1f} s after Ready)")

        prometheus = f"http://{host_ip}:9090"

        def prometheus_get(path: str, **params: str) -> Any:
            status, body, _ = http("GET", f"{prometheus}{path}?{urllib.parse.urlencode(params)}", timeout=5)
            assert status == 200, body
            reply = json.loads(body) if isinstance(body, str) else body
            assert reply["status"] == "success", reply
            return reply["data"]

        def every_target_up() -> dict[str, str]:
            active = prometheus_get("/api/v1/targets", state="active")["activeTargets"]
            health = {t["labels"]["instance"]: t["health"] for t in active}
            assert set(health) <= set(SCRAPED.values()), f"unexpected targets: {health}"
            return health if health == {target: "up" for target in SCRAPED.values()} else {}

        mark = time.monotonic()
        health = wait_for(every_target_up, timeout=60, what="Prometheus reporting every target up")
        timings["prometheus: every target up"] = time.monotonic() - mark
        say(f"prometheus targets: {health}")

        def ready_clusters_in_prometheus() -> float:
            result = prometheus_get("/api/v1/query", query='kubefedcluster_total{state="ready"}')["result"]
            return float(result[0]["value"][1]) if result and float(result[0]["value"][1]) == 4 else 0

        wait_for(ready_clusters_in_prometheus, timeout=30, what='Prometheus: kubefedcluster_total{state="ready"} == 4')
        say('prometheus query kubefedcluster_total{state="ready"}: 4')

        wait_for(
            lambda: any(c == CLUSTERS[VICTIM][0] for _, c, _ in served_by(project.client_log())),
            timeout=30,
            what=f"the client served by {CLUSTERS[VICTIM][0]}",
        )
        before = len(project.client_log())

        killed_at = time.monotonic()
        project("kill", VICTIM)
        region_name = f"{SVC}.{CLUSTERS[VICTIM][1]}.{DOMAIN}"

        def cname_to_region() -> bool:
            return a_records(host_ip, zone_name[VICTIM]) == ([region_name], [addresses[SURVIVOR]])

        wait_for(cname_to_region, timeout=30, what=f"{zone_name[VICTIM]} to become a CNAME to {region_name}", interval=0.2)
        timings["kill -> zone name is a CNAME"] = time.monotonic() - killed_at

        def client_moved() -> bool:
            after = served_by(project.client_log()[before:])
            return any(c == CLUSTERS[SURVIVOR][0] and via_cname for _, c, via_cname in after)

        wait_for(client_moved, timeout=30, what=f"the client to be served by {CLUSTERS[SURVIVOR][0]} through the CNAME", interval=0.5)
        timings["kill -> client served by the other zone"] = time.monotonic() - killed_at

        def victim_offline() -> bool:
            offline = {
                c["metadata"]["name"]
                for c in api.get("/apis/federation/v1beta1/clusters")["items"]
                if any(cond["type"] == "Offline" and cond["status"] == "True" for cond in c.get("status", {}).get("conditions", []))
            }
            return offline == {CLUSTERS[VICTIM][0]}

        wait_for(victim_offline, timeout=30, what=f"{CLUSTERS[VICTIM][0]} (only) Offline in the federation API", interval=0.2)
        timings["kill -> cluster Offline"] = time.monotonic() - killed_at
        tail = [line for line in project.client_log()[before:] if "web.default" in line][-6:]
        say("client log after the kill:\n    " + "\n    ".join(tail))
    except BaseException:
        logs = project("logs", "--no-color", "--tail", "40", check=False, timeout=60)
        say("compose logs (last 40 lines per service):\n" + logs.stdout[-12000:])
        raise
    finally:
        mark = time.monotonic()
        project("down", "-v", "--remove-orphans", "--timeout", "5", check=False, timeout=120)
        run(["docker", "image", "rm", "-f", image, prometheus_image], check=False)
        # The build stage's image stays behind untagged (about 300 MB a run): prune those only.
        run(["docker", "image", "prune", "-f", "--filter", "label=io.ubernetes.stage=build"], check=False)
        timings["down and clean up"] = time.monotonic() - mark
        left = project.containers()
        volumes = run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={name}"], check=False).stdout.split()
        networks = run(["docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={name}"], check=False).stdout.split()
        timings["total"] = time.monotonic() - t0
        say("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        assert not left and not volumes and not networks, f"left behind: {left} {volumes} {networks}"
