"""``ubernetes approve`` and ``ubernetes deny``: an admin's say on a cluster that joined (issue 19).

A cluster that joined with a bootstrap token is not trusted with federated objects or
DNS until approved (federation/approval.py). As ``kubectl certificate approve`` does for a
CSR, these read the Cluster and PUT it back to its ``approval`` subresource with an
``Approved`` condition; only ``system:masters`` may.
"""

from __future__ import annotations

import click

from federation.api import approval
from federation.cli.kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from federation.resources import CLUSTERS
from apimachinery.errors import APIError


def _decide(ctx: click.Context, server: str | None, names: tuple[str, ...], approved: bool, message: str) -> None:
    api = resolve_server(ctx, server)
    reason = approval.ADMIN_REASON if approved else approval.DENIED_REASON
    for name in names:
        path = f"{CLUSTERS.base_path()}/{name}"
        try:
            cluster = api.get(path)
            cluster = approval.with_condition(cluster, approval.make_condition(approved, reason, message))
            api.request("PUT", f"{path}/approval", body=cluster)
        except ConnectionFailed as err:
            fail(str(err))
        except APIError as err:
            fail(server_error(err))
        click.echo(f"cluster.federation/{name} {'approved' if approved else 'denied'}")


@click.command("approve")
@server_option
@click.argument("names", nargs=-1, required=True)
@click.option("--message", default="approved by an admin (ubernetes approve)", show_default=True)
@click.pass_context
def approve(ctx: click.Context, server: str | None, names: tuple[str, ...], message: str) -> None:
    """Trust joined clusters NAMES with federated objects and DNS."""
    _decide(ctx, server, names, True, message)


@click.command("deny")
@server_option
@click.argument("names", nargs=-1, required=True)
@click.option("--message", default="denied by an admin (ubernetes deny)", show_default=True)
@click.pass_context
def deny(ctx: click.Context, server: str | None, names: tuple[str, ...], message: str) -> None:
    """Withdraw trust from clusters NAMES: no federated objects, no DNS."""
    _decide(ctx, server, names, False, message)


COMMANDS = [approve, deny]
