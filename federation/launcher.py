"""``ubernetes up``: a whole local federation from one command, until Ctrl-C.

Starts the federation API server, the DNS responder and the member clusters of a topology
(three by default: two zones of an AWS region and one GCP region), applies the topology's
federated objects (a sample ``LoadBalancer`` service by default), prints where everything
listens with ``dig`` and ``curl`` commands that work as printed, then streams every
process's log, prefixed with its name, until SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import click

from federation import dnsplan
from federation.localfed import LocalFederation
from federation.topology import DEFAULT, Topology, TopologyError, parse_topology

COLOURS = [36, 33, 35, 32, 34, 31, 96, 93, 95, 92]


def make_sink(width: int, colour: bool):  # type: ignore[no-untyped-def]
    assigned: dict[str, int] = {}

    def sink(name: str, line: str) -> None:
        code = assigned.setdefault(name, COLOURS[len(assigned) % len(COLOURS)])
        label = f"{name:>{width}}"
        if colour:
            label = f"\x1b[{code}m{label}\x1b[0m"
        click.echo(f"{label} | {line}", err=True)

    return sink


def summary(fed: LocalFederation) -> str:
    topo = fed.topology
    domain = topo.domain.strip(".")
    lines = [
        "",
        f"Federation {topo.federation!r} is up (domain {domain}).",
        f"  federation API   {fed.api_url}",
        f"  DNS responder    {fed.host}:{fed.dns_port} (UDP and TCP)",
    ]
    for spec in topo.clusters:
        lines.append(
            f"  cluster {spec.name:<22} {fed.cluster_url(spec.name)}  {spec.provider} {spec.region} "
            f"{','.join(spec.zones)}  LB pool {spec.lb_pool}"
        )
    lines.append("")
    lines.append("Try:")
    lines.append(f"  ubernetes --server {fed.api_url} get clusters")
    lines.append(f"  ubernetes --server {fed.api_url} get services -A")
    for obj in topo.objects:
        if obj.get("kind") != "Service":
            continue
        meta = obj.get("metadata") or {}
        name, ns = meta.get("name"), meta.get("namespace") or "default"
        first = topo.clusters[0]
        gname = dnsplan.global_name(name, ns, topo.federation, domain + ".")
        rname = dnsplan.region_name(name, ns, topo.federation, first.region, domain + ".")
        zname = dnsplan.zone_name(name, ns, topo.federation, first.zones[0], first.region, domain + ".")
        port = ((obj.get("spec") or {}).get("ports") or [{}])[0].get("port", 80)
        lines.append(f"  dig @{fed.host} -p {fed.dns_port} +short {gname}")
        lines.append(f"  dig @{fed.host} -p {fed.dns_port} +short {rname}")
        lines.append(f"  dig @{fed.host} -p {fed.dns_port} {zname}")
        lines.append(
            f"  curl -s http://$(dig @{fed.host} -p {fed.dns_port} +short {gname} | head -1):{port}/"
        )
        break
    lines.append("")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


async def run_up(fed: LocalFederation, *, ready_timeout: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        starting = asyncio.create_task(fed.start(timeout=ready_timeout))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if starting not in done:
            starting.cancel()
            return 130
        stopper.cancel()
        starting.result()
        await fed.apply_objects()
        click.echo(summary(fed))
        click.echo(f"(started in {time.monotonic() - started:.1f}s)")
        await stop.wait()
        click.echo("stopping every process...", err=True)
        return 0
    except (TimeoutError, RuntimeError) as err:
        click.echo(f"error: {err}", err=True)
        return 1
    finally:
        await fed.stop()


@click.command("up")
@click.option("-f", "--file", "topology_file", type=click.Path(exists=True, dir_okay=False), help="Topology YAML.")
@click.option("--api-port", type=int, default=8080, show_default=True)
@click.option("--dns-port", type=int, default=1053, show_default=True)
@click.option("--cluster-base-port", type=int, default=9101, show_default=True,
              help="Member cluster APIs listen on consecutive ports from here.")
@click.option("--store", default=None, help="SQLite file for the federation (default: a fresh temporary one).")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True)
@click.option("--color/--no-color", default=None, help="Colour the log prefixes (default: when a terminal).")
def up(topology_file: str | None, api_port: int, dns_port: int, cluster_base_port: int, store: str | None,
       ready_timeout: float, color: bool | None) -> None:
    """Start a local federation (API, DNS, member clusters) and keep it running."""
    topology: Topology = DEFAULT
    if topology_file:
        try:
            topology = parse_topology(Path(topology_file).read_text(), source=topology_file)
        except TopologyError as err:
            raise click.ClickException(str(err)) from None
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="ubernetes-")
        store = str(Path(tmp.name) / "federation.db")
    width = max([len(c.name) for c in topology.clusters] + [9])
    fed = LocalFederation(
        topology,
        api_port=api_port,
        dns_port=dns_port,
        cluster_ports={c.name: cluster_base_port + i for i, c in enumerate(topology.clusters)},
        store=store,
        log_sink=make_sink(width, sys.stderr.isatty() if color is None else color),
    )
    try:
        code = asyncio.run(run_up(fed, ready_timeout=ready_timeout))
    finally:
        if tmp is not None:
            tmp.cleanup()
    sys.exit(code)
