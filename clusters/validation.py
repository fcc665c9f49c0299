"""What a member cluster checks in an object before it keeps it.

The federation's rules first (:mod:`federation.resources`), so one object is valid or
invalid the same way on the federation and on every member, then what only a cluster
decides: the ``ubernetes.io/pods`` annotation and the node-port range. The cluster's state
and its workload controllers both validate with these.
"""

from __future__ import annotations

from typing import Any, Callable

from apimachinery.meta import check_dns_label
from federation import resources as fed
from federation.names import PODS_ANNOTATION

MAX_PODS_PER_SERVICE = 1000
NODE_PORT_RANGE = (30000, 32767)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_metadata(meta: Any, errors: list[tuple[str, str]], *, namespaced: bool = True,
                      name_check: Callable[[str], str | None] = check_dns_label) -> None:
    """Metadata errors into ``errors``: the federation's rules (:func:`federation.resources.
    validate_metadata`), then the member's own, the ``ubernetes.io/pods`` annotation."""
    errors.extend(fed.validate_metadata({"metadata": meta}, namespaced=namespaced, name_check=name_check))
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    pods = annotations.get(PODS_ANNOTATION) if isinstance(annotations, dict) else None
    if pods is not None:
        if not isinstance(pods, str) or not pods.isdigit() or int(pods) > MAX_PODS_PER_SERVICE:
            errors.append(
                (
                    f"metadata.annotations[{PODS_ANNOTATION}]",
                    f"Invalid value: {pods!r}: must be an integer between 0 and {MAX_PODS_PER_SERVICE}",
                )
            )


def validate_service(obj: Any) -> list[tuple[str, str]]:
    """Field errors of a Service, as (path, message) pairs.

    The federation's rules (:mod:`federation.resources`: metadata with a DNS-1035 name, then
    the spec), so one Service is valid or invalid the same way on the federation and on
    every member; then what only a cluster decides: the pods annotation and its node-port
    range (which ports are free is checked when they are allocated)."""
    if not isinstance(obj, dict):
        return [("", "Invalid value: the object must be a JSON object")]
    errors: list[tuple[str, str]] = []
    validate_metadata(obj.get("metadata"), errors, name_check=fed.SERVICES.name_check)
    errors += fed.validate_service(obj)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    stype = spec.get("type", "ClusterIP")
    ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
    for i, port in enumerate(ports):
        node_port = port.get("nodePort") if isinstance(port, dict) else None
        if node_port in (None, 0) or not is_int(node_port) or not 1 <= node_port <= 65535:
            continue  # absent, or already reported by the federation's rules
        path = f"spec.ports[{i}].nodePort"
        if stype not in ("NodePort", "LoadBalancer"):
            errors.append((path, f"Forbidden: may not be used when `type` is '{stype}'"))
        elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
            errors.append((path, f"Invalid value: {node_port}: provided port is not in the valid range. "
                                 f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"))
    return errors
