"""``python -m clusters.host``: several simulated member clusters in one process.

For load tests only (``bench/soak``): fifty cluster processes would not fit a small
machine, so one host process runs ``--count`` clusters, each exactly what ``ubernetes
cluster`` wires (:func:`clusters.command.start_cluster`): its own API address, LB pool,
control loop and join-and-lease agent, sharing one event loop. The clusters are named
``<prefix>-<index>`` and spread over ``--regions`` regions of ``--zones-per-region`` zones.

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

from apimachinery.logsetup import setup_logging
from clusters.command import Options, Running, start_cluster, stop_cluster

log = logging.getLogger("ubernetes.cluster.host")


def cluster_options(*, index: int, prefix: str, regions: int, zones_per_region: int, federation: str,
                    lease_period: float, pods_per_service: int, bootstrap_token: str | None,
                    credential_dir: Path | None = None, tls: dict[str, str | None] | None = None) -> Options:
    """Cluster ``index``: region ``r<i mod regions>``, one zone of it, its own /22 of 127/8."""
    region = f"r{index % regions}"
    zone = f"{region}-z{(index // regions) % zones_per_region}"
    name = f"{prefix}-{index:02d}"
    return Options(
        name=name, region=region, zones=[zone], provider="sim", host="127.0.0.1", port=0,
        lb_pool=f"127.{100 + index // 64}.{(index % 64) * 4}.0/22", federation=federation, federation_name="myfed",
        nodes_per_zone=1, pods_per_service=pods_per_service, pod_ready_delay=0.0, lease_period=lease_period,
        lease_duration=5, unjoin_on_exit=False, advertise=None, pod_cidr=f"10.{100 + index}.0.0/16",
        bootstrap_token=bootstrap_token,
        credential_file=str(credential_dir / f"{name}.token") if credential_dir else None,
        **(tls or {}),
    )


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


@click.command()
@click.option("--count", type=click.IntRange(1, 200), required=True)
@click.option("--first-index", type=click.IntRange(0, 999), default=0, show_default=True)
@click.option("--prefix", default="sim", show_default=True)
@click.option("--regions", type=click.IntRange(1), default=5, show_default=True)
@click.option("--zones-per-region", type=click.IntRange(1), default=2, show_default=True)
@click.option("--federation", required=True)
@click.option("--lease-period", type=float, default=1.0, show_default=True)
@click.option("--pods-per-service", type=int, default=1, show_default=True)
@click.option("--bootstrap-token", envvar="UBERNETES_BOOTSTRAP_TOKEN", default=None)
@click.option("--stats-file", type=click.Path(dir_okay=False), default=None)
@click.option("--tls-cert-file", default=None, type=click.Path(exists=True, dir_okay=False), help="Serve each API over HTTPS.")
@click.option("--tls-private-key-file", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--certificate-authority", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA to verify an HTTPS federation API with.")
@click.option("--credential-dir", type=click.Path(file_okay=False), default=None,
              help="Keep each cluster's credential here (<name>.token), for restarts.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning", show_default=True)
def main(count: int, first_index: int, prefix: str, regions: int, zones_per_region: int, federation: str,
         lease_period: float, pods_per_service: int, bootstrap_token: str | None, stats_file: str | None,
         log_level: str, credential_dir: str | None = None, tls_cert_file: str | None = None,
         tls_private_key_file: str | None = None, certificate_authority: str | None = None) -> None:
    """Run COUNT simulated member clusters in this one process (load tests)."""
    setup_logging(f"cluster/{prefix}-host{first_index}", log_level)
    options = [cluster_options(index=i, prefix=prefix, regions=regions, zones_per_region=zones_per_region,
                               federation=federation, lease_period=lease_period, pods_per_service=pods_per_service,
                               bootstrap_token=bootstrap_token,
                               credential_dir=Path(credential_dir) if credential_dir else None,
                               tls={"tls_cert_file": tls_cert_file, "tls_private_key_file": tls_private_key_file,
                                    "certificate_authority": certificate_authority})
               for i in range(first_index, first_index + count)]
    try:
        asyncio.run(run(options, Path(stats_file) if stats_file else None))
    except OSError as err:
        log.error("cannot start: %s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
