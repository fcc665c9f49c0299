"""Per-service DNS strategies (issue 16, after k8gb's ``k8gb.io/strategy``): parsed from a
federated Service's annotations, pure.

A Service chooses how its names answer with annotations:

    federation.kubernetes.io/dns-strategy   roundRobin | weighted | failover | nearest
    federation.kubernetes.io/dns-weights    "us-east-1=70,europe-west1=30"   (weighted)
    federation.kubernetes.io/dns-primary    "europe-west1" or "aws-a,aws-b" (failover)
    federation.kubernetes.io/dns-fail-open  "true" | "false"

Where each strategy lives: ``failover`` is decided by the planner (it needs health, which
only the control plane has: the global and clusterset names hold the primary's healthy shards
alone while it has any). ``weighted`` is decided per query by the responder (the planner
writes one weight per address in ``spec.weights``; :mod:`fedns.weights` turns them into a
schedule of rotations), since an ordering fixed by the planner would send every client of one
answer to the same address. ``nearest`` is the responder's topology-aware mode for this
service alone (``spec.strategy: nearest`` answers only the nearest level with shards).
``roundRobin`` (the default) is the behaviour from before.

Annotations are user input: a bad one never fails a reconcile. It is reported (one message
per problem, the DNS controller turns them into Warning Events) and the service falls back
to ``roundRobin`` (a bad fail-open value to the federation's default).
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGY_ANNOTATION = "federation.kubernetes.io/dns-strategy"
WEIGHTS_ANNOTATION = "federation.kubernetes.io/dns-weights"
PRIMARY_ANNOTATION = "federation.kubernetes.io/dns-primary"
FAIL_OPEN_ANNOTATION = "federation.kubernetes.io/dns-fail-open"

ROUND_ROBIN, WEIGHTED, FAILOVER, NEAREST = "roundRobin", "weighted", "failover", "nearest"
STRATEGIES = (ROUND_ROBIN, WEIGHTED, FAILOVER, NEAREST)
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class Strategy:
    kind: str = ROUND_ROBIN
    weights: tuple[tuple[str, float], ...] = ()  # (cluster or region, weight), weighted only
    primary: tuple[str, ...] = ()  # clusters or regions in order of preference, failover only
    fail_open: bool | None = None  # None: the federation's default


DEFAULT = Strategy()


def _weights(text: str) -> tuple[tuple[tuple[str, float], ...], str | None]:
    out: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            return (), f"{item!r} must be NAME=WEIGHT (a cluster or a region)"
        try:
            weight = float(value)
        except ValueError:
            return (), f"{name}: weight {value.strip()!r} is not a number"
        if not 0 <= weight <= MAX_WEIGHT or weight != weight:
            return (), f"{name}: weight {value.strip()} must be between 0 and {MAX_WEIGHT}"
        if name in out:
            return (), f"{name} is named twice"
        out[name] = weight
    if not out:
        return (), "names no cluster or region"
    if not any(out.values()):
        return (), "every weight is 0"
    return tuple(sorted(out.items())), None


def parse(annotations: dict | None) -> tuple[Strategy, list[str]]:
    """The service's strategy and one message per problem (the strategy is then a fallback)."""
    ann = annotations if isinstance(annotations, dict) else {}
    problems: list[str] = []
    fail_open: bool | None = None
    raw_open = ann.get(FAIL_OPEN_ANNOTATION)
    if raw_open is not None:
        value = str(raw_open).strip().lower()
        if value in ("true", "false"):
            fail_open = value == "true"
        else:
            problems.append(f"annotation {FAIL_OPEN_ANNOTATION}: {raw_open!r} must be \"true\" or \"false\"; "
                            "using the federation's default (--dns-fail-open)")
    kind = str(ann.get(STRATEGY_ANNOTATION) or ROUND_ROBIN).strip()
    fallback = Strategy(fail_open=fail_open)
    if kind not in STRATEGIES:
        problems.append(f"annotation {STRATEGY_ANNOTATION}: {kind!r} must be one of {', '.join(STRATEGIES)}; "
                        "answering round robin")
        return fallback, problems
    if kind == WEIGHTED:
        weights, why = _weights(str(ann.get(WEIGHTS_ANNOTATION) or ""))
        if why is not None:
            problems.append(f"annotation {WEIGHTS_ANNOTATION}: {why} (strategy weighted needs "
                            "\"CLUSTER_OR_REGION=WEIGHT,...\"); answering round robin")
            return fallback, problems
        return Strategy(WEIGHTED, weights=weights, fail_open=fail_open), problems
    if kind == FAILOVER:
        primary = tuple(dict.fromkeys(p.strip() for p in str(ann.get(PRIMARY_ANNOTATION) or "").split(",") if p.strip()))
        if not primary:
            problems.append(f"annotation {PRIMARY_ANNOTATION}: strategy failover needs a primary cluster or region; "
                            "answering round robin")
            return fallback, problems
        return Strategy(FAILOVER, primary=primary, fail_open=fail_open), problems
    return Strategy(kind, fail_open=fail_open), problems


def unknown_names(strategy: Strategy, clusters: dict[str, str]) -> list[str]:
    """Messages for names in weights or primary that are neither a cluster nor a region
    (``clusters``: name -> region). Not fatal: the cluster may not have joined yet."""
    known = set(clusters) | set(clusters.values())
    names = [n for n, _ in strategy.weights] + list(strategy.primary)
    annotation = WEIGHTS_ANNOTATION if strategy.kind == WEIGHTED else PRIMARY_ANNOTATION
    return [f"annotation {annotation}: {n!r} is neither a joined cluster nor a region; it counts for nothing"
            for n in names if n not in known]


def in_primary(strategy: Strategy, cluster: str, region: str) -> int | None:
    """The rank of the primary this cluster belongs to (0 is the first), or None."""
    for rank, name in enumerate(strategy.primary):
        if name == cluster or name == region:
            return rank
    return None


def address_weights(strategy: Strategy, targets: list[tuple[str, str, str]]) -> tuple[float, ...]:
    """One weight per target ``(address, cluster, region)`` of one record set.

    A cluster named in the weights gets its weight; a region's weight is shared equally by
    the clusters of that region in this set that are not named themselves; a cluster's weight
    is shared equally by its addresses. Clusters named by neither get 0: they are answered,
    but never first (while another target has a weight).
    """
    weights = dict(strategy.weights)
    by_cluster: dict[str, list[int]] = {}
    region_of: dict[str, str] = {}
    for i, (_, cluster, region) in enumerate(targets):
        by_cluster.setdefault(cluster, []).append(i)
        region_of[cluster] = region
    per_region: dict[str, int] = {}
    for cluster, region in region_of.items():
        if cluster not in weights and region in weights:
            per_region[region] = per_region.get(region, 0) + 1
    out = [0.0] * len(targets)
    for cluster, indexes in by_cluster.items():
        if cluster in weights:
            share = weights[cluster]
        elif region_of[cluster] in weights:
            share = weights[region_of[cluster]] / per_region[region_of[cluster]]
        else:
            share = 0.0
        for i in indexes:
            out[i] = round(share / len(indexes), 6)
    return tuple(out)
