"""What a joining or joined cluster may not do to Cluster objects, checked after the body is read.

The authorizer (federation/auth.py) decides from the request line alone; these rules need
the object (issue 19):

- a non-admin never chooses which Secret the federation reads a member's token from:
  ``spec.secretRef`` is ``cluster-access-<name>`` or absent on create, and unchanged after;
- a Cluster joined by a non-admin starts pending approval (federation/approval.py);
- a bootstrap token gets a cluster's *first* credential only: never one for a name that
  already has a credential or a Cluster object, which would take over that cluster.

Pure functions of the user and the objects: the API server supplies both.
"""

from __future__ import annotations

from typing import Any

from federation.api import approval, auth
from apimachinery import errors as st
from federation.resources import CLUSTERS


def _trusted(user: auth.User | None) -> bool:
    """No authentication (user None) or an admin: nothing to hold back."""
    return user is None or user.in_group(auth.MASTERS)


def _secret_ref(obj: dict[str, Any] | None) -> Any:
    spec = (obj or {}).get("spec")
    return spec.get("secretRef") if isinstance(spec, dict) else None


def _forbidden(user: auth.User, name: str, verb: str, reason: str) -> st.APIError:
    attrs = auth.Attributes(verb=verb, resource=CLUSTERS.plural, name=name, group=CLUSTERS.group)
    return st.APIError(403, auth.forbidden_message(user, attrs, reason), reason="Forbidden",
                       kind=CLUSTERS.plural, name=name or None, group=CLUSTERS.group)


def admit_cluster(user: auth.User | None, current: dict[str, Any] | None, new: dict[str, Any], *,
                  auto_approve: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``new`` as it may be stored when ``user`` creates (``current`` None) or changes a Cluster."""
    if _trusted(user):
        return new
    assert user is not None
    meta = new.get("metadata")
    name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
    ref = _secret_ref(new)
    if current is None:
        if ref not in (None, {"name": auth.ACCESS_SECRET_PREFIX + name}):
            raise _forbidden(user, name, "create", f"spec.secretRef may only name {auth.ACCESS_SECRET_PREFIX}{name}: "
                                                   "the federation reads a member's token from no other Secret")
        cond = approval.auto_approved() if approval.auto_approves(auto_approve, name) else approval.pending(name)
        return approval.with_condition(new, cond)
    if ref != _secret_ref(current):
        raise _forbidden(user, name, "update", "only an admin may change spec.secretRef")
    return new


def check_credential_request(user: auth.User | None, name: str, *, issued_to: str | None, cluster_exists: bool) -> None:
    """Raise 403 unless ``user`` may be issued a credential for cluster ``name``.

    ``issued_to``: who got the cluster's current credential (None: it has none). A bootstrap
    token gets a new name's first credential; the same token may ask again until the
    Cluster is registered (the answer to its first request may have been lost on the way,
    and the name was its own claim), never after."""
    if _trusted(user):
        return
    assert user is not None
    retry = issued_to is not None and issued_to == user.name and not cluster_exists
    if (issued_to is not None and not retry) or cluster_exists:
        raise _forbidden(user, name, "create",
                         f"cluster {name!r} is already claimed; a bootstrap token gets only a new cluster's first "
                         "credential (an admin may re-issue one, or delete the Cluster to free the name)")
