"""``ubernetes chaos ...``: faults on demand against a running federation (issue 5).

Two kinds of fault, two places that can cause them:

- a member's own switches (partition, blackhole, latency, dropped probes, unready pods, and
  heal) are flipped on the member's ``/chaos`` API; the member is found through the
  federation's Cluster object (``--server``), or given with ``--cluster-url``;
- faults that need the process table (crash and start, flap, a whole zone or region down,
  stopping the federation API, healing all of it) go to the launcher's fault API that
  ``ubernetes up`` serves (``--launcher``, default ``127.0.0.1:8079`` over HTTPS with the admin token; see
  ``federation/launcher_control.py``).

Every command prints the resulting state as JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from apimachinery import eventloop
from apimachinery.client import APIClient
from federation.controllers.members import server_address
from apimachinery.errors import APIError

DEFAULT_LAUNCHER = "127.0.0.1:8079"


def _run(coro: Any) -> None:
    try:
        result = eventloop.run(coro)
    except APIError as err:
        raise click.ClickException(f"{err.code} {err.message}") from None
    except (OSError, asyncio.TimeoutError) as err:
        raise click.ClickException(f"cannot reach the server: {err}") from None
    click.echo(json.dumps(result, indent=2, sort_keys=True))


async def _member_url(ctx: click.Context, cluster: str) -> str:
    if ctx.obj.get("cluster_url"):
        return ctx.obj["cluster_url"]
    server = _server(ctx)
    async with APIClient(server.urls, timeout=3.0, token=server.token, ca_file=server.ca_file) as api:
        obj = await api.get(f"/apis/federation/v1beta1/clusters/{cluster}")
    url = server_address(obj)
    if url is None:
        raise click.ClickException(f"cluster {cluster} has no server address in spec.serverAddressByClientCIDRs")
    return url


def _server(ctx: click.Context) -> Any:
    """The federation as the other commands resolve it: address, token and CA (--token,
    UBERNETES_TOKEN or the kubeconfig's); `ubernetes up` gives its members the admin's token
    and its demo CA too, so the same ones open their /chaos (issue 8)."""
    from federation.cli.kubectl import resolve_server

    return resolve_server(ctx, None)


async def _switch(ctx: click.Context, cluster: str, patch: dict[str, Any] | None) -> Any:
    server = _server(ctx)
    async with APIClient(await _member_url(ctx, cluster), timeout=3.0, token=server.token,
                         ca_file=server.ca_file) as member:
        if patch is None:
            return await member.delete("/chaos")
        if not patch:
            return await member.get("/chaos")
        return await member.post("/chaos", patch)


def launcher_address(given: str | None, federation_url: str) -> str:
    """The fault API's URL: ``--launcher`` when given, else the local default with the
    federation's scheme (``ubernetes up`` serves both over HTTPS when tokens are on); a
    ``HOST:PORT`` without a scheme takes the federation's too."""
    scheme = "https" if federation_url.startswith("https://") else "http"
    if given:
        return given.rstrip("/") if "://" in given else f"{scheme}://{given.rstrip('/')}"
    return f"{scheme}://{DEFAULT_LAUNCHER}"


async def _launcher(ctx: click.Context, action: str, body: dict[str, Any] | None = None) -> Any:
    server = _server(ctx)
    url = launcher_address(ctx.obj["launcher"], server.url)
    # The admin's token opens the fault API (issue 19); it never goes over plain HTTP.
    token = server.token if url.startswith("https://") else None
    async with APIClient(url, timeout=30.0, token=token, ca_file=server.ca_file) as launcher:
        if action == "show":
            return await launcher.get("/faults")
        return await launcher.post(f"/faults/{action}", body or {})


@click.group("chaos")
@click.option("--launcher", envvar="UBERNETES_LAUNCHER", default=None,
              help=f"The launcher's fault API (served by `ubernetes up`; default {DEFAULT_LAUNCHER} over the "
                   "federation's scheme).")
@click.option("--cluster-url", default=None, help="Talk to this member API directly instead of looking it up.")
@click.pass_context
def chaos(ctx: click.Context, launcher: str, cluster_url: str | None) -> None:
    """Break and heal members, zones, regions and the control plane (docs/failover.md)."""
    ctx.ensure_object(dict)
    ctx.obj.update(launcher=launcher, cluster_url=cluster_url)


@chaos.command("show")
@click.argument("cluster", required=False)
@click.pass_context
def show(ctx: click.Context, cluster: str | None) -> None:
    """A member's switches, or (without CLUSTER) the launcher's view of every process."""
    _run(_switch(ctx, cluster, {}) if cluster else _launcher(ctx, "show"))


@chaos.command("partition")
@click.argument("cluster")
@click.pass_context
def partition(ctx: click.Context, cluster: str) -> None:
    """Cut CLUSTER off from the control plane only (its LBs keep serving): split brain."""
    _run(_switch(ctx, cluster, {"partitioned": True}))


@chaos.command("blackhole")
@click.argument("cluster")
@click.pass_context
def blackhole(ctx: click.Context, cluster: str) -> None:
    """Black-hole CLUSTER's data plane (LBs accept and never answer); its API stays healthy."""
    _run(_switch(ctx, cluster, {"dataPlaneBlackholed": True}))


@chaos.command("latency")
@click.argument("cluster")
@click.argument("seconds", type=click.FloatRange(0, 600))
@click.pass_context
def latency(ctx: click.Context, cluster: str, seconds: float) -> None:
    """Add SECONDS before every API response of CLUSTER (0 heals)."""
    _run(_switch(ctx, cluster, {"apiLatency": seconds}))


@chaos.command("drop-probes")
@click.argument("cluster")
@click.argument("fraction", type=click.FloatRange(0, 1))
@click.pass_context
def drop_probes(ctx: click.Context, cluster: str, fraction: float) -> None:
    """Drop FRACTION of the /healthz probes CLUSTER receives (0 heals)."""
    _run(_switch(ctx, cluster, {"probeDropFraction": fraction}))


@chaos.command("degrade")
@click.argument("cluster")
@click.argument("service", metavar="NAMESPACE/SERVICE")
@click.option("--pods", default="all", show_default=True, help="How many pods to make unready, or 'all'; 0 heals.")
@click.pass_context
def degrade(ctx: click.Context, cluster: str, service: str, pods: str) -> None:
    """Make some or all of SERVICE's pods in CLUSTER unready."""
    count: Any = pods if pods == "all" else int(pods)
    _run(_switch(ctx, cluster, {"unreadyPods": {service: count or None}}))


@chaos.command("heal")
@click.argument("cluster", required=False)
@click.pass_context
def heal(ctx: click.Context, cluster: str | None) -> None:
    """Heal CLUSTER's switches; without CLUSTER, ask the launcher to heal everything it broke."""
    _run(_switch(ctx, cluster, None) if cluster else _launcher(ctx, "heal"))


@chaos.command("crash")
@click.argument("clusters", nargs=-1, required=True)
@click.pass_context
def crash(ctx: click.Context, clusters: tuple[str, ...]) -> None:
    """SIGKILL member CLUSTERS (the launcher does it)."""
    _run(_launcher(ctx, "crash", {"clusters": list(clusters)}))


@chaos.command("start")
@click.argument("clusters", nargs=-1, required=True)
@click.pass_context
def start(ctx: click.Context, clusters: tuple[str, ...]) -> None:
    """Start crashed member CLUSTERS again; they rejoin by themselves."""
    _run(_launcher(ctx, "start", {"clusters": list(clusters)}))


@chaos.command("flap")
@click.argument("cluster")
@click.option("--period", type=click.FloatRange(0.1), default=5.0, show_default=True, help="Seconds down, then seconds up.")
@click.pass_context
def flap(ctx: click.Context, cluster: str, period: float) -> None:
    """Crash and restart CLUSTER every PERIOD seconds until `chaos heal`."""
    _run(_launcher(ctx, "flap", {"cluster": cluster, "period": period}))


@chaos.command("zone-down")
@click.argument("zone")
@click.pass_context
def zone_down(ctx: click.Context, zone: str) -> None:
    """SIGKILL every member with a node in ZONE."""
    _run(_launcher(ctx, "crash", {"zone": zone}))


@chaos.command("region-down")
@click.argument("region")
@click.pass_context
def region_down(ctx: click.Context, region: str) -> None:
    """SIGKILL every member in REGION."""
    _run(_launcher(ctx, "crash", {"region": region}))


@chaos.command("stop-api")
@click.pass_context
def stop_api(ctx: click.Context) -> None:
    """SIGKILL the federation API server; the DNS responder keeps its last records."""
    _run(_launcher(ctx, "stop-api"))


@chaos.command("start-api")
@click.pass_context
def start_api(ctx: click.Context) -> None:
    """Start the federation API server again on its store."""
    _run(_launcher(ctx, "start-api"))


# --- the HA control plane (issue 13, `ubernetes up --ha`) -------------------------------------

def _indexed(verb: str, doc: str) -> None:
    """``chaos VERB N``: one launcher action on API server or etcd member N (0-based)."""

    @click.argument("index", type=click.IntRange(0))
    @click.pass_context
    def command(ctx: click.Context, index: int) -> None:
        _run(_launcher(ctx, verb, {"index": index}))

    command.__doc__ = doc
    chaos.command(verb)(command)


_indexed("kill-apiserver", "SIGKILL API server INDEX (0-based, as `chaos show` lists them).")
_indexed("start-apiserver", "Start API server INDEX again on the shared etcd.")
_indexed("kill-etcd", "SIGKILL etcd member INDEX: one of three keeps writes going, two stop them.")
_indexed("start-etcd", "Start etcd member INDEX again; it catches up from its peers.")
_indexed("partition-etcd", "Cut API server INDEX off from every etcd member (its packets held, "
         "not refused): a leader steps down.")
_indexed("heal-etcd", "Reconnect API server INDEX to etcd.")


@chaos.command("kill-leader")
@click.pass_context
def kill_leader(ctx: click.Context) -> None:
    """SIGKILL the API server whose controllers lead (the holder of their Lease)."""
    _run(_launcher(ctx, "kill-leader"))
