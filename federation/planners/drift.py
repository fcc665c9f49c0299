"""Where a member's copy differs from what the federation wants there: a pure function.

The one sync path (:mod:`federation.controllers.membersync`) updates a copy whose fields
the federation sets have drifted; issue 15 asks that the Event of the repair name the
cluster and the field. :func:`drift_paths` answers the field: the dotted paths, as
``kubectl explain`` writes them (``data.color``, ``spec.template.spec.containers[0].image``),
at which ``actual`` does not hold what ``desired`` says.

Two rules, because members fill fields in: under ``spec`` (and any other part the member
defaults) a field the member added is not drift (:func:`apimachinery.meta.covers`'s rule),
while in the user's data maps (``data``, ``binaryData``, ``stringData``) a key added by hand
is drift, and the repair removes it. Metadata counts only for the labels and annotations
the federation sets. Paths name keys, never values: a Secret's data stays out of Events.
"""

from __future__ import annotations

from typing import Any

EXACT_MAPS = ("data", "binaryData", "stringData")
SKIPPED = ("metadata", "status", "apiVersion", "kind")


def _walk(desired: Any, actual: Any, path: str, out: list[str], *, exact: bool) -> None:
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            out.append(path)
            return
        for key, value in desired.items():
            _walk(value, actual.get(key), f"{path}.{key}" if path else str(key), out, exact=exact)
        if exact:
            out.extend(f"{path}.{key}" for key in actual if key not in desired)
        return
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            out.append(path)
            return
        for i, (d, a) in enumerate(zip(desired, actual)):
            _walk(d, a, f"{path}[{i}]", out, exact=exact)
        return
    if desired != actual:
        out.append(path)


def drift_paths(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The paths at which ``actual`` misses what ``desired`` sets (empty: no drift)."""
    out: list[str] = []
    d_meta, a_meta = desired.get("metadata") or {}, actual.get("metadata") or {}
    for section in ("labels", "annotations"):
        want, have = d_meta.get(section) or {}, a_meta.get(section) or {}
        for key, value in want.items():
            if have.get(key) != value:
                out.append(f"metadata.{section}[{key}]")
    labels = a_meta.get("labels") or {}
    out.extend(f"metadata.labels[{k}]" for k in labels if k not in (d_meta.get("labels") or {}))
    for key in sorted(set(desired) | set(actual)):
        if key in SKIPPED:
            continue
        exact = key in EXACT_MAPS
        if key not in desired:
            if exact and actual.get(key):
                out.append(key)
            continue
        _walk(desired[key], actual.get(key), key, out, exact=exact)
    return out
