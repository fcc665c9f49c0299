"""``ubernetes kubeconfig``: write kubectl contexts for the federation and every member.

The file model (build, merge, where a token for a server is found) lives in
:mod:`federation.kubeconfig`, which the CLI's server resolution reads too; this module is
only the command, so the two do not import each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from apimachinery.errors import APIError
from federation.cli.kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from federation.kubeconfig import CLUSTERS_PATH, build, default_path, merge


def member_tokens(api: Any, clusters: list[dict[str, Any]]) -> dict[str, str]:
    """Each member's access token from its access Secret, where we may read it."""
    from federation.api.auth import secret_value
    from federation.controllers.members import access_secret

    found: dict[str, str] = {}
    for cluster in clusters:
        ref = access_secret(cluster)
        name = (cluster.get("metadata") or {}).get("name")
        if ref is None or not name:
            continue
        try:
            token = secret_value(api.get(f"/api/v1/namespaces/{ref[0]}/secrets/{ref[1]}"), "token")
        except (APIError, ConnectionFailed):
            continue
        if token:
            found[name] = token
    return found


@click.command("kubeconfig")
@server_option
@click.option("--federation-name", default="myfed", show_default=True, help="Name of the federation's context.")
@click.option("--kubeconfig", "-o", "output", default=None, metavar="FILE",
              help="Kubeconfig to merge into ('-' prints it; default $KUBECONFIG or ~/.kube/config).")
@click.option("--set-current/--no-set-current", default=True, show_default=True,
              help="Make the federation's context the current one.")
@click.option("--token", "user_token", default=None, metavar="TOKEN",
              help="Bearer token to write for the federation's user [default: the token this command used].")
@click.pass_context
def kubeconfig(ctx: click.Context, server: str | None, federation_name: str, output: str | None,
               set_current: bool, user_token: str | None = None) -> None:
    """Write kubectl contexts for the federation and every member cluster."""
    api = resolve_server(ctx, server)
    if user_token:
        api.token = user_token
    try:
        listed = api.get(CLUSTERS_PATH) or {}
    except ConnectionFailed as err:
        fail(str(err))
    except APIError as err:
        fail(server_error(err))
    config = build(federation_name, api.urls, listed.get("items") or [], token=api.token,
                   member_tokens=member_tokens(api, listed.get("items") or []))
    if output == "-":
        click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)
        return
    path = Path(output) if output else default_path()
    existing = None
    if path.exists():
        try:
            existing = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            fail(f"error: {path} is not a valid kubeconfig: {str(err).splitlines()[0]}")
    merged = merge(existing, config, set_current=set_current)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    path.chmod(0o600)
    names = [c["name"] for c in config["contexts"]]
    click.echo(f"Wrote {len(names)} context{'s' if len(names) != 1 else ''} to {path}: {', '.join(names)}")
    if set_current:
        click.echo(f'Current context is "{federation_name}".')
