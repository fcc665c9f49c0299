"""bench/scale at a tiny size: real processes, and a JSON line runs can be compared by.

Two clusters in one host process, four services on one cluster each, three seconds of
changes per phase: the bench must set up, measure both phases and stop everything, and
its last line must hold every key issue 11 names with values that make sense.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from scale_plan import REQUIRED_KEYS  # noqa: E402


def test_scale_bench_tiny_run_prints_every_key() -> None:
    proc = subprocess.run(
        [str(ROOT / "bench" / "scale"), "--clusters", "2", "--services", "4", "--shards", "1", "--duration", "3",
         "--per-host", "2"],
        capture_output=True, text=True, timeout=90, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    missing = [k for k in REQUIRED_KEYS if k not in result]
    assert not missing, missing
    assert "error" not in result
    assert (result["clusters"], result["services"], result["shards"]) == (2, 4, 1)
    for key in ("ready_s", "join_p99_s", "copies_p99_s", "create_to_dns_p99_s", "lease_p99_s",
                "cpu_per_change_small_ms", "cpu_per_change_large_ms", "api_rss_mib", "dns_rss_mib"):
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (key, value)
    assert 0 < result["ready_s"] < 60
    assert 0 < result["copies_p99_s"] < 30 and 0 < result["create_to_dns_p99_s"] < 30
    assert 0 < result["lease_p99_s"] < 5 and result["renewals"] > 0
    assert isinstance(result["failed_renewals"], int) and result["failed_renewals"] >= 0
    assert 10 < result["api_rss_mib"] < 1024 and 10 < result["dns_rss_mib"] < 1024
    assert result["cpu_per_change_large_ms"] > 0
    assert result["copies_missing"] == 0 and result["dns_missing"] == 0 and result["write_errors"] == 0
    assert result["changes"] == 30  # 10 a second for 3 s
    assert "| lease renewals" in proc.stdout  # the table came first
