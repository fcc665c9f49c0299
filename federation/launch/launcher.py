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
from typing import Any

import click

from apimachinery import eventloop
from federation.planners import dnsplan
from federation.launch.localfed import LocalFederation
from federation.launch.topology import DEFAULT, Topology, TopologyError, parse_topology

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


def summary(fed: LocalFederation, kubeconfig_note: str = "", netns_lines: list[str] | None = None,
            client_netns: str | None = None) -> str:
    topo = fed.topology
    domain = topo.domain.strip(".")
    lines = [
        "",
        f"Federation {topo.federation!r} is up (domain {domain}).",
        *([f"  federation API   {fed.api_url}"] if len(fed.api_ports) == 1 else
          [f"  API server {i}     {fed.replica_url(i)}" for i in range(len(fed.api_ports))]),
        *([f"  etcd             {', '.join(m.endpoint for m in fed.etcd.members)} (data in {fed.etcd.run_dir})"]
          if fed.etcd is not None else []),
        f"  DNS responder    {fed.dns_host}:{fed.dns_port} (UDP and TCP)",
        f"  dashboard        {fed.ui_url} (log in with the admin token; docs/dashboard.md)",
        *([f"  reports          {fed.apiserver_args[fed.apiserver_args.index('--reports-dir') + 1]} (the dashboard's report viewer)"]
          if "--reports-dir" in fed.apiserver_args else []),
    ]
    for spec in topo.clusters:
        lines.append(
            f"  cluster {spec.name:<22} {fed.cluster_url(spec.name)}  {spec.provider} {spec.region} "
            f"{','.join(spec.zones)}  LB pool {spec.lb_pool}"
        )
    if fed.credentials is not None:
        lines.append(f"  tokens           {fed.credentials.token_file} (admin, DNS reader, bootstrap)")
    if kubeconfig_note:
        lines.append(f"  kubeconfig       {kubeconfig_note}")
    lines.extend(netns_lines or [])
    lines.append("")
    lines.append("Try:")
    lines.append(f"  ubernetes --server {fed.api_urls} get clusters")
    lines.append(f"  ubernetes --server {fed.api_urls} get services -A")
    if len(fed.api_ports) > 1:
        lines.append(f"  ubernetes --server {fed.api_urls} get leases -n federation-system")
        lines.append("  ubernetes chaos kill-leader        # a standby leads within the lease duration")
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
        lines.append(f"  dig @{fed.dns_host} -p {fed.dns_port} +short {gname}")
        lines.append(f"  dig @{fed.dns_host} -p {fed.dns_port} +short {rname}")
        lines.append(f"  dig @{fed.dns_host} -p {fed.dns_port} {zname}")
        lines.append(
            f"  curl -s http://$(dig @{fed.dns_host} -p {fed.dns_port} +short {gname} | head -1):{port}/"
        )
        if client_netns:  # a client namespace resolves through its Unbound (glibc: getaddrinfo)
            lines.append(f"  ip netns exec {client_netns} getent ahostsv4 {gname.rstrip('.')}")
            lines.append(f"  ip netns exec {client_netns} curl -s http://{gname.rstrip('.')}:{port}/")
            lines.append(f"  ubernetes chaos partition {first.name}      # its packets to and from the API dropped")
        break
    lines.append("")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def write_kubeconfig(fed: LocalFederation, target: str | None, workdir: Path) -> tuple[str, Any]:
    """Issue 8: the admin token goes into a kubeconfig in the temp dir and, as ``kubefed init``
    did, is merged into the user's kubeconfig (``target``; "" skips), so ``ubernetes get ...``
    and kubectl find it for this server. Returns the line the summary prints and a function
    that takes the merged entries out again when the federation stops: their CA file lives
    in the temporary directory, and kubectl refuses a kubeconfig naming a missing file."""
    import yaml

    from federation import kubeconfig as kc

    if fed.credentials is None:
        return "", lambda: None
    admin = fed.credentials.admin
    clusters = [{"metadata": {"name": c.name}, "spec": {"serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": fed.cluster_url(c.name)}]}} for c in fed.topology.clusters]
    config = kc.build(fed.topology.federation, fed.api_urls, clusters, token=admin,
                      member_tokens={c.name: admin for c in fed.topology.clusters},
                      certificate_authority=fed.ca_file)
    own = workdir / "kubeconfig"
    own.write_text(yaml.safe_dump(config, sort_keys=False))
    own.chmod(0o600)
    if not target:
        return f"{own} (admin token; KUBECONFIG={own} or --token)", lambda: None
    path = Path(target)

    def take_back() -> None:
        try:
            current = yaml.safe_load(path.read_text()) if path.exists() else None
            path.write_text(yaml.safe_dump(kc.unmerge(current, config), sort_keys=False))
        except (OSError, yaml.YAMLError) as err:
            click.echo(f"warning: could not take the federation's entries out of {path}: {err}", err=True)

    try:
        existing = yaml.safe_load(path.read_text()) if path.exists() else None
        merged = kc.merge(existing, config, set_current=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
        path.chmod(0o600)
    except (OSError, yaml.YAMLError) as err:
        click.echo(f"warning: could not merge the admin token into {path}: {err}", err=True)
        return f"{own} (admin token; KUBECONFIG={own} or --token)", lambda: None
    return f"{path} (context {fed.topology.federation}, admin token, until up stops; also {own})", take_back


async def run_up(fed: LocalFederation, *, ready_timeout: float, control: tuple[str, int] | None = None,
                 kubeconfig: str | None = None, workdir: Path | None = None, netns_run: Any = None,
                 resolver_options: dict[str, str] | None = None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    control_runner = None
    note, take_back = "", lambda: None
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
        packet, netns_lines = None, []
        if netns_run is not None:  # issue 16: resolvers in the client namespaces, packet-level chaos
            from federation.launch.netnsrun import PacketFaults

            packet = PacketFaults(netns_run, dns_port=fed.dns_port)
            said = netns_run.start_resolvers(workdir=workdir or Path(tempfile.mkdtemp(prefix="ubernetes-")),
                                             dns_port=fed.dns_port, domain=fed.topology.domain,
                                             options=resolver_options)
            netns_lines = netns_run.describe() + [f"  resolver         {line}" for line in said]
        if control is not None:  # the fault API for `ubernetes chaos` (issue 5)
            from federation.launch.control import control_url, start_control

            try:
                also = (netns_run.plan.host_address,) if netns_run is not None else ()
                control_runner = await start_control(fed, *control, packet=packet, also=also)
                click.echo(f"Launcher fault API on {control_url(fed, *control)}/faults (ubernetes chaos; admin token).")
            except OSError as err:
                click.echo(f"warning: no launcher fault API on {control[0]}:{control[1]}: {err.strerror or err}", err=True)
        if workdir is not None:
            note, take_back = write_kubeconfig(fed, kubeconfig, workdir)
        click.echo(summary(fed, note, netns_lines,
                           netns_run.plan.clients[0].netns if netns_run is not None else None))
        click.echo(f"(started in {time.monotonic() - started:.1f}s)")
        await stop.wait()
        click.echo("stopping every process...", err=True)
        return 0
    except (TimeoutError, RuntimeError) as err:
        click.echo(f"error: {err}", err=True)
        return 1
    finally:
        if control_runner is not None:
            await control_runner.cleanup()
        await fed.stop()  # the namespaces go after (up's own finally: also when this never ran)
        take_back()


@click.command("up")
@click.option("-f", "--file", "topology_file", type=click.Path(exists=True, dir_okay=False), help="Topology YAML.")
@click.option("--api-port", type=int, default=8080, show_default=True)
@click.option("--dns-port", type=int, default=1053, show_default=True)
@click.option("--cluster-base-port", type=int, default=9101, show_default=True,
              help="Member cluster APIs listen on consecutive ports from here.")
@click.option("--store", default=None, help="SQLite file for the federation (default: a fresh temporary one).")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True)
@click.option("--color/--no-color", default=None, help="Colour the log prefixes (default: when a terminal).")
@click.option("--control-listen", default="127.0.0.1:8079", show_default=True,
              help="HOST:PORT of the launcher's fault API for `ubernetes chaos` ('' turns it off).")
@click.option("--auth/--no-auth", default=True, show_default=True,
              help="Tokens everywhere: an admin, a DNS reader and a bootstrap token for the clusters (docs/security.md).")
@click.option("--kubeconfig", default=None, metavar="FILE",
              help="Kubeconfig to merge the admin token into [default: $KUBECONFIG or ~/.kube/config; '' skips].")
@click.option("--ha", is_flag=True, default=False,
              help="A highly available control plane: three etcd members and three API servers on consecutive "
                   "ports from --api-port, controllers leader-elected (needs Debian's etcd-server).")
@click.option("--reports-dir", default="experiments-out", show_default=True, type=click.Path(file_okay=False),
              help="Experiment reports the dashboard's report viewer opens (`experiment run` writes there by default).")
@click.option("--netns", is_flag=True, default=False,
              help="Real network faults (needs root): every member, the API and the responder in a network namespace "
                   "of its own, clients in client namespaces behind Unbound, chaos as packet-level faults (docs/netns.md).")
@click.option("--clients", type=click.IntRange(1, 50), default=1, show_default=True,
              help="With --netns: how many client namespaces (each with its own Unbound).")
@click.option("--resolver-option", "resolver_options", multiple=True, metavar="KEY=VALUE",
              help="With --netns: an Unbound server option for the clients' resolvers (cache-min-ttl, serve-expired, "
                   "prefetch, ...); repeatable.")
def up(topology_file: str | None, api_port: int, dns_port: int, cluster_base_port: int, store: str | None,
       ready_timeout: float, color: bool | None, control_listen: str, auth: bool = True,
       kubeconfig: str | None = None, ha: bool = False, reports_dir: str = "experiments-out", netns: bool = False,
       clients: int = 1, resolver_options: tuple[str, ...] = ()) -> None:
    """Start a local federation (API, DNS, member clusters) and keep it running."""
    if ha:
        from federation.launch.etcdserver import PACKAGE_HINT, etcd_binary

        if etcd_binary() is None:
            raise click.ClickException(f"--ha needs etcd: {PACKAGE_HINT}")
        if store is not None:
            raise click.UsageError("--ha keeps the federation in the etcd cluster it starts; drop --store")
    topology: Topology = DEFAULT
    if topology_file:
        try:
            topology = parse_topology(Path(topology_file).read_text(), source=topology_file)
        except TopologyError as err:
            raise click.ClickException(str(err)) from None
    netns_run, placement, unbound_options = None, None, None
    if netns:
        from federation.launch.netns import NetnsUnavailable
        from federation.launch.netnsplan import NetnsPlanError
        from federation.launch.netnsrun import NetnsRun
        from federation.launch.unboundconf import ResolverOptionError, parse_options

        if ha:
            raise click.UsageError("--netns runs one API server: drop --ha")
        try:
            unbound_options = parse_options(resolver_options)
            netns_run = NetnsRun.create(topology, clients=clients)
        except (NetnsUnavailable, NetnsPlanError, ResolverOptionError) as err:
            raise click.ClickException(str(err)) from None
        if netns_run.cleaned:
            click.echo(f"cleaned up namespaces a killed launcher left: {', '.join(netns_run.cleaned)}", err=True)
        topology, placement = netns_run.topology(topology), netns_run.placement()
    elif resolver_options:
        raise click.UsageError("--resolver-option needs --netns (the clients' Unbound runs in netns mode)")
    tmp = tempfile.TemporaryDirectory(prefix="ubernetes-")  # store (unless --store), tokens, kubeconfig
    if store is None:
        store = str(Path(tmp.name) / "federation.db")  # unused with --ha: the API servers use etcd
    if kubeconfig is None:
        from federation.kubeconfig import default_path

        kubeconfig = str(default_path())
    width = max([len(c.name) for c in topology.clusters] + [9])
    fed = LocalFederation(
        topology,
        api_port=api_port,
        dns_port=dns_port,
        cluster_ports={c.name: cluster_base_port + i for i, c in enumerate(topology.clusters)},
        store=store,
        log_sink=make_sink(width, sys.stderr.isatty() if color is None else color),
        auth=auth,
        workdir=tmp.name if (auth or ha) else None,
        api_replicas=3 if ha else 1,
        etcd_members=3 if ha else 0,
        apiserver_args=["--reports-dir", str(Path(reports_dir).resolve())] if reports_dir else [],
        placement=placement,
    )
    host, _, port = control_listen.rpartition(":")
    control = (host or "127.0.0.1", int(port)) if control_listen else None
    fed.control = control  # the API server's dashboard sends its fault buttons there
    if netns_run is not None and control is not None:  # from its namespace: the root end of the link
        fed.control = (netns_run.plan.host_address, control[1])
    try:
        code = eventloop.run(run_up(fed, ready_timeout=ready_timeout, control=control, kubeconfig=kubeconfig,
                                  workdir=Path(tmp.name), netns_run=netns_run, resolver_options=unbound_options))
    finally:
        if netns_run is not None:  # also when the federation never started
            netns_run.close()
        if tmp is not None:
            tmp.cleanup()
    sys.exit(code)
