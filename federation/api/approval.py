"""Whether a member cluster is trusted with federated objects and DNS: its approval.

A bootstrap token lets anyone holding it join a new Cluster (issue 19). Joining is not
trust: until an admin approves it, the cluster receives no federated Services or
Deployments and none of its addresses reach DNS, so a rogue join cannot put an
attacker's address into the global answers. The record is a condition of the Cluster's
status, ``Approved``, as Kubernetes records a CertificateSigningRequest's approval:

- a Cluster joined by a bootstrap token or a cluster credential starts ``Approved=False``
  (reason ``PendingApproval``), or ``Approved=True`` (``AutoApproved``) when its name is
  on the API server's ``--auto-approve-clusters`` list (``ubernetes up`` puts its own
  members there);
- an admin approves it with ``ubernetes approve NAME`` (the ``/approval`` subresource,
  which only ``system:masters`` may write);
- every other write (the cluster's own status writes, the health controller's, a PUT of
  the whole object) keeps the stored condition: :func:`carry` is applied by the registry.

A Cluster with no ``Approved`` condition was created by an admin, or with authentication
off, or before approvals existed: it is trusted.
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import now_rfc3339

APPROVED = "Approved"
PENDING_REASON = "PendingApproval"
AUTO_REASON = "AutoApproved"
ADMIN_REASON = "ApprovedByAdmin"
DENIED_REASON = "Denied"


def condition(cluster: dict[str, Any]) -> dict[str, Any] | None:
    """The cluster's ``Approved`` condition, or None."""
    status = cluster.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for cond in conditions if isinstance(conditions, list) else []:
        if isinstance(cond, dict) and cond.get("type") == APPROVED:
            return cond
    return None


def is_approved(cluster: dict[str, Any]) -> bool:
    cond = condition(cluster)
    return cond is None or cond.get("status") == "True"


def make_condition(approved: bool, reason: str, message: str) -> dict[str, Any]:
    now = now_rfc3339()
    return {"type": APPROVED, "status": "True" if approved else "False", "reason": reason,
            "message": message, "lastTransitionTime": now, "lastUpdateTime": now}


def pending(name: str) -> dict[str, Any]:
    return make_condition(False, PENDING_REASON,
                          f"joined without an admin; not trusted for propagation or DNS until "
                          f"an admin runs `ubernetes approve {name}`")


def auto_approved() -> dict[str, Any]:
    return make_condition(True, AUTO_REASON, "on the API server's --auto-approve-clusters list")


def with_condition(obj: dict[str, Any], cond: dict[str, Any] | None) -> dict[str, Any]:
    """``obj`` with its ``Approved`` condition replaced by ``cond`` (removed when None)."""
    status = obj.get("status")
    status = status if isinstance(status, dict) else {}
    conditions = status.get("conditions")
    kept = [c for c in (conditions if isinstance(conditions, list) else [])
            if not (isinstance(c, dict) and c.get("type") == APPROVED)]
    if cond is not None:
        kept.append(cond)
    if kept or "conditions" in status:
        status["conditions"] = kept
    if status or "status" in obj:
        obj["status"] = status
    return obj


def carry(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with ``current``'s approval, whatever ``new`` says: only the approval
    subresource changes it."""
    stored = condition(current)
    if stored == condition(new):
        return new
    return with_condition(new, copy.deepcopy(stored))


def auto_approves(patterns: frozenset[str], name: str) -> bool:
    return "*" in patterns or name in patterns


def trusted(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The clusters that receive federated objects and reach DNS: the approved ones."""
    return [c for c in clusters if is_approved(c)]
