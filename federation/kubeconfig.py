"""``ubernetes kubeconfig``: a kubeconfig with one context for the federation and one per member.

``kubefed join`` left a context behind for every cluster it joined, so
``kubectl --context <member>`` reached a member and ``kubectl --context <federation>`` the
control plane. This command writes the same contexts from what the federation knows: the
API address it was asked at, and every ``Cluster`` object's address for clients anywhere
(``serverAddressByClientCIDRs`` entry ``0.0.0.0/0``, else the first one).

By default the entries are merged into the kubeconfig kubectl reads (``$KUBECONFIG``'s
first file, else ``~/.kube/config``): entries with the same names are replaced, others
are kept, and the current context becomes the federation's. ``-o -`` prints instead.
With authentication on (issue 8) the federation's user carries the bearer token the
command was given (``--token``), and each member's user the access token the member
published in its ``cluster-access-<name>`` Secret, when the caller may read it (an admin).
:func:`credentials_for` is how the CLI finds a token for a server it was pointed at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import yaml

from federation import printers
from federation.cli_kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from apimachinery.errors import APIError

CLUSTERS_PATH = "/apis/federation/v1beta1/clusters"


def default_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def credentials_for(url: str, path: Path | None = None) -> tuple[str | None, str | None]:
    """(token, certificate-authority file) the kubeconfig holds for the server ``url``: the
    current context's when it points there, else the first context that does."""
    path = path or default_path()
    try:
        config = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError):
        return None, None
    if not isinstance(config, dict):
        return None, None
    want = url.rstrip("/")

    def entries(section: str) -> dict[str, dict[str, Any]]:
        return {e["name"]: e.get(section[:-1]) or {} for e in config.get(section) or []
                if isinstance(e, dict) and isinstance(e.get("name"), str)}

    clusters, users, contexts = entries("clusters"), entries("users"), entries("contexts")
    names = [config.get("current-context")] + list(contexts)
    for name in names:
        context = contexts.get(name) if isinstance(name, str) else None
        if not isinstance(context, dict):
            continue
        cluster = clusters.get(context.get("cluster"), {})
        if not isinstance(cluster, dict) or str(cluster.get("server", "")).rstrip("/") != want:
            continue
        user = users.get(context.get("user"), {})
        token = user.get("token") if isinstance(user, dict) else None
        return (token if isinstance(token, str) and token else None,
                cluster.get("certificate-authority") if isinstance(cluster.get("certificate-authority"), str) else None)
    return None, None


def build(federation_name: str, federation_url: str, clusters: list[dict[str, Any]], *,
          token: str | None = None, member_tokens: dict[str, str] | None = None,
          certificate_authority: str | None = None) -> dict[str, Any]:
    """A kubeconfig (as a dict) with a cluster, a user and a context for the federation and
    for each member cluster, named after them; the federation's is current."""
    entries = [(federation_name, federation_url)]
    tokens = {federation_name: token, **(member_tokens or {})}
    for cluster in sorted(clusters, key=lambda c: (c.get("metadata") or {}).get("name", "")):
        name = (cluster.get("metadata") or {}).get("name")
        address = printers.cluster_api_address(cluster)
        if not name or address == printers.NONE:
            continue
        if "://" not in address:
            address = "http://" + address
        entries.append((name, address))
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": url, **(
            {"certificate-authority": certificate_authority} if certificate_authority and url.startswith("https://") else {}
        )}} for n, url in entries],
        "users": [{"name": n, "user": {"token": tokens[n]} if tokens.get(n) else {}} for n, _ in entries],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n, "namespace": "default"}} for n, _ in entries],
        "current-context": federation_name,
    }


def member_tokens(api: Any, clusters: list[dict[str, Any]]) -> dict[str, str]:
    """Each member's access token from its access Secret, where we may read it."""
    from federation.auth import secret_value
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


def merge(existing: dict[str, Any] | None, new: dict[str, Any], *, set_current: bool) -> dict[str, Any]:
    """``new``'s entries replace same-named ones in ``existing``; the rest of ``existing`` stays."""
    if not isinstance(existing, dict) or not existing:
        merged = dict(new)
        if not set_current:
            merged.pop("current-context", None)
        return merged
    merged = dict(existing)
    for section in ("clusters", "users", "contexts"):
        names = {e["name"] for e in new[section]}
        kept = [e for e in existing.get(section) or [] if isinstance(e, dict) and e.get("name") not in names]
        merged[section] = kept + new[section]
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    if set_current or not merged.get("current-context"):
        merged["current-context"] = new["current-context"]
    return merged


def unmerge(existing: dict[str, Any] | None, added: dict[str, Any]) -> dict[str, Any] | None:
    """``existing`` without the entries ``added`` put there, where they are still as added
    (another writer may have replaced one since); the current context goes with its entry."""
    if not isinstance(existing, dict):
        return existing
    out = dict(existing)
    for section in ("clusters", "users", "contexts"):
        ours = [e for e in added.get(section) or []]
        out[section] = [e for e in existing.get(section) or [] if e not in ours]
    names = {e.get("name") for e in out.get("contexts") or [] if isinstance(e, dict)}
    if out.get("current-context") and out["current-context"] not in names:
        out.pop("current-context")
    return out


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
    config = build(federation_name, api.url, listed.get("items") or [], token=api.token,
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
