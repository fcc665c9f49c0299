"""``ubernetes cluster``: run one simulated member cluster as its own process.

This module only parses flags and wires the parts together (state, controller, data plane,
API, agent); it holds no logic of its own beyond the start and stop order. Stopping (SIGTERM
or Ctrl-C) stops the agent first (and unjoins if asked), then the control loop, the LB
listeners and the API, and exits 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import logging
import signal
import socket
import sys
import urllib.parse
import zlib
from pathlib import Path
from dataclasses import dataclass

import click
from aiohttp import web

from apimachinery import eventloop, flags, server
from apimachinery.flags import REQUIRED, flag
from apimachinery.logsetup import setup_logging
from apimachinery.metrics import REGISTRY_KEY
from apimachinery.serving import start_site
from apimachinery.transport import InsecureTokenTransport, warn_token_transport
from clusters.agent import Agent
from clusters.api import make_app
from clusters.chaos import Chaos
from clusters.controller import Controller
from clusters.dataplane import DataPlane
from clusters.podstreams import container_exit as _container_exit
from clusters.prober import MemberProber
from clusters.workloads import WorkloadSettings
from clusters.state import AddressPool, ClusterState, SharedAddress, Topology
from federation.names import DEFAULT_SERVER, PODS_ANNOTATION
from federation.mcsapi import CLUSTERSET_PROPERTY
from apimachinery.meta import check_dns_label

log = logging.getLogger("ubernetes.cluster")


def default_lb_pool(name: str) -> str:
    """A /24 of 127.0.0.0/8 derived from the cluster name (pass --lb-pool to choose)."""
    h = zlib.crc32(name.encode())
    return f"127.{h % 200 + 20}.{(h >> 8) % 250 + 1}.0/24"


def own_address(federation: str | None) -> str:
    """The address other hosts reach this one at, for ``--lb-address auto``.

    The source address of the route toward the federation (a UDP connect sends no packet),
    else the address the host name resolves to: on a compose network both are the
    container's own address.
    """
    target = urllib.parse.urlsplit(federation.split(",")[0]).hostname if federation else None
    if target:
        try:
            family, kind, _, _, sockaddr = socket.getaddrinfo(target, 9, type=socket.SOCK_DGRAM)[0]
            with socket.socket(family, kind) as probe:
                probe.connect(sockaddr)
                return str(probe.getsockname()[0])
        except OSError:
            pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError as err:
        raise click.UsageError(f"--lb-address auto: cannot find this host's address ({err}); give an IP") from None


def _lb_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "auto":
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected an IP address or 'auto'") from None


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
    if not value:
        return value
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@dataclass
class Options:
    """One member cluster's settings: each flag's default and help are written here once
    (``ubernetes cluster`` derives its flags, ``cluster-host`` builds these for many clusters,
    docs/architecture.md carries the table: apimachinery.flags)."""

    host: str = "127.0.0.1"  # from --listen
    port: int = 0
    name: str = flag(REQUIRED, "Cluster name (a DNS-1123 label), e.g. aws-us-east-1a.", callback=_dns_label, required=True)
    region: str = flag(REQUIRED, "Region of every node, e.g. us-east-1.", callback=_dns_label, required=True)
    zones: list[str] = flag(REQUIRED, "Comma-separated zones, e.g. us-east-1a,us-east-1b.", callback=_zones, required=True)
    provider: str = flag("onprem", "Cloud provider name: aws, gcp, azure, onprem, ...")
    lb_pool: str = flag(None, "CIDR of load-balancer addresses [default: a /24 of 127/8 derived from the name].",
                        callback=_cidr)
    lb_address: str | None = flag(None, "One address every LoadBalancer service shares, told apart by port, instead of "
                                        "--lb-pool; 'auto': this host's own address (a container's, on its compose "
                                        "network).", callback=_lb_address, metavar="IP|auto")
    federation: str | None = flag(None, f"Federation API URL to join, e.g. {DEFAULT_SERVER}; several API servers "
                                  "comma-separated, tried in turn (omit to run standalone).")
    federation_name: str = flag("myfed", "Name of the federation this cluster joins.")
    nodes_per_zone: int = flag(1, "Simulated nodes in each zone.", type=click.IntRange(1, 100))
    pods_per_service: int = flag(2, f"Pods per service unless its annotation {PODS_ANNOTATION} says otherwise.",
                                 type=click.IntRange(0, 1000))
    pod_ready_delay: float = flag(0.5, "Seconds before a new pod is Ready.", type=click.FloatRange(0, 3600))
    lease_period: float = flag(1.0, "Seconds between lease renewals.", type=click.FloatRange(0.05, 3600))
    lease_duration: int = flag(5, "Lease duration in seconds.", type=click.IntRange(1, 3600))
    unjoin_on_exit: bool = flag(False, "Delete the Cluster and its Lease from the federation on a clean shutdown.")
    advertise: str | None = flag(None, "API URL to put in the Cluster object [default: http://<listen>].")
    pod_cidr: str = flag("", "CIDR of pod IPs (/16 or larger) [default: 10.<n>.0.0/16 derived from the name].",
                         callback=_cidr, show_default=False)
    # issue 8: tokens and TLS
    bootstrap_token: str | None = flag(None, "Join with this bootstrap token (env UBERNETES_BOOTSTRAP_TOKEN); turns on "
                                             "tokens for this cluster's API too.",
                                       envvar="UBERNETES_BOOTSTRAP_TOKEN", metavar="TOKEN")
    token_file: str | None = flag(None, 'Tokens (token,user,uid,"groups" per line) that may use this cluster\'s API '
                                        "and /chaos.", type=click.Path(exists=True, dir_okay=False))
    tls_cert_file: str | None = flag(None, "Serve the API over HTTPS with this certificate.",
                                     type=click.Path(exists=True, dir_okay=False))
    tls_private_key_file: str | None = flag(None, "Private key of --tls-cert-file.",
                                            type=click.Path(exists=True, dir_okay=False))
    certificate_authority: str | None = flag(None, "CA to verify an HTTPS federation API with.",
                                             type=click.Path(exists=True, dir_okay=False))
    credential_file: str | None = flag(None, "Keep the credential the bootstrap token got in this file (0600), so a "
                                             "restart can rejoin: a bootstrap token gets only a cluster's first "
                                             "credential.", type=click.Path(dir_okay=False))  # issue 19
    insecure_allow_http_token: bool = flag(False, "Send the bootstrap token and credential to an http:// federation "
                                                  "on another host (refused otherwise).")  # issue 19
    seccomp_profile_root: str = flag("", "Seccomp profiles of this cluster's simulated nodes (the kubelet's "
                                         "--seccomp-profile-root, /var/lib/kubelet/seccomp on a real node): "
                                         "localhost/<file> annotations name files here (issue 14, docs/pods.md).",
                                     type=click.Path(file_okay=False), show_default=False)
    workload: WorkloadSettings | None = None  # from --workload


@click.command("cluster")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT of this cluster's API (port 0: any free port).")
@flags.click_options(Options)
@click.option("--workload", "workload", multiple=True, metavar="KEY=SECONDS", help="A workload timing (issue 7, docs/workloads.md), e.g. backoff=0.5; repeatable.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def cluster(listen: str, log_level: str, workload: tuple[str, ...], **kw: object) -> None:
    """Run one simulated member cluster: its API, nodes, pods, LB data plane, and join agent."""
    values = flags.take(Options, kw)
    host, port = parse_listen(listen)
    try:
        parsed = WorkloadSettings.parse(workload or ())
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--workload") from None
    name = str(values["name"])
    lb_pool, lb_address = values.pop("lb_pool"), values.pop("lb_address")
    if lb_address and lb_pool:
        raise click.UsageError("give --lb-pool or --lb-address, not both")
    if lb_address == "auto":
        lb_address = own_address(values.get("federation"))  # type: ignore[arg-type]
    opts = Options(
        host=host,
        port=port,
        lb_pool=lb_pool or (str(SharedAddress(lb_address).network) if lb_address else default_lb_pool(name)),
        lb_address=lb_address,
        workload=parsed,
        **{**values, "pod_cidr": values.get("pod_cidr") or ""},  # type: ignore[arg-type]
    )
    setup_logging(f"cluster/{name}", log_level)
    if opts.federation:
        try:  # issue 19: refuse before the first request, not in the join loop
            warn_token_transport(opts.federation, opts.bootstrap_token or (opts.credential_file and "saved"),
                                  allow_http=opts.insecure_allow_http_token)
        except InsecureTokenTransport as err:
            raise click.ClickException(str(err)) from None
    try:
        eventloop.run(serve(opts))
    except OSError as err:  # the API port could not be bound: say so plainly
        log.error("cannot start: %s", err)
        sys.exit(1)


@dataclass
class Running:
    """One started cluster: what :func:`stop_cluster` needs to stop it (clusters/host.py runs several)."""

    opts: Options
    api_url: str
    runner: web.AppRunner
    controller: Controller
    dataplane: DataPlane
    prober: MemberProber
    tasks: list[asyncio.Task[None]]
    agent: Agent | None = None


async def serve(opts: Options) -> None:
    running = await start_cluster(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    await stop_cluster(running)
    log.info("stopped")


def _member_tokens(opts: Options) -> tuple[set[str] | None, str | None]:
    """(tokens this API accepts or None for open, the access token to publish or None)."""
    from federation.api.auth import new_token
    from federation.api.security import load_tokens

    tokens = set(load_tokens(opts.token_file)) if opts.token_file else None
    if opts.bootstrap_token and tokens is None:
        tokens = set()
    access = new_token() if tokens is not None and opts.federation else None
    if access is not None:
        tokens.add(access)  # type: ignore[union-attr]
    return tokens, access


async def start_cluster(opts: Options) -> Running:
    from clusters.access import access_middleware
    from federation.api.security import client_ssl_context, server_ssl_context

    tokens, access_token = _member_tokens(opts)
    ssl_context = server_ssl_context(opts.tls_cert_file, opts.tls_private_key_file)
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
    state.workloads.settings = opts.workload or WorkloadSettings()
    state.workloads.run_container = functools.partial(_container_exit, root=opts.seccomp_profile_root)
    if opts.seccomp_profile_root:  # the node has the profiles that are files there (issue 14)
        root = Path(opts.seccomp_profile_root)
        found = tuple(sorted(p.name for p in root.iterdir() if p.is_file())) if root.is_dir() else ()
        state.workloads.settings = dataclasses.replace(state.workloads.settings, seccomp_profiles=found)
    state.mcs.set_property(CLUSTERSET_PROPERTY, opts.federation_name)  # KEP-2149 (issue 14)
    dataplane = DataPlane(state=state, chaos=chaos, federation_name=opts.federation_name)
    controller = Controller(state=state, dataplane=dataplane, chaos=chaos, lb_pool=SharedAddress(opts.lb_address) if opts.lb_address else AddressPool(opts.lb_pool))
    state.on_change = controller.poke
    app = make_app(state=state, chaos=chaos, on_chaos=controller.poke, lb_pool=opts.lb_pool,
                   seccomp_root=opts.seccomp_profile_root)
    prober = MemberProber(opts.name)  # data-plane votes for the federation (issue 5)
    prober.install(app)
    if tokens is not None:  # issue 8: after chaos (a partition drops everything), before the handlers
        app.middlewares.insert(app.middlewares.index(server.status_middleware), access_middleware(tokens))

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = await start_site(runner, opts.host, opts.port, ssl_context=ssl_context)  # handshake and header deadlines
    except OSError:
        await runner.cleanup()
        raise
    port = site.port
    shown_host = f"[{opts.host}]" if ":" in opts.host else opts.host
    api_url = f"{'https' if ssl_context else 'http'}://{shown_host}:{port}"
    advertise = opts.advertise or api_url
    log.info(
        "cluster %s (provider %s, region %s, zones %s, %d node(s)) API listening on %s, LB %s",
        opts.name,
        opts.provider,
        opts.region,
        ",".join(opts.zones),
        len(state.nodes),
        api_url,
        f"address {opts.lb_address} (shared)" if opts.lb_address else f"pool {opts.lb_pool}",
    )
    if tokens is not None:
        log.info("API and /chaos need a bearer token (%d accepted)", len(tokens))

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
            bootstrap_token=opts.bootstrap_token,
            access_token=access_token,
            ssl_context=client_ssl_context(opts.certificate_authority),
            credential_file=Path(opts.credential_file) if opts.credential_file else None,
            allow_http_token=opts.insecure_allow_http_token,
            metrics_registry=app[REGISTRY_KEY],  # lease renewal latency on this cluster's /metrics
        )
        agent_task = asyncio.create_task(agent.run(), name="agent")
        tasks.append(agent_task)
        log.info("joining federation %s (%s), advertising %s", opts.federation_name, opts.federation, advertise)
    else:
        log.info("no --federation given: running standalone")
    return Running(opts=opts, api_url=api_url, runner=runner, controller=controller, dataplane=dataplane,
                   prober=prober, tasks=tasks, agent=agent)


async def stop_cluster(running: Running) -> None:
    for task in running.tasks:
        task.cancel()
    await asyncio.gather(*running.tasks, return_exceptions=True)
    if running.agent is not None:
        if running.opts.unjoin_on_exit:
            await running.agent.unjoin()
        await running.agent.close()
    await running.prober.close()
    await running.dataplane.close()
    await running.controller.mcs.close()
    await running.runner.cleanup()
