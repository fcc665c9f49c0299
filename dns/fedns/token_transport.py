"""Whether the responder may send its bearer token to the federation URL it was given.

The responder reads DNSRecords with a reader's bearer token (``--token`` or
``UBERNETES_TOKEN``). Over plain http anyone on the path reads that token off the wire
and can then read everything a reader may, so (docs/security.md, "DNS responder"):

- https, or no token: nothing to say;
- http to a loopback host (127.0.0.0/8, ::1, ``localhost``): allowed, the bytes never
  leave the host, but with a loud warning;
- http to any other host: refused before any connection is made, unless
  ``--insecure-allow-http-token`` says it on purpose (then still the warning).

Pure: the command asks it before binding anything, and :class:`fedns.app.Responder`
asks it again on start so an in-process responder obeys the same rule.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from federation.security import is_loopback


class TokenOverHTTP(ValueError):
    """The token would go over plain http to a host that is not this one."""


def check_token_transport(url: str | None, token: str | None, *, allow_http: bool = False) -> str | None:
    """None when there is nothing to say; a warning when the token goes over plain http
    anyway; raises :class:`TokenOverHTTP` when it must not be sent at all."""
    if not url or not token:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), parts.hostname or ""
    except ValueError:  # a malformed [v6] part: no host we could call loopback
        scheme, host = "", ""
    if scheme == "https":
        return None
    if is_loopback(host):
        return (
            f"INSECURE: the federation API token is sent over plain http to {host} (loopback, so "
            "allowed); serve the API over https and give --certificate-authority to keep it encrypted"
        )
    if allow_http:
        return (
            f"INSECURE: the federation API token is sent over plain http to {host or repr(url)} "
            "(--insecure-allow-http-token): anyone on the path can read it and use it"
        )
    raise TokenOverHTTP(
        f"refusing to send the federation API token over plain http to {host or repr(url)}: anyone on "
        "the path could read it. Use an https:// --federation URL (with --certificate-authority), "
        "or --insecure-allow-http-token to send it anyway"
    )
