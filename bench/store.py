"""bench/store: what the federation API writes and watches per second on each store.

For each backend (an SQLite file; etcd with one member; etcd with three), one real
``ubernetes federation-apiserver --no-controllers`` on loopback, one watch on Services
opened before the writes, and ``--concurrency`` clients creating ``--writes`` Services
(bounded by ``--seconds`` too). Reported: API writes/s, write latency p50/p99 (request
to 201), watch events/s and the watch lag p50/p99 (the write's 201 to its event on the
watch). The reference, in the same run, is etcd's own put rate through its JSON gateway
at the same concurrency (one member): our writes/s as a fraction of it says what the
API layer costs on top of the store. The machine's load is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import pct  # noqa: E402
from federation.launch.etcdserver import EtcdCluster, etcd_binary  # noqa: E402
from federation.launch.localfed import free_port  # noqa: E402

SVC = "/api/v1/namespaces/default/services"


async def raw_puts(endpoint: str, count: int, concurrency: int, seconds: float) -> dict:
    """etcd's own put rate: /v3/kv/put through its JSON gateway, ``concurrency`` at a time."""
    url = f"http://{endpoint}/v3/kv/put"
    value = base64.b64encode(b"x" * 400).decode()
    latencies: list[float] = []
    next_i = [0]
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while next_i[0] < count and time.monotonic() < deadline:
            i = next_i[0]
            next_i[0] += 1
            key = base64.b64encode(f"/bench/raw/{i}".encode()).decode()
            began = time.monotonic()
            async with session.post(url, json={"key": key, "value": value}) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            latencies.append(time.monotonic() - began)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        began = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    return {"puts": len(latencies), "puts_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.5) * 1000, 2), "p99_ms": round(pct(latencies, 0.99) * 1000, 2)}


def start_apiserver(store: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / f"apiserver-{port}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "federation", "federation-apiserver", "--listen",
                             f"127.0.0.1:{port}", "--store", store, "--no-controllers"], stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"apiserver exited: {(work / f'apiserver-{port}.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("apiserver did not start")


async def api_run(url: str, count: int, concurrency: int, seconds: float) -> dict:
    acked: dict[str, float] = {}  # resourceVersion -> when its 201 arrived
    seen: dict[str, float] = {}  # resourceVersion -> when the watch brought it
    latencies: list[float] = []
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ""}, "spec": {"ports": [{"port": 80}]},
            }
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 2)) as session:
        async with session.get(url + SVC) as resp:
            since = (await resp.json())["metadata"]["resourceVersion"]
        done = asyncio.Event()

        async def watch() -> None:
            async with session.get(f"{url}{SVC}?watch=true&resourceVersion={since}&timeoutSeconds=300",
                                   timeout=aiohttp.ClientTimeout(total=None)) as resp:
                async for line in resp.content:
                    if line.strip():
                        event = json.loads(line)
                        seen[event["object"]["metadata"]["resourceVersion"]] = time.monotonic()
                        if done.is_set() and len(seen) >= len(acked):
                            return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.3)
        next_i = [0]
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while next_i[0] < count and time.monotonic() < deadline:
                i = next_i[0]
                next_i[0] += 1
                payload = dict(body, metadata={"name": f"s{i}"})
                began = time.monotonic()
                async with session.post(url + SVC, json=payload) as resp:
                    assert resp.status == 201, await resp.text()
                    created = await resp.json()
                now = time.monotonic()
                latencies.append(now - began)
                acked[created["metadata"]["resourceVersion"]] = now

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
        done.set()
        try:
            await asyncio.wait_for(watcher, 15)
        except asyncio.TimeoutError:
            watcher.cancel()
    lags = [max(0.0, seen[rv] - t) for rv, t in acked.items() if rv in seen]
    arrivals = sorted(seen.values())
    watch_span = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return {"writes": len(latencies), "writes_per_s": round(len(latencies) / elapsed, 1),
            "write_p50_ms": round(pct(latencies, 0.5) * 1000, 2), "write_p99_ms": round(pct(latencies, 0.99) * 1000, 2),
            "watch_events": len(seen), "missing_on_watch": len(set(acked) - set(seen)),
            "watch_events_per_s": round(len(arrivals) / watch_span, 1) if watch_span == watch_span and watch_span else None,
            "watch_lag_p50_ms": round(pct(lags, 0.5) * 1000, 2), "watch_lag_p99_ms": round(pct(lags, 0.99) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000, help="Services created per backend (a bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound per backend")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,etcd1,etcd3")
    args = parser.parse_args()
    if etcd_binary() is None:
        sys.exit("etcd is not installed: apt-get install etcd-server")
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        with EtcdCluster(work / "ref") as ref:
            results["etcd_raw_put"] = asyncio.run(raw_puts(ref.members[0].endpoint, args.writes * 2,
                                                           args.concurrency, args.seconds))
            for backend in args.backends.split(","):
                if backend == "sqlite":
                    proc, url = start_apiserver(str(work / "fed.db"), work)
                    cluster = None
                else:
                    size = int(backend[len("etcd"):] or 1)
                    cluster = ref if size == 1 else EtcdCluster(work / backend, size=size).start()
                    proc, url = start_apiserver(f"{cluster.url}/{backend}", work)
                try:
                    results[backend] = asyncio.run(api_run(url, args.writes, args.concurrency, args.seconds))
                finally:
                    proc.terminate()
                    proc.wait(10)
                    if cluster is not None and cluster is not ref:
                        cluster.stop()
    raw = results["etcd_raw_put"]["puts_per_s"]
    for backend, r in results.items():
        if backend != "etcd_raw_put":
            r["fraction_of_etcd_raw"] = round(r["writes_per_s"] / raw, 3)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs")
    print(f"etcd raw put (1 member, JSON gateway, {args.concurrency} concurrent): {raw} puts/s, "
          f"p50 {results['etcd_raw_put']['p50_ms']} ms, p99 {results['etcd_raw_put']['p99_ms']} ms")
    print(f"{'backend':8} {'writes/s':>9} {'of raw':>7} {'w p50':>7} {'w p99':>7} {'watch/s':>8} "
          f"{'lag p50':>8} {'lag p99':>8} {'missing':>7}")
    for backend, r in results.items():
        if backend == "etcd_raw_put":
            continue
        print(f"{backend:8} {r['writes_per_s']:>9} {r['fraction_of_etcd_raw']:>7} {r['write_p50_ms']:>7} "
              f"{r['write_p99_ms']:>7} {r['watch_events_per_s']!s:>8} {r['watch_lag_p50_ms']:>8} "
              f"{r['watch_lag_p99_ms']:>8} {r['missing_on_watch']:>7}")
    print(json.dumps({"bench": "store", "concurrency": args.concurrency, "writes": args.writes,
                      "load_before": load_before, "load_after": load_after, "results": results}))


if __name__ == "__main__":
    main()
