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


def _origin(url: str) -> tuple[str, str, str]:
    """(scheme, host, scheme://netloc) of ``url``; no scheme means http, as the CLI reads it."""
    try:
        parts = urlsplit(url.strip() if "://" in url else "http://" + url.strip())
        return parts.scheme.lower(), parts.hostname or "", f"{parts.scheme.lower()}://{parts.netloc}"
    except ValueError:  # a malformed [v6] part: no host we could call loopback
        return "http", "", repr(url)


def check_token_transport(url: str | None, token: str | None, *, allow_http: bool = False) -> str | None:
    """Pure: None when there is nothing to say, a warning when the token goes over plain
    HTTP anyway, :class:`InsecureTokenTransport` when it must not go at all. Several
    comma-separated servers (issue 13) are each held to it."""
    if not url or not token:
        return None
    if "," in url:
        said = [check_token_transport(one, token, allow_http=allow_http) for one in url.split(",") if one.strip()]
        return next((warning for warning in said if warning), None)
    scheme, host, origin = _origin(url)
    if scheme == "https":
        return None
    if is_loopback_host(host):
        return (f"INSECURE: a bearer token goes over plain HTTP to {origin} (loopback, so allowed); serve the "
                "API over https and give --certificate-authority to keep it encrypted")
    if allow_http:
        return (f"INSECURE: a bearer token goes over plain HTTP to {origin} (--insecure-allow-http-token): "
                "anyone on the path can read it and use it")
    raise InsecureTokenTransport(
        f"refusing to send a bearer token over plain HTTP to {origin}: anyone on the path could read it. "
        "Use an https:// URL (with --certificate-authority), or --insecure-allow-http-token to send it anyway"
    )


def warn_token_transport(url: str | None, token: str | None, *, allow_http: bool = False) -> None:
    """:func:`check_token_transport`, logging its warning once per origin in this process."""
    if url and "," in url:
        for one in url.split(","):
            warn_token_transport(one.strip(), token, allow_http=allow_http)
        return
    warning = check_token_transport(url, token, allow_http=allow_http)
    if warning is not None and url is not None:
        origin = _origin(url)[2]
        if origin not in _warned:
            _warned.add(origin)
            log.warning("%s", warning)
