"""``ubernetes dns-publish``: keep zones on an external primary equal to the federation's
DNSRecords, by RFC 2136 dynamic update signed with TSIG (:mod:`fedns.publish`).

It lists and watches DNSRecords like ``ubernetes dns`` (the same :class:`~fedns.sync.RecordSync`
and :class:`~fedns.view.ZoneView`) but serves nothing: after each change it sends the
primary the difference. A failed update is retried with backoff until it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from apimachinery import eventloop
from apimachinery.logsetup import setup_logging
from fedns.app import DEFAULT_FEDERATION, split_host_port
from fedns.publish import Publisher, load_key
from fedns.view import ZoneView
from fedns.zone import ZoneConfig

log = logging.getLogger("fedns.publish")


async def run_publisher(
    *,
    federation: str | None,
    publishers: list[Publisher],
    records: list | None = None,
    stop: asyncio.Event,
    max_backoff: float = 5.0,
) -> None:
    view = ZoneView(ZoneConfig(apexes=tuple(p.zone for p in publishers)))
    changed = asyncio.Event()
    view.listeners.append(lambda table: changed.set())
    if records:
        view.set_static(records)
    client = sync_task = None
    if federation:
        from apimachinery.client import APIClient

        from fedns.sync import RecordSync

        client = APIClient(federation)
        sync_task = asyncio.get_running_loop().create_task(RecordSync(client, view).run())
    changed.set()
    backoff = 0.1
    try:
        while not stop.is_set():
            waiter = asyncio.ensure_future(changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if stop.is_set():
                break
            changed.clear()
            await view.settled()
            try:
                for p in publishers:
                    await p.publish(view.recordsets)
                backoff = 0.1
            except Exception as err:
                log.warning("publishing failed (%s); retrying in %.1f s", err, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff)
                changed.set()
    finally:
        if sync_task is not None:
            sync_task.cancel()
            try:
                await sync_task
            except (asyncio.CancelledError, Exception):
                pass
        if client is not None:
            await client.close()
        await view.close()


@click.command("dns-publish", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--federation", default=None, metavar="URL", help=f"Federation API (default {DEFAULT_FEDERATION} or the global --server); '' for --records only.")
@click.option("--primary", required=True, metavar="HOST:PORT", help="The DNS server that takes the updates (port 53 by default).")
@click.option("--zone", "zones", multiple=True, default=("example.com",), show_default=True, help="Zone on the primary to keep in step (repeatable).")
@click.option("--tsig-key", default=None, metavar="FILE|NAME:ALG:SECRET", help="TSIG key: a BIND key file (tsig-keygen) or NAME:ALGORITHM:SECRET.")
@click.option("--records", "records_file", default=None, type=click.Path(exists=True, dir_okay=False), help="Publish DNSRecords from a YAML/JSON file as well.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def dns_publish(ctx, federation, primary, zones, tsig_key, records_file, log_level) -> None:
    """Publish the federation's DNS records to an external primary (RFC 2136 + TSIG)."""
    from fedns.command import _load_records

    setup_logging("dns-publish", log_level)
    if federation is None:
        federation = ((ctx.obj or {}).get("server") if ctx.obj else None) or DEFAULT_FEDERATION
    try:
        target = split_host_port(primary, default_port=53)
        key = load_key(tsig_key) if tsig_key else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    publishers = [Publisher(primary=target, zone=z, key=key) for z in zones]
    records = _load_records(records_file) if records_file else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_publisher(federation=federation or None, publishers=publishers, records=records, stop=stop)

    eventloop.run(main())
