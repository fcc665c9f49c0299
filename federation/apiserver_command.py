"""``ubernetes federation-apiserver``: the API server process with its controllers.

Federation v1 split the API server from the controller manager; here one process runs
both (the controllers use the registry in-process), which keeps a local federation to a
handful of processes. ``--no-controllers`` leaves only the API.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import click
from aiohttp import web

from federation.apiserver import make_app
from federation.controllers import run_forever
from federation.controllers.dnsrecords import DNSRecordController
from federation.controllers.health import HealthController
from federation.controllers.members import MemberClients
from federation.logsetup import setup_logging
from federation.registry import Registry, WatchHub
from federation.settings import Settings
from federation.store import open_store

log = logging.getLogger("federation.apiserver")


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(*, host: str, port: int, store_path: str, settings: Settings, controllers: bool) -> None:
    from federation.controllers.propagation import PropagationController

    store = open_store(store_path)
    hub = WatchHub()
    registry = Registry(store, hub)
    app = make_app(registry)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info(
        "federation %s (domain %s) API listening on http://%s:%d, store %s",
        settings.federation_name, settings.domain, host, port, store_path,
    )
    members = MemberClients(timeout=settings.health_timeout)
    # Propagation gets its own clients with a longer timeout than a health probe.
    propagation_members = MemberClients(timeout=max(2.0, settings.health_timeout))
    tasks: list[asyncio.Task[None]] = []
    if controllers:
        health = HealthController(registry, settings, members)
        propagation = PropagationController(registry, settings, propagation_members)
        dns = DNSRecordController(registry, settings)
        tasks = [
            asyncio.create_task(run_forever("health", health.reconcile, hub=None, period=settings.health_period)),
            asyncio.create_task(
                run_forever("propagation", propagation.reconcile, hub=hub, period=settings.propagation_period)
            ),
            asyncio.create_task(run_forever("dns", dns.reconcile, hub=hub, period=1.0)),
        ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await members.close()
    await propagation_members.close()
    await runner.cleanup()
    store.close()


@click.command("federation-apiserver")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve the API on.")
@click.option("--store", "store_path", default="ubernetes.db", show_default=True, help="SQLite file, or :memory:.")
@click.option("--federation-name", default="myfed", show_default=True)
@click.option("--dns-domain", default="example.com", show_default=True)
@click.option("--health-period", type=float, default=1.0, show_default=True, help="Seconds between probes.")
@click.option("--health-timeout", type=float, default=1.0, show_default=True, help="Probe timeout, seconds.")
@click.option("--failure-threshold", type=click.IntRange(1), default=3, show_default=True)
@click.option("--success-threshold", type=click.IntRange(1), default=1, show_default=True)
@click.option("--dns-ttl", type=click.IntRange(0), default=5, show_default=True, help="TTL of the records, seconds.")
@click.option("--controllers/--no-controllers", default=True, show_default=True)
@click.option("-v", "--verbose", is_flag=True)
def federation_apiserver(
    listen: str, store_path: str, federation_name: str, dns_domain: str, health_period: float,
    health_timeout: float, failure_threshold: int, success_threshold: int, dns_ttl: int,
    controllers: bool, verbose: bool,
) -> None:
    """Run the federation API server and its controllers."""
    setup_logging("apiserver", verbose)
    host, port = split_listen(listen)
    settings = Settings(
        federation_name=federation_name,
        dns_domain=dns_domain,
        health_period=health_period,
        health_timeout=health_timeout,
        failure_threshold=failure_threshold,
        success_threshold=success_threshold,
        dns_ttl=dns_ttl,
    )
    asyncio.run(serve(host=host, port=port, store_path=store_path, settings=settings, controllers=controllers))
