"""The member's ingress controller: every Ingress gets the cluster's ingress address (issue 15).

A real cluster's ingress controller (ingress-nginx behind a cloud load balancer, or on the
nodes' host ports as kind runs it) writes the address clients reach it at into each
Ingress's ``status.loadBalancer.ingress``. The simulated member has no HTTP router; it
writes the address of its first node (the one a host-port controller would listen on), so
``kubectl get ingress`` shows an ADDRESS and the federation can aggregate them. Pure: a
pass over the table; True when a status changed.
"""

from __future__ import annotations

from typing import Any, Callable

Object = dict[str, Any]


def ingress_address(nodes: dict[str, Object]) -> str | None:
    for name in sorted(nodes):
        for address in (nodes[name].get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return address.get("address")
    return None


def sync_ingress_status(ingresses: dict[tuple[str, str], Object], nodes: dict[str, Object],
                        touch: Callable[[Object], None]) -> bool:
    address = ingress_address(nodes)
    wanted = {"loadBalancer": {"ingress": [{"ip": address}]} if address else {}}
    changed = False
    for ing in ingresses.values():
        if ing.get("status") != wanted:
            ing["status"] = wanted
            touch(ing)
            changed = True
    return changed
