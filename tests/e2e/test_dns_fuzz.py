"""Bad input at volume: 100,000 random and mutated packets to a real responder process.

Over UDP and TCP: random bytes, mutated valid queries (flipped bytes, bad lengths, wrong
counts, truncated headers, garbage after the message), compression-pointer loops,
labels over 63 bytes, names over 255, malformed EDNS (two OPTs, misplaced, overrunning,
broken options) and TSIG (unknown keys, damaged records), against the default
multi-worker responder (``--workers`` one per core). bench/dns_fuzz.py sends 1,000,000. Between batches a prober sends valid
queries and checks the answers; at the end the process is still alive, answers at once,
each worker's RSS (from /proc) stayed under a bound, and it stops cleanly on SIGTERM.
"""

from __future__ import annotations

import signal

import pytest

from tests.dnsfuzz import RSS_GROWTH_BOUND_KB, TOTAL, fuzz, running_responder


@pytest.fixture
def responder(tmp_path):
    with running_responder(tmp_path) as running:
        yield running


def test_fuzz_100k_packets_udp_and_tcp(responder):
    proc, port, log_path = responder
    out = fuzz(proc, port, log_path)
    status = out["status"]
    assert out["sent"] >= TOTAL
    assert len(out["rss_start"]) >= 1
    assert out["growth"] < RSS_GROWTH_BOUND_KB, f"RSS per worker {out['rss_start']} -> {out['rss_peak']} kB"
    assert out["elapsed"] < 60, f"{out['sent']} packets took {out['elapsed']:.1f} s"
    assert out["seen"] >= TOTAL * 0.8, f"only {out['seen']} of {out['sent']} packets reached the responder"
    assert out["restarts"] == 0 and status["errors"] == 0
    assert status["queries"].get("NOTAUTH", 0) > 0  # the TSIG mutations reached the BADKEY reply
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    print(f"fuzz: {out['sent']} packets in {out['elapsed']:.1f} s, {out['seen']} read; RSS per worker "
          f"{out['rss_start']} -> {out['rss_peak']} kB; {status['errors']} errors")
