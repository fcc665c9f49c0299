"""``ubernetes up --netns`` as a user runs it (issue 16): real namespaces, real packets, Unbound.

Starts the launcher as its own process (as root), reads where everything is from what it
prints, and checks, through the CLI and from inside the namespaces:

- every process runs in a namespace of its own, and a client namespace resolves the
  federated name with glibc's ``getaddrinfo`` through its Unbound;
- ``ubernetes chaos partition`` really drops packets between the member and the federation
  API (a connect times out: dropped, not refused), the federation marks the member Offline,
  and the member's LB still answers a client; heal undoes it;
- ``ubernetes chaos slow-dns`` delays the responder's answers by the amount asked;
- a member crash leaves the answers a client gets through Unbound within the record TTL
  plus 2 s (the cache filled just before the kill, the slowest case for a resolver);
- SIGTERM tears every namespace down; after a SIGKILL of the launcher the next
  ``up --netns`` deletes what it left, by name.

Skipped where network namespaces cannot be made (not root, no ``ip``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from federation.launch import netns as nx
from federation.launch.netnsrun import UNBOUND

WHY = nx.unavailable_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"network namespaces cannot be made here: {WHY}"),
              pytest.mark.timeout(300)]

GLOBAL = "web.default.myfed.svc.example.com"
TTL = 5  # the API server's --dns-ttl default

CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
    print(s.recv(4000).decode(errors="replace").split("\\r\\n\\r\\n", 1)[-1] or "connected")
except OSError as e:
    print("failed", type(e).__name__)
"""

# glibc's getaddrinfo (through /etc/netns/NS/resolv.conf, that is through Unbound) and our
# responder asked directly, every 50 ms, until neither holds the dead address
UNTIL_CLEAN = """
import json, socket, sys, time
import dns.message, dns.query
name, dead, responder, port, t0, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), 30
ours = glibc = None
while time.time() - t0 < limit and (ours is None or glibc is None):
    if glibc is None:
        try:
            got = {a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)}
        except socket.gaierror:
            got = set()
        if got and dead not in got:
            glibc = time.time() - t0
    if ours is None:
        try:
            reply = dns.query.udp(dns.message.make_query(name + ".", "A"), responder, port=port, timeout=0.5)
            got = {r.to_text() for rr in reply.answer for r in rr}
            if got and dead not in got:
                ours = time.time() - t0
        except Exception:
            pass
    time.sleep(0.05)
print(json.dumps({"ours": ours, "glibc": glibc}))
"""


class Up:
    """One ``ubernetes up --netns`` process and what its summary says."""

    def __init__(self, work: Path, control_port: int, *, api_port: int = 8080) -> None:
        self.control_port = control_port
        self.err = open(work / f"up-{control_port}.err", "w+")
        self.out_path = work / f"up-{control_port}.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "federation", "up", "--netns", "--kubeconfig", "", "--api-port", str(api_port),
             "--control-listen", f"127.0.0.1:{control_port}", "--no-color"],
            stdout=open(self.out_path, "w"), stderr=self.err, stdin=subprocess.DEVNULL)
        self.run = f"ubn{self.proc.pid}"
        self.text = ""

    def wait_up(self, timeout: float = 120) -> "Up":
        deadline = time.monotonic() + timeout
        while "Ctrl-C stops everything." not in self.text:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.err.seek(0)
                raise AssertionError(f"up --netns did not come up (exit {self.proc.poll()}):\n{self.text}\n"
                                     f"{self.err.read()[-4000:]}")
            time.sleep(0.2)
            self.text = self.out_path.read_text()
        self.server = re.search(r"federation API\s+(\S+)", self.text).group(1)
        self.kubeconfig = re.search(r"kubeconfig\s+(\S+)", self.text).group(1)
        self.dns = re.search(r"DNS responder\s+(\S+):(\d+)", self.text).groups()
        self.workdir = Path(self.kubeconfig).parent
        return self

    def namespaces(self) -> list[str]:
        return [n for n in nx.namespaces() if n.startswith(self.run + "-")]

    def env(self) -> dict[str, str]:
        return dict(os.environ, KUBECONFIG=self.kubeconfig, UBERNETES_SERVER=self.server,
                    UBERNETES_LAUNCHER=f"127.0.0.1:{self.control_port}")

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "federation", *args], env=self.env(), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"ubernetes {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def post(self, action: str, body: dict, *, base: str | None = None) -> dict:
        """The launcher's fault API, straight (no CLI start-up time between the clock and the fault)."""
        token = (self.workdir / "tokens.csv").read_text().split(",", 1)[0]
        context = ssl.create_default_context(cafile=str(self.workdir / "pki" / "ca.crt"))
        request = urllib.request.Request(f"{base or f'https://127.0.0.1:{self.control_port}/faults'}/{action}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=30) as resp:
            return json.load(resp)

    def in_ns(self, role: str, script: str, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(["ip", "netns", "exec", f"{self.run}-{role}", sys.executable, "-c", script, *args],
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def clusters(self) -> dict[str, str]:
        """{name: OFFLINE column} from ``ubernetes get clusters``."""
        rows = self.cli("get", "clusters").splitlines()[1:]
        return {r.split()[0]: r.split()[2] for r in rows if r.strip()}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            self.err.close()


def wait(predicate, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def addresses(up: Up) -> set[str]:
    out = subprocess.run(["ip", "netns", "exec", f"{up.run}-c0", "getent", "ahostsv4", GLOBAL],
                         capture_output=True, text=True, timeout=20).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def first_lb(up: Up, cluster: str) -> str:
    """The first address of ``cluster``'s LB pool (as the summary prints it): its ``web`` LB."""
    pool = re.search(rf"cluster {cluster}\s.*LB pool (\S+)", up.text).group(1)
    return str(next(ipaddress.ip_network(pool).hosts()))


@pytest.fixture(scope="class")
def up(tmp_path_factory) -> Iterator[Up]:
    u = Up(tmp_path_factory.mktemp("netns-up"), 18179)
    try:
        u.wait_up()
        wait(lambda: len(addresses(u)) == 3, 30, "three LB addresses through Unbound in the client namespace")
        yield u
    finally:
        code = u.stop()
    assert code == 0, f"up --netns exited {code} on SIGTERM"
    assert not u.namespaces(), f"namespaces left behind: {u.namespaces()}"
    assert not Path(f"/etc/netns/{u.run}-c0").exists()


@pytest.mark.skipif(UNBOUND is None, reason="unbound is not installed (apt-get install unbound)")
class TestUpNetns:
    def test_every_process_in_its_own_namespace_and_clients_resolve_through_unbound(self, up: Up) -> None:
        expected = {f"{up.run}-{r}" for r in ("api", "dns", "m0", "m1", "m2", "c0", "launch")}
        assert set(up.namespaces()) == expected
        api_pids = subprocess.run(["ip", "netns", "pids", f"{up.run}-api"], capture_output=True, text=True).stdout.split()
        assert api_pids and "federation-apiserver" in Path(f"/proc/{api_pids[0]}/cmdline").read_text()
        assert all(a.startswith("198.19.") for a in addresses(up))
        assert Path(f"/etc/netns/{up.run}-c0/resolv.conf").read_text().startswith("nameserver 127.0.0.1")
        answer = up.in_ns("c0", CONNECT, GLOBAL, "8000", "3")
        assert '"federation": "myfed"' in answer, answer

    def test_partition_drops_packets_to_the_federation_while_the_lbs_answer(self, up: Up) -> None:
        member = re.search(r"-m0\s+(\S+)", up.text).group(1)  # aws-us-east-1a's link address
        lb = first_lb(up, "aws-us-east-1a")
        assert up.in_ns("api", CONNECT, member, "9101", "2") != "failed TimeoutError"  # reachable before
        out = json.loads(up.cli("chaos", "partition", "aws-us-east-1a"))
        try:
            assert out["mode"] == "netns" and "partition-aws-us-east-1a" in out["packetFaults"]["faults"]
            assert up.in_ns("api", CONNECT, member, "9101", "2") == "failed TimeoutError"  # dropped, not refused
            api = up.server.split("//")[1].split(":")[0]
            assert up.in_ns("m0", CONNECT, api, up.server.rsplit(":", 1)[1], "2") == "failed TimeoutError"
            answer = up.in_ns("c0", CONNECT, lb, "8000", "3")
            assert '"cluster": "aws-us-east-1a"' in answer, answer  # its data plane still answers clients
            wait(lambda: up.clusters().get("aws-us-east-1a") == "True", 60, "the federation to mark it Offline")
        finally:
            up.cli("chaos", "heal", "aws-us-east-1a")
        assert up.in_ns("api", CONNECT, member, "9101", "3") != "failed TimeoutError"
        wait(lambda: up.clusters().get("aws-us-east-1a") == "False", 60, "it to come back online")

    def test_the_dashboards_fault_buttons_reach_the_launcher_from_the_api_namespace(self, up: Up) -> None:
        state = up.post("blackhole", {"cluster": "aws-us-east-1b"}, base=f"{up.server}/ui/api/faults")
        try:
            assert "blackhole-aws-us-east-1b" in state["packetFaults"]["faults"], state
            assert up.in_ns("c0", CONNECT, first_lb(up, "aws-us-east-1b"), "8000", "1") == "failed TimeoutError"
        finally:
            up.cli("chaos", "heal", "aws-us-east-1b")

    def test_link_down_cuts_a_region_off_and_flap_toggles_a_link(self, up: Up) -> None:
        lb = first_lb(up, "gcp-europe-west1-b")
        up.cli("chaos", "link-down", "--region", "europe-west1")
        try:
            assert up.in_ns("c0", CONNECT, lb, "8000", "1").startswith("failed")
        finally:
            up.cli("chaos", "heal", "gcp-europe-west1-b")
        wait(lambda: "gcp-europe-west1-b" in up.in_ns("c0", CONNECT, lb, "8000", "1"), 10, "the link back up")
        up.cli("chaos", "flap", "gcp-europe-west1-b", "--period", "1")
        try:
            seen = [up.in_ns("c0", CONNECT, lb, "8000", "0.3").startswith("failed") for _ in range(12)]
        finally:
            healed = json.loads(up.cli("chaos", "heal"))
        assert any(seen) and not all(seen), f"a 1 s flap should cut some connects and not others: {seen}"
        assert healed["packetFaults"]["faults"] == {}
        wait(lambda: "gcp-europe-west1-b" in up.in_ns("c0", CONNECT, lb, "8000", "1"), 10, "the link up after heal")

    def test_slow_dns_delays_the_responders_answers(self, up: Up) -> None:
        host, port = up.dns
        ask = ("import time, dns.message, dns.query, sys\n"
               "took = []\n"
               "for _ in range(5):\n"
               "    t = time.monotonic()\n"
               f"    dns.query.udp(dns.message.make_query('{GLOBAL}.', 'A'), '{host}', port={port}, timeout=3)\n"
               "    took.append((time.monotonic() - t) * 1000)\n"
               "print(sorted(took)[2])")
        before = float(up.in_ns("c0", ask))
        up.cli("chaos", "slow-dns", "300ms")
        try:
            slow = float(up.in_ns("c0", ask))
        finally:
            up.cli("chaos", "heal")
        after = float(up.in_ns("c0", ask))
        print(f"DNS query median: {before:.1f} ms, with slow-dns 300ms {slow:.1f} ms, healed {after:.1f} ms")
        assert 300 <= slow <= 400 and before < 100 and after < 100

    def test_a_crashed_member_leaves_unbounds_answers_within_ttl_plus_2s(self, up: Up) -> None:
        wait(lambda: len(addresses(up)) == 3, 60, "all three LB addresses back")
        dead = first_lb(up, "aws-us-east-1b")
        assert dead in addresses(up)  # Unbound's cache filled just now: the full TTL still to run
        host, port = up.dns
        t0 = time.time()
        up.post("crash", {"clusters": ["aws-us-east-1b"]})
        took = json.loads(up.in_ns("c0", UNTIL_CLEAN, GLOBAL, dead, host, port, str(t0)))
        try:
            print(f"crash of aws-us-east-1b: our answers clean at +{took['ours']:.2f} s, "
                  f"Unbound's (glibc getaddrinfo) at +{took['glibc']:.2f} s (TTL {TTL} s)")
            assert took["ours"] is not None and took["glibc"] is not None, took
            assert took["glibc"] <= TTL + 2, took
        finally:
            up.post("start", {"clusters": ["aws-us-east-1b"]})


def test_a_sigkilled_launcher_leaves_namespaces_the_next_up_cleans(tmp_path: Path) -> None:
    first = Up(tmp_path, 18181).wait_up()
    assert first.namespaces()
    first.stop(signal.SIGKILL)
    left = first.namespaces()
    assert f"{first.run}-api" in left and f"{first.run}-launch" in left  # nothing could clean them
    # its children died with it (PR_SET_PDEATHSIG), inside every namespace
    wait(lambda: not any(subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True).stdout.strip()
                         for n in left), 15, "the killed launcher's children to die")
    second = Up(tmp_path, 18182)
    try:
        second.wait_up()
        assert not first.namespaces(), f"the next up left {first.namespaces()}"
        second.err.seek(0)
        assert f"cleaned up namespaces a killed launcher left: {first.run}-" in second.err.read()
        assert f"{first.run}h" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    finally:
        assert second.stop() == 0
    assert not second.namespaces()
