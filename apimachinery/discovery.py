"""API discovery as a real API server serves it, built from a list of resource definitions.

kubectl learns what a server offers before it does anything else: ``/api`` and ``/apis``
(legacy ``APIVersions`` / ``APIGroupList``, then one ``APIResourceList`` per
group-version), or, when its ``Accept`` header asks for it, the aggregated
``APIGroupDiscoveryList`` of ``apidiscovery.k8s.io/v2`` (one request instead of one per
group-version). Everything here is a pure function of a list of
:class:`apimachinery.kinds.Kind`, so the federation and every member cluster
answer discovery from their own kind tables with the same code. Each kind says its verbs,
categories (``all`` for services, so ``kubectl get all`` shows them) and subresources.
"""

from __future__ import annotations

from typing import Any, Sequence

from apimachinery.kinds import Kind

STATUS_VERBS = ["get", "patch", "update"]
# Subresources with a kind of their own: (group, version, kind).
SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale")}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def group_versions(resources: Sequence[Kind]) -> list[tuple[str, str]]:
    """(group, version) pairs in first-seen order; the core group is ``""``."""
    seen: list[tuple[str, str]] = []
    for res in resources:
        if (res.group, res.version) not in seen:
            seen.append((res.group, res.version))
    return seen


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list(resources: Sequence[Kind]) -> dict[str, Any]:
    """``GET /apis``: every named group (the core group is under ``/api``)."""
    groups: dict[str, list[str]] = {}
    for group, version in group_versions(resources):
        if group:
            groups.setdefault(group, []).append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in groups.items()
        ],
    }


def api_group(resources: Sequence[Kind], group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``, or None if the group is not served."""
    for item in api_group_list(resources)["groups"]:
        if item["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **item}
    return None


def api_resource_list(
    resources: Sequence[Kind],
    group: str,
    version: str,
) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``, or None if that group-version is not served."""
    mine = [r for r in resources if (r.group, r.version) == (group, version)]
    if not mine:
        return None
    out = []
    for res in mine:
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": res.singular or res.kind.lower(),
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": sorted(res.verbs),
            "storageVersionHash": "",
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        cats = list(res.categories)
        if cats:
            entry["categories"] = cats
        out.append(entry)
        for sub in list(res.subresources):
            entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                     "kind": res.kind, "verbs": STATUS_VERBS}
            if sub in SUBRESOURCE_KINDS:
                sub_group, sub_version, entry["kind"] = SUBRESOURCE_KINDS[sub]
                entry.update(group=sub_group, version=sub_version)
            out.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": out,
    }


def subresource_kind(sub: str, kind: dict[str, str]) -> dict[str, str]:
    """What a subresource answers with: the kind itself (status), or its own (scale: Scale)."""
    if sub in SUBRESOURCE_KINDS:
        group, version, name = SUBRESOURCE_KINDS[sub]
        return {"group": group, "version": version, "kind": name}
    return kind


def aggregated_discovery(
    resources: Sequence[Kind],
    *,
    core: bool,
    api_version: str = "apidiscovery.k8s.io/v2",
) -> dict[str, Any]:
    """The ``APIGroupDiscoveryList`` for ``/api`` (``core=True``) or ``/apis`` (named groups)."""
    items: list[dict[str, Any]] = []
    by_group: dict[str, dict[str, Any]] = {}
    for group, version in group_versions(resources):
        if bool(group) == core:
            continue
        item = by_group.get(group)
        if item is None:
            item = {"metadata": {"name": group, "creationTimestamp": None}, "versions": []}
            by_group[group] = item
            items.append(item)
        entries = []
        for res in resources:
            if (res.group, res.version) != (group, version):
                continue
            kind = {"group": group, "version": version, "kind": res.kind}
            entry: dict[str, Any] = {
                "resource": res.plural,
                "responseKind": kind,
                "scope": "Namespaced" if res.namespaced else "Cluster",
                "singularResource": res.singular or res.kind.lower(),
                "verbs": sorted(res.verbs),
            }
            if res.short_names:
                entry["shortNames"] = list(res.short_names)
            cats = list(res.categories)
            if cats:
                entry["categories"] = cats
            subs = list(res.subresources)
            if subs:
                entry["subresources"] = [{"subresource": s, "responseKind": subresource_kind(s, kind), "verbs": STATUS_VERBS}
                                         for s in subs]
            entries.append(entry)
        item["versions"].append({"version": version, "resources": entries, "freshness": "Current"})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def negotiate_aggregated(accept: str | None) -> str | None:
    """The aggregated discovery content type the ``Accept`` header asks for, if any.

    kubectl lists v2 first, then v2beta1, then plain JSON; we answer the first one it names.
    """
    for part in (accept or "").split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return AGGREGATED_V2
            if params.get("v") == "v2beta1":
                return AGGREGATED_V2BETA1
    return None
