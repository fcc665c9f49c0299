#!/usr/bin/env python3
"""Container healthchecks for compose.yaml, in the image as ``ubernetes-healthcheck``.

The image has no curl or dig, and a healthcheck should test what users rely on rather than
that a process exists, so:

    ubernetes-healthcheck http URL             a 2xx from URL (a /healthz)
    ubernetes-healthcheck dns HOST:PORT ZONE   an authoritative NOERROR SOA answer over UDP
    ubernetes-healthcheck fresh FILE SECONDS   FILE was touched within SECONDS (the client)

Exit 0 when healthy, 1 with one line on stderr saying why not.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request


def check_http(url: str) -> str | None:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2) as resp:
        return None if 200 <= resp.status < 300 else f"{url}: HTTP {resp.status}"


def check_dns(server: str, zone: str) -> str | None:
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode

    host, _, port = server.rpartition(":")
    response = dns.query.udp(dns.message.make_query(zone, "SOA"), host, port=int(port), timeout=2)
    if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA or not response.answer:
        return f"{server}: SOA {zone} answered {dns.rcode.to_text(response.rcode())} without an authoritative answer"
    return None


def check_fresh(path: str, seconds: str) -> str | None:
    age = time.time() - os.stat(path).st_mtime
    return None if age <= float(seconds) else f"{path} last touched {age:.0f} s ago"


CHECKS = {"http": check_http, "dns": check_dns, "fresh": check_fresh}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]](*argv[1:])
    except Exception as err:  # any failure to check is an unhealthy answer, said in one line
        problem = f"{type(err).__name__}: {err}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
