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

from dataclasses import dataclass, field, fields
from typing import Any, Callable

import click

from federation.names import LEASE_NAMESPACE


def flag(default: Any, help: str, *, type: Any = None) -> Any:  # noqa: A002 - click's own word
    """A setting that is also a ``federation-apiserver`` flag: its default, help and click type
    are written here once; the flag and its ``--help`` line are derived (:func:`settings_options`)."""
    return field(default=default, metadata={"help": help, "type": type})


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
    # Namespace of the members' Lease objects.
    lease_namespace: str = LEASE_NAMESPACE
    offline_records: str = flag("keep", "What an Offline cluster's DNS records do: keep the last known, or remove "
                                        "them (docs/failover.md).", type=click.Choice(["keep", "remove"]))
    dataplane_checks: bool = flag(True, "Probe every shard's LB address from the federation and every member; "
                                        "remove it on a majority vote.")
    dataplane_period: float = flag(0.5, "Seconds between data-plane probes.", type=click.FloatRange(0.05))
    dataplane_timeout: float = flag(0.5, "Data-plane probe timeout, seconds.", type=click.FloatRange(0.05))
    dataplane_failure_threshold: int = flag(2, "Failed probes in a row before a prober votes an address down.",
                                            type=click.IntRange(1))

    @property
    def domain(self) -> str:
        """The DNS domain as an absolute name, lower case: ``example.com.``."""
        return self.dns_domain.strip(".").lower() + "."


def flagged() -> list[Any]:
    """The settings that are flags, in declaration order."""
    return [f for f in fields(Settings) if "help" in f.metadata]


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one click option per flagged setting (``--dns-ttl`` for ``dns_ttl``; booleans get
    ``--x/--no-x``), with the setting's default, help and type."""
    for f in reversed(flagged()):
        name = "--" + f.name.replace("_", "-")
        decls = [f"{name}/--no-{name[2:]}"] if isinstance(f.default, bool) else [name]
        command = click.option(*decls, f.name, default=f.default, show_default=True, help=f.metadata["help"],
                               **({"type": f.metadata["type"]} if f.metadata["type"] is not None else {}))(command)
    return command


def settings_from(options: dict[str, Any]) -> Settings:
    """Take the flagged settings out of a command's ``options`` and build :class:`Settings`."""
    return Settings(**{f.name: options.pop(f.name) for f in flagged()})


def markdown_table() -> str:
    """The flagged settings as the table docs/architecture.md carries (a test keeps them equal)."""
    rows = ["| flag | default | what |", "|---|---|---|"]
    for f in flagged():
        default = ("on" if f.default else "off") if isinstance(f.default, bool) else f"`{f.default}`"
        rows.append(f"| `--{f.name.replace('_', '-')}` | {default} | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"
