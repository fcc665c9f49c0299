"""Kubeconfig files: one context for the federation and one per member (``ubernetes kubeconfig``
is the command in :mod:`federation.cli.kubeconfig_command`; this module only builds and reads files).

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

Several API servers (issue 13, ``up --ha``): a kubeconfig cluster has one ``server``, which
kubectl uses, so the federation's entry names the first and lists every one in an extension
(``ubernetes.io/servers``; kubectl keeps extensions and ignores them). :func:`servers_for`
is how the CLI, pointed at the first, learns all of them and moves on when one fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from federation import printers

CLUSTERS_PATH = "/apis/federation/v1beta1/clusters"
SERVERS_EXTENSION = "ubernetes.io/servers"


def default_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def _entry_for(url: str, path: Path | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(cluster, user) of the kubeconfig's context for the server ``url``: the current
    context's when it points there, else the first context that does."""
    path = path or default_path()
    try:
        config = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
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
        return cluster, user if isinstance(user, dict) else {}
    return None


def credentials_for(url: str, path: Path | None = None) -> tuple[str | None, str | None]:
    """(token, certificate-authority file) the kubeconfig holds for the server ``url``."""
    found = _entry_for(url, path)
    if found is None:
        return None, None
    cluster, user = found
    token = user.get("token")
    return (token if isinstance(token, str) and token else None,
            cluster.get("certificate-authority") if isinstance(cluster.get("certificate-authority"), str) else None)


def servers_for(url: str, path: Path | None = None) -> list[str]:
    """Every API server of the federation whose kubeconfig entry names ``url`` (its
    ``ubernetes.io/servers`` extension, ``url`` first), or just ``url``."""
    found = _entry_for(url, path)
    for ext in (found[0].get("extensions") or []) if found else []:
        if isinstance(ext, dict) and ext.get("name") == SERVERS_EXTENSION:
            servers = (ext.get("extension") or {}).get("servers") or []
            servers = [str(s).rstrip("/") for s in servers if isinstance(s, str) and s.strip()]
            if url.rstrip("/") in servers:
                i = servers.index(url.rstrip("/"))
                return servers[i:] + servers[:i]
    return [url]


def build(federation_name: str, federation_url: str, clusters: list[dict[str, Any]], *,
          token: str | None = None, member_tokens: dict[str, str] | None = None,
          certificate_authority: str | None = None) -> dict[str, Any]:
    """A kubeconfig (as a dict) with a cluster, a user and a context for the federation and
    for each member cluster, named after them; the federation's is current.
    ``federation_url`` may name several API servers, comma-separated: the entry's ``server``
    is the first, the ``ubernetes.io/servers`` extension lists them all."""
    from apimachinery.client import split_endpoints

    federation_urls = split_endpoints(federation_url)
    entries = [(federation_name, federation_urls[0])]
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
        ), **({"extensions": [{"name": SERVERS_EXTENSION, "extension": {"servers": federation_urls}}]}
              if n == federation_name and len(federation_urls) > 1 else {})}} for n, url in entries],
        "users": [{"name": n, "user": {"token": tokens[n]} if tokens.get(n) else {}} for n, _ in entries],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n, "namespace": "default"}} for n, _ in entries],
        "current-context": federation_name,
    }


def merge(existing: dict[str, Any] | None, new: dict[str, Any], *, set_current: bool) -> dict[str, Any]:
    """``new``'s entries replace same-named ones in ``existing``; the rest of ``existing`` stays."""
    if not isinstance(existing, dict) or not existing:
        return dict(new)  # a new file: its only context is the current one (nothing to keep)
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
