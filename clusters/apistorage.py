"""A member cluster's simulated state as the storage of the generic API server.

The member serves the same HTTP API as the federation (:mod:`apimachinery.server`); this
module maps each member kind onto :class:`~clusters.state.ClusterState` and its
:class:`~clusters.workloads.Workloads`: which table holds it and which method writes it.
Kinds the member only reads (nodes, endpoints, pods, events, replicasets) have no write
methods here, and the server registers no write routes for them (their verbs say so).

``dryRun=All`` runs the write on :meth:`ClusterState.scratch`, a copy nobody else sees, so
validation, allocation and the controllers' bookkeeping all run and nothing stays. Watches
come from :class:`~clusters.watch.ChangeFeed`, which derives events from the state.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable

from apimachinery import errors as st
from apimachinery.kinds import Kind
from apimachinery.storage import FellBehind
from clusters.state import ClusterState
from clusters.watch import ChangeFeed, Event, TooOld
from federation.resources import DEPLOYMENTS, ENDPOINTS, EVENTS, MEMBER, NAMESPACES, NODES, PODS, REPLICASETS, SERVICES
from federation.resources import CLUSTERPROPERTIES, SERVICEEXPORTS, SERVICEIMPORTS
from federation.resources import CONFIGMAPS, CRONJOBS, DAEMONSETS, INGRESSES, JOBS, NOT_SIMULATED, SECRETS
from federation.resources import PERSISTENTVOLUMECLAIMS, PETSETS, STATEFULSETS

Object = dict[str, Any]


class FeedEvent:
    """A :class:`~clusters.watch.Event` as :class:`apimachinery.storage.WatchEvent`."""

    __slots__ = ("type", "resource", "namespace", "object", "previous", "rv")

    def __init__(self, event: Event, resource: str) -> None:
        self.type = event.type
        self.resource = resource
        self.namespace = str((event.object.get("metadata") or {}).get("namespace") or "")
        self.object = event.object
        self.previous = event.previous
        self.rv = event.seq


class FeedSubscription:
    def __init__(self, feed: ChangeFeed, keys: dict[str, str], cursor: int) -> None:
        self.feed, self.keys, self.cursor = feed, keys, cursor
        self.pending: collections.deque[Event] = collections.deque()
        feed.watchers += 1

    def _fill(self) -> None:
        try:
            events = self.feed.since(self.cursor)
        except TooOld:
            raise FellBehind() from None
        if events:
            self.cursor = events[-1].seq
            self.pending.extend(events)

    async def next(self, timeout: float) -> FeedEvent | None:
        if not self.pending:
            self._fill()
        if not self.pending:
            await self.feed.wait(timeout)
            self._fill()
        if not self.pending:
            return None
        event = self.pending.popleft()
        return FeedEvent(event, self.keys.get(event.plural, event.plural))

    def close(self) -> None:
        self.feed.watchers -= 1


class FeedHistory:
    """The change feed as :class:`apimachinery.storage.WatchSource`; its log is in memory and
    bounded, so a replay is one page."""

    def __init__(self, state: ClusterState, feed: ChangeFeed, kinds: Iterable[Kind]) -> None:
        self.state, self.feed = state, feed
        self.keys = {k.plural: k.key for k in kinds}

    def revision(self) -> int:
        return int(self.state.resource_version)

    def oldest(self) -> int:
        return self.feed.horizon

    def subscribe(self) -> FeedSubscription:
        self.feed.sync()
        return FeedSubscription(self.feed, self.keys, int(self.state.resource_version))

    def _events(self, after: int, kind: Kind) -> list[Event]:
        self.feed.sync()
        return [e for e in self.feed.since(after) if e.plural == kind.plural]

    async def count_events(self, since: int, kind: Kind, limit: int) -> int:
        try:
            return min(limit, len(self._events(since, kind)))
        except TooOld:
            return 0  # the window check then answers 410: the start is older than the log

    async def events_page(self, after: int, kind: Kind) -> list[FeedEvent]:
        try:
            return [FeedEvent(e, kind.key) for e in self._events(after, kind)]
        except TooOld as err:
            raise st.Gone(str(err)) from None


# Where each kind lives in a ClusterState (a scratch copy for a dry run has the same shape).
TABLES: dict[str, tuple[str, ...]] = {
    NODES.plural: ("nodes",), NAMESPACES.plural: ("namespaces",), SERVICES.plural: ("services",),
    ENDPOINTS.plural: ("endpoints",), PODS.plural: ("pods",), EVENTS.plural: ("events",),
    DEPLOYMENTS.plural: ("workloads", "deployments"), REPLICASETS.plural: ("workloads", "replicasets"),
}
# Multi-Cluster Services (issue 14): stored and written by clusters/mcs.py.
MCS_TABLES = {SERVICEEXPORTS.plural: ("mcs", "exports"), SERVICEIMPORTS.plural: ("mcs", "imports"),
              CLUSTERPROPERTIES.plural: ("mcs", "properties")}
TABLES.update(MCS_TABLES)
# Kinds kept as written (issue 15): ClusterState.plain has one table each; the controllers
# of Jobs, CronJobs, DaemonSets and Ingresses read theirs and write the status.
PLAIN = (CONFIGMAPS.plural, SECRETS.plural, JOBS.plural, CRONJOBS.plural, DAEMONSETS.plural, INGRESSES.plural)
POD_OWNERS = (JOBS.plural, DAEMONSETS.plural)
TABLES.update({plural: ("plain", plural) for plural in PLAIN})
# StatefulSets, PetSets and their claims (issue 14): clusters/statefulsets.py.
SETS = {STATEFULSETS.plural: "StatefulSet", PETSETS.plural: "PetSet"}
TABLES.update({STATEFULSETS.plural: ("stateful", "sets"), PETSETS.plural: ("stateful", "petsets"),
               PERSISTENTVOLUMECLAIMS.plural: ("stateful", "claims")})


# Kinds in discovery that nothing simulates (issue 18: kubectl apply --prune's default set): empty.
EMPTY = frozenset(k.plural for k in NOT_SIMULATED)


class MemberStorage:
    def __init__(self, state: ClusterState, feed: ChangeFeed) -> None:
        self.state = state
        self.feed = feed
        self.watch = FeedHistory(state, feed, MEMBER)

    @staticmethod
    def _table(state: ClusterState, kind: Kind) -> dict[Any, Object]:
        path = TABLES.get(kind.plural)
        if path is None and kind.plural in EMPTY:
            return {}
        if path is None:
            raise st.not_found(kind.plural, "", kind.group)
        table: Any = state
        for attribute in path:
            table = getattr(table, attribute)
        return table

    # -------------------------------------------------------------- reads

    def stale_reason(self) -> str | None:
        return None  # the member's state is in this process: every read is current

    def get(self, kind: Kind, namespace: str, name: str, *, consistent: bool = True) -> Object:
        obj = self.find(kind, namespace, name)
        if obj is None:
            raise st.not_found(kind.plural, name, kind.group)
        return obj

    def find(self, kind: Kind, namespace: str, name: str) -> Object | None:
        table = self._table(self.state, kind)
        if not kind.namespaced:
            return table.get(name)
        if kind.plural == EVENTS.plural:
            return next((e for e in table.values()
                         if e["metadata"].get("namespace") == namespace and e["metadata"]["name"] == name), None)
        return table.get((namespace, name))

    def list(self, kind: Kind, namespace: str | None, *, consistent: bool = True) -> tuple[list[Object], int]:
        self.feed.sync()  # so the list's resourceVersion and the watch log agree
        items = [o for o in self._table(self.state, kind).values()
                 if namespace is None or o["metadata"].get("namespace") == namespace]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, int(self.state.resource_version)

    async def snapshot(self, kind: Kind, namespace: str | None) -> tuple[list[Object], int]:
        return self.list(kind, namespace)

    # -------------------------------------------------------------- writes

    def _writable(self, dry_run: bool) -> ClusterState:
        return self.state.scratch() if dry_run else self.state

    def create(self, kind: Kind, namespace: str, body: Object, *, dry_run: bool) -> Object:
        state = self._writable(dry_run)
        if kind.plural in MCS_TABLES:
            return state.mcs.create(kind, namespace, body)
        if kind.plural == SERVICES.plural:
            return state.create_service(namespace, body)
        if kind.plural == DEPLOYMENTS.plural:
            return state.workloads.create_deployment(namespace, body)
        if kind.plural == NAMESPACES.plural:
            return state.create_namespace(body)
        if kind.plural == PODS.plural:  # bare pods (issue 14)
            return state.workloads.create_pod(namespace, body)
        if kind.plural in PLAIN:
            return state.plain.create(kind, namespace, body)
        if kind.plural in SETS:
            return state.stateful.create(SETS[kind.plural], namespace, body)
        if kind.plural == PERSISTENTVOLUMECLAIMS.plural:
            return state.stateful.create_claim(namespace, body)
        raise st.APIError(405, f"{kind.qualified} cannot be created on a member cluster", reason="MethodNotAllowed")

    def replace(self, kind: Kind, namespace: str, name: str, body: Object, *, subresource: str,
                dry_run: bool) -> Object:
        state = self._writable(dry_run)
        if kind.plural in MCS_TABLES and (subresource == "status" and kind.plural == SERVICEEXPORTS.plural):
            return state.mcs.replace_status(kind, namespace, name, body.get("status") if isinstance(body, dict) else None)
        if kind.plural in MCS_TABLES and not subresource:
            return state.mcs.replace(kind, namespace, name, body)
        if subresource == "status" and kind.plural in (SERVICES.plural, DEPLOYMENTS.plural, *SETS, *PLAIN[2:]):
            return self._replace_status(state, kind, namespace, name, body)
        if subresource:
            raise st.APIError(405, f"the {subresource} of {kind.qualified} cannot be written on a member cluster",
                              reason="MethodNotAllowed")
        if kind.plural == SERVICES.plural:
            return state.replace_service(namespace, name, body)
        if kind.plural == DEPLOYMENTS.plural:
            return state.workloads.replace_deployment(namespace, name, body)
        if kind.plural == NAMESPACES.plural:
            return state.replace_namespace(name, body)
        if kind.plural == PODS.plural:
            return state.workloads.replace_pod(namespace, name, body)
        if kind.plural in PLAIN:
            return state.plain.replace(kind, namespace, name, body)
        if kind.plural in SETS:
            return state.stateful.replace(SETS[kind.plural], namespace, name, body)
        raise st.APIError(405, f"{kind.qualified} cannot be updated on a member cluster", reason="MethodNotAllowed")

    def _replace_status(self, state: ClusterState, kind: Kind, namespace: str, name: str, body: Object) -> Object:
        """``PUT``/``PATCH`` of ``.../status``: only status changes (the member's own controllers
        may write it again, as a real cluster's would)."""
        table = self._table(state, kind)
        current = table.get((namespace, name))
        if current is None:
            raise st.not_found(kind.plural, name, kind.group)
        rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body.get("metadata"), dict) else None
        if rv not in (None, "") and str(rv) != str(current["metadata"].get("resourceVersion")):
            raise st.conflict(kind.plural, name, kind.group)
        status = body.get("status")
        if not isinstance(status, dict):
            raise st.invalid(kind.kind, name, [("status", "Invalid value: must be an object")], kind.group)
        if status == current.get("status"):
            return current
        updated = {**current, "metadata": {**current["metadata"], "resourceVersion": state.next_rv()}, "status": status}
        table[(namespace, name)] = updated
        state.on_change()
        return updated

    def delete(self, kind: Kind, namespace: str, name: str, *, expected_rv: int | None, policy: str,
               dry_run: bool) -> Object:
        current = self.get(kind, namespace, name)
        if expected_rv is not None and str(expected_rv) != str(current["metadata"].get("resourceVersion")):
            raise st.conflict(kind.plural, name, kind.group)
        state = self._writable(dry_run)
        if kind.plural in MCS_TABLES:
            return state.mcs.delete(kind, namespace, name)
        if kind.plural == SERVICES.plural:
            return state.delete_service(namespace, name)
        if kind.plural == DEPLOYMENTS.plural:
            return state.workloads.delete_deployment(namespace, name, policy=policy)
        if kind.plural == REPLICASETS.plural:
            return state.workloads.delete_replicaset(namespace, name, policy=policy)
        if kind.plural == PODS.plural:
            return state.workloads.delete_pod(namespace, name)
        if kind.plural == NAMESPACES.plural:
            return state.delete_namespace(name)
        if kind.plural in PLAIN:
            if policy == "Orphan" and kind.plural in POD_OWNERS:
                state.workloads.orphan_dependents(current["metadata"]["uid"])
            if policy == "Orphan" and kind.plural == CRONJOBS.plural:
                state.jobs.orphan_jobs(current["metadata"]["uid"])
            return state.plain.delete(kind, namespace, name)
        if kind.plural in SETS:
            return state.stateful.delete(SETS[kind.plural], namespace, name, policy=policy)
        if kind.plural == PERSISTENTVOLUMECLAIMS.plural:
            return state.stateful.delete_claim(namespace, name)
        raise st.APIError(405, f"{kind.qualified} cannot be deleted on a member cluster", reason="MethodNotAllowed")
