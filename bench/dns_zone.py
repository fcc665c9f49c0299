"""bench/dns_zone: what one DNS record change costs the responder as the zone grows (issue 20).

For each zone size (default 1,000, 20,000 and 100,000 record sets): DNSRecord objects
shaped like the federation's (per service a global A with two shards, a region CNAME to
it, a zone CNAME to that, and an SRV record) are written into a fresh SQLite store through
the federation's own registry (the same code the API server's handlers call), then a real
``ubernetes federation-apiserver`` (no controllers) serves them and a real responder
process (``python -m fedns``) lists and watches them. Once the responder serves them all:

- RSS of the responder (and per 1,000 record sets);
- ``--writes`` writes (default 100) at ``--rate`` writes a second (default 10): each a
  merge-patch of one service's global A record set to new targets through the API
  server's HTTP API, while a dnspython loop polls that name over UDP on loopback every
  2 ms until the answer shows the new targets: change-to-answer p50/p99 (from the moment
  the PATCH is sent), and the API's own write time;
- the responder's CPU per change: its CPU seconds during the writes, less its idle rate
  measured just before, divided by the writes (the polling queries are included; they
  cost microseconds each).

Prints a table, the ratios (CPU per change and p99 of the largest zone against the
smallest, measured in the same run) with the machine's load, and as its last line one JSON
object. Every loop is bounded (load and write timeouts); every socket is on 127.0.0.1.
``--code DIR`` runs the API server and the responder from another checkout (a ``git
archive`` of an older commit, say) to measure the code before a change the same way.

Usage: bench/dns_zone [--sizes 1000,20000,100000] [--writes 100] [--rate 10] [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from federation_rig import ROOT, cpu_seconds, free_port, proc_status_mib  # noqa: E402
from figures import pct  # noqa: E402

import aiohttp  # noqa: E402
import dns.asyncquery  # noqa: E402
import dns.exception  # noqa: E402
import dns.message  # noqa: E402

DOMAIN = "example.com."
DNSRECORDS = "/apis/federation/v1beta1/dnsrecords"
PER_SERVICE = 4  # record sets


def service_records(i: int) -> list[dict]:
    """The DNSRecord objects of service ``i``: global A, region and zone CNAMEs, SRV."""
    g = f"svc{i}.default.myfed.svc.{DOMAIN}"
    r = f"svc{i}.default.myfed.svc.r{i % 5}.{DOMAIN}"
    z = f"svc{i}.default.myfed.svc.r{i % 5}z{i % 3}.r{i % 5}.{DOMAIN}"
    specs = [
        ("a", {"name": g, "type": "A", "ttl": 5, "targets": [f"127.{10 + k}.{i // 250 % 250}.{i % 250 + 1}" for k in range(2)]}),
        ("r", {"name": r, "type": "CNAME", "ttl": 5, "targets": [g]}),
        ("z", {"name": z, "type": "CNAME", "ttl": 5, "targets": [r]}),
        ("s", {"name": f"_http._tcp.{g}", "type": "SRV", "ttl": 5, "targets": [f"0 100 80 {g}"]}),
    ]
    return [{"apiVersion": "federation/v1beta1", "kind": "DNSRecord", "metadata": {"name": f"{kind}.svc{i}"}, "spec": spec}
            for kind, spec in specs]


def preload(store_path: Path, record_sets: int) -> float:
    """Write the objects through the registry into a new store; seconds taken."""
    from federation.api.registry import Registry, WatchHub
    from federation.resources import DNSRECORDS as KIND
    from federation.storage.store import SQLiteStore

    started = time.monotonic()
    store = SQLiteStore(str(store_path))
    registry = Registry(store, WatchHub())
    try:
        for i in range(record_sets // PER_SERVICE):
            for obj in service_records(i):
                registry.create(KIND, "", obj)
    finally:
        store.close()
    return time.monotonic() - started


class Processes:
    def __init__(self, work: Path, code: Path) -> None:
        self.work, self.code = work, code
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=f"{self.code / 'dns'}:{self.code}")
        proc = subprocess.Popen([sys.executable, *argv], stdout=(self.work / f"{name}.log").open("wb"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.code, env=env)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_for(what: str, check, timeout: float, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs.procs:
            if p.poll() is not None:
                raise RuntimeError(f"a process exited ({p.args[1:4]}) while waiting for {what}")
        try:
            last = await check()
            if last is True:
                return
        except Exception as err:  # noqa: BLE001 - keep waiting; say what the last failure was
            last = err
        await asyncio.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


async def answer_has(name: str, targets: set[str], port: int) -> bool:
    reply = await dns.asyncquery.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1)
    got = {str(r) for rs in reply.answer for r in rs if rs.rdtype == 1}
    return got == targets


async def one_size(record_sets: int, args: argparse.Namespace, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    loaded = preload(work / "federation.db", record_sets)
    procs = Processes(work, Path(args.code).resolve())
    api_port, dns_port, status_port = free_port(), free_port(udp_too=True), free_port()
    base = f"http://127.0.0.1:{api_port}"
    result: dict = {"record_sets": record_sets, "preload_s": round(loaded, 1)}
    try:
        procs.spawn("apiserver", ["-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{api_port}",
                                  "--store", str(work / "federation.db"), "--no-controllers"])
        async with aiohttp.ClientSession() as http:
            async def api_up() -> bool:
                async with http.get(base + "/healthz") as r:
                    return r.status == 200

            await wait_for("the API server", api_up, 60, procs)
            started = time.monotonic()
            dnsproc = procs.spawn("dns", ["-m", "fedns", "--federation", base, "--listen", f"127.0.0.1:{dns_port}",
                                          "--status-listen", f"127.0.0.1:{status_port}", "--log-level", "warning"])

            async def all_served() -> bool | str:
                async with http.get(f"http://127.0.0.1:{status_port}/status") as r:
                    doc = await r.json()
                if doc.get("records") != record_sets:
                    return f"{doc.get('records')} record sets served"
                last = record_sets // PER_SERVICE - 1
                return await answer_has(f"svc{last}.default.myfed.svc.{DOMAIN}",
                                        {f"127.{10 + k}.{last // 250 % 250}.{last % 250 + 1}" for k in range(2)}, dns_port)

            await wait_for(f"{record_sets} record sets in the answers", all_served, args.load_timeout, procs)
            result["load_s"] = round(time.monotonic() - started, 1)
            await asyncio.sleep(1.0)
            result["rss_mib"] = round(proc_status_mib(dnsproc.pid, "VmRSS") or 0, 1)
            result["peak_rss_mib"] = round(proc_status_mib(dnsproc.pid, "VmHWM") or 0, 1)
            idle_from, idle_cpu = time.monotonic(), cpu_seconds(dnsproc.pid)
            await asyncio.sleep(2.0)
            idle_rate = (cpu_seconds(dnsproc.pid) - idle_cpu) / (time.monotonic() - idle_from)

            latencies: list[float] = []
            api_ms: list[float] = []
            polls = 0

            async def write(k: int) -> None:
                nonlocal polls
                i = (k * 7919) % (record_sets // PER_SERVICE)  # spread over the zone
                name = f"svc{i}.default.myfed.svc.{DOMAIN}"
                targets = {f"127.99.{k // 250}.{k % 250 + 1}", f"127.98.{k // 250}.{k % 250 + 1}"}
                sent = time.monotonic()
                async with http.patch(f"{base}{DNSRECORDS}/a.svc{i}", data=json.dumps({"spec": {"targets": sorted(targets)}}),
                                      headers={"Content-Type": "application/merge-patch+json"}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"PATCH a.svc{i}: {r.status} {await r.text()}")
                api_ms.append((time.monotonic() - sent) * 1000)
                while time.monotonic() - sent < args.write_timeout:
                    polls += 1
                    try:
                        if await answer_has(name, targets, dns_port):
                            latencies.append((time.monotonic() - sent) * 1000)
                            return
                    except dns.exception.DNSException:  # a timeout, or a late reply to an earlier poll
                        pass
                    await asyncio.sleep(0.002)
                latencies.append(float("inf"))

            cpu_from, t_from = cpu_seconds(dnsproc.pid), time.monotonic()
            tasks = []
            for k in range(args.writes):
                await asyncio.sleep(max(0.0, t_from + k / args.rate - time.monotonic()))
                tasks.append(asyncio.create_task(write(k)))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t_from
            cpu = cpu_seconds(dnsproc.pid) - cpu_from - idle_rate * elapsed
            async with http.get(f"http://127.0.0.1:{status_port}/status") as r:
                doc = await r.json()
        seen = [v for v in latencies if v != float("inf")]
        result.update(
            p50_ms=round(pct(latencies, 0.50), 1), p99_ms=round(pct(latencies, 0.99), 1),
            max_ms=round(max(latencies), 1), never_seen=len(latencies) - len(seen),
            api_p50_ms=round(pct(api_ms, 0.5), 1), cpu_ms_per_change=round(cpu / args.writes * 1000, 2),
            idle_cpu_pct=round(idle_rate * 100, 1), polls=polls, writes=args.writes,
            rss_per_1000_mib=round(result["rss_mib"] / record_sets * 1000, 2), serial=doc.get("serial"),
            zone_changes=doc.get("zoneChanges"), cname_shadows=doc.get("cnameShadows"),
        )
    finally:
        procs.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,20000,100000", help="record sets in the zone, comma-separated")
    ap.add_argument("--writes", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0, help="writes a second")
    ap.add_argument("--load-timeout", type=float, default=1200.0, help="seconds for the responder to serve the zone")
    ap.add_argument("--write-timeout", type=float, default=60.0, help="seconds one write may take to show")
    ap.add_argument("--code", default=str(ROOT), help="checkout to run the API server and the responder from")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}; code: {args.code}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="dns-zone-bench-"))
    results = []
    try:
        for n in sizes:
            r = asyncio.run(one_size(n, args, work / str(n)))
            print(f"  {n:>7} record sets: {json.dumps(r)}", flush=True)
            results.append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\n{'record sets':>11} {'load s':>7} {'RSS MiB':>8} {'MiB/1000':>8} {'p50 ms':>7} {'p99 ms':>8} "
          f"{'max ms':>8} {'unseen':>6} {'API ms':>6} {'CPU ms/change':>13}")
    for r in results:
        print(f"{r['record_sets']:>11} {r['load_s']:>7} {r['rss_mib']:>8} {r['rss_per_1000_mib']:>8} {r['p50_ms']:>7} "
              f"{r['p99_ms']:>8} {r['max_ms']:>8} {r['never_seen']:>6} {r['api_p50_ms']:>6} {r['cpu_ms_per_change']:>13}")
    small, large = results[0], results[-1]
    cpu_ratio = large["cpu_ms_per_change"] / max(small["cpu_ms_per_change"], 1e-6)
    slope = ((large["rss_mib"] - small["rss_mib"]) / (large["record_sets"] - small["record_sets"]) * 1000
             if len(results) > 1 else None)
    worst_p99 = max(r["p99_ms"] for r in results)
    print(f"CPU per change, largest zone / smallest: {cpu_ratio:.2f} (target <= 2); worst p99 {worst_p99} ms "
          f"(target < 100); RSS slope {slope if slope is None else round(slope, 2)} MiB per 1,000 record sets")
    print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(json.dumps({"bench": "dns_zone", "code": args.code, "cores": os.cpu_count(),
                      "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2),
                      "cpu_ratio": round(cpu_ratio, 2), "worst_p99_ms": worst_p99,
                      "rss_slope_mib_per_1000": slope if slope is None else round(slope, 2), "sizes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
