"""``ubernetes cluster-host`` (also ``python -m clusters.host``): many simulated member clusters in one process.

For big demos and load tests (``bench/soak``, ``bench/scale``): fifty cluster processes
would not fit a small machine, so one host process runs ``--count`` clusters, each exactly
what ``ubernetes cluster`` wires (:func:`clusters.command.start_cluster`): its own API
address, LB pool, control loop and join-and-lease agent, sharing one event loop. The
clusters are named ``<prefix>-<index>`` (:func:`cluster_name`) and spread over ``--regions``
regions of ``--zones-per-region`` zones; several host processes with consecutive
``--first-index`` ranges make one big federation (docs/clusters.md).

SIGUSR1 clears the agents' figures (the soak's start); SIGTERM writes them as JSON to
``--stats-file`` (lease-renewal latencies and failed steps per cluster) and stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import click

from apimachinery import eventloop
from apimachinery.logsetup import setup_logging
from apimachinery.meta import check_dns_label
from clusters.command import Options, Running, start_cluster, stop_cluster

log = logging.getLogger("ubernetes.cluster.host")


MAX_INDEX = 156 + 1536 + 1024 - 1  # pod CIDRs (below) stay distinct up to here, LB pools beyond


def cluster_name(prefix: str, index: int) -> str:
    """The name of hosted cluster ``index`` (``sim-07``, ``sim-123``)."""
    return f"{prefix}-{index:02d}"


def pod_cidr(index: int) -> str:
    """Cluster ``index``'s pod CIDR: 10.<100+i>.0.0/16 for the first 156, then /20s from 10.0.0.0.

    The first 156 keep the /16s they always had; past them a /16 each would leave 10/8, so
    the rest take /20s (4,094 pod addresses each) below 10.96.0.0 (the service cluster
    IPs' /16), room for 1,536 more; past those, the 1,024 /20s of 100.64.0.0/10."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"cluster index {index} out of 0-{MAX_INDEX}")
    if index < 156:
        return f"10.{100 + index}.0.0/16"
    rest = index - 156
    if rest < 1536:
        return f"10.{rest // 16}.{(rest % 16) * 16}.0/20"
    rest -= 1536
    return f"100.{64 + rest // 16}.{(rest % 16) * 16}.0/20"


def cluster_options(*, index: int, prefix: str, regions: int, zones_per_region: int, federation: str,
                    lease_period: float, pods_per_service: int, bootstrap_token: str | None,
                    credential_dir: Path | None = None, tls: dict[str, str | None] | None = None) -> Options:
    """Cluster ``index``: region ``r<i mod regions>``, one zone of it, its own /22 of 127/8."""
    region = f"r{index % regions}"
    zone = f"{region}-z{(index // regions) % zones_per_region}"
    name = cluster_name(prefix, index)
    return Options(  # the rest are Options' own defaults, as `ubernetes cluster` has them
        name=name, region=region, zones=[zone], provider="sim",
        lb_pool=f"127.{100 + index // 64}.{(index % 64) * 4}.0/22", federation=federation,
        pods_per_service=pods_per_service, pod_ready_delay=0.0, lease_period=lease_period, pod_cidr=pod_cidr(index),
        bootstrap_token=bootstrap_token,
        credential_file=str(credential_dir / f"{name}.token") if credential_dir else None,
        **(tls or {}),
    )


def _prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    problem = check_dns_label(cluster_name(value, MAX_INDEX))
    if problem:
        raise click.BadParameter(f"{value!r}: cluster names made from it would not be DNS labels: {problem}")
    return value


async def run(options: list[Options], stats_file: Path | None) -> None:
    running: list[Running] = []
    for opts in options:
        running.append(await start_cluster(opts))
    log.info("hosting %d clusters: %s", len(running), ", ".join(f"{r.opts.name}={r.api_url}" for r in running))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reset() -> None:
        for r in running:
            if r.agent is not None:
                r.agent.renewal_latencies.clear()
                r.agent.failed_steps = 0
        log.info("figures cleared")

    loop.add_signal_handler(signal.SIGUSR1, reset)
    await stop.wait()
    if stats_file is not None:
        stats = {r.opts.name: {"renewals": list(r.agent.renewal_latencies), "failed": r.agent.failed_steps,
                               "api": r.api_url}
                 for r in running if r.agent is not None}
        stats_file.write_text(json.dumps(stats))
    await asyncio.gather(*(stop_cluster(r) for r in running))


@click.command("cluster-host", epilog=(
    "Cluster i is named PREFIX-i (two digits at least), in region r<i mod REGIONS>, with LB pool "
    "127.<100+i//64>.<(i%64)*4>.0/22 and its own pod CIDR; its API listens on a free port of 127.0.0.1. "
    "Run several processes with consecutive --first-index ranges for a bigger federation. "
    "Signals: SIGUSR1 clears the agents' figures; SIGTERM or Ctrl-C writes them to --stats-file and stops."))
@click.option("--count", type=click.IntRange(1, 200), required=True, help="Clusters to run in this process.")
@click.option("--first-index", type=click.IntRange(0, MAX_INDEX), default=0, show_default=True,
              help="Index of the first cluster (names and address ranges follow the index).")
@click.option("--prefix", default="sim", show_default=True, callback=_prefix, help="Cluster names are PREFIX-<index>.")
@click.option("--regions", type=click.IntRange(1), default=5, show_default=True, help="Spread the clusters over this many regions.")
@click.option("--zones-per-region", type=click.IntRange(1), default=2, show_default=True)
@click.option("--federation", required=True, help="Federation API URL every cluster joins, e.g. https://127.0.0.1:8443.")
@click.option("--lease-period", type=click.FloatRange(0.05, 3600), default=Options.lease_period, show_default=True,
              help="Seconds between each cluster's lease renewals.")
@click.option("--pods-per-service", type=click.IntRange(0, 1000), default=1, show_default=True)
@click.option("--bootstrap-token", envvar="UBERNETES_BOOTSTRAP_TOKEN", default=None, metavar="TOKEN",
              help="Join with this bootstrap token (env UBERNETES_BOOTSTRAP_TOKEN); turns on tokens for the clusters' APIs.")
@click.option("--stats-file", type=click.Path(dir_okay=False), default=None,
              help="On exit, write each cluster's lease-renewal latencies and failed agent steps here (JSON).")
@click.option("--tls-cert-file", default=None, type=click.Path(exists=True, dir_okay=False), help="Serve each API over HTTPS.")
@click.option("--tls-private-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Private key of --tls-cert-file.")
@click.option("--certificate-authority", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA to verify an HTTPS federation API with.")
@click.option("--credential-dir", type=click.Path(file_okay=False), default=None,
              help="Keep each cluster's credential here (<name>.token), for restarts.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning", show_default=True)
def main(count: int, first_index: int, prefix: str, regions: int, zones_per_region: int, federation: str,
         lease_period: float, pods_per_service: int, bootstrap_token: str | None, stats_file: str | None,
         log_level: str, credential_dir: str | None = None, tls_cert_file: str | None = None,
         tls_private_key_file: str | None = None, certificate_authority: str | None = None) -> None:
    """Run COUNT simulated member clusters in this one process, each joining the federation.

    Each cluster is what `ubernetes cluster` runs (its own API, nodes, pods, LB data plane
    and join-and-lease agent); they share one event loop, for big demos and load tests
    (bench/soak, bench/scale) on a small machine.
    """
    if first_index + count - 1 > MAX_INDEX:
        raise click.BadParameter(f"the last index {first_index + count - 1} is above {MAX_INDEX}",
                                 param_hint="--first-index/--count")
    setup_logging(f"cluster/{prefix}-host{first_index}", log_level)
    options = [cluster_options(index=i, prefix=prefix, regions=regions, zones_per_region=zones_per_region,
                               federation=federation, lease_period=lease_period, pods_per_service=pods_per_service,
                               bootstrap_token=bootstrap_token,
                               credential_dir=Path(credential_dir) if credential_dir else None,
                               tls={"tls_cert_file": tls_cert_file, "tls_private_key_file": tls_private_key_file,
                                    "certificate_authority": certificate_authority})
               for i in range(first_index, first_index + count)]
    try:
        eventloop.run(run(options, Path(stats_file) if stats_file else None))
    except OSError as err:
        log.error("cannot start: %s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
