"""bench/soak: a bounded soak of a whole federation on loopback (issue 8).

What runs (every process real, every socket on 127.0.0.0/8):

- the federation API server with its controllers and tokens on (a token file with an admin,
  a DNS reader and a bootstrap token), store in an SQLite file, data-plane checks off;
- the DNS responder, reading with the reader token;
- ``--clusters`` member clusters (50) renewing their leases every second, hosted
  ``--per-host`` (10) to a process by ``ubernetes cluster-host`` (``python -m clusters.host``,
  started by :mod:`federation_rig`, shared with ``bench/scale``): each cluster has its own
  API address, LB pool, control loop and agent, and joins with the bootstrap token;
- ``--services`` federated LoadBalancer services (1,000), each placed on two clusters;
- a DNS load generator (its own process) asking the services' global names at ``--qps``
  (3,000) queries per second over UDP, checking every answer against the addresses the
  federation reports for the service.

After setup (every cluster Ready, every service with two healthy shards and its answer in
DNS) the soak runs for ``--duration`` seconds (60). It then prints failed lease renewals,
clusters that stopped being Ready, wrong and unanswered DNS queries, p50/p99 lease-renewal
latency (measured by each agent around its renewal), p50/p99 DNS latency and the peak RSS
(VmHWM) of each kind of process. Everything it starts, it stops.

Usage: bench/soak [--duration 60] [--clusters 50] [--per-host 10] [--services 1000] [--qps 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from federation_rig import CLUSTERS, DOMAIN, SERVICES, Rig, is_ready, peak_rss_mib  # noqa: E402
from figures import pct  # noqa: E402

import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402

from federation.names import PLACEMENT_ANNOTATION  # noqa: E402
from federation.api.security import publish_bootstrap_token  # noqa: E402


def service(i: int, clusters: list[str]) -> dict:
    placed = [clusters[i % len(clusters)], clusters[(i + len(clusters) // 2) % len(clusters)]]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i:04d}", "labels": {"app": f"svc-{i:04d}"},
                         "annotations": {PLACEMENT_ANNOTATION: json.dumps({"clusters": placed})}},
            "spec": {"type": "LoadBalancer", "selector": {"app": f"svc-{i:04d}"},
                     "ports": [{"name": "http", "port": 8000 + i % 1000}]}}


def global_name(i: int) -> str:
    return f"svc-{i:04d}.default.myfed.svc.{DOMAIN}."


# ---------------------------------------------------------------------------- DNS load generator


def loadgen(port: int, expected_file: str, qps: int, duration: float, out: str) -> None:
    """Runs in its own process: UDP queries at ``qps`` for ``duration`` s; every answer checked."""
    expected: dict[str, list[str]] = json.loads(Path(expected_file).read_text())
    names = list(expected)
    wires = {n: dns.message.make_query(n, "A").to_wire() for n in names}
    verdicts: dict[bytes, bool] = {}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    pending: dict[int, tuple[float, str]] = {}
    latencies: list[float] = []
    wrong = lost = sent = 0
    wrong_examples: list[str] = []
    rng = random.Random(8)
    next_id = 0
    start = time.monotonic()
    end = start + duration
    tick = 0.005
    while True:
        now = time.monotonic()
        if now < end:
            due = int((now - start) * qps) - sent
            for _ in range(max(0, min(due, 2000))):
                name = names[rng.randrange(len(names))]
                next_id = (next_id + 1) & 0xFFFF
                if next_id in pending:  # a query unanswered for 65,536 sends: lost
                    pending.pop(next_id)
                    lost += 1
                wire = next_id.to_bytes(2, "big") + wires[name][2:]
                try:
                    sock.send(wire)
                except BlockingIOError:
                    continue
                pending[next_id] = (time.monotonic(), name)
                sent += 1
        elif not pending or now > end + 2.0:
            break
        deadline = time.monotonic() + tick
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            got = time.monotonic()
            qid = int.from_bytes(data[:2], "big")
            entry = pending.pop(qid, None)
            if entry is None:
                continue
            sent_at, name = entry
            latencies.append(got - sent_at)
            key = name.encode() + data[2:]
            ok = verdicts.get(key)
            if ok is None:
                msg = dns.message.from_wire(data)
                found = sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)
                ok = verdicts[key] = found == expected[name]
                if not ok and len(wrong_examples) < 5:
                    wrong_examples.append(f"{name}: got {found}, expected {expected[name]}")
            if not ok:
                wrong += 1
        # queries older than 1 s count as lost
        cutoff = time.monotonic() - 1.0
        for qid in [q for q, (t, _) in pending.items() if t < cutoff]:
            pending.pop(qid)
            lost += 1
    lost += len(pending)
    elapsed = min(time.monotonic(), end) - start
    Path(out).write_text(json.dumps({
        "sent": sent, "answered": len(latencies), "wrong": wrong, "lost": lost, "seconds": elapsed,
        "p50": pct(latencies, 0.50), "p99": pct(latencies, 0.99), "max": max(latencies or [0]),
        "wrong_examples": wrong_examples,
    }))


# ---------------------------------------------------------------------------- the soak


class Soak(Rig):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(work, prefix="soak")
        self.args = args
        self.may_exit.add("loadgen")

    def start(self) -> None:
        self.start_apiserver()
        self.start_dns()
        self.start_hosts(self.args.clusters, self.args.per_host)

    async def run(self) -> dict:
        args = self.args
        t0 = time.monotonic()
        self.start()
        api = self.admin_client()
        try:
            async def api_up():
                return await api.get("/healthz") == "ok"

            await self.wait("the API", api_up, 30)
            await publish_bootstrap_token(api, self.creds.bootstrap)  # the hosts retry until it is there

            async def clusters_ready():
                items = (await api.get(CLUSTERS))["items"]
                ready = [c for c in items if is_ready(c)]
                return True if len(ready) == args.clusters else f"{len(ready)}/{args.clusters} Ready"

            await self.wait(f"{args.clusters} clusters Ready", clusters_ready, 180)
            t_clusters = time.monotonic() - t0
            names = sorted(c["metadata"]["name"] for c in (await api.get(CLUSTERS))["items"])
            sem = asyncio.Semaphore(16)

            async def create(i: int) -> None:
                async with sem:
                    await api.post(SERVICES, service(i, names))

            await asyncio.gather(*(create(i) for i in range(args.services)))
            t_created = time.monotonic() - t0
            expected: dict[str, list[str]] = {}

            async def shards_healthy():
                items = (await api.get(SERVICES))["items"]
                ok = 0
                for svc in items:
                    ips = sorted(x["ip"] for x in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or [])
                    if len(ips) == 2:
                        expected[global_name(int(svc["metadata"]["name"][4:]))] = ips
                        ok += 1
                return True if ok == args.services else f"{ok}/{args.services} services with 2 healthy shards"

            await self.wait("every service to have two healthy shards", shards_healthy, 600, interval=2)
            t_shards = time.monotonic() - t0

            def dns_matches() -> str | bool:
                sample = random.Random(1).sample(sorted(expected), min(200, len(expected)))
                bad = 0
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(2)
                    for name in sample:
                        s.sendto(dns.message.make_query(name, "A").to_wire(), ("127.0.0.1", self.dns_port))
                        msg = dns.message.from_wire(s.recv(4096))
                        got = sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)
                        bad += got != expected[name]
                return True if bad == 0 else f"{bad} of {len(sample)} sampled names not answered as expected yet"

            async def dns_converged():
                return await asyncio.to_thread(dns_matches)

            await self.wait("DNS to answer every sampled name", dns_converged, 300, interval=2)
            t_dns = time.monotonic() - t0
            records = len((await api.get("/apis/federation/v1beta1/dnsrecords"))["items"])
            expected_file = self.work / "expected.json"
            expected_file.write_text(json.dumps(expected))

            # ---- the soak itself
            self.signal_hosts(signal.SIGUSR1)
            self.spawn("loadgen", [sys.executable, __file__, "--loadgen", str(self.dns_port), str(expected_file),
                                   str(args.qps), str(args.duration), str(self.work / "loadgen.json")])
            not_ready_seen: set[str] = set()
            soak_end = time.monotonic() + args.duration
            while time.monotonic() < soak_end:
                self.check_alive()
                try:
                    for c in (await api.get(CLUSTERS))["items"]:
                        if not is_ready(c):
                            not_ready_seen.add(c["metadata"]["name"])
                except Exception as err:  # noqa: BLE001
                    print(f"warning: cluster poll failed: {err}", file=sys.stderr)
                await asyncio.sleep(2)
            self.procs["loadgen"].wait(args.duration + 30)
            # the answers the federation reports now, to tell drift from wrong answers
            after: dict[str, list[str]] = {}
            for svc in (await api.get(SERVICES))["items"]:
                after[global_name(int(svc["metadata"]["name"][4:]))] = sorted(
                    x["ip"] for x in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or [])
            rss: dict[str, list[float]] = {}
            for name, proc in self.procs.items():
                if name == "loadgen":
                    continue
                kind = self.kind_of(name)
                value = peak_rss_mib(proc.pid)
                if value is not None:
                    rss.setdefault(kind, []).append(value)
        finally:
            await api.close()
            self.stop()
        renewals, failed = self.host_stats()
        load = json.loads((self.work / "loadgen.json").read_text())
        return {
            "setup": {"clusters_ready_s": t_clusters, "services_created_s": t_created,
                      "shards_healthy_s": t_shards, "dns_converged_s": t_dns, "dnsrecords": records},
            "renewals": len(renewals), "failed_renewals": failed,
            "renewal_p50_ms": pct(renewals, 0.5) * 1000, "renewal_p99_ms": pct(renewals, 0.99) * 1000,
            "renewal_max_ms": max(renewals or [0]) * 1000,
            "clusters_not_ready_during_soak": sorted(not_ready_seen),
            "dns": load, "expected_changed": sum(after.get(n) != v for n, v in expected.items()),
            "peak_rss_mib": rss,
        }


def report(args: argparse.Namespace, result: dict, load_before: tuple, load_after: tuple) -> str:
    dns_ = result["dns"]
    setup = result["setup"]
    rss = result["peak_rss_mib"]
    lines = [
        f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end",
        f"soak: {args.duration:.0f} s, {args.clusters} clusters ({args.per_host} per host process), "
        f"{args.services} services (2 clusters each), DNS target {args.qps} q/s",
        f"setup: clusters Ready {setup['clusters_ready_s']:.1f} s, services created {setup['services_created_s']:.1f} s, "
        f"shards healthy {setup['shards_healthy_s']:.1f} s, DNS converged {setup['dns_converged_s']:.1f} s "
        f"({setup['dnsrecords']} DNSRecords)",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| lease renewals | {result['renewals']} ({result['renewals'] / args.duration:.1f}/s) | {args.clusters}/s |",
        f"| failed lease renewals | {result['failed_renewals']} | 0 |",
        f"| clusters not Ready at any poll | {len(result['clusters_not_ready_during_soak'])} | 0 |",
        f"| lease renewal latency p50 / p99 / max | {result['renewal_p50_ms']:.1f} / {result['renewal_p99_ms']:.1f} / "
        f"{result['renewal_max_ms']:.1f} ms | |",
        f"| DNS queries sent / answered | {dns_['sent']} / {dns_['answered']} ({dns_['answered'] / dns_['seconds']:.0f}/s) | "
        f"{args.qps}/s |",
        f"| wrong DNS answers | {dns_['wrong']} | 0 |",
        f"| unanswered DNS queries (1 s) | {dns_['lost']} | 0 |",
        f"| DNS latency p50 / p99 / max | {dns_['p50'] * 1000:.2f} / {dns_['p99'] * 1000:.2f} / {dns_['max'] * 1000:.1f} ms | |",
    ]
    for kind in ("apiserver", "dns", "member host"):
        if kind in rss:
            values = rss[kind]
            shown = f"{max(values):.0f} MiB" if len(values) == 1 else \
                f"max {max(values):.0f} MiB, mean {statistics.mean(values):.0f} MiB over {len(values)} processes"
            lines.append(f"| peak RSS, {kind} | {shown} | |")
    if dns_.get("wrong_examples"):
        lines.append("")
        lines += ["wrong answers, first ones:"] + [f"  {w}" for w in dns_["wrong_examples"]]
    if result["expected_changed"]:
        lines.append(f"note: {result['expected_changed']} services' addresses changed during the soak")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        port, expected, qps, duration, out = sys.argv[2:7]
        loadgen(int(port), expected, int(qps), float(duration), out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of soak (after setup)")
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=10, help="simulated clusters per member process")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--qps", type=int, default=3000, help="DNS queries per second")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = parser.parse_args()
    if not (1 <= args.duration <= 3600 and 2 <= args.clusters <= 200 and 1 <= args.services <= 5000
            and 1 <= args.qps <= 50000):
        parser.error("out of bounds: 1-3600 s, 2-200 clusters, 1-5000 services, 1-50000 q/s")
    work = Path(tempfile.mkdtemp(prefix="ubernetes-soak-"))
    load_before = os.getloadavg()
    try:
        result = asyncio.run(Soak(args, work).run())
    except (TimeoutError, RuntimeError) as err:
        print(f"soak failed: {err}\n(logs in {work})", file=sys.stderr)
        return 1
    print(report(args, result, load_before, os.getloadavg()))
    if args.keep:
        print(f"logs: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    ok = result["failed_renewals"] == 0 and result["dns"]["wrong"] == 0
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
