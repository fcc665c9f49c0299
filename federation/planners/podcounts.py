"""How a federated Job's pod counts split over its clusters: a pure function (issue 15).

Federation v1 split a federated Job's ``completions`` and ``parallelism`` over the clusters
as it split a Deployment's replicas; ubernetes does the same with the replica-split planner
(:func:`federation.planners.replicasplit.plan_replicas`) and the same preferences annotation
(``federation.kubernetes.io/deployment-preferences``: weights, minimum and maximum per
cluster), so 7 completions over three equal clusters are 3/2/2:

- ``completions`` is split over the Ready placed clusters. Without ``rebalance`` the split
  the copies already have is kept as far as it is valid (a Job that has started in a
  cluster keeps its share there); a cluster that leaves gives its share to the others.
- ``parallelism`` is split in proportion to each cluster's completions, at most its
  completions and at least 1 in a cluster with any, so every cluster with work makes
  progress: the federation runs at least as many pods at once as it has clusters with
  completions, even when ``parallelism`` is lower.
- A cluster with no completions gets a copy with ``completions: 0`` and ``parallelism: 0``
  (complete at once, as in Kubernetes), so its share is visibly none.
- A Job without ``completions`` (a work queue: done when one pod succeeds) has only its
  ``parallelism`` split; every cluster's copy is such a work queue.

The result is per cluster a list of JSON-patch operations that the sync controller applies
to that cluster's copy before the user's own overrides.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from federation.names import PREFERENCES_ANNOTATION
from federation.planners.replicasplit import (
    ClusterPreference, PreferenceError, Preferences, parse_preferences, plan_replicas,
)

Object = dict[str, Any]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def job_counts(job: Object, clusters: Iterable[str], current: Mapping[str, Object | None]) -> dict[str, dict[str, int | None]]:
    """``{cluster: {"completions": n, "parallelism": p}}`` for ``job`` over ``clusters`` (the
    Ready placed ones); ``current``: each cluster's copy now (or None)."""
    spec = job.get("spec") or {}
    names = sorted(set(clusters))
    annotation = ((job.get("metadata") or {}).get("annotations") or {}).get(PREFERENCES_ANNOTATION)
    try:
        preferences = parse_preferences(annotation)
    except PreferenceError:
        preferences = Preferences()  # the federation's validation refuses it; an old object keeps the default
    parallelism = _count(spec.get("parallelism"))
    parallelism = 1 if parallelism is None else parallelism
    completions = _count(spec.get("completions"))
    if completions is None:
        shares = plan_replicas(parallelism, names, preferences)
        return {c: {"completions": None, "parallelism": shares[c]} for c in names}
    have = {c: n for c in names if (n := _count(((current.get(c) or {}).get("spec") or {}).get("completions"))) is not None}
    split = plan_replicas(completions, names, preferences, current=have or None)
    working = {c: n for c, n in split.items() if n > 0}
    weights = Preferences(clusters={c: ClusterPreference(weight=n, min_replicas=1, max_replicas=n) for c, n in working.items()},
                          rebalance=True)
    at_once = plan_replicas(max(parallelism, len(working)), working, weights) if working else {}
    return {c: {"completions": split[c], "parallelism": min(split[c], max(1, at_once.get(c, 0))) if split[c] else 0}
            for c in names}


def job_patches(job: Object, clusters: Iterable[str], current: Mapping[str, Object | None]) -> dict[str, list[Object]]:
    """:func:`job_counts` as JSON-patch operations on each cluster's copy."""
    out = {}
    for cluster, counts in job_counts(job, clusters, current).items():
        out[cluster] = [{"op": "add", "path": f"/spec/{field}", "value": value}
                        for field, value in counts.items() if value is not None]
    return out
