"""The federation's settings, with the defaults the docs promise.

Health: a probe every second with a one-second timeout; three failures in a row make a
cluster Offline (or NotReady), one success makes it Ready again. With these, a crashed
cluster leaves DNS about 3 s after it dies, instead of Federation v1's 40 s probe period,
and one lost probe does not flip a healthy cluster. DNS TTL 5 s, not Federation v1's 180 s.

Failover policies (issue 5; why these defaults: docs/failover.md): an Offline cluster's
records are kept (``offline_records="keep"``, as Federation v1.7+, KubeFed and Karmada do),
and data-plane checking is on: the federation and every member probe each shard's LB
address every 0.5 s, and a shard leaves DNS when a majority of the probers that answered
says it is down. A crash is then seen from the data plane in about a second, while a
member cut off from the control plane only (split brain) keeps its records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import click

from apimachinery import flags
from apimachinery.flags import flag
from federation.names import LEASE_NAMESPACE


@dataclass(frozen=True)
class Settings:
    federation_name: str = flag("myfed", "Name of the federation (in DNS names and the members' labels).")
    dns_domain: str = flag("example.com", "DNS domain the federation's records live under.")
    health_period: float = flag(1.0, "Seconds between probes of each member.", type=click.FloatRange(0.05))
    health_timeout: float = flag(1.0, "Probe timeout, seconds.", type=click.FloatRange(0.05))
    failure_threshold: int = flag(3, "Failed probes in a row before a member is Offline (or NotReady).",
                                  type=click.IntRange(1))
    success_threshold: int = flag(1, "Successful probes in a row before a member is Ready again.",
                                  type=click.IntRange(1))
    dns_ttl: int = flag(5, "TTL of the records, seconds.", type=click.IntRange(0))
    # How often the status of a steady cluster is rewritten just to refresh lastProbeTime.
    probe_time_refresh: float = 10.0
    # How often zones and region are re-read from the member's node labels.
    zones_refresh: float = 10.0
    # Seconds between the per-key controllers' resyncs (propagation, Deployments, DNS): every key is
    # enqueued again, to repair what an event missed (issue 11).
    resync_period: float = 30.0
    event_ttl: float = flag(3600.0, "Seconds an Event is kept (Kubernetes' --event-ttl).", type=click.FloatRange(1))
    # The failover history (issue 17, docs/history.md).
    history_limit: int = flag(500, "FailoverRecords kept (the newest); older ones are deleted.", type=click.IntRange(1))
    # The responder that serves this federation's zone: the history asks it for the records it
    # serves (the Served step and its serial), the dashboard's DNS panel for each level's answer.
    dns_responder: str = flag("", "HOST:PORT of the DNS responder serving this federation's zone: the history's "
                                  "Served step and the dashboard's DNS panel ask it; empty: neither.")
    # Seconds within which steps going the same way belong to one incident.
    history_window: float = 120.0
    # Namespace of the members' Lease objects.
    lease_namespace: str = LEASE_NAMESPACE
    offline_records: str = flag("keep", "What an Offline cluster's DNS records do: keep the last known, or remove "
                                        "them (docs/failover.md).", type=click.Choice(["keep", "remove"]))
    offline_keep_seconds: float = flag(300.0, "With --offline-records keep: seconds an Offline cluster's records are "
                                              "kept at most; after that only addresses the data-plane probers vote "
                                              "up stay (docs/dns.md, \"Strategies\").", type=click.FloatRange(0))
    dns_fail_open: bool = flag(False, "When no shard of a service is healthy anywhere, answer every last-known "
                                      "shard instead of nothing (a Service's dns-fail-open annotation overrides it).")
    dataplane_checks: bool = flag(True, "Probe every shard's LB address from the federation and every member; "
                                        "remove it on a majority vote.")
    dataplane_period: float = flag(0.5, "Seconds between data-plane probes.", type=click.FloatRange(0.05))
    dataplane_timeout: float = flag(0.5, "Data-plane probe timeout, seconds.", type=click.FloatRange(0.05))
    dataplane_failure_threshold: int = flag(2, "Failed probes in a row before a prober votes an address down.",
                                            type=click.IntRange(1))
    clusterset_ip_range: str = flag("127.240.0.0/16", "CIDR the MCS controller takes ServiceImports' ClusterSetIPs from "
                                                      "(every member listens on them: loopback on one host; docs/mcs.md).")
    # Leader election of the controllers when several API servers share an etcd store
    # (issue 13; federation/leaderelection.py). Short, for this project's failover goals.
    leader_elect_lease_duration: float = flag(4.0, "Seconds a standby waits after the leader's last renewal "
                                                   "before it takes the controllers' Lease.",
                                              type=click.FloatRange(0.1))
    leader_elect_renew_deadline: float = flag(3.0, "Seconds the leader may go without renewing before it stops "
                                                   "its controllers (less than the lease duration).",
                                              type=click.FloatRange(0.1))
    leader_elect_retry_period: float = flag(1.0, "Seconds between attempts to take or renew the Lease.",
                                            type=click.FloatRange(0.05))

    @property
    def domain(self) -> str:
        """The DNS domain as an absolute name, lower case: ``example.com.``."""
        return self.dns_domain.strip(".").lower() + "."


def flagged() -> list[Any]:
    """The settings that are flags, in declaration order."""
    return flags.flagged(Settings)


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one click option per flagged setting (``--dns-ttl`` for ``dns_ttl``; booleans get
    ``--x/--no-x``), with the setting's default, help and type."""
    return flags.click_options(Settings)(command)


def settings_from(options: dict[str, Any]) -> Settings:
    """Take the flagged settings out of a command's ``options`` and build :class:`Settings`."""
    return Settings(**flags.take(Settings, options))


def markdown_table() -> str:
    """The flagged settings as the table docs/architecture.md carries (a test keeps them equal)."""
    return flags.markdown_table(Settings)
