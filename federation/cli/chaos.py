"""``ubernetes chaos ...``: faults on demand against a running federation (issue 5).

Two kinds of fault, two places that can cause them:

- a member's own switches (partition, blackhole, latency, dropped probes, unready pods, and
  heal) are flipped on the member's ``/chaos`` API; the member is found through the
  federation's Cluster object (``--server``), or given with ``--cluster-url``;
- faults that need the process table (crash and start, flap, a whole zone or region down,
  stopping the federation API, healing all of it) go to the launcher's fault API that
  ``ubernetes up`` serves (``--launcher``, default ``127.0.0.1:8079`` over HTTPS with the admin token; see
  ``federation/launcher_control.py``).

In netns mode (``ubernetes up --netns``, issue 16) the network faults are real: the
launcher's fault API says ``"mode": "netns"``, and ``partition``, ``blackhole``,
``latency``, ``flap`` and ``heal`` go there to become packet-level faults (iptables DROP
rules, links down, our delaying relay), beside the verbs only that mode has: ``loss``,
``link-down`` and ``slow-dns``. Without a launcher in that mode the member's switches are
used, as before.

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


def duration(text: str) -> float:
    """``100ms``, ``0.5s`` or a bare number of seconds, in seconds."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1000
        return float(t[:-1] if t.endswith("s") else t)
    except ValueError:
        raise click.BadParameter(f"{text!r}: a duration such as 100ms, 0.5s or 0.5 (seconds)") from None


async def _mode(ctx: click.Context) -> str:
    """``netns`` when the launcher runs ``up --netns`` (its fault API says so), else ``app``."""
    if ctx.obj.get("cluster_url"):  # a member named directly: its own switches
        return "app"
    if "mode" not in ctx.obj:
        try:
            ctx.obj["mode"] = (await _launcher(ctx, "show")).get("mode", "app")
        except (APIError, OSError, asyncio.TimeoutError, click.ClickException):
            ctx.obj["mode"] = "app"
    return ctx.obj["mode"]


async def _netns_only(ctx: click.Context, verb: str, body: dict[str, Any]) -> Any:
    if await _mode(ctx) != "netns":
        raise click.ClickException(f"chaos {verb} is a packet-level fault: it needs a launcher started with "
                                   "`ubernetes up --netns` (as root); see docs/netns.md")
    return await _launcher(ctx, verb, body)


async def _either(ctx: click.Context, verb: str, body: dict[str, Any], cluster: str, patch: dict[str, Any] | None,
                  *, app_refuses: str | None = None) -> Any:
    """A packet-level fault in netns mode, else the member's own switch ``patch``."""
    if await _mode(ctx) == "netns":
        return await _launcher(ctx, verb, body)
    if app_refuses:
        raise click.ClickException(f"{app_refuses} needs `ubernetes up --netns` (packet-level faults)")
    return await _switch(ctx, cluster, patch)


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


DIRECTION = click.option("--direction", type=click.Choice(["both", "in", "out"]), default="both", show_default=True,
                         help="netns mode: in = toward the member, out = from it.")


@chaos.command("partition")
@click.argument("cluster")
@DIRECTION
@click.pass_context
def partition(ctx: click.Context, cluster: str, direction: str) -> None:
    """Cut CLUSTER off from the control plane only (its LBs keep serving): split brain."""
    _run(_either(ctx, "partition", {"cluster": cluster, "direction": direction}, cluster, {"partitioned": True},
                 app_refuses="a one-way partition" if direction != "both" else None))


@chaos.command("blackhole")
@click.argument("cluster")
@click.pass_context
def blackhole(ctx: click.Context, cluster: str) -> None:
    """Black-hole CLUSTER's data plane (LBs accept and never answer; netns: TCP to its LB pool dropped)."""
    _run(_either(ctx, "blackhole", {"cluster": cluster}, cluster, {"dataPlaneBlackholed": True}))


@chaos.command("latency")
@click.argument("cluster")
@click.argument("delay")
@click.argument("jitter", required=False)
@click.pass_context
def latency(ctx: click.Context, cluster: str, delay: str, jitter: str | None) -> None:
    """Add DELAY (100ms, 0.5s; a bare number is seconds) to CLUSTER: before every API response,
    or in netns mode to every round trip into its namespace, each drawn from DELAY +- JITTER."""
    seconds, spread = duration(delay), duration(jitter) if jitter else 0.0
    if not 0 <= seconds <= 600:
        raise click.BadParameter(f"{delay}: between 0 and 600 s", param_hint="DELAY")
    _run(_either(ctx, "latency", {"cluster": cluster, "ms": seconds * 1000, "jitterMs": spread * 1000}, cluster,
                 {"apiLatency": seconds}, app_refuses="jitter" if jitter else None))


@chaos.command("loss")
@click.argument("cluster")
@click.argument("percent", type=click.FloatRange(0, 100, min_open=True))
@DIRECTION
@click.pass_context
def loss(ctx: click.Context, cluster: str, percent: float, direction: str) -> None:
    """Drop PERCENT % of CLUSTER's packets at random (netns mode)."""
    _run(_netns_only(ctx, "loss", {"cluster": cluster, "percent": percent, "direction": direction}))


@chaos.command("link-down")
@click.argument("cluster", required=False)
@click.option("--zone", default=None, help="Every member with a node in ZONE.")
@click.option("--region", default=None, help="Every member in REGION.")
@click.pass_context
def link_down(ctx: click.Context, cluster: str | None, zone: str | None, region: str | None) -> None:
    """Take CLUSTER's link (or a zone's, a region's) down (netns mode); `chaos heal` brings it up."""
    if [cluster, zone, region].count(None) != 2:
        raise click.UsageError("give one of CLUSTER, --zone or --region")
    _run(_netns_only(ctx, "link-down", {"cluster": cluster, "zone": zone, "region": region}))


@chaos.command("slow-dns")
@click.argument("delay")
@click.argument("jitter", required=False)
@click.pass_context
def slow_dns(ctx: click.Context, delay: str, jitter: str | None) -> None:
    """Delay the DNS responder's answers by DELAY +- JITTER (netns mode)."""
    ms = duration(delay) * 1000
    _run(_netns_only(ctx, "slow-dns", {"ms": ms, "jitterMs": duration(jitter) * 1000 if jitter else 0.0}))


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
    """Heal CLUSTER's switches (netns: its packet faults); without CLUSTER, ask the launcher to heal
    everything it broke."""
    _run(_either(ctx, "heal", {"clusters": [cluster]}, cluster, None) if cluster else _launcher(ctx, "heal"))


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
    """Crash and restart CLUSTER every PERIOD seconds until `chaos heal` (netns: its link down and up)."""
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
