"""The replica split: how many replicas of a federated Deployment each member cluster runs.

A pure function of the desired total, the clusters that may run replicas and the user's
preferences, so the rules read as code and test as a table. The preferences follow
KubeFed's ``ReplicaSchedulingPreference`` (and Federation v1's
``federation.kubernetes.io/deployment-preferences`` annotation, which it grew out of):

```json
{"rebalance": true,
 "clusters": {"*": {"weight": 1},
              "aws-us-east-1a": {"weight": 2, "minReplicas": 1, "maxReplicas": 4}}}
```

- Only the clusters handed in get replicas; the caller passes the Ready clusters that the
  placement selects, so an Offline cluster's share goes to the others by construction.
- A cluster named in ``clusters`` uses its entry; any other cluster uses the ``"*"`` entry;
  with no entry at all it gets nothing. No preferences at all means ``{"*": {"weight": 1}}``.
- ``minReplicas`` are handed out first (heaviest weight first, then by name), then the rest
  by weight, never above ``maxReplicas``; what a cap refuses goes round again. Fractions go
  to the largest remainders (KubeFed rounds every share up, which gives 7 over three equal
  clusters as 3/3/1; this gives 3/2/2). When
  every weighted cluster is full, clusters of weight 0 with room take the rest one by one,
  so the sum equals the total whenever the maxima allow it.
- Without ``rebalance`` the current distribution is kept as far as it is valid: clusters
  keep what they run (clamped to their min and max), missing replicas go to the clusters
  furthest below their weighted share, surplus comes from those furthest above it. A returning
  cluster therefore gets nothing back until something else changes. With ``rebalance``
  the weighted plan wins outright, so replicas move back to a cluster that returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

DEFAULT_KEY = "*"
UNLIMITED = 1 << 62


class PreferenceError(ValueError):
    """The preferences are malformed; the message names the field."""


@dataclass(frozen=True)
class ClusterPreference:
    weight: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None


@dataclass(frozen=True)
class Preferences:
    clusters: Mapping[str, ClusterPreference] = field(default_factory=lambda: {DEFAULT_KEY: ClusterPreference()})
    rebalance: bool = False

    def for_cluster(self, name: str) -> ClusterPreference | None:
        return self.clusters.get(name) or self.clusters.get(DEFAULT_KEY)


def parse_preferences(value: Any) -> Preferences:
    """Preferences from their JSON form (a dict, or the annotation's text)."""
    if value is None or value == "":
        return Preferences()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise PreferenceError(f"not valid JSON: {err.msg}") from None
    if not isinstance(value, dict):
        raise PreferenceError("must be a JSON object with 'clusters' and optionally 'rebalance'")
    rebalance = value.get("rebalance", False)
    if not isinstance(rebalance, bool):
        raise PreferenceError(f"rebalance: must be true or false, not {rebalance!r}")
    raw = value.get("clusters", {DEFAULT_KEY: {"weight": 1}})
    if not isinstance(raw, dict):
        raise PreferenceError("clusters: must be an object of cluster name to preference")
    clusters: dict[str, ClusterPreference] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise PreferenceError(f"clusters[{name}]: must be an object")
        unknown = set(entry) - {"weight", "minReplicas", "maxReplicas"}
        if unknown:
            raise PreferenceError(f"clusters[{name}]: unknown field(s) {', '.join(sorted(unknown))}")
        weight = entry.get("weight", 1 if name == DEFAULT_KEY else 0)
        low = entry.get("minReplicas", 0)
        high = entry.get("maxReplicas")
        for fname, v in (("weight", weight), ("minReplicas", low)):
            if not _is_count(v):
                raise PreferenceError(f"clusters[{name}].{fname}: must be a non-negative integer, not {v!r}")
        if high is not None:
            if not _is_count(high):
                raise PreferenceError(f"clusters[{name}].maxReplicas: must be a non-negative integer, not {high!r}")
            if high < low:
                raise PreferenceError(f"clusters[{name}].maxReplicas: {high} is below minReplicas {low}")
        clusters[str(name)] = ClusterPreference(weight=weight, min_replicas=low, max_replicas=high)
    return Preferences(clusters=clusters, rebalance=rebalance)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _distribute(plan: dict[str, int], remaining: int, order: list[str], prefs: dict[str, ClusterPreference]) -> int:
    """Add ``remaining`` replicas to ``plan`` by weight (fractions up), then weight-0 fill.

    Returns what could not be placed (non-zero only when every cluster is at its max).
    """
    open_ = [c for c in order if _room(plan, c, prefs) > 0 and prefs[c].weight > 0]
    for _ in range(len(order) + 1):
        if remaining <= 0 or not open_:
            break
        weight_sum = sum(prefs[c].weight for c in open_)
        this_round = remaining
        for c in open_:
            give = min(this_round * prefs[c].weight // weight_sum, _room(plan, c, prefs), remaining)
            plan[c] += give
            remaining -= give
        # the fractions left over go one each, largest fraction first (heavier, then name, on ties)
        by_fraction = sorted(open_, key=lambda c: (-(this_round * prefs[c].weight % weight_sum), order.index(c)))
        for c in by_fraction:
            if remaining <= 0:
                break
            if _room(plan, c, prefs) > 0:
                plan[c] += 1
                remaining -= 1
        open_ = [c for c in open_ if _room(plan, c, prefs) > 0]
    for c in order:  # weighted clusters full: weight-0 clusters with room take the rest
        if remaining <= 0:
            break
        take = min(_room(plan, c, prefs), remaining)
        plan[c] += take
        remaining -= take
    return remaining


def _room(plan: dict[str, int], cluster: str, prefs: dict[str, ClusterPreference]) -> int:
    high = prefs[cluster].max_replicas
    return UNLIMITED if high is None else max(0, high - plan[cluster])


def plan_replicas(
    total: int,
    clusters: Iterable[str],
    preferences: Preferences | None = None,
    *,
    current: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Replicas per cluster for ``total`` replicas over ``clusters`` (the Ready, placed ones).

    Every cluster passed in appears in the result (0 when it gets nothing), so the caller
    can scale a cluster down to zero. ``current`` (what each cluster runs now) matters only
    without ``rebalance``.
    """
    prefs_obj = preferences or Preferences()
    names = sorted(set(clusters))
    eligible = {c: p for c in names if (p := prefs_obj.for_cluster(c)) is not None}
    result = {c: 0 for c in names}
    if total <= 0 or not eligible:
        return result
    order = sorted(eligible, key=lambda c: (-eligible[c].weight, c))
    weighted = {c: 0 for c in order}
    remaining = total
    for c in order:
        pref = eligible[c]
        low = min(pref.min_replicas, remaining)
        if pref.max_replicas is not None:
            low = min(low, pref.max_replicas)
        weighted[c] = low
        remaining -= low
    _distribute(weighted, remaining, order, eligible)
    if prefs_obj.rebalance or current is None:
        result.update(weighted)
        return result
    kept = {}
    for c in order:
        pref = eligible[c]
        have = max(int(current.get(c, 0)), pref.min_replicas)
        if pref.max_replicas is not None:
            have = min(have, pref.max_replicas)
        kept[c] = have
    surplus = sum(kept.values()) - total
    while surplus > 0:
        # take one from the cluster furthest above its weighted share (that may still give)
        above_min = [c for c in order if kept[c] > eligible[c].min_replicas]
        pool = above_min or [c for c in order if kept[c] > 0]
        c = max(pool, key=lambda n: (kept[n] - weighted[n], -order.index(n)))
        kept[c] -= 1
        surplus -= 1
    while surplus < 0:
        # give one to the cluster furthest below its weighted share (that has room)
        pool = [c for c in order if _room(kept, c, eligible) > 0]
        if not pool:
            break
        c = min(pool, key=lambda n: (kept[n] - weighted[n], order.index(n)))
        kept[c] += 1
        surplus += 1
    result.update(kept)
    return result
