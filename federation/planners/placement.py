"""Where a federated workload goes and how each cluster's copy differs: pure functions.

A federated object is a plain Kubernetes object (an ``apps/v1`` Deployment), so, as
Federation v1 did, the federation-only parts ride in annotations:

- ``federation.kubernetes.io/placement``: which clusters get a copy. Absent means every
  cluster; ``{"clusters": ["a", "b"]}`` names them; ``{"clusterSelector": {"matchLabels":
  {...}, "matchExpressions": [...]}}`` selects Cluster objects by label (KubeFed's
  ``spec.placement``).
  ``spreadConstraints`` (Karmada's, issue 15: ``[{"spreadByField": "region", "maxGroups": 2}]``)
  then spread the copies over the selected clusters that are Ready
  (:mod:`federation.planners.spread`).
- ``federation.kubernetes.io/overrides``: KubeFed's overrides, a list of
  ``{"clusterName": "a", "clusterOverrides": [{"op": "replace", "path": "/spec/...",
  "value": ...}]}``; ``op`` is ``add``, ``remove`` or ``replace`` (default ``replace``), the
  path a JSON pointer into the cluster's copy.
- ``federation.kubernetes.io/deployment-preferences``: the replica split
  (:mod:`federation.planners.replicasplit`).

Label selectors in their structured form (``matchLabels`` + ``matchExpressions``) are turned
into the requirement tuples :func:`apimachinery.meta.selector_matches` evaluates, so a
Deployment's selector and a placement's cluster selector mean the same as a ``-l`` flag.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from apimachinery.jsonpatch import PatchError, apply_json_patch
from apimachinery.meta import check_label_key, check_label_value, selector_matches
from federation.names import OVERRIDES_ANNOTATION, PLACEMENT_ANNOTATION, PREFERENCES_ANNOTATION
from federation.planners.health import is_ready
from federation.planners.spread import SpreadError, parse_constraints, spread

FEDERATION_ANNOTATIONS = (PLACEMENT_ANNOTATION, OVERRIDES_ANNOTATION, PREFERENCES_ANNOTATION)
OVERRIDE_OPS = ("add", "remove", "replace")
SELECTOR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}

Requirements = list[tuple[str, str, list[str]]]


class PlacementError(ValueError):
    """A malformed annotation or selector; the message names the field."""


# ------------------------------------------------------------------ label selectors


def selector_requirements(selector: Any, *, path: str = "selector") -> Requirements:
    """``{"matchLabels": ..., "matchExpressions": ...}`` as requirement tuples."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        raise PlacementError(f"{path}: must be an object with matchLabels and/or matchExpressions")
    reqs: Requirements = []
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, dict):
        raise PlacementError(f"{path}.matchLabels: must be a map of strings")
    for k, v in labels.items():
        problem = check_label_key(str(k)) or check_label_value(v)
        if problem:
            raise PlacementError(f"{path}.matchLabels[{k}]: {problem}")
        reqs.append((str(k), "=", [v]))
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise PlacementError(f"{path}.matchExpressions: must be a list")
    for i, expr in enumerate(exprs):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict) or not isinstance(expr.get("key"), str):
            raise PlacementError(f"{where}: must be an object with key, operator and values")
        op = SELECTOR_OPS.get(expr.get("operator"))
        if op is None:
            raise PlacementError(f"{where}.operator: Unsupported value: {expr.get('operator')!r}: supported values: In, NotIn, Exists, DoesNotExist")
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PlacementError(f"{where}.values: must be a list of strings")
        if op in ("in", "notin") and not values:
            raise PlacementError(f"{where}.values: Required value: must be specified when operator is In or NotIn")
        if op in ("exists", "!") and values:
            raise PlacementError(f"{where}.values: Forbidden: may not be specified when operator is Exists or DoesNotExist")
        reqs.append((expr["key"], op, list(values)))
    return reqs


def selector_matches_labels(selector: Any, labels: dict[str, str] | None) -> bool:
    return selector_matches(selector_requirements(selector), labels)


# ------------------------------------------------------------------ annotations


def _annotation(obj: dict[str, Any], key: str) -> Any:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    if text in (None, ""):
        return None
    try:
        return json.loads(text)
    except ValueError as err:
        raise PlacementError(f"metadata.annotations[{key}]: not valid JSON: {err.msg}") from None


def parse_placement(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The placement (validated), or None for "every cluster"."""
    value = _annotation(obj, PLACEMENT_ANNOTATION)
    if value is None:
        return None
    where = f"metadata.annotations[{PLACEMENT_ANNOTATION}]"
    if not isinstance(value, dict) or not set(value) <= {"clusters", "clusterSelector", "spreadConstraints"}:
        raise PlacementError(f'{where}: must be {{"clusters": [names]}} or {{"clusterSelector": {{...}}}}'
                             ', with "spreadConstraints" if wanted')
    if "spreadConstraints" in value:
        try:
            value = {**value, "spreadConstraints": parse_constraints(value["spreadConstraints"],
                                                                     path=f"{where}.spreadConstraints")}
        except SpreadError as err:
            raise PlacementError(str(err)) from None
    if "clusters" in value:
        names = value["clusters"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PlacementError(f"{where}.clusters: must be a list of cluster names")
    if "clusterSelector" in value:
        selector_requirements(value["clusterSelector"], path=f"{where}.clusterSelector")
    return value


def placed_clusters(obj: dict[str, Any], clusters: Iterable[dict[str, Any]]) -> list[str]:
    """Names of the Cluster objects the object's placement selects (both rules must hold;
    spread constraints then choose among the Ready ones)."""
    clusters = list(clusters)
    placement = parse_placement(obj)
    out = []
    for cluster in clusters:
        meta = cluster.get("metadata") or {}
        name = meta.get("name", "")
        if placement is not None:
            if "clusters" in placement and name not in placement["clusters"]:
                continue
            if "clusterSelector" in placement and not selector_matches_labels(placement["clusterSelector"], meta.get("labels")):
                continue
        out.append(name)
    if placement is not None and placement.get("spreadConstraints"):
        ready = [c for c in clusters if (c.get("metadata") or {}).get("name") in out and is_ready(c)]
        try:
            return spread(placement["spreadConstraints"], ready)
        except SpreadError as err:
            raise PlacementError(f"metadata.annotations[{PLACEMENT_ANNOTATION}].spreadConstraints: {err}") from None
    return sorted(out)


def parse_overrides(obj: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Cluster name -> JSON-patch operations, validated."""
    value = _annotation(obj, OVERRIDES_ANNOTATION)
    if value is None:
        return {}
    where = f"metadata.annotations[{OVERRIDES_ANNOTATION}]"
    if not isinstance(value, list):
        raise PlacementError(f'{where}: must be a list of {{"clusterName": ..., "clusterOverrides": [...]}}')
    out: dict[str, list[dict[str, Any]]] = {}
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("clusterName"), str):
            raise PlacementError(f"{where}[{i}].clusterName: Required value")
        ops = entry.get("clusterOverrides")
        if not isinstance(ops, list):
            raise PlacementError(f"{where}[{i}].clusterOverrides: must be a list")
        converted = []
        for j, op in enumerate(ops):
            path = f"{where}[{i}].clusterOverrides[{j}]"
            if not isinstance(op, dict) or not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
                raise PlacementError(f"{path}.path: Required value: a JSON pointer such as /spec/replicas")
            kind = op.get("op", "replace")
            if kind not in OVERRIDE_OPS:
                raise PlacementError(f"{path}.op: Unsupported value: {kind!r}: supported values: add, remove, replace")
            if kind != "remove" and "value" not in op:
                raise PlacementError(f"{path}.value: Required value for {kind}")
            if op["path"].startswith("/metadata/name") or op["path"].startswith("/metadata/namespace"):
                raise PlacementError(f"{path}.path: Forbidden: the name and namespace cannot be overridden")
            converted.append({"op": kind, "path": op["path"], **({"value": op["value"]} if kind != "remove" else {})})
        out.setdefault(entry["clusterName"], []).extend(converted)
    return out


def apply_overrides(obj: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The object with one cluster's overrides applied (raises PlacementError when one misses)."""
    if not operations:
        return copy.deepcopy(obj)
    try:
        return apply_json_patch(obj, operations)
    except PatchError as err:
        raise PlacementError(f"override does not apply: {err}") from None


def validate_federation_annotations(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Field errors of the federation-only annotations, for the API's validation."""
    from federation.planners.replicasplit import PreferenceError, parse_preferences

    errors = []
    for check in (parse_placement, parse_overrides):
        try:
            check(obj)
        except PlacementError as err:
            path, _, message = str(err).partition(": ")
            errors.append((path, f"Invalid value: {message}"))
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(PREFERENCES_ANNOTATION)
    try:
        parse_preferences(text)
    except PreferenceError as err:
        errors.append((f"metadata.annotations[{PREFERENCES_ANNOTATION}]", f"Invalid value: {err}"))
    return errors
