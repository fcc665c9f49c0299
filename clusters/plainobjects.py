"""The member kinds a cluster keeps as they are written: ConfigMaps, Secrets, and the
objects of the controllers that read them: Jobs, CronJobs, DaemonSets, Ingresses (issue 15).

Services, Deployments and their pods have simulations of their own (:mod:`clusters.state`,
:mod:`clusters.workloads`); a ConfigMap or a Secret has nothing to simulate, and a Job,
CronJob, DaemonSet or Ingress is an object like any other whose controller (:mod:`clusters.jobs`,
:mod:`clusters.daemonsets`, :mod:`clusters.ingresses`) reads this table and writes its
``status`` (a write of the object keeps the status, as a real API server's main resource
does). One small table per kind does, with the rules a real API server applies to every object: the
kind's own defaulting and validation (:mod:`federation.resources`, the same as the
federation's, so an object is valid or invalid the same way on both), a fresh uid,
resourceVersion and creationTimestamp on create, a resourceVersion precondition on update,
``generation`` bumped when anything but metadata and status changes.

Nothing here logs an object's content: a Secret's data never reaches a log line or an Event.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Callable, Protocol

from apimachinery.errors import APIError, already_exists, conflict, invalid, not_found
from apimachinery.kinds import Kind
from federation import resources as fed


class State(Protocol):
    """What of :class:`clusters.state.ClusterState` the tables use (a Protocol: state imports this module)."""

    def _new_meta(self, name: str, namespace: str | None = None) -> dict[str, Any]: ...
    def next_rv(self) -> str: ...
    def ensure_namespace(self, name: str) -> dict[str, Any]: ...
    def on_change(self) -> None: ...

Key = tuple[str, str]
Object = dict[str, Any]

KEPT_METADATA = ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")


def content(obj: Object) -> Object:
    """What of an object ``generation`` counts: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class PlainObjects:
    """One table per kind (``configmaps``, ``secrets``), keyed (namespace, name)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.configmaps: dict[Key, Object] = {}
        self.secrets: dict[Key, Object] = {}
        self.jobs: dict[Key, Object] = {}
        self.cronjobs: dict[Key, Object] = {}
        self.daemonsets: dict[Key, Object] = {}
        self.ingresses: dict[Key, Object] = {}
        # per plural: what the kind's strategy does to an object once it has its uid, on create
        # and on update
        # (a Job's generated selector, clusters/jobs.py)
        self.prepare: dict[str, Callable[[Object], None]] = {}

    def table(self, kind: Kind) -> dict[Key, Object]:
        return getattr(self, kind.plural)

    def _checked(self, kind: Kind, namespace: str, body: Any, *, name: str | None) -> Object:
        if not isinstance(body, dict):
            raise APIError(400, f"the request body must be a JSON object (a {kind.kind})")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, kind.kind):
            raise APIError(400, f"the kind of the object ({obj.get('kind')}) is not {kind.kind}")
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            if not meta.get("name") and name is None and isinstance(meta.get("generateName"), str):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if name is not None and meta.get("name") not in (None, name):
                raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            if name is not None:
                meta["name"] = name
            if meta.get("namespace") not in (None, namespace):
                raise APIError(400, "the namespace of the provided object does not match the namespace sent on the "
                                    f"request ({meta['namespace']} != {namespace})")
            meta["namespace"] = namespace
        kind.default(obj)
        errors = fed.validate_object(kind, obj)
        if errors:
            raise invalid(kind.kind, str((meta or {}).get("name") or name or "") if isinstance(meta, dict) else "",
                          errors, kind.group)
        return obj

    def create(self, kind: Kind, namespace: str, body: Any) -> Object:
        obj = self._checked(kind, namespace, body, name=None)
        meta = obj["metadata"]
        key = (namespace, meta["name"])
        table = self.table(kind)
        if key in table:
            raise already_exists(kind.plural, meta["name"], kind.group)
        stored = {
            "apiVersion": kind.api_version, "kind": kind.kind,
            "metadata": {**self.state._new_meta(meta["name"], namespace), "generation": 1,
                         **{k: v for k, v in meta.items() if k in KEPT_METADATA}},
            **content(obj),
        }
        prepare = self.prepare.get(kind.plural)
        if prepare is not None:
            prepare(stored)
        self.state.ensure_namespace(namespace)
        table[key] = stored
        self.state.on_change()
        return stored

    def replace(self, kind: Kind, namespace: str, name: str, body: Any) -> Object:
        table = self.table(kind)
        current = table.get((namespace, name))
        if current is None:
            raise not_found(kind.plural, name, kind.group)
        obj = self._checked(kind, namespace, body, name=name)
        meta = obj["metadata"]
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise conflict(kind.plural, name, kind.group)
        new_meta = {k: v for k, v in current["metadata"].items() if k not in KEPT_METADATA}
        new_meta.update({k: v for k, v in meta.items() if k in KEPT_METADATA})
        updated = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": new_meta, **content(obj)}
        if "status" in current:
            updated["status"] = current["status"]
        prepare = self.prepare.get(kind.plural)
        if prepare is not None:
            prepare(updated)  # what the strategy generated stays (a Job's selector)
        if updated == current:
            return current
        if content(updated) != content(current):
            new_meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        new_meta["resourceVersion"] = self.state.next_rv()
        table[(namespace, name)] = updated
        self.state.on_change()
        return updated

    def delete(self, kind: Kind, namespace: str, name: str) -> Object:
        table = self.table(kind)
        gone = table.pop((namespace, name), None)
        if gone is None:
            raise not_found(kind.plural, name, kind.group)
        self.state.next_rv()
        self.state.on_change()
        return gone

    def delete_namespace(self, namespace: str) -> None:
        """What lives in a namespace being deleted goes with it."""
        for table in (self.configmaps, self.secrets, self.jobs, self.cronjobs, self.daemonsets, self.ingresses):
            for key in [k for k in table if k[0] == namespace]:
                del table[key]
