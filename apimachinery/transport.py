"""The one rule for where a bearer token may travel (issue 19).

A bearer token sent over plain HTTP can be read by anyone on the path, and kubectl never
does it. Every client of ours (a member's agent joining, the DNS responder reading the
federation, the CLI, the controllers reaching members) applies this rule before its first
request:

- over ``https://`` a token goes anywhere;
- over ``http://`` to a loopback host (127.0.0.0/8, ::1, ``localhost``) it goes, with a loud
  warning once per process: the local demo without TLS (``ubernetes up --no-tls``) and the
  tests use it, and the bytes never leave the machine;
- over ``http://`` to any other host it is refused with :class:`InsecureTokenTransport`,
  unless the caller passes ``allow_http=True`` (a process's ``--insecure-allow-http-token``).
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

log = logging.getLogger("ubernetes.transport")
_warned: set[str] = set()


class InsecureTokenTransport(ValueError):
    """A bearer token would cross plain HTTP to another machine."""


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def check_token_transport(url: str, token: str | None, *, allow_http: bool = False) -> None:
    """Refuse (raise) or warn when ``token`` would go to ``url`` over plain HTTP."""
    if not token:
        return
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    if is_loopback_host(host) or allow_http:
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in _warned:
            _warned.add(origin)
            log.warning("WARNING: sending a bearer token over plain HTTP to %s; use https", origin)
        return
    raise InsecureTokenTransport(
        f"refusing to send a bearer token over plain HTTP to {parts.scheme}://{parts.netloc}: use an https:// URL "
        "(with --certificate-authority), or pass --insecure-allow-http-token if you accept that risk"
    )
