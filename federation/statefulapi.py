"""The shapes of StatefulSet (``apps/v1``), PetSet (``apps/v1alpha1``) and their claims, once.

Kubernetes 1.3 introduced stateful pods as ``PetSet`` in ``apps/v1alpha1``; 1.5 renamed it
``StatefulSet`` and 1.9 made it ``apps/v1``. A member serves both (the 1.3 post's YAML keeps
working beside today's) with one controller (:mod:`clusters.statefulsets`); this module holds
what both sides and the docs read: defaulting, validation with Kubernetes' field paths and
wording, the labels the controller puts on pods and claims, and which spec fields an
update may change. A leaf: it imports only :mod:`apimachinery`; the pod template's own rules, shared with
Deployments, are added in :mod:`federation.resources`.
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import check_dns_label, list_name_problem, selector_matches

Errors = list[tuple[str, str]]

STATEFULSET_KIND = "StatefulSet"
PETSET_KIND = "PetSet"
PETSET_API_VERSION = "apps/v1alpha1"
# the labels the StatefulSet controller sets on each pod (Kubernetes' names)
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
POLICIES = ("OrderedReady", "Parallel")
UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")
# What an update may change; the rest of the spec is fixed at creation (Kubernetes' rule).
MUTABLE_SPEC = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds", "revisionHistoryLimit")
STORAGE_CLASS = "standard"
# A member StatefulSet's condition (ours; Kubernetes defines none for StatefulSets): True when
# no pod of the set is outside its ordinal range, which is how the federation knows a member
# has let go of the ordinals it moved away (federation/planners/ordinalsplit.py).
ORDINALS_CONDITION = "OrdinalsInRange"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def default_statefulset(obj: dict[str, Any]) -> None:
    """Kubernetes' defaults; a PetSet gets the few a 1.3 PetSet had (and its selector from
    the template's labels, as 1.3 defaulted it)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.get("metadata")
        labels = tmeta.get("labels") if isinstance(tmeta, dict) else None
        if "selector" not in spec and isinstance(labels, dict) and obj.get("kind") == PETSET_KIND:
            spec["selector"] = {"matchLabels": dict(labels)}
    claims = spec.get("volumeClaimTemplates")
    for claim in claims if isinstance(claims, list) else []:
        if isinstance(claim, dict) and isinstance(claim.get("spec"), dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            claim["spec"].setdefault("volumeMode", "Filesystem")
    if obj.get("kind") == PETSET_KIND:
        return
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if isinstance(strategy, dict) and strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        strategy.setdefault("rollingUpdate", {"partition": 0})
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})


def validate_statefulset(obj: dict[str, Any]) -> Errors:
    """Field errors of a StatefulSet or PetSet (spec only; metadata is checked by the caller,
    the pod template's containers by :func:`federation.resources.validate_statefulset`)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs: Errors = []
    replicas = spec.get("replicas", 1)
    if not _is_int(replicas) or replicas < 0:
        errs.append(("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"))
    service = spec.get("serviceName")
    if service is not None and (not isinstance(service, str) or (service and check_dns_label(service))):
        errs.append(("spec.serviceName", f"Invalid value: {service!r}: {check_dns_label(str(service))}"))
    policy = spec.get("podManagementPolicy", "OrderedReady")
    if policy not in POLICIES:
        errs.append(("spec.podManagementPolicy", f'Unsupported value: {policy!r}: supported values: "OrderedReady", "Parallel"'))
    ordinals = spec.get("ordinals")
    if ordinals is not None:
        start = ordinals.get("start", 0) if isinstance(ordinals, dict) else None
        if not _is_int(start) or start < 0:
            errs.append(("spec.ordinals.start", f"Invalid value: {start!r}: must be greater than or equal to 0"))
    strategy = spec.get("updateStrategy") or {}
    if not isinstance(strategy, dict):
        errs.append(("spec.updateStrategy", "Invalid value: must be an object"))
        strategy = {}
    if strategy.get("type", "RollingUpdate") not in UPDATE_STRATEGIES:
        errs.append(("spec.updateStrategy.type", f'Unsupported value: {strategy.get("type")!r}: supported values: "OnDelete", "RollingUpdate"'))
    rolling = strategy.get("rollingUpdate") or {}
    partition = rolling.get("partition", 0) if isinstance(rolling, dict) else None
    if not _is_int(partition) or partition < 0:
        errs.append(("spec.updateStrategy.rollingUpdate.partition", f"Invalid value: {partition!r}: must be greater than or equal to 0"))
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        errs.append(("spec.template.spec", "Required value"))
        template = None
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(("spec.selector", "Required value"))
    elif template is not None:
        reqs = [(k, "=", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
        tmeta = template.get("metadata")
        labels = tmeta.get("labels") if isinstance(tmeta, dict) else None or {}
        if not selector_matches(reqs, labels):
            errs.append(("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    names: set[str] = set()
    claims = spec.get("volumeClaimTemplates")
    if claims is not None and not isinstance(claims, list):
        errs.append(("spec.volumeClaimTemplates", "Invalid value: must be a list"))
        claims = []
    for i, claim in enumerate(claims or []):
        where = f"spec.volumeClaimTemplates[{i}]"
        cmeta = claim.get("metadata") if isinstance(claim, dict) else None
        name = cmeta.get("name") if isinstance(cmeta, dict) else None
        problem = list_name_problem(name, names)
        if problem:
            errs.append((f"{where}.metadata.name", problem))
        errs += validate_claim_spec((claim or {}).get("spec") if isinstance(claim, dict) else None, f"{where}.spec")
    return errs


def validate_claim_spec(spec: Any, where: str = "spec") -> Errors:
    if not isinstance(spec, dict):
        return [(where, "Required value")]
    errs: Errors = []
    modes = spec.get("accessModes")
    if not isinstance(modes, list) or not modes or not all(isinstance(m, str) for m in modes):
        errs.append((f"{where}.accessModes", "Required value: at least 1 access mode is required"))
    elif any(m not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod") for m in modes):
        errs.append((f"{where}.accessModes", f"Unsupported value: {modes!r}: supported values: \"ReadOnlyMany\", "
                                             "\"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""))
    resources = spec.get("resources")
    requests = resources.get("requests") if isinstance(resources, dict) else None
    storage = requests.get("storage") if isinstance(requests, dict) else None
    if not isinstance(storage, str) or not storage:
        errs.append((f"{where}.resources[storage]", "Required value"))
    return errs


def validate_pvc(obj: dict[str, Any]) -> Errors:
    return validate_claim_spec(obj.get("spec"))


def immutable_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The spec fields an update changed that it may not (empty when the update is allowed)."""
    keys = set(old) | set(new)
    return sorted(k for k in keys if k not in MUTABLE_SPEC and old.get(k) != new.get(k))


def pod_template_for(spec: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(spec.get("template") or {})
