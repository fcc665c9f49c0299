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

from federation.names import LEASE_NAMESPACE


@dataclass(frozen=True)
class Settings:
    federation_name: str = "myfed"
    dns_domain: str = "example.com"
    health_period: float = 1.0
    health_timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    dns_ttl: int = 5
    # How often the status of a steady cluster is rewritten just to refresh lastProbeTime.
    probe_time_refresh: float = 10.0
    # How often zones and region are re-read from the member's node labels.
    zones_refresh: float = 10.0
    propagation_period: float = 1.0
    # How often federated Deployments are re-planned and their status re-read (issue 7).
    deployment_period: float = 0.5
    # Events older than this are deleted (the API server's --event-ttl; Kubernetes' default).
    event_ttl: float = 3600.0
    # Namespace of the members' Lease objects.
    lease_namespace: str = LEASE_NAMESPACE
    # What an Offline cluster's shards do in DNS: "keep" (last known) or "remove".
    offline_records: str = "keep"
    # Data-plane health checking: probers vote by majority on every shard's LB address.
    dataplane_checks: bool = True
    dataplane_period: float = 0.5
    dataplane_timeout: float = 0.5
    # Failed probes in a row before one prober calls an address down (one success: up).
    dataplane_failure_threshold: int = 2

    @property
    def domain(self) -> str:
        """The DNS domain as an absolute name, lower case: ``example.com.``."""
        return self.dns_domain.strip(".").lower() + "."
