"""``ubernetes dns``: the DNS responder as a command (also ``python -m fedns``).

Only option parsing, logging set-up and signal handling live here; everything else is
:class:`fedns.app.Responder`. It prints ``serving DNS on HOST:PORT (udp+tcp)`` to stderr
once both listeners are bound (with the real port when ``--listen`` asks for port 0),
and stops cleanly with exit code 0 on SIGTERM or Ctrl-C. ``--workers N`` (default: one per
core) runs N responder processes under a supervisor (:mod:`fedns.workers`); 1 is the single
process of :func:`fedns.app.serve`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from pathlib import Path
from typing import Any

import click

from fedns.app import DEFAULT_FEDERATION, DEFAULT_LISTEN, Settings, serve, split_host_port
from fedns.topology import ClientTopology
from apimachinery import eventloop
from apimachinery.logsetup import setup_logging
from apimachinery.transport import InsecureTokenTransport
from fedns.zone import CLUSTERSET


def _load_records(path: str) -> list[dict[str, Any]]:
    """DNSRecord objects, a DNSRecordList, or bare specs, from a YAML or JSON file."""
    import yaml

    specs: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if doc is None:
            continue
        items = doc.get("items", doc) if isinstance(doc, dict) and "items" in doc else doc
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                specs.append(item.get("spec", item))
    return specs


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _run(settings: Settings, workers: int = 1, log_level: str = "info") -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if workers == 1:
            await serve(settings, stop=stop)
        else:  # a supervisor and N worker processes on one address (fedns.workers)
            from fedns.workers import serve_workers

            await serve_workers(settings, workers, stop=stop, log_level=log_level)

    eventloop.run(main())  # uvloop when importable (apimachinery.eventloop)


@click.command("dns", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--federation",
    default=None,
    metavar="URL",
    help=f"Federation API to list and watch DNSRecords from (default {DEFAULT_FEDERATION}, "
    "or the global --server). An empty string serves --records only.",
)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT", help="UDP and TCP address; port 0 picks one.")
@click.option("--domain", default="example.com", show_default=True, help="The federation's DNS domain (a zone we are authoritative for).")
@click.option(
    "--zone",
    "zones",
    multiple=True,
    default=(CLUSTERSET.rstrip("."),),
    show_default=True,
    help="Another zone to serve (repeatable; giving any replaces the default).",
)
@click.option("--negative-ttl", default=5, show_default=True, type=click.IntRange(0, 2**31 - 1), help="SOA minimum: seconds NXDOMAIN and NODATA are cached.")
@click.option("--ns-address", default=None, metavar="IP", help="Address of ns1.<zone> (glue); default the listen address.")
@click.option(
    "--tcp-idle-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a TCP connection may go without a complete query before it is closed (bytes alone do not count).",
)
@click.option("--max-tcp-connections", default=256, show_default=True, type=click.IntRange(min=1), help="Concurrent TCP connections; more are closed at once.")
@click.option("--tcp-max-lifetime", default=120.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds a TCP connection lives at most, busy or not.")
@click.option("--max-tcp-per-client", default=32, show_default=True, type=click.IntRange(min=1), help="Concurrent TCP connections from one client address; more are closed at once.")
@click.option("--status-listen", default=None, metavar="HOST:PORT", help="Serve JSON status at http://HOST:PORT/status and Prometheus metrics at /metrics (off by default).")
@click.option("--records", "records_file", default=None, type=click.Path(exists=True, dir_okay=False), help="Serve DNSRecords from a YAML/JSON file as well (static).")
@click.option(
    "--allow-transfer",
    "allow_transfer",
    multiple=True,
    metavar="CIDR",
    help="Networks that may AXFR/IXFR over TCP (repeatable; default the listen address alone, "
    "127.0.0.1 and ::1 on a wildcard). 'none' turns transfers off.",
)
@click.option("--notify", "notify", multiple=True, metavar="HOST:PORT", help="Secondary to send NOTIFY on every change (repeatable).")
@click.option(
    "--client-topology",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML list of {cidr, region, zone}: answers list the shards nearest the client first.",
)
@click.option("--nearest-only", is_flag=True, help="With --client-topology: answer only the nearest level that has shards.")
@click.option("--token", envvar="UBERNETES_TOKEN", default=None, metavar="TOKEN", help="Bearer token for the federation API (env UBERNETES_TOKEN); a reader's is enough.")
@click.option(
    "--insecure-allow-http-token",
    is_flag=True,
    help="Send the token over plain http to a host that is not loopback (refused without this flag).",
)
@click.option("--certificate-authority", "ca_file", default=None, type=click.Path(exists=True, dir_okay=False), help="CA to verify an HTTPS federation API with.")
@click.option(
    "--identity",
    default=None,
    metavar="TEXT",
    help="Server identity given in NSID (RFC 5001) and id.server./hostname.bind. CH TXT answers "
    "(default: the host name; at most 255 bytes).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    metavar="N",
    help="Responder processes, each with its own SO_REUSEPORT sockets on --listen (default: the "
    "number of cores); 1 is a single process.",
)
@click.option(
    "--udp-io",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "batched", "loop"]),
    help="How UDP is read: batched (recvmmsg/sendmmsg in a thread, Linux), loop (the event loop, "
    "one datagram at a time), or auto (batched where it can run).",
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def dns(
    ctx: click.Context,
    federation: str | None,
    listen: str,
    domain: str,
    zones: tuple[str, ...],
    negative_ttl: int,
    ns_address: str | None,
    tcp_idle_timeout: float,
    max_tcp_connections: int,
    tcp_max_lifetime: float,
    max_tcp_per_client: int,
    status_listen: str | None,
    records_file: str | None,
    allow_transfer: tuple[str, ...],
    notify: tuple[str, ...],
    client_topology: str | None,
    nearest_only: bool,
    log_level: str,
    token: str | None = None,
    ca_file: str | None = None,
    insecure_allow_http_token: bool = False,
    identity: str | None = None,
    workers: int | None = None,
    udp_io: str = "auto",
) -> None:
    """Answer DNS for the federation's services over UDP and TCP."""
    setup_logging("dns", log_level)
    if federation is None:
        federation = ((ctx.obj or {}).get("server") if ctx.obj else None) or DEFAULT_FEDERATION
    try:
        split_host_port(listen, default_port=1053)
        if status_listen:
            split_host_port(status_listen, default_port=0)
        for target in notify:
            split_host_port(target, default_port=53)
        if any(a.lower() == "none" for a in allow_transfer):
            allow = ()
        else:
            allow = tuple(str(ipaddress.ip_network(a, strict=False)) for a in allow_transfer) or None
        topology = ClientTopology.load(client_topology) if client_topology else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if nearest_only and topology is None:
        raise click.UsageError("--nearest-only needs --client-topology")
    settings = Settings(
        federation=federation or None,
        listen=listen,
        domain=domain,
        zones=tuple(z for z in zones if z),
        negative_ttl=negative_ttl,
        ns_address=ns_address,
        tcp_idle_timeout=tcp_idle_timeout,
        max_tcp_connections=max_tcp_connections,
        tcp_max_lifetime=tcp_max_lifetime,
        max_tcp_per_client=max_tcp_per_client,
        status_listen=status_listen,
        records=_load_records(records_file) if records_file else [],
        allow_transfer=allow,
        notify=notify,
        client_topology=topology,
        nearest_only=nearest_only,
        token=token,
        ca_file=ca_file,
        insecure_allow_http_token=insecure_allow_http_token,
        identity=identity,
        udp_io=udp_io,
    )
    try:
        settings.server_identity()
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--identity") from None
    try:
        settings.zone_config()
    except ValueError as err:
        raise click.UsageError(f"invalid zone settings: {err}") from None
    try:
        settings.token_warning()  # refused here, before binding; the responder logs the warning
    except InsecureTokenTransport as err:
        raise click.UsageError(str(err)) from None
    if workers is None:
        workers = default_workers()
    try:
        _run(settings, workers, log_level)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {listen}: {err.strerror or err}") from None
    except KeyboardInterrupt:
        pass
