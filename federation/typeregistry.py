"""The federated kinds: what ``ubernetes federate enable`` may turn on, and the
``FederatedTypeConfig`` objects that say what is on (issue 15).

KubeFed keeps one ``FederatedTypeConfig`` per federated kind (``kubefedctl enable
configmaps`` writes it, with a generated ``Federated<Kind>`` CRD); its sync controller runs
for each one whose ``spec.propagation`` is ``Enabled``. ubernetes keeps the same object
(``federatedtypeconfigs.federation``, short name ``ftc``, named as the kind's plural,
group-qualified outside the core group: ``configmaps``, ``secrets``, ``namespaces``), but
the federated object is the ordinary one, as with Services and Deployments and as in
Karmada, so there is no ``Federated<Kind>`` to generate: the federation API serves the
kinds below, and the FederatedTypeConfig decides whether they propagate.

A kind can be federated only if the members serve it (their kind table,
:data:`federation.resources.MEMBER`): :data:`FEDERATABLE` pairs the federation's kind with
the member's. Services and Deployments keep their own controllers and are not listed.

What differs per kind is data here: a workload whose pod counts split over the clusters
(a Job's completions and parallelism, :mod:`federation.planners.podcounts`) names its
planner in ``counts``; a kind whose members report a status the federated object should
show (Jobs, CronJobs, DaemonSets, Ingresses) names it in ``aggregate``
(:mod:`federation.planners.memberstatus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from apimachinery.kinds import Kind
from federation.planners import memberstatus, podcounts
from federation.resources import (
    CONFIGMAPS, CRONJOBS, DAEMONSETS, FEDERATEDTYPECONFIGS, FEDERATION_NAMESPACES, INGRESSES, JOBS, MEMBER_CONFIGMAPS,
    MEMBER_CRONJOBS, MEMBER_DAEMONSETS, MEMBER_INGRESSES, MEMBER_JOBS, MEMBER_SECRETS, NAMESPACES, SECRETS,
)

Object = dict[str, Any]
# (federated object, the Ready placed clusters, each one's copy now) -> JSON patches per cluster
CountsPlanner = Callable[[Object, set[str], Mapping[str, "Object | None"]], dict[str, list[Object]]]
# (each placed cluster's copy, or None) -> the federated object's own status fields
StatusPlanner = Callable[[Mapping[str, "Object | None"]], Object]


@dataclass(frozen=True)
class FederatedType:
    kind: Kind  # the federation's
    member_kind: Kind  # the members'
    # Take over a member's own object of the same name without being asked (a namespace a
    # member made on its own when something was first written into it holds nothing to lose).
    adopts_by_default: bool = False
    counts: CountsPlanner | None = None
    aggregate: StatusPlanner | None = None

    @property
    def name(self) -> str:
        """The FederatedTypeConfig's name, as KubeFed names them (``deployments.apps``)."""
        return self.kind.key


FEDERATABLE: dict[str, FederatedType] = {t.name: t for t in (
    FederatedType(CONFIGMAPS, MEMBER_CONFIGMAPS),
    FederatedType(SECRETS, MEMBER_SECRETS),
    FederatedType(FEDERATION_NAMESPACES, NAMESPACES, adopts_by_default=True),
    FederatedType(JOBS, MEMBER_JOBS, counts=podcounts.job_patches, aggregate=memberstatus.job_status),
    FederatedType(CRONJOBS, MEMBER_CRONJOBS, aggregate=memberstatus.cronjob_status),
    FederatedType(DAEMONSETS, MEMBER_DAEMONSETS, aggregate=memberstatus.daemonset_status),
    FederatedType(INGRESSES, MEMBER_INGRESSES, aggregate=memberstatus.ingress_status),
)}


def find(name: str) -> FederatedType | None:
    """The federated type a user names: plural, singular, short name or the FTC's name."""
    name = name.lower()
    return next((t for t in FEDERATABLE.values() if name in t.kind.aliases), None)


def type_config(ftype: FederatedType, *, propagation: str = "Enabled") -> dict[str, Any]:
    """The FederatedTypeConfig that federates ``ftype``."""
    kind = ftype.kind
    return {
        "apiVersion": FEDERATEDTYPECONFIGS.api_version,
        "kind": FEDERATEDTYPECONFIGS.kind,
        "metadata": {"name": ftype.name},
        "spec": {
            "targetType": {"group": kind.group, "version": kind.version, "kind": kind.kind,
                           "pluralName": kind.plural, "scope": "Namespaced" if kind.namespaced else "Cluster"},
            "propagation": propagation,
        },
    }


def enabled(configs: list[dict[str, Any]]) -> dict[str, FederatedType]:
    """The federated types whose FederatedTypeConfig propagates, by name."""
    out = {}
    for config in configs:
        name = (config.get("metadata") or {}).get("name", "")
        ftype = FEDERATABLE.get(name)
        if ftype is not None and (config.get("spec") or {}).get("propagation", "Enabled") == "Enabled":
            out[name] = ftype
    return out
