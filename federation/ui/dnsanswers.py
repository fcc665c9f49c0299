"""What each DNS level answers for a federated Service right now, asked of the real responder.

A browser cannot send DNS queries, so the dashboard asks the API server, which asks the
responder (``--dns-responder HOST:PORT``) exactly as a client would: one A query per name
(zone, region, global per cluster placement, and the clusterset alias; docs/dns.md), and
reports the rcode, the CNAME if the name is one, and the addresses at the end of the chain.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from federation.planners import dnsplan


def level_names(svc: str, ns: str, *, federation: str, domain: str,
                places: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The names a client would ask for ``ns/svc``: one per (zone, region) in ``places``, one
    per region, the global one and the clusterset alias, in that order, without repeats."""
    names: list[dict[str, str]] = []
    for zone, region in sorted(set(places)):
        names.append({"level": "zone", "where": zone, "name": dnsplan.zone_name(svc, ns, federation, zone, region, domain)})
    for region in sorted({r for _, r in places}):
        names.append({"level": "region", "where": region, "name": dnsplan.region_name(svc, ns, federation, region, domain)})
    names.append({"level": "global", "where": "", "name": dnsplan.global_name(svc, ns, federation, domain)})
    names.append({"level": "clusterset", "where": "", "name": dnsplan.clusterset_name(svc, ns)})
    return names


def summarize(response: dns.message.Message) -> dict[str, Any]:
    """A reply as the page shows it: rcode, the first CNAME target and the A addresses."""
    cname, addresses = None, []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and cname is None:
            cname = str(rrset[0].target)
        elif rrset.rdtype == dns.rdatatype.A:
            addresses.extend(sorted(r.address for r in rrset))
    return {"rcode": dns.rcode.to_text(response.rcode()), "cname": cname, "addresses": addresses}


async def ask(name: str, *, host: str, port: int, timeout: float = 1.0) -> dict[str, Any]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        response = await dns.asyncquery.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError) as err:
        return {"rcode": None, "cname": None, "addresses": [], "error": f"no answer from {host}:{port}: {err or 'timeout'}"}
    return summarize(response)


async def answers(names: list[dict[str, str]], *, host: str, port: int) -> list[dict[str, Any]]:
    replies = await asyncio.gather(*(ask(n["name"], host=host, port=port) for n in names))
    return [{**n, **r} for n, r in zip(names, replies)]
