"""Every metric docs/grafana/ubernetes.json queries exists in a real scrape (issue 17).

A dashboard whose queries name a metric no process serves shows an empty panel and nobody
notices. This starts a real federation API server (controllers on), a real member that joins
it and is then killed (so the health and fault-to-detection families have samples), and a
real DNS responder watching the federation with ``--status-listen``, sends DNS queries, and
checks that every metric name in the dashboard's expressions is a sample name in the scrape
of the process the panel is about. No Docker needed (the compose e2e checks the same through
the compose demo's Prometheus).
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import dns.message
import dns.query
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusters.testing import ClusterProcess, Process, free_port, http, wait_until
from tests.conftest import apiserver

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docs" / "grafana" / "ubernetes.json").read_text())
# PromQL's functions, aggregations and keywords that the dashboard uses (not metric names).
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "time", "by", "without", "avg", "max", "min"}


def expressions() -> list[str]:
    return [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: label matchers, ranges and grouping lists
    removed, then every identifier that is not a PromQL word and is not called."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)|\"[^\"]*\"", " ", expr)
    return {m.group() for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", bare)
            if m.group() not in PROMQL_WORDS and not bare[m.end():].lstrip().startswith("(")}


def test_the_name_reader_finds_what_a_query_selects() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, verb) (rate(apiserver_request_duration_seconds_bucket{job="x"}[1m])))'
    assert metric_names(expr) == {"apiserver_request_duration_seconds_bucket"}
    assert metric_names("time() - ubernetes_dns_last_sync_timestamp_seconds") == {"ubernetes_dns_last_sync_timestamp_seconds"}


def test_the_dashboard_is_grafana_json_with_a_prometheus_query_per_panel() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 30
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) >= 15
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["type"] == "prometheus" and panel["targets"], panel["title"]
        assert all(metric_names(t["expr"]) for t in panel["targets"]), panel["title"]


SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""], "summary": ["_count", "_sum"]}
# Families that a scrape declares (# TYPE) but that have samples only after what this small
# run does not cause: a reconcile that raises, a key retried, a second member's LB to vote on.
DECLARED_ONLY = {"controller_runtime_reconcile_errors_total", "workqueue_retries_total", "workqueue_depth",
                 "ubernetes_dataplane_vote"}


def scrape(url: str) -> tuple[set[str], set[str]]:
    """(sample names, sample names the declared families would have) of one /metrics."""
    status, text, _ = http("GET", url + "/metrics")
    assert status == 200, text
    families = list(text_string_to_metric_families(text))
    declared = {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, [""])}
    return {s.name for f in families for s in f.samples}, declared


def sample_names(url: str) -> set[str]:
    return scrape(url)[0]


@pytest.mark.timeout(120)
def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(tmp_path: Path) -> None:
    with apiserver(tmp_path, "--health-period", "0.2", "--health-timeout", "0.3", "--failure-threshold", "2") as fed:
        member = ClusterProcess(name="grafana-1", federation=fed, extra=["--lease-period", "0.2"])
        dns_port, status_port = free_port(), free_port()
        responder = Process([sys.executable, "-m", "fedns", "--listen", f"127.0.0.1:{dns_port}",
                             "--federation", fed, "--status-listen", f"127.0.0.1:{status_port}"])
        try:
            member.wait_ready()
            status_url = f"http://127.0.0.1:{status_port}"
            wait_until(lambda: "ubernetes_dns_last_sync_timestamp_seconds" in sample_names(status_url),
                       timeout=20, what="the responder synced from the federation")
            for qname, qtype in (("example.com.", "SOA"), ("nothing.example.com.", "A")):
                dns.query.udp(dns.message.make_query(qname, qtype), "127.0.0.1", port=dns_port, timeout=2)
            wait_until(lambda: "ubernetes_member_lease_renewal_duration_seconds_bucket" in sample_names(member.url),
                       timeout=10, what="a lease renewal")
            member_scrape = scrape(member.url)
            member.signal(signal.SIGKILL)
            wait_until(lambda: "ubernetes_fault_to_detection_seconds_bucket" in sample_names(fed),
                       timeout=15, what="the member's fault detected")
            scrapes = [scrape(fed), member_scrape, scrape(status_url)]
        finally:
            responder.close()
            member.close()
    sampled = set().union(*(samples for samples, _ in scrapes))
    declared = set().union(*(names for _, names in scrapes))
    queried = set().union(*(metric_names(e) for e in expressions()))
    assert len(queried) >= 20
    missing = sorted(queried - sampled - declared)
    assert missing == [], f"the dashboard queries metrics no process serves: {missing}"
    assert queried - sampled <= DECLARED_ONLY, f"declared but without samples: {sorted(queried - sampled - DECLARED_ONLY)}"
