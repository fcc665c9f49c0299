"""Topologies: which member clusters a local federation has, read from YAML.

```yaml
federation: {name: myfed, domain: example.com}
clusters:
- {name: aws-us-east-1a, provider: aws, region: us-east-1, zones: [us-east-1a], lbPool: 127.10.1.0/24}
services:            # optional: federated objects applied once the federation is up
- {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {...}}
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import yaml

from apimachinery.meta import check_dns_label


class TopologyError(ValueError):
    pass


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    provider: str
    region: str
    zones: tuple[str, ...]
    lb_pool: str
    nodes_per_zone: int = 1
    pods_per_service: int = 2


@dataclass(frozen=True)
class Topology:
    federation: str = "myfed"
    domain: str = "example.com"
    clusters: tuple[ClusterSpec, ...] = ()
    objects: tuple[dict[str, Any], ...] = field(default_factory=tuple)


SAMPLE_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]},
}

DEFAULT = Topology(
    clusters=(
        ClusterSpec("aws-us-east-1a", "aws", "us-east-1", ("us-east-1a",), "127.10.1.0/24"),
        ClusterSpec("aws-us-east-1b", "aws", "us-east-1", ("us-east-1b",), "127.10.2.0/24"),
        ClusterSpec("gcp-europe-west1-b", "gcp", "europe-west1", ("europe-west1-b",), "127.10.3.0/24"),
    ),
    objects=(SAMPLE_SERVICE,),
)


def parse_topology(text: str, *, source: str = "topology") -> Topology:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise TopologyError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise TopologyError(f"{source}: must be a mapping with 'clusters'")
    fed = doc.get("federation") or {}
    clusters = []
    seen: set[str] = set()
    for i, c in enumerate(doc.get("clusters") or []):
        where = f"{source}: clusters[{i}]"
        if not isinstance(c, dict):
            raise TopologyError(f"{where}: must be a mapping")
        name = str(c.get("name", ""))
        if check_dns_label(name):
            raise TopologyError(f"{where}.name: {name!r}: {check_dns_label(name)}")
        if name in seen:
            raise TopologyError(f"{where}.name: duplicate cluster {name!r}")
        seen.add(name)
        zones = c.get("zones") or []
        if isinstance(zones, str):
            zones = [z for z in zones.split(",") if z]
        if not zones or not c.get("region"):
            raise TopologyError(f"{where}: needs 'region' and at least one zone in 'zones'")
        pool = c.get("lbPool") or f"127.10.{i + 1}.0/24"
        try:
            ipaddress.ip_network(pool, strict=False)
        except ValueError:
            raise TopologyError(f"{where}.lbPool: {pool!r} is not a CIDR") from None
        clusters.append(
            ClusterSpec(
                name=name,
                provider=str(c.get("provider", "onprem")),
                region=str(c["region"]),
                zones=tuple(str(z) for z in zones),
                lb_pool=pool,
                nodes_per_zone=int(c.get("nodesPerZone", 1)),
                pods_per_service=int(c.get("podsPerService", 2)),
            )
        )
    if not clusters:
        raise TopologyError(f"{source}: lists no clusters")
    objects = tuple(o for o in (doc.get("services") or doc.get("objects") or []) if isinstance(o, dict))
    return Topology(
        federation=str(fed.get("name", "myfed")),
        domain=str(fed.get("domain", "example.com")),
        clusters=tuple(clusters),
        objects=objects,
    )
