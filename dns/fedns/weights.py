"""Weighted answers (issue 16, strategy ``weighted``): which rotation each query gets.

Clients connect to the first address of an answer, so spreading clients by weight means
choosing, per query, which target comes first. The planner writes one weight per target
(``spec.weights``); here they become a *schedule*: a list of rotation indices (rotation
``i`` starts at target ``i``) in which each target appears in proportion to its weight,
interleaved by smooth weighted round robin (nginx's), so any window of queries is close to
the weights, not only the whole cycle. The table stores the schedule as the answer's list
of variants, so the fast path and the reply cache walk it exactly as they walk round-robin
rotations: a weighted answer costs a query nothing more.

Weights are scaled to at most :data:`SCHEDULE` slots (1 % steps); a target whose weight is
0 is never first while another has a weight. Pure.
"""

from __future__ import annotations

SCHEDULE = 100


def slots(weights: tuple[float, ...]) -> list[int]:
    """Integer slots per target, summing to at most SCHEDULE (largest remainder)."""
    total = sum(weights)
    if total <= 0:
        return [1] * len(weights)
    exact = [w * SCHEDULE / total for w in weights]
    out = [int(x) for x in exact]
    left = SCHEDULE - sum(out)
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[:left]:
        out[i] += 1
    # Reduce by the common divisor, so 70/30 is a cycle of 10, not 100.
    from math import gcd
    g = 0
    for n in out:
        g = gcd(g, n)
    return [n // g for n in out] if g else out


def schedule(weights: tuple[float, ...]) -> list[int]:
    """Rotation indices in smooth weighted round-robin order, one cycle."""
    counts = slots(weights)
    total = sum(counts)
    current = [0] * len(counts)
    out = []
    for _ in range(total):
        for i, c in enumerate(counts):
            current[i] += c
        best = max(range(len(counts)), key=lambda i: current[i])
        current[best] -= total
        out.append(best)
    return out
