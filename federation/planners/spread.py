"""Karmada's spread constraints over the clusters a placement selects: a pure function.

Karmada's ``PropagationPolicy`` says, beside which clusters may hold a copy, how the
copies spread over topology: ``spreadConstraints: [{spreadByField: region, minGroups: 2,
maxGroups: 2}, {spreadByField: cluster, maxGroups: 2}]`` is "two regions, one cluster
each". ubernetes reads the same list from the placement annotation
(:mod:`federation.planners.placement`) and applies it here:

- the candidates are the selected clusters that are Ready (Karmada leaves unhealthy
  clusters out too), so the choice is made again when a cluster joins, leaves or changes
  health: a copy moves off a cluster that went Offline;
- at most one topology field (``region``, ``zone`` or ``provider``; Karmada allows one too)
  groups them: a cluster's region and provider are its labels
  (``topology.kubernetes.io/region``, ``ubernetes.io/provider``), its zone the first of
  ``status.zones``; the groups with the most candidates win, ties by name, up to
  ``maxGroups``; fewer than ``minGroups`` is an error (:class:`SpreadError`), as Karmada
  fails to schedule;
- ``spreadByField: cluster`` caps the number of clusters (``maxGroups``), taken one group
  at a time in turn so every chosen group has one, clusters by name within a group;
  fewer candidates than its ``minGroups`` is an error.

The choice is deterministic: the same clusters always give the same answer.
"""

from __future__ import annotations

from typing import Any, Iterable

from federation.names import PROVIDER_LABEL, REGION_LABEL

FIELDS = ("cluster", "region", "zone", "provider")


class SpreadError(ValueError):
    """A malformed constraint, or constraints the candidates cannot meet."""


def parse_constraints(value: Any, *, path: str) -> list[dict[str, Any]]:
    """The constraints, validated (each ``spreadByField`` once, at most one topology field)."""
    if not isinstance(value, list):
        raise SpreadError(f"{path}: must be a list of {{spreadByField, minGroups, maxGroups}}")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or item.get("spreadByField") not in FIELDS:
            raise SpreadError(f"{where}.spreadByField: Unsupported value: {(item or {}).get('spreadByField')!r}: "
                              f"supported values: {', '.join(FIELDS)}" if isinstance(item, dict)
                              else f"{where}: must be an object")
        field = item["spreadByField"]
        if field in seen:
            raise SpreadError(f"{where}.spreadByField: Duplicate value: {field!r}")
        seen.add(field)
        low, high = item.get("minGroups", 1), item.get("maxGroups")
        for key, number in (("minGroups", low), ("maxGroups", high)):
            if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 1):
                raise SpreadError(f"{where}.{key}: Invalid value: {number!r}: must be a positive integer")
        if high is not None and low > high:
            raise SpreadError(f"{where}.minGroups: Invalid value: {low}: must not be greater than maxGroups ({high})")
        out.append({"spreadByField": field, "minGroups": low, "maxGroups": high})
    if len(seen - {"cluster"}) > 1:
        raise SpreadError(f"{path}: at most one of region, zone and provider may be spread by")
    return out


def topology_of(cluster: dict[str, Any], field: str) -> str:
    meta, status = cluster.get("metadata") or {}, cluster.get("status") or {}
    labels = meta.get("labels") or {}
    if field == "region":
        return labels.get(REGION_LABEL) or status.get("region") or ""
    if field == "provider":
        return labels.get(PROVIDER_LABEL) or (cluster.get("spec") or {}).get("provider") or ""
    if field == "zone":
        zones = status.get("zones") or []
        return sorted(zones)[0] if zones else ""
    return meta.get("name", "")


def spread(constraints: list[dict[str, Any]], candidates: Iterable[dict[str, Any]]) -> list[str]:
    """The names of the clusters the constraints choose among ``candidates`` (Ready ones)."""
    clusters = sorted(candidates, key=lambda c: c["metadata"]["name"])
    by_field = {c["spreadByField"]: c for c in constraints}
    topology = next((c for f, c in by_field.items() if f != "cluster"), None)
    groups: list[list[str]]
    if topology is None:
        groups = [[c["metadata"]["name"]] for c in clusters]
    else:
        found: dict[str, list[str]] = {}
        for cluster in clusters:
            value = topology_of(cluster, topology["spreadByField"])
            if value:
                found.setdefault(value, []).append(cluster["metadata"]["name"])
        ranked = sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        if len(ranked) < topology["minGroups"]:
            raise SpreadError(f"spreadByField {topology['spreadByField']}: {len(ranked)} group(s) of Ready clusters, "
                              f"minGroups is {topology['minGroups']}")
        groups = [names for _, names in ranked[: topology["maxGroups"] or len(ranked)]]
    limit = by_field.get("cluster")
    total = sum(len(g) for g in groups)
    cap = total if limit is None or limit["maxGroups"] is None else limit["maxGroups"]
    if limit is not None and total < limit["minGroups"]:
        raise SpreadError(f"spreadByField cluster: {total} Ready cluster(s), minGroups is {limit['minGroups']}")
    chosen: list[str] = []
    depth = 0
    while len(chosen) < min(cap, total):  # one from each group in turn
        for group in groups:
            if depth < len(group) and len(chosen) < cap:
                chosen.append(group[depth])
        depth += 1
    return sorted(chosen)
