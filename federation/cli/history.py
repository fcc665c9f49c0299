"""``ubernetes history``: the failover history, step by step (issue 17, docs/history.md).

Lists the FailoverRecords the federation keeps, filters them by service, cluster and age,
and prints them oldest first with the latency between the steps of each incident (fault,
first failed probe, votes, verdict, records changed, the responder's serial); ``-o json``
prints the records themselves.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import click

from apimachinery.errors import APIError
from federation import printers
from federation.cli.kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from federation.planners import history as plan
from federation.resources import FAILOVERRECORDS

DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_since(text: str) -> timedelta:
    """``10m``, ``1h30m``, ``45s``, ``90`` (seconds)."""
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    found = DURATION.match(text)
    if not text or not found or not any(found.groups()):
        raise click.BadParameter(f"{text!r} is not a duration such as 10m, 1h or 45s", param_hint="--since")
    h, m, s = (float(g or 0) for g in found.groups())
    return timedelta(hours=h, minutes=m, seconds=s)


def select(records: list[dict], *, service: str | None, cluster: str | None, since: timedelta | None,
           now: datetime) -> list[dict]:
    """The records that match, oldest first. ``service`` is ``ns/name`` or a name in ``default``;
    a service's history keeps the steps of its incidents that name no service (fault, probes, votes)."""
    if service and "/" not in service:
        service = f"default/{service}"
    ordered = plan.in_order(records)
    if service:
        incidents = {(r.get("spec") or {}).get("incident") for r in ordered if (r.get("spec") or {}).get("service") == service}
        ordered = [r for r in ordered if (r.get("spec") or {}).get("incident") in incidents
                   and (r.get("spec") or {}).get("service") in (None, service)]
    if cluster:
        ordered = [r for r in ordered if (r.get("spec") or {}).get("cluster") == cluster]
    if since is not None:
        ordered = [r for r in ordered if (plan.record_time(r) or now) >= now - since]
    return ordered


@click.command("history", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--service", default=None, metavar="NS/NAME", help="Only the incidents that changed this service's records.")
@click.option("--cluster", default=None, help="Only this member cluster's steps.")
@click.option("--since", default=None, metavar="DURATION", help="Only steps newer than this (10m, 1h, 45s).")
@click.option("--output", "-o", type=click.Choice(["json", "wide"]), default=None)
@server_option
@click.pass_context
def history(ctx: click.Context, service: str | None, cluster: str | None, since: str | None, output: str | None,
            server: str | None) -> None:
    """Show the failover history: every change of a cluster's or shard's standing, step by step.

    \\b
    ubernetes history
    ubernetes history --cluster gcp-europe-west1-b --since 10m
    ubernetes history --service default/web -o json
    """
    window = parse_since(since) if since else None
    api = resolve_server(ctx, server)
    try:
        body = api.get(FAILOVERRECORDS.path()) or {}
    except APIError as err:
        fail(server_error(err))
    except ConnectionFailed as err:
        fail(str(err))
    items = [i for i in body.get("items") or [] if isinstance(i, dict)]
    chosen = select(items, service=service, cluster=cluster, since=window, now=datetime.now(timezone.utc))
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                               "items": [{"apiVersion": plan.API_VERSION, "kind": plan.KIND, **r} for r in chosen]},
                              indent=4))
        return
    if not chosen:
        click.echo("No failover records found", err=True)
        return
    click.echo(printers.history_table(chosen, wide=output == "wide"), nl=False)


COMMANDS = [history]
