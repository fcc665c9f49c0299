"""The ordinal split: which pod identities of a federated StatefulSet each member cluster runs.

A StatefulSet's pods are identities (``web-0``, ``web-1``...), and an identity must exist in
at most one place in the clusterset at any time: two ``web-1`` pods would both believe they
own ``www-web-1``'s data and ``web-1``'s DNS name. So the federation hands each member a
contiguous range of ordinals, which the member's StatefulSet runs with
``spec.ordinals.start`` and ``spec.replicas`` (Kubernetes' own mechanism for moving a set
between clusters), and moves an ordinal only when it is sure the old holder has none:

- **Target.** The total is split over the Ready clusters the placement selects with the
  Deployments' replica split (:func:`federation.planners.replicasplit.plan_replicas`), and
  the clusters, in name order, take consecutive ranges: 5 over ``a``, ``b``, ``c`` is
  ``a: 0-1``, ``b: 2-3``, ``c: 4``.
- **Held.** A cluster *holds* the ordinals it may still have pods at: its copy's range, and
  while its copy has not settled (its controller has not observed the last change, or still
  has pods outside the range: the member's ``OrdinalsInRange`` condition is not True) also
  the range it held before (remembered on the copy, :data:`HELD_ANNOTATION`). A cluster
  that is not Ready holds whatever it held when it was last seen, however long it is gone:
  the federation cannot know its pods stopped.
- **Assigned.** A Ready cluster gets its target range if no other cluster holds any of it;
  otherwise it keeps only the part of its current range inside the target (a shrink, which
  never creates a pod) and grows next pass, once the others have let go.

The invariant, checked by tests/unit/test_ordinalsplit.py over random sequences of
failures, scale changes and slow members: no cluster is ever assigned an ordinal that
another cluster holds. The price is availability, stated in the federated StatefulSet's
status: while a cluster is unreachable its ordinals run nowhere else (``OrdinalsHeld``);
they move when the cluster comes back (and lets go of them in order) or is unjoined, which
is the operator saying that member is gone. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

HELD_ANNOTATION = "federation.kubernetes.io/ordinals-held"


@dataclass(frozen=True)
class Range:
    """Ordinals ``start .. stop-1``; an empty range has ``stop == start``."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)

    def __contains__(self, ordinal: object) -> bool:
        return isinstance(ordinal, int) and self.start <= ordinal < self.stop

    def overlaps(self, other: "Range") -> bool:
        return self.size > 0 and other.size > 0 and self.start < other.stop and other.start < self.stop

    def intersect(self, other: "Range") -> "Range":
        start, stop = max(self.start, other.start), min(self.stop, other.stop)
        return Range(start, stop) if stop > start else Range(self.start, self.start)

    def hull(self, other: "Range") -> "Range":
        if other.size == 0:
            return self
        if self.size == 0:
            return other
        return Range(min(self.start, other.start), max(self.stop, other.stop))

    def text(self) -> str:
        """``0-2``, ``4`` or ``none``: how status and the annotation write it."""
        if self.size == 0:
            return "none"
        return str(self.start) if self.size == 1 else f"{self.start}-{self.stop - 1}"

    @classmethod
    def parse(cls, text: str | None) -> "Range":
        if not text or text == "none":
            return cls(0, 0)
        first, _, last = text.partition("-")
        try:
            start = int(first)
            stop = int(last or first) + 1
        except ValueError:
            return cls(0, 0)
        return cls(start, stop) if stop > start >= 0 else cls(0, 0)


@dataclass(frozen=True)
class ClusterView:
    """One member's copy as the federation sees it."""

    ready: bool
    current: Range | None = None  # the copy's spec range; None when there is no copy
    held_before: Range = Range(0, 0)  # the HELD_ANNOTATION on the copy
    settled: bool = True  # the member observed the copy's spec and has no pods outside its range

    def held(self) -> Range:
        if self.current is None:
            return self.held_before if not self.ready else Range(0, 0)
        return self.current if self.settled else self.current.hull(self.held_before)


@dataclass(frozen=True)
class Assignment:
    range: Range  # what the cluster's copy should run now
    target: Range  # where the split wants it once nobody else holds it
    held: Range  # what to remember on the copy (HELD_ANNOTATION)


def target_ranges(counts: Mapping[str, int]) -> dict[str, Range]:
    """Consecutive ranges in cluster-name order for a count per cluster."""
    out, start = {}, 0
    for name in sorted(counts):
        out[name] = Range(start, start + max(0, counts[name]))
        start = out[name].stop
    return out


def assign(*, counts: Mapping[str, int], clusters: Mapping[str, ClusterView]) -> dict[str, Assignment]:
    """The ranges for the Ready clusters (``counts`` from the replica split over them)."""
    targets = target_ranges(counts)
    held = {name: view.held() for name, view in clusters.items()}
    out: dict[str, Assignment] = {}
    for name, view in sorted(clusters.items()):
        if not view.ready:
            continue
        target = targets.get(name, Range(0, 0))
        others = [r for other, r in held.items() if other != name]
        if not any(target.overlaps(r) for r in others):
            chosen = target
        elif view.current is not None:
            chosen = view.current.intersect(target)
        else:
            chosen = Range(target.start, target.start)
        # until the member settles on ``chosen``, it may still have pods where it held before
        out[name] = Assignment(range=chosen, target=target, held=held[name].hull(chosen))
    return out


def held_elsewhere(clusters: Mapping[str, ClusterView]) -> dict[str, Range]:
    """The ranges held by clusters that are not Ready (for status: ``OrdinalsHeld``)."""
    return {name: view.held() for name, view in sorted(clusters.items()) if not view.ready and view.held().size}


def ordinals_in(ranges: Iterable[Range]) -> set[int]:
    return {o for r in ranges for o in range(r.start, r.stop)}
