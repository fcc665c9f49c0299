"""bench/dns_fuzz: 1,000,000 malformed packets to the default multi-worker responder (issue 12).

The suite sends 100,000 (tests/e2e/test_dns_fuzz.py); this sends ten times as many with the
same kit (tests/dnsfuzz.py: the same mutations, malformed EDNS and TSIG among them, 3/4 over
UDP and 1/4 framed on TCP, a valid probe between rounds that must be answered correctly).
As its reference, measured in the same run on a fresh responder, the same loop sends valid
queries only: the bench prints packets per second for both and their ratio, each worker's
RSS at the start and its peak, handler errors and worker restarts (both must stay 0), and
the machine's load before and after. It fails (exit 1) if the responder dies, a probe is
answered wrongly, a worker restarts, a handler error is counted, or a worker's RSS grows by
more than the suite's bound.

Usage: bench/dns_fuzz [--packets 1000000] [--reference 200000] [--rounds 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "dns")]

from tests.dnsfuzz import RSS_GROWTH_BOUND_KB, fuzz, running_responder  # noqa: E402


def valid(rng: random.Random, seeds: list[bytes]) -> bytes:
    return rng.choice(seeds)


def one_run(what: str, packets: int, rounds: int, packet=None) -> dict:
    def progress(sent: int, total: int, seconds: float) -> None:
        print(f"  {what}: {sent:>9,} / {total:,} packets, {seconds:6.1f} s, {sent / max(seconds, 1e-9):8,.0f}/s",
              flush=True)

    with tempfile.TemporaryDirectory(prefix="dns-fuzz-") as work, running_responder(Path(work)) as (proc, port, log):
        out = fuzz(proc, port, log, total=packets, rounds=rounds, progress=progress, packet=packet)
        proc.send_signal(signal.SIGTERM)
        out["exit"] = proc.wait(15)
    status = out.pop("status")
    out.update(errors=status["errors"], dropped=status["dropped"], rcodes=status["queries"],
               workers=len(status.get("workers") or [1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--reference", type=int, default=200_000, help="valid queries sent as the reference")
    ap.add_argument("--rounds", type=int, default=500)
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    started = time.monotonic()
    ref = one_run("valid", args.reference, max(5, args.rounds * args.reference // max(args.packets, 1)), valid)
    bad = one_run("mutated", args.packets, args.rounds)
    load = os.getloadavg()
    rate = {k: r["sent"] / r["elapsed"] for k, r in (("valid", ref), ("mutated", bad))}
    print(f"workers: {bad['workers']} (one per core, the default)")
    print(f"valid queries:    {ref['sent']:>9,} in {ref['elapsed']:6.1f} s = {rate['valid']:8,.0f}/s")
    print(f"mutated packets:  {bad['sent']:>9,} in {bad['elapsed']:6.1f} s = {rate['mutated']:8,.0f}/s "
          f"({rate['mutated'] / rate['valid']:.2f}x the valid rate); {bad['seen']:,} read by the responder, "
          f"{bad['dropped']:,} left unanswered (no readable question, or a response: dropped as the handler's rules say)")
    print(f"replies by rcode: {json.dumps(bad['rcodes'], sort_keys=True)}")
    for pid, kb in sorted(bad["rss_peak"].items()):
        start = bad["rss_start"].get(pid, kb)
        print(f"worker {pid}: RSS {start / 1024:.1f} MiB at the start, peak {kb / 1024:.1f} MiB "
              f"(+{(kb - start) / 1024:.1f} MiB; bound +{RSS_GROWTH_BOUND_KB / 1024:.0f} MiB)")
    print(f"handler errors: {bad['errors']}, worker restarts: {bad['restarts']}, exit on SIGTERM: {bad['exit']}")
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {time.monotonic() - started:.0f} s in all")
    ok = (bad["errors"] == 0 and bad["restarts"] == 0 and bad["exit"] == 0 and bad["growth"] < RSS_GROWTH_BOUND_KB
          and ref["errors"] == 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
