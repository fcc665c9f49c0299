"""``ubernetes token create``: a bootstrap token a new member cluster joins with (issue 8).

As ``kubeadm token create``: the token (``[a-z0-9]{6}.[a-z0-9]{16}``) is stored as a v1 Secret
``federation-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token`` and
printed once. Creating Secrets needs an admin (group ``system:masters``). A cluster given
it (``ubernetes cluster --bootstrap-token TOKEN``) joins and asks for a credential of its own.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import click

from federation.api.auth import BOOTSTRAP_USAGES, SYSTEM_NAMESPACE, bootstrap_secret, new_bootstrap_token
from federation.cli.kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from apimachinery.errors import APIError

DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_ttl(text: str) -> timedelta | None:
    """``24h``, ``30m``, ``7d``; ``0`` means the token never expires."""
    if text.strip() == "0":
        return None
    match = DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: expected a duration such as 30m, 24h or 7d (0: never expires)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


@click.group("token")
def token() -> None:
    """Bootstrap tokens for member clusters to join with."""


@token.command("create")
@server_option
@click.option("--ttl", default="24h", show_default=True, help="How long the token is valid (0: forever).")
@click.option("--description", default="", help="Stored with the token.")
@click.option("--usages", default="signing,authentication", show_default=True,
              help="What the token may be used for, as kubeadm's (authentication: joining).")
@click.option("--single-use", is_flag=True, help="The token is deleted once it has got a cluster its first credential.")
@click.pass_context
def create(ctx: click.Context, server: str | None, ttl: str, description: str, usages: str, single_use: bool) -> None:
    """Create a bootstrap token and print it."""
    lifetime = parse_ttl(ttl)
    wanted = {u.strip() for u in usages.split(",") if u.strip()}
    if not wanted <= BOOTSTRAP_USAGES:
        raise click.BadParameter(f"unknown usage(s) {', '.join(sorted(wanted - BOOTSTRAP_USAGES))}; "
                                 f"known: {', '.join(sorted(BOOTSTRAP_USAGES))}", param_hint="--usages")
    value = new_bootstrap_token()
    expiration = None
    if lifetime is not None:
        expiration = (datetime.now(timezone.utc) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
    api = resolve_server(ctx, server)
    try:
        api.post(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets",
                 bootstrap_secret(value, expiration=expiration, description=description, usages=wanted,
                                  single_use=single_use))
    except ConnectionFailed as err:
        fail(str(err))
    except APIError as err:
        fail(server_error(err))
    click.echo(value)
