"""The member's cluster DNS names (``cluster.local``), as a pure lookup.

A member has no DNS server of its own on a port (the federation's responder serves the
federated and ``clusterset.local`` names); what a simulated container resolves with
``getent hosts`` or ``nslookup`` (``kubectl exec``, :mod:`clusters.simshell`) is answered
here from the member's Services and Endpoints, by the rules of Kubernetes' DNS
specification:

- ``<svc>.<ns>.svc.cluster.local``: the ClusterIP, or for a headless Service the addresses
  of its ready endpoints;
- ``<hostname>.<svc>.<ns>.svc.cluster.local``: the one ready endpoint with that hostname,
  which is how a StatefulSet's pod gets its own name through its governing Service
  (``web-0.nginx.default.svc.cluster.local``);
- a name with fewer than five dots is tried under the pod's search path first
  (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``), as the
  ``resolv.conf`` the kubelet writes (``ndots:5``) makes a real resolver do.
"""

from __future__ import annotations

from typing import Any, Mapping

DOMAIN = "cluster.local"
NAMESERVER = "10.96.0.10"
Key = tuple[str, str]


def search_path(namespace: str) -> list[str]:
    return [f"{namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]


def resolv_conf(namespace: str) -> str:
    return f"search {' '.join(search_path(namespace))}\nnameserver {NAMESERVER}\noptions ndots:5\n"


def pod_fqdn(pod: Mapping[str, Any]) -> str:
    """``<hostname>.<subdomain>.<ns>.svc.cluster.local`` for a pod with both set, else ''."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    if spec.get("hostname") and spec.get("subdomain"):
        return f"{spec['hostname']}.{spec['subdomain']}.{meta.get('namespace', 'default')}.svc.{DOMAIN}"
    return ""


def _answer(fqdn: str, services: Mapping[Key, Any], endpoints: Mapping[Key, Any]) -> list[str]:
    suffix = f".svc.{DOMAIN}"
    if not fqdn.endswith(suffix):
        return []
    labels = fqdn[: -len(suffix)].split(".")
    if len(labels) not in (2, 3):
        return []
    host, (svc, ns) = (labels[0] if len(labels) == 3 else None), labels[-2:]
    service = services.get((ns, svc))
    if service is None:
        return []
    addresses = [a for s in (endpoints.get((ns, svc)) or {}).get("subsets") or [] for a in s.get("addresses") or []]
    if host is not None:
        return [a["ip"] for a in addresses if a.get("hostname") == host]
    ip = (service.get("spec") or {}).get("clusterIP")
    if ip and ip != "None":
        return [ip]
    return [a["ip"] for a in addresses]


def lookup(name: str, *, namespace: str, services: Mapping[Key, Any], endpoints: Mapping[Key, Any]) -> tuple[str, list[str]]:
    """(the name that answered, its addresses); ``(name, [])`` when nothing does."""
    name = name.rstrip(".").lower()
    tries = [] if name.count(".") >= 5 else [f"{name}.{s}" for s in search_path(namespace)]
    for fqdn in [*tries, name]:
        found = _answer(fqdn, services, endpoints)
        if found:
            return fqdn, found
    return name, []
