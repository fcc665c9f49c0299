"""One sync path for the federation's copies in a member cluster (issue 11).

Services and Deployments (and the kinds that follow) are federated the same way: the
controller plans which copy each member should hold, and :func:`sync_copies` makes one
member hold exactly that:

- a wanted copy that is missing is created, one whose fields the federation sets drifted
  is updated (the adapter says what "drifted" means and what the update sends);
- a copy the federation made that is no longer wanted is deleted, or released (its
  federation marks taken off, the object left to the member) when its federated object
  was deleted with ``propagationPolicy: Orphan`` (a tombstone, :mod:`federation.controllers.ownership`);
- a write the member refuses (a 4xx other than 404 and 409: too large, invalid) is not
  retried on every pass: each (cluster, namespace, name) backs off exponentially until the
  desired copy changes or a write succeeds (issue 19; :mod:`apimachinery.backoff`);
- every create, update and refusal is an Event on the federated object.

What differs per kind lives in a :class:`CopyAdapter`. The function returns the member's
copies after the writes, for the controller's status aggregation; a caller that reports
KubeFed's propagation status (issue 15) passes ``outcomes`` and reads each key's reason
there (:mod:`federation.planners.propagationstatus`): ``AlreadyExists`` when the member has
an object of that name that is not ours and the adapter does not adopt it (an adapter that
does takes it over: the update puts our labels on it), ``CreationFailed``/``UpdateFailed``
when the member refused or failed the write, ``WaitingForRemoval`` for a copy being removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from apimachinery.backoff import Backoff
from apimachinery.client import APIClient
from apimachinery.errors import AlreadyExists, APIError, Conflict, NotFound
from apimachinery.kinds import Kind
from federation.api.events import record_event
from federation.api.registry import Registry
from federation.planners import propagationstatus as reasons

log = logging.getLogger("federation.membersync")

Key = tuple[str, str]  # (namespace, name)
Object = dict[str, Any]


class CopyAdapter(Protocol):
    kind: Kind  # the member's kind of the copies
    noun: str  # "service", "deployment": how logs and events name a copy

    def drifted(self, desired: Object, actual: Object) -> bool: ...
    def update_body(self, desired: Object, actual: Object) -> Object: ...
    def created_event(self, want: "Wanted", cluster: str) -> str: ...
    def update_event(self, desired: Object, actual: Object, cluster: str) -> tuple[str, str]: ...
    def collectable(self, copy: Object) -> bool: ...
    def tombstone(self, key: Key, copy: Object) -> Any: ...
    def released(self, copy: Object) -> Object: ...
    def delete_body(self) -> Object | None: ...


@dataclass
class Wanted:
    """The copy a member should hold, and the federated object it is a copy of."""

    desired: Object
    owner: Object


def refused(err: APIError) -> bool:
    """A member's answer that the same write would get again: back off (404 and 409 are races)."""
    return 400 <= err.code < 500 and not isinstance(err, (NotFound, Conflict))


def fingerprint(desired: Object) -> str:
    return hashlib.sha256(json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def sync_copies(
    *,
    registry: Registry,
    adapter: CopyAdapter,
    client: APIClient,
    cluster: str,
    wanted: dict[Key, Wanted],
    existing: dict[Key, Object],
    backoff: Backoff[tuple[str, str, str]],
    only: Key | None = None,
    outcomes: dict[Key, str] | None = None,
) -> dict[Key, Object]:
    """Make ``cluster`` hold exactly ``wanted`` (see the module docstring); returns its copies.

    ``only``: this call syncs that one key (a per-key reconcile: ``wanted`` and ``existing``
    hold at most it), so the backoff of the member's other copies is left alone.
    ``outcomes``: filled with each key's propagation reason (``""``: as wanted)."""
    outcome = outcomes if outcomes is not None else {}
    adopts = getattr(adapter, "adopts", None)  # (Wanted) -> bool; the kinds before issue 15 never adopt
    kind, noun = adapter.kind, adapter.noun
    copies = dict(existing)
    backoff.retain(lambda k: k[0] != cluster or (k[1], k[2]) in wanted or (only is not None and (k[1], k[2]) != only))
    for key, want in wanted.items():
        retry_key, print_ = (cluster, key[0], key[1]), fingerprint(want.desired)
        actual = copies.get(key)
        failed = reasons.CREATION_FAILED if actual is None else reasons.UPDATE_FAILED
        if not backoff.ready(retry_key, print_):
            outcome[key] = failed
            continue
        outcome[key] = reasons.OK
        try:
            if actual is None:
                try:
                    copies[key] = await client.post(kind.path(namespace=key[0]), want.desired)
                except AlreadyExists:
                    if adopts is None or not adopts(want):
                        outcome[key] = reasons.ALREADY_EXISTS  # a member's own object: not ours to overwrite
                        log.debug("%s %s/%s in cluster %s exists and is not ours", noun, key[0], key[1], cluster)
                        continue
                    theirs = await client.get(kind.path(namespace=key[0], name=key[1]))
                    copies[key] = await client.put(kind.path(namespace=key[0], name=key[1]),
                                                   adapter.update_body(want.desired, theirs))
                    message = f"adopted {noun} {'/'.join(k for k in key if k)} in cluster {cluster}"
                    log.info("%s", message)
                    record_event(registry, involved=want.owner, reason="AdoptedInCluster", message=message)
                    backoff.succeeded(retry_key)
                    continue
                message = adapter.created_event(want, cluster)
                log.info("%s", message)
                record_event(registry, involved=want.owner, reason="CreatedInCluster", message=message)
            elif adapter.drifted(want.desired, actual):
                reason, message = adapter.update_event(want.desired, actual, cluster)
                copies[key] = await client.put(kind.path(namespace=key[0], name=key[1]),
                                               adapter.update_body(want.desired, actual))
                log.info("%s", message)
                record_event(registry, involved=want.owner, reason=reason, message=message)
            backoff.succeeded(retry_key)
        except APIError as err:
            if isinstance(err, Conflict):  # our view of the member lagged a write: the next pass sees it
                log.debug("%s %s/%s in cluster %s: %s", noun, key[0], key[1], cluster, err.message)
                continue
            outcome[key] = failed
            if not refused(err):
                log.warning("%s %s/%s in cluster %s: %s", noun, key[0], key[1], cluster, err.message)
                continue
            delay = backoff.failed(retry_key, print_)
            log.warning("%s %s/%s refused by cluster %s (%d): %s; retrying in %.0f s",
                        noun, key[0], key[1], cluster, err.code, err.message, delay)
            record_event(registry, involved=want.owner, reason="RefusedByCluster", type_="Warning",
                         message=f"cluster {cluster} refused {noun} {key[0]}/{key[1]} ({err.code}): "
                                 f"{err.message[:1000]}; retrying in {delay:.0f} s")
    for key in [k for k in copies if k not in wanted]:
        copy_ = copies[key]
        if not adapter.collectable(copy_):
            continue
        path = kind.path(namespace=key[0], name=key[1])
        try:
            if adapter.tombstone(key, copy_) is not None:
                await client.put(path, adapter.released(copy_))
                log.info("released %s %s/%s in cluster %s (deleted with Orphan)", noun, key[0], key[1], cluster)
            else:
                await client.request("DELETE", path, body=adapter.delete_body())
                log.info("deleted %s %s/%s from cluster %s", noun, key[0], key[1], cluster)
        except APIError as err:
            if not isinstance(err, NotFound):
                log.warning("removing %s %s/%s from cluster %s: %s", noun, key[0], key[1], cluster, err.message)
                outcome[key] = reasons.DELETION_FAILED
                continue
        outcome[key] = reasons.WAITING_FOR_REMOVAL
        copies.pop(key, None)
    return copies
