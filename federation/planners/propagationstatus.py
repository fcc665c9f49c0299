"""Propagation status of a federated object, per cluster and overall, as KubeFed reports it.

KubeFed's sync controller writes, on every federated object, ``status.clusters``: one entry
per placed cluster, ``{"name": ...}`` when the copy there is as wanted, with ``status`` set to
a reason when it is not (the reasons below), and ``status.conditions``: one condition of
type ``Propagation``, ``True`` when every placed cluster is fine, else ``False`` with reason
``CheckClusters``. ubernetes writes the same shape onto the federated object (issue 15), so
``kubectl get -o yaml`` shows what KubeFed would and the ``kubectl get`` columns
(:mod:`federation.tables`) summarise it.

Pure: the controller says what each cluster answered, :func:`propagation_status` turns it
and the previous status into the new one (a condition's ``lastTransitionTime`` moves only
when its status does).
"""

from __future__ import annotations

from typing import Any

OK = ""  # KubeFed's ClusterPropagationOK
WAITING_FOR_REMOVAL = "WaitingForRemoval"
CLUSTER_NOT_READY = "ClusterNotReady"
CREATION_FAILED = "CreationFailed"
UPDATE_FAILED = "UpdateFailed"
DELETION_FAILED = "DeletionFailed"
ALREADY_EXISTS = "AlreadyExists"
APPLY_OVERRIDES_FAILED = "ApplyOverridesFailed"
COMPUTE_PLACEMENT_FAILED = "ComputePlacementFailed"  # KubeFed's aggregate reason for a bad placement
CHECK_CLUSTERS = "CheckClusters"

PROPAGATION = "Propagation"


def propagation_status(
    *,
    clusters: dict[str, str],
    previous: dict[str, Any] | None,
    generation: int,
    now: str,
    aggregate_error: str = "",
    message: str = "",
) -> dict[str, Any]:
    """The object's status: ``clusters`` maps each placed (or still holding) cluster to its
    reason (``""``: fine). ``aggregate_error``: a reason that fails the whole object
    (``ComputePlacementFailed``), with ``message``."""
    entries = [{"name": name, **({"status": reason} if reason else {})} for name, reason in sorted(clusters.items())]
    failing = {n: r for n, r in clusters.items() if r}
    if aggregate_error:
        wanted = ("False", aggregate_error, message)
    elif failing:
        wanted = ("False", CHECK_CLUSTERS,
                  "; ".join(f"{n}: {r}" for n, r in sorted(failing.items())))
    else:
        wanted = ("True", "", "")
    old = next((c for c in (previous or {}).get("conditions") or []
                if isinstance(c, dict) and c.get("type") == PROPAGATION), {})
    status, reason, text = wanted
    same = old.get("status") == status
    condition = {
        "type": PROPAGATION, "status": status,
        "lastTransitionTime": old.get("lastTransitionTime", now) if same else now,
        "lastUpdateTime": old.get("lastUpdateTime", now) if same and old.get("reason", "") == reason
        and old.get("message", "") == text else now,
    }
    if reason:
        condition["reason"] = reason
    if text:
        condition["message"] = text
    return {"observedGeneration": generation, "conditions": [condition], "clusters": entries}


def summary(status: dict[str, Any] | None) -> tuple[str, str]:
    """``(CLUSTERS, PROPAGATION)`` for ``kubectl get``: ``"2/3"`` fine of placed, and the
    condition's status or, when False, its reason (``CheckClusters``)."""
    status = status or {}
    entries = [c for c in status.get("clusters") or [] if isinstance(c, dict)]
    fine = sum(1 for c in entries if not c.get("status"))
    condition = next((c for c in status.get("conditions") or []
                      if isinstance(c, dict) and c.get("type") == PROPAGATION), None)
    if condition is None:
        return "<none>", "<none>"
    shown = "True" if condition.get("status") == "True" else condition.get("reason") or condition.get("status", "")
    return f"{fine}/{len(entries)}", shown
