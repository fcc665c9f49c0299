"""``ubernetes cluster``: run one simulated member cluster as its own process.

This module only parses flags and wires the parts together (state, controller, data plane,
API, agent); it holds no logic of its own beyond the start and stop order. Stopping (SIGTERM
or Ctrl-C) stops the agent first (and unjoins if asked), then the control loop, the LB
listeners and the API, and exits 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
import zlib
from dataclasses import dataclass

import click
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from clusters.agent import Agent
from clusters.api import make_app
from clusters.chaos import Chaos
from clusters.controller import Controller
from clusters.dataplane import DataPlane
from clusters.state import AddressPool, ClusterState, Topology
from federation.meta import check_dns_label

log = logging.getLogger("ubernetes.cluster")


@dataclass
class Options:
    name: str
    region: str
    zones: list[str]
    provider: str
    host: str
    port: int
    lb_pool: str
    federation: str | None
    federation_name: str
    nodes_per_zone: int
    pods_per_service: int
    pod_ready_delay: float
    lease_period: float
    lease_duration: int
    unjoin_on_exit: bool
    advertise: str | None
    pod_cidr: str


def default_lb_pool(name: str) -> str:
    """A /24 of 127.0.0.0/8 derived from the cluster name (pass --lb-pool to choose)."""
    h = zlib.crc32(name.encode())
    return f"127.{h % 200 + 20}.{(h >> 8) % 250 + 1}.0/24"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:9101")
    return host.strip("[]") or "0.0.0.0", int(port)


def _dns_label(ctx: click.Context, param: click.Parameter, value: str) -> str:
    problem = check_dns_label(value)
    if problem:
        raise click.BadParameter(f"{value!r}: {problem}")
    return value


def _zones(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    zones = [z.strip() for z in value.split(",") if z.strip()]
    if not zones:
        raise click.BadParameter("give at least one zone, e.g. us-east-1a or us-east-1a,us-east-1b")
    for z in zones:
        problem = check_dns_label(z)
        if problem:
            raise click.BadParameter(f"zone {z!r}: {problem}")
    if len(set(zones)) != len(zones):
        raise click.BadParameter("a zone is listed twice")
    return zones


def _cidr(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command("cluster")
@click.option("--name", required=True, callback=_dns_label, help="Cluster name (a DNS-1123 label), e.g. aws-us-east-1a.")
@click.option("--region", required=True, callback=_dns_label, help="Region of every node, e.g. us-east-1.")
@click.option("--zones", required=True, callback=_zones, help="Comma-separated zones, e.g. us-east-1a,us-east-1b.")
@click.option("--provider", default="onprem", show_default=True, help="Cloud provider name: aws, gcp, azure, onprem, ...")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT of this cluster's API (port 0: any free port).")
@click.option("--lb-pool", callback=_cidr, default=None, help="CIDR of load-balancer addresses [default: a /24 of 127/8 derived from the name].")
@click.option("--federation", default=None, help="Federation API URL to join, e.g. http://127.0.0.1:8080 (omit to run standalone).")
@click.option("--federation-name", default="myfed", show_default=True, help="Name of the federation this cluster joins.")
@click.option("--nodes-per-zone", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--pods-per-service", type=click.IntRange(0, 1000), default=2, show_default=True, help="Pods per service unless its annotation ubernetes.io/pods says otherwise.")
@click.option("--pod-ready-delay", type=click.FloatRange(0, 3600), default=0.5, show_default=True, help="Seconds before a new pod is Ready.")
@click.option("--lease-period", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True, help="Seconds between lease renewals.")
@click.option("--lease-duration", type=click.IntRange(1, 3600), default=5, show_default=True, help="Lease duration in seconds.")
@click.option("--unjoin-on-exit", is_flag=True, help="Delete the Cluster and its Lease from the federation on a clean shutdown.")
@click.option("--advertise", default=None, help="API URL to put in the Cluster object [default: http://<listen>].")
@click.option("--pod-cidr", callback=_cidr, default=None, help="CIDR of pod IPs (/16 or larger) [default: 10.<n>.0.0/16 derived from the name].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def cluster(listen: str, log_level: str, lb_pool: str | None, pod_cidr: str | None, **kw: object) -> None:
    """Run one simulated member cluster: its API, nodes, pods, LB data plane, and join agent."""
    host, port = parse_listen(listen)
    name = str(kw["name"])
    opts = Options(
        host=host,
        port=port,
        lb_pool=lb_pool or default_lb_pool(name),
        pod_cidr=pod_cidr or "",
        **kw,  # type: ignore[arg-type]
    )
    setup_logging(name, log_level)
    try:
        asyncio.run(serve(opts))
    except OSError as err:  # the API port could not be bound: say so plainly
        log.error("cannot start: %s", err)
        sys.exit(1)


def setup_logging(name: str, level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper()),
        format=f"%(asctime)s.%(msecs)03d cluster/{name} %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_MalformedRequestFilter())


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs a garbage request as an ERROR with a traceback; one WARNING line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            first = (str(exc.message).strip().splitlines() or [""])[0]
            record.msg, record.args = "rejected a malformed HTTP request: %s %s", (exc.code, first)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


async def serve(opts: Options) -> None:
    topology = Topology(
        name=opts.name,
        region=opts.region,
        zones=opts.zones,
        provider=opts.provider,
        nodes_per_zone=opts.nodes_per_zone,
        pods_per_service=opts.pods_per_service,
        pod_ready_delay=opts.pod_ready_delay,
        pod_cidr=opts.pod_cidr,
    )
    chaos = Chaos()
    state = ClusterState(topology)
    dataplane = DataPlane(state=state, chaos=chaos, federation_name=opts.federation_name)
    controller = Controller(state=state, dataplane=dataplane, chaos=chaos, lb_pool=AddressPool(opts.lb_pool))
    state.on_change = controller.poke
    app = make_app(state=state, chaos=chaos, on_chaos=controller.poke, lb_pool=opts.lb_pool)

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, opts.host, opts.port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    port = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else opts.port  # type: ignore[union-attr]
    shown_host = f"[{opts.host}]" if ":" in opts.host else opts.host
    api_url = f"http://{shown_host}:{port}"
    advertise = opts.advertise or api_url
    log.info(
        "cluster %s (provider %s, region %s, zones %s, %d node(s)) API listening on %s, LB pool %s",
        opts.name,
        opts.provider,
        opts.region,
        ",".join(opts.zones),
        len(state.nodes),
        api_url,
        opts.lb_pool,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(controller.run(), name="controller")]
    agent = None
    if opts.federation:
        agent = Agent(
            federation=opts.federation,
            name=opts.name,
            provider=opts.provider,
            region=opts.region,
            advertise=advertise,
            federation_name=opts.federation_name,
            lease_period=opts.lease_period,
            lease_duration=opts.lease_duration,
            chaos=chaos,
        )
        agent_task = asyncio.create_task(agent.run(), name="agent")
        tasks.append(agent_task)
        log.info("joining federation %s (%s), advertising %s", opts.federation_name, opts.federation, advertise)
    else:
        log.info("no --federation given: running standalone")

    await stop.wait()
    log.info("stopping")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if agent is not None:
        if opts.unjoin_on_exit:
            await agent.unjoin()
        await agent.close()
    await dataplane.close()
    await runner.cleanup()
    log.info("stopped")
