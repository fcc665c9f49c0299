"""The Multi-Cluster Services API's shapes (KEP-1645) and ClusterProperty's (KEP-2149), once.

A member cluster serves ``ServiceExport`` and ``ServiceImport`` (``multicluster.x-k8s.io/
v1alpha1``) and ``ClusterProperty`` (``about.k8s.io/v1alpha1``); the federation is the
clusterset's MCS controller and writes the imports, the exports' conditions and the
``clusterset.local`` records. Both sides, the planner and the docs read the names here:
the group, the well-known labels and properties, the condition types and reasons (the
mcs-api's own spellings, so a tool written for Submariner or GKE reads ours), and the
validation the members' API applies. A leaf: it imports only :mod:`apimachinery`.
"""

from __future__ import annotations

from typing import Any, Callable

from apimachinery.meta import check_label_key, check_label_value

Errors = list[tuple[str, str]]  # (field path, problem), as apimachinery.kinds.Errors (no import: the planner reads this module)

GROUP = "multicluster.x-k8s.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
ABOUT_GROUP = "about.k8s.io"
ABOUT_API_VERSION = f"{ABOUT_GROUP}/v1alpha1"

# KEP-2149's two well-known ClusterProperty names: this cluster's id, and its clusterset's.
CLUSTER_ID_PROPERTY = "cluster.clusterset.k8s.io"
CLUSTERSET_PROPERTY = "clusterset.k8s.io"

# The mcs-api's well-known labels (on imported endpoints; we put them on imports and records).
SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
# Ours: on a DNSRecord the MCS controller owns (the DNS controller leaves those alone), and
# the ``<namespace>/<name>`` of the service it is a record of.
MCS_RECORD_LABEL = "multicluster.ubernetes.io/record"
MCS_SERVICE_ANNOTATION = "multicluster.ubernetes.io/service"
# Ours: on a member's ServiceExport, where that member serves the export (``IP``), written by
# the member; on a member's ServiceImport, the clusterset's backends (JSON), written by the
# federation, read by the member's ClusterSetIP proxy.
EXPORT_ADDRESS_ANNOTATION = "multicluster.ubernetes.io/export-address"
BACKENDS_ANNOTATION = "multicluster.ubernetes.io/backends"

CLUSTERSET_IP = "ClusterSetIP"
HEADLESS = "Headless"
IMPORT_TYPES = (CLUSTERSET_IP, HEADLESS)

# Condition types and reasons of a ServiceExport (mcs-api's pkg/apis/v1beta1/serviceexport.go).
VALID = "Valid"
CONFLICT = "Conflict"
REASON_VALID = "Valid"
REASON_NO_SERVICE = "NoService"
REASON_INVALID_TYPE = "InvalidServiceType"
REASON_NO_CONFLICTS = "NoConflicts"
REASON_PORT = "PortConflict"
REASON_TYPE = "TypeConflict"
REASON_AFFINITY = "SessionAffinityConflict"
REASON_AFFINITY_CONFIG = "SessionAffinityConfigConflict"
REASON_LABELS = "LabelsConflict"
REASON_ANNOTATIONS = "AnnotationsConflict"
REASON_TRAFFIC_POLICY = "InternalTrafficPolicyConflict"
REASON_TRAFFIC_DISTRIBUTION = "TrafficDistributionConflict"


def _map_errors(value: Any, path: str, value_problem: Callable[[Any], str | None]) -> Errors:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(path, "Invalid value: must be a map of strings")]
    return [(f"{path}[{k}]", f"Invalid value: {v!r}: {problem}") for k, v in value.items()
            if (problem := check_label_key(str(k)) or value_problem(v))]


def validate_serviceexport(obj: dict[str, Any]) -> Errors:
    """A ServiceExport's spec: empty in v1alpha1; v1beta1's exportedLabels and
    exportedAnnotations are taken too (the labels and annotations its import carries)."""
    spec = obj.get("spec", {})
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: must be an object")]
    return (_map_errors(spec.get("exportedLabels"), "spec.exportedLabels", check_label_value)
            + _map_errors(spec.get("exportedAnnotations"), "spec.exportedAnnotations",
                          lambda v: None if isinstance(v, str) else "must be a string"))


def validate_serviceimport(obj: dict[str, Any]) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs: Errors = []
    if spec.get("type") not in IMPORT_TYPES:
        errs.append(("spec.type", f"Unsupported value: {spec.get('type')!r}: supported values: ClusterSetIP, Headless"))
    ports = spec.get("ports", [])
    if not isinstance(ports, list):
        errs.append(("spec.ports", "Invalid value: must be a list"))
    else:
        for i, port in enumerate(ports):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
                errs.append((f"spec.ports[{i}].port", f"Invalid value: {number!r}: must be between 1 and 65535, inclusive"))
    ips = spec.get("ips", [])
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        errs.append(("spec.ips", "Invalid value: must be a list of IP addresses"))
    return errs


def validate_clusterproperty(obj: dict[str, Any]) -> Errors:
    """KEP-2149: ``spec.value``, a string of at most 128 KiB."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("value"), str):
        return [("spec.value", "Required value: a string")]
    if len(spec["value"]) > 128 * 1024:
        return [("spec.value", "Too long: may not be more than 131072 bytes")]
    return []


def condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in a status's list, or None."""
    return next((c for c in conditions or [] if isinstance(c, dict) and c.get("type") == type_), None)
