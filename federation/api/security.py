"""Flag handling shared by every process that serves or calls an API with tokens or TLS.

The federation API server, the member clusters, the DNS responder and the CLI all take
the same kind of flags (``--token-file``, ``--tls-cert-file``/``--tls-private-key-file``,
``--certificate-authority``, ``--token``/``UBERNETES_TOKEN``); this module turns them into
parsed tokens and SSL contexts with one readable error each, so no command repeats it.
The rules themselves live in :mod:`federation.api.auth`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from apimachinery.transport import is_loopback_host
from federation.api.auth import (
    MASTERS, MONITORING, SYSTEM_NAMESPACE, TokenFileError, User, bootstrap_secret, format_token_line, new_bootstrap_token,
    new_token, parse_token_file,
)
from apimachinery.errors import APIError, Conflict

BOOTSTRAP_TTL = timedelta(hours=24)  # as kubeadm's tokens: `up` makes one for its members


def load_tokens(path: str) -> dict[str, User]:
    try:
        tokens = parse_token_file(Path(path).read_text(), source=path)
    except (OSError, UnicodeDecodeError) as err:
        raise click.BadParameter(f"cannot read {path}: {err}", param_hint="--token-file") from None
    except TokenFileError as err:
        raise click.BadParameter(str(err), param_hint="--token-file") from None
    if not tokens:
        raise click.BadParameter(f"{path} holds no token", param_hint="--token-file")
    return tokens


def refuse_open_listen(host: str, *, tokens_configured: bool, insecure: bool, what: str) -> None:
    """An API without tokens serves only loopback, unless ``--insecure`` says it on purpose."""
    if tokens_configured or insecure or is_loopback_host(host):
        return
    raise click.UsageError(
        f"refusing to serve {what} on {host} without authentication: give --token-file, "
        "or --insecure to let anyone who can reach it read and write everything"
    )


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise click.UsageError("give both --tls-cert-file and --tls-private-key-file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as err:
        raise click.BadParameter(f"cannot load {cert} / {key}: {err}", param_hint="--tls-cert-file") from None
    return context


def client_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """A context that trusts ``ca_file`` (None: the system's CAs, aiohttp's default)."""
    if not ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as err:
        raise click.BadParameter(f"cannot load {ca_file}: {err}", param_hint="--certificate-authority") from None


# ---------------------------------------------------------------------------- a local federation's tokens


@dataclass(frozen=True)
class LocalCredentials:
    """What ``ubernetes up`` (LocalFederation with auth on) hands out: an admin token, a reader
    token for the DNS responder, a bootstrap token for the clusters, the files holding them,
    and a token of group ``system:monitoring`` for a Prometheus scraping ``/metrics`` (issue 17)."""

    admin: str
    reader: str
    bootstrap: str
    token_file: Path          # the federation API's --token-file
    member_token_file: Path   # the member clusters' --token-file (the admin's token)
    monitoring: str = ""      # may GET the federation's /metrics and nothing more than a reader


def make_local_credentials(directory: Path) -> LocalCredentials:
    directory.mkdir(parents=True, exist_ok=True)
    admin, reader, bootstrap, monitoring = new_token(), new_token(), new_bootstrap_token(), new_token()
    token_file = directory / "tokens.csv"
    token_file.write_text("\n".join([
        format_token_line(admin, "admin", "admin", [MASTERS]),
        format_token_line(reader, "system:fedns", "fedns", ["system:dns-readers"]),
        format_token_line(monitoring, "system:prometheus", "prometheus", [MONITORING]),
    ]) + "\n")
    member_file = directory / "member-tokens.csv"
    member_file.write_text(format_token_line(admin, "admin", "admin", [MASTERS]) + "\n")
    for path in (token_file, member_file):
        path.chmod(0o600)
    return LocalCredentials(admin, reader, bootstrap, token_file, member_file, monitoring)


async def publish_bootstrap_token(api: Any, token: str, *, ttl: timedelta = BOOTSTRAP_TTL,
                                  description: str = "ubernetes up: its own members join with it") -> None:
    """Store ``token`` as a bootstrap-token Secret that expires after ``ttl`` (issue 19: not a
    static token-file line that never does). ``api``: an admin's APIClient. Idempotent."""
    expiration = (datetime.now(timezone.utc) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = bootstrap_secret(token, expiration=expiration, description=description)
    try:
        await api.post(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets", secret)
    except APIError as err:
        if not isinstance(err, Conflict):
            raise
