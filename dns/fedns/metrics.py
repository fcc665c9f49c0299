"""The responder's ``/metrics`` (issue 17): CoreDNS's names where they mean the same, ours beside.

Nothing here runs per query. The handler counts in plain lists (:mod:`fedns.handler`) and
:class:`ResponderCollector` turns them into families when Prometheus scrapes; the rest is read
from :meth:`fedns.app.Responder.status_document`, so ``/metrics`` and ``/status`` cannot
disagree about what the responder serves.

CoreDNS's: ``coredns_dns_requests_total{type}`` (messages handled, by question type;
``other`` for a message without a readable question), ``coredns_dns_responses_total{rcode}``
and ``coredns_dns_request_duration_seconds`` (the time from a message in to its reply,
sockets excluded; finer buckets than CoreDNS's, since an answer takes microseconds here).
Ours: ``ubernetes_dns_records`` (record sets served), ``ubernetes_dns_zone_serial``,
``ubernetes_dns_stale`` (1 while the federation API is away and last-known records are
served), the last sync and the last change as Unix times, drops, errors, truncations, TCP
connections, zone transfers and NOTIFY messages. docs/metrics.md lists them all.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import dns.rcode
import dns.rdatatype
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from fedns.handler import DURATION_BOUNDS


def type_name(qtype: int) -> str:
    try:
        return dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))
    except ValueError:
        return f"TYPE{qtype}"


def rcode_name(rcode: int) -> str:
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(rcode))
    except ValueError:
        return f"RCODE{rcode}"


class ResponderCollector:
    """The families of one :class:`fedns.app.Responder`, computed at scrape time."""

    def __init__(self, responder: Any) -> None:
        self.responder = responder

    def describe(self) -> Iterable[Metric]:
        return []  # collected live: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        r = self.responder
        handler = r.handler
        yield from self._queries(handler)
        doc = r.status_document()
        yield _gauge("ubernetes_dns_records", "Record sets the responder serves.", doc["records"])
        yield _gauge("ubernetes_dns_zone_serial", "The SOA serial of the zones served.", doc["serial"] or 0)
        yield _gauge("ubernetes_dns_stale",
                     "1 while the federation API is unreachable and the last-known records are served.",
                     1 if doc["stale"] else 0)
        sync = r.sync
        if sync is not None and sync.last_sync is not None:
            yield _gauge("ubernetes_dns_last_sync_timestamp_seconds",
                         "When the records were last confirmed from the federation API (Unix time).", sync.last_sync)
        if r.view.last_change is not None:
            yield _gauge("ubernetes_dns_last_change_timestamp_seconds",
                         "When the records served last changed (Unix time).", r.view.last_change)
        yield _counter("ubernetes_dns_dropped_total", "Messages that got no reply (malformed, or a response).",
                       doc["dropped"])
        yield _counter("ubernetes_dns_errors_total", "Messages whose handling raised an error (dropped).",
                       doc["errors"])
        yield _counter("ubernetes_dns_truncated_total", "UDP replies sent with TC=1 (too large).", doc["truncated"])
        yield _gauge("ubernetes_dns_tcp_connections", "TCP connections open now.", doc["tcpConnections"])
        transfers = CounterMetricFamily("ubernetes_dns_zone_transfers_total",
                                        "Zone transfers (AXFR, IXFR over TCP) by result.", labels=["result"])
        transfers.add_metric(["ok"], doc["transfers"])
        transfers.add_metric(["refused"], doc["refusedTransfers"])
        yield transfers
        notify = CounterMetricFamily("ubernetes_dns_notify_total",
                                     "NOTIFY messages to the secondaries, by outcome.", labels=["result"])
        for result in ("sent", "acked", "failed"):
            notify.add_metric([result], doc["notify"][result])
        yield notify

    @staticmethod
    def _queries(handler: Any) -> Iterator[Metric]:
        counts = list(handler.duration_counts)
        total = sum(counts)
        requests = CounterMetricFamily("coredns_dns_requests_total", "Counter of DNS requests made per type.",
                                       labels=["type"])
        typed = 0
        for qtype, n in enumerate(handler.qtypes):
            if n:
                requests.add_metric([type_name(qtype)], n)
                typed += n
        if total > typed:
            requests.add_metric(["other"], total - typed)
        yield requests
        responses = CounterMetricFamily("coredns_dns_responses_total", "Counter of response status codes.",
                                        labels=["rcode"])
        for rcode, n in enumerate(handler.rcodes):
            if n:
                responses.add_metric([rcode_name(rcode)], n)
        yield responses
        buckets, running = [], 0
        for bound, n in zip((*(repr(b) for b in DURATION_BOUNDS), "+Inf"), counts):
            running += n
            buckets.append((bound, running))
        duration = HistogramMetricFamily("coredns_dns_request_duration_seconds",
                                         "Histogram of the time (in seconds) each request took.")
        duration.add_metric([], buckets, handler.duration_sum)
        yield duration


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
