"""The federation's settings, with the defaults the docs promise.

Health: a probe every second with a one-second timeout; three failures in a row make a
cluster Offline (or NotReady), one success makes it Ready again. With these, a crashed
cluster leaves DNS about 3 s after it dies, instead of Federation v1's 40 s probe period,
and one lost probe does not flip a healthy cluster. DNS TTL 5 s, not Federation v1's 180 s.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # Namespace of the members' Lease objects.
    lease_namespace: str = "federation-system"

    @property
    def domain(self) -> str:
        """The DNS domain as an absolute name, lower case: ``example.com.``."""
        return self.dns_domain.strip(".").lower() + "."
