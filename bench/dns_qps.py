"""bench/dns_qps: our responder against Knot DNS, with dnsperf, on this machine.

Installs dnsperf and knot with apt-get when missing (apt-get update first). Starts
``ubernetes dns --workers N`` (fresh processes; N defaults to the usable cores) with a
1,000-name zone from a records file, Knot as its secondary with N UDP and N TCP workers (the
zone taken from us by AXFR), and the per-query dnspython responder
(bench/dns_pyref.py). Then, interleaved and with the same query mix (A, CNAME chains,
SRV, NXDOMAIN, mixed case), runs dnsperf for a bounded time per run: UDP without and
with EDNS, pipelined TCP with EDNS. Prints QPS, average latency, server CPU per query
(from /proc/PID/stat, our supervisor and workers summed), the ratios, p99 latency at half of
each server's peak UDP rate, how soon a record written to a real federation API server shows
in every worker's answers, and RSS per worker at 1,000 and 20,000 record sets. The machine's
load is printed before and after: other work on the machine shows in every figure.

Usage: bench/dns_qps [--seconds 10] [--rounds 1] [--workers N] [--udp-io auto] [--memory-sizes 1000,20000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "dns")]

import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import yaml  # noqa: E402

from apimachinery import eventloop  # noqa: E402
from fedns.secondary import KnotSecondary, free_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
DOMAIN = "example.com."


def ensure_packages() -> None:
    missing = [p for p, b in (("dnsperf", "dnsperf"), ("knot", "knotd")) if not shutil.which(b) and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def zone_records() -> list[dict]:
    """1,000 names: 600 A (3 shards each), 150 CNAME, 100 two-step CNAME chains, 150 SRV."""
    recs = []
    for i in range(600):
        recs.append({"name": f"svc{i}.default.myfed.svc.{DOMAIN}", "type": "A", "ttl": 30,
                     "targets": [f"127.{10 + k}.{i // 250}.{i % 250 + 1}" for k in range(3)]})
    for i in range(150):
        recs.append({"name": f"c{i}.{DOMAIN}", "type": "CNAME", "ttl": 30, "targets": [f"svc{i}.default.myfed.svc.{DOMAIN}"]})
    for i in range(100):
        recs.append({"name": f"d{i}.{DOMAIN}", "type": "CNAME", "ttl": 30, "targets": [f"c{i}.{DOMAIN}"]})
    for i in range(150):
        recs.append({"name": f"_http._tcp.svc{i}.default.myfed.svc.{DOMAIN}", "type": "SRV", "ttl": 30,
                     "targets": [f"0 100 80 svc{i}.default.myfed.svc.{DOMAIN}"]})
    return recs


def query_lines(n: int = 20000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.random()
        if k < 0.45:
            line = f"svc{rng.randrange(600)}.default.myfed.svc.{DOMAIN} A"
        elif k < 0.55:
            line = f"c{rng.randrange(150)}.{DOMAIN} A"
        elif k < 0.62:
            line = f"d{rng.randrange(100)}.{DOMAIN} A"
        elif k < 0.77:
            line = f"_http._tcp.svc{rng.randrange(150)}.default.myfed.svc.{DOMAIN} SRV"
        elif k < 0.87:
            line = f"missing{rng.randrange(10**6)}.{DOMAIN} A"
        else:  # mixed case ("0x20")
            name = f"svc{rng.randrange(600)}.default.myfed.svc.{DOMAIN}"
            line = "".join(c.upper() if rng.random() < 0.5 else c for c in name) + " A"
        out.append(line)
    return out


def tree(pid: int) -> list[int]:
    """A process and its descendants (our supervisor and its workers; knotd has threads only)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its descendants alive now."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def cores() -> int:
    return len(os.sched_getaffinity(0))


def nsid_query(name: str) -> dns.message.Message:
    return dns.message.make_query(name, "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])


def answering_worker(reply: dns.message.Message) -> str:
    return next((o.to_wire().decode() for o in reply.options if o.otype == dns.edns.NSID), "?")


def dnsperf(port: int, qfile: str, *, mode: str, edns: bool, seconds: float, rate: int | None = None,
            verbose: bool = False) -> dict:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(seconds), "-m", mode,
           "-c", "8" if mode == "tcp" else "16", "-T", "1", "-q", "200" if mode == "tcp" else "100", "-t", "2"]
    if edns:
        cmd.append("-e")
    if rate:
        cmd += ["-Q", str(rate)]
    if verbose:
        cmd.append("-v")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout

    def num(label: str) -> float:
        m = re.search(label + r":\s+([\d.]+)", out)
        return float(m.group(1)) if m else 0.0

    res = {"qps": num("Queries per second"), "completed": num("Queries completed"), "lost": num("Queries lost"),
           "avg_ms": num(r"Average Latency \(s\)") * 1000}
    if verbose:
        lat = sorted(float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("> "))
        res["p99_ms"] = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
        res["p50_ms"] = lat[len(lat) // 2] * 1000 if lat else float("nan")
    return res


def start(cmd: list[str], log: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            dns.query.udp(dns.message.make_query(DOMAIN, "SOA"), "127.0.0.1", port=port, timeout=0.3)
            return proc
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def change_latency(work: Path, workers: int, samples: int = 20) -> list[float]:
    """ms from the API write (the POST returning) to the record in the UDP answers of every
    worker (each tells who it is by NSID; fresh source ports reach them all)."""
    import json
    import urllib.request

    api_port, dns_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{api_port}",
                            "--store", ":memory:"], stdout=open(work / "api.log", "w"), stderr=subprocess.STDOUT,
                           cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except Exception:
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start: " + (work / "api.log").read_text()[-2000:])
            time.sleep(0.1)
    ours = start([sys.executable, "-m", "fedns", "--federation", base, "--listen", f"127.0.0.1:{dns_port}",
                  "--workers", str(workers), "--log-level", "warning"], work / "sync.log", dns_port)
    out = []
    try:
        time.sleep(0.5)  # the watch is open
        for i in range(samples):
            name = f"fresh{i}.{DOMAIN}"
            body = json.dumps({"apiVersion": "federation/v1beta1", "kind": "DNSRecord",
                               "metadata": {"name": f"a.fresh{i}.bench"},
                               "spec": {"name": name, "type": "A", "ttl": 5, "targets": ["127.0.0.9"]}}).encode()
            req = urllib.request.Request(base + "/apis/federation/v1beta1/dnsrecords", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(req, timeout=5).read()
            written = time.monotonic()
            answered: set[str] = set()
            while True:
                reply = dns.query.udp(nsid_query(name), "127.0.0.1", port=dns_port, timeout=1)
                if reply.answer:
                    answered.add(answering_worker(reply))
                    if len(answered) >= workers:
                        out.append((time.monotonic() - written) * 1000)
                        break
                if time.monotonic() - written > 5:
                    out.append(float("inf"))
                    break
                time.sleep(0.0005)
            time.sleep(0.05)
    finally:
        stop(ours)
        stop(api)
    return out


def rss_per_worker(work: Path, count: int, workers: int) -> dict:
    """RSS of each worker and of the supervisor serving ``count`` record sets, beside one
    single process (--workers 1) serving the same file."""
    recs = [{"name": f"m{i}.default.myfed.svc.{DOMAIN}", "type": "A", "ttl": 30,
             "targets": [f"127.{10 + k}.{i // 250 % 250}.{i % 250 + 1}" for k in range(2)]} for i in range(count)]
    path = work / f"memory-{count}.yaml"
    path.write_text(yaml.safe_dump(recs))
    last = f"m{count - 1}.default.myfed.svc.{DOMAIN}"
    out: dict = {"records": count}
    for n in (workers, 1):
        port = free_port()
        proc = start([sys.executable, "-m", "fedns", "--federation", "", "--listen", f"127.0.0.1:{port}",
                      "--records", str(path), "--workers", str(n), "--log-level", "warning"], work / "memory.log", port)
        try:
            deadline = time.monotonic() + 60
            while not dns.query.udp(dns.message.make_query(last, "A"), "127.0.0.1", port=port, timeout=2).answer:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{count} record sets not served after 60 s")
                time.sleep(0.1)
            for _ in range(2000):  # answer some queries, as a served zone does
                dns.query.udp(dns.message.make_query(f"m{random.randrange(count)}.default.myfed.svc.{DOMAIN}", "A"),
                              "127.0.0.1", port=port, timeout=2)
            kids = [p for p in tree(proc.pid) if p != proc.pid]
            if n == 1:
                out["single"] = rss_mib(proc.pid)
            else:
                out["workers"] = [rss_mib(p) for p in kids]
                out["supervisor"] = rss_mib(proc.pid)
        finally:
            stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each dnsperf run")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every run")
    ap.add_argument("--workers", type=int, default=cores(),
                    help="our workers and Knot's UDP and TCP workers (default: the cores this process may use)")
    ap.add_argument("--udp-io", default="auto", choices=("auto", "batched", "loop"),
                    help="our responder's UDP path (ubernetes dns --udp-io)")
    ap.add_argument("--memory-sizes", default="1000,20000",
                    help="record-set counts at which RSS per worker is measured ('' skips it)")
    args = ap.parse_args()
    ensure_packages()
    work = Path(tempfile.mkdtemp(prefix="fedns-bench-"))
    (work / "records.yaml").write_text(yaml.safe_dump(zone_records()))
    qfile = work / "queries.txt"
    qfile.write_text("\n".join(query_lines()) + "\n")
    load = os.getloadavg()
    loop = "uvloop" if eventloop.loop_factory() else "asyncio"  # what the responder's process picks
    print(f"machine: {os.cpu_count()} cores ({cores()} usable), load average before {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; our event loop: {loop}", flush=True)
    print(f"workers: ours {args.workers} (ubernetes dns --workers {args.workers} --udp-io {args.udp_io}), "
          f"knot {args.workers} UDP + {args.workers} TCP", flush=True)

    our_port, ref_port = free_port(), free_port()
    ours = start([sys.executable, "-m", "fedns", "--federation", "", "--listen", f"127.0.0.1:{our_port}",
                  "--records", str(work / "records.yaml"), "--zone", "clusterset.local", "--log-level", "warning",
                  "--workers", str(args.workers), "--udp-io", args.udp_io],
                 work / "ours.log", our_port)
    knot = KnotSecondary(primary=("127.0.0.1", our_port), zones=["example.com"], workers=args.workers).start()
    ref = start([sys.executable, str(ROOT / "bench" / "dns_pyref.py"), str(work / "records.yaml"), str(ref_port)],
                work / "pyref.log", ref_port)
    try:
        serial = dns.query.udp(dns.message.make_query(DOMAIN, "SOA"), "127.0.0.1", port=our_port, timeout=2).answer[0][0].serial
        deadline = time.monotonic() + 20
        while knot.wait_serving(DOMAIN) != serial:
            if time.monotonic() > deadline:
                raise RuntimeError("knot did not take the zone")
            time.sleep(0.1)
        servers = {"ours": (our_port, ours.pid), "knot": (knot.port, knot.process.pid)}
        results: dict[tuple[str, str], list[dict]] = {}
        runs = [("udp", False), ("udp", True), ("tcp", True)]
        for _ in range(args.rounds):
            for mode, edns in runs:
                for who in ("ours", "knot"):
                    port, pid = servers[who]
                    before = cpu_seconds(pid)
                    r = dnsperf(port, str(qfile), mode=mode, edns=edns, seconds=args.seconds)
                    r["cpu_us"] = (cpu_seconds(pid) - before) / max(r["completed"], 1) * 1e6
                    results.setdefault((f"{mode}{'+edns' if edns else ''}", who), []).append(r)
                    print(f"  {mode:3} edns={'y' if edns else 'n'} {who:5} {r['qps']:9.0f} q/s  avg {r['avg_ms']:.3f} ms"
                          f"  cpu {r['cpu_us']:.1f} us/q  lost {r['lost']:.0f}", flush=True)
        before = cpu_seconds(ref.pid)
        pyref = dnsperf(ref_port, str(qfile), mode="udp", edns=False, seconds=min(args.seconds, 5))
        pyref["cpu_us"] = (cpu_seconds(ref.pid) - before) / max(pyref["completed"], 1) * 1e6
        print(f"  udp edns=n dnspython {pyref['qps']:9.0f} q/s  avg {pyref['avg_ms']:.3f} ms  cpu {pyref['cpu_us']:.1f} us/q", flush=True)
        half = {}
        for who in ("ours", "knot"):
            peak = statistics.mean(r["qps"] for r in results[("udp", who)])
            half[who] = dnsperf(servers[who][0], str(qfile), mode="udp", edns=False, seconds=min(args.seconds, 5),
                                rate=int(peak / 2), verbose=True)
            half[who]["rate"] = int(peak / 2)
    finally:
        stop(ours)
        knot.stop()
        stop(ref)
    change = change_latency(work, args.workers)
    memory = [rss_per_worker(work, int(n), args.workers) for n in args.memory_sizes.split(",") if n.strip()]
    load = os.getloadavg()

    def mean(key, who, field="qps"):
        return statistics.mean(r[field] for r in results[(key, who)])

    print("\nresults (means over rounds)")
    print(f"{'run':10} {'ours q/s':>10} {'knot q/s':>10} {'ratio':>6} {'ours avg ms':>11} {'knot avg ms':>11} {'ours us/q':>9} {'knot us/q':>9}")
    for key in ("udp", "udp+edns", "tcp+edns"):
        o, k = mean(key, "ours"), mean(key, "knot")
        print(f"{key:10} {o:10.0f} {k:10.0f} {o / k:6.2f} {mean(key, 'ours', 'avg_ms'):11.3f} {mean(key, 'knot', 'avg_ms'):11.3f}"
              f" {mean(key, 'ours', 'cpu_us'):9.1f} {mean(key, 'knot', 'cpu_us'):9.1f}")
    print(f"dnspython per-query path: {pyref['qps']:.0f} q/s; ours / dnspython = {mean('udp', 'ours') / max(pyref['qps'], 1):.1f}x")
    for who in ("ours", "knot"):
        h = half[who]
        print(f"half of peak ({who}, {h['rate']} q/s offered, {h['qps']:.0f} answered): p50 {h['p50_ms']:.3f} ms, p99 {h['p99_ms']:.3f} ms")
    finite = [c for c in change if c != float("inf")]
    print(f"record change visible in all {args.workers} workers' answers after the API write: median "
          f"{statistics.median(change):.1f} ms, max {max(change):.1f} ms over {len(change)} writes "
          f"({len(change) - len(finite)} never seen)")
    for m in memory:
        print(f"RSS at {m['records']:,} record sets: {args.workers} workers "
              f"{', '.join(f'{r:.0f}' for r in m['workers'])} MiB, supervisor {m['supervisor']:.0f} MiB; "
              f"--workers 1: {m['single']:.0f} MiB")
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
