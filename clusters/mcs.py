"""A member's Multi-Cluster Services objects: ServiceExports, ServiceImports, ClusterProperties.

KEP-1645 puts the MCS API in every cluster of a clusterset: a user creates a
``ServiceExport`` next to a Service to export it, the clusterset's MCS controller (here the
federation, :mod:`federation.controllers.mcs`) writes a ``ServiceImport`` into every member
and the export's ``Valid`` and ``Conflict`` conditions. KEP-2149 gives each cluster two
``ClusterProperty`` objects: its id (``cluster.clusterset.k8s.io``, the member's name) and
its clusterset's (``clusterset.k8s.io``, the federation's name), made at start.

The three kinds are plain stored objects here: metadata, resourceVersion and generation
bookkeeping, validation by the kinds' own rules (:mod:`federation.mcsapi`), and a status
that only ``.../status`` changes (ServiceExport; the others carry status in the object).
What makes them do something lives elsewhere: the data plane that serves each export and
listens on each import's ClusterSetIP is :mod:`clusters.mcsproxy`. Pure like
:mod:`clusters.state`: no I/O.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Protocol

from apimachinery.errors import APIError, already_exists, conflict, invalid, not_found
from apimachinery.kinds import Kind
from apimachinery.meta import now_rfc3339
from federation import mcsapi
from federation.resources import CLUSTERPROPERTIES, SERVICEEXPORTS, SERVICEIMPORTS, validate_object

Object = dict[str, Any]
# The metadata a write may set; the rest (uid, resourceVersion, timestamps) is the cluster's.
WRITABLE_META = ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")


class Host(Protocol):
    """What these objects use of their cluster (clusters.state.ClusterState)."""

    topology: Any
    on_change: Callable[[], None]

    def next_rv(self) -> str: ...
    def _new_meta(self, name: str, namespace: str | None = None) -> dict[str, Any]: ...
    def ensure_namespace(self, name: str) -> dict[str, Any]: ...


class MultiClusterObjects:
    """The member's MCS tables, keyed (namespace, name), ClusterProperties by name."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.exports: dict[tuple[str, str], Object] = {}
        self.imports: dict[tuple[str, str], Object] = {}
        self.properties: dict[str, Object] = {}
        self.set_property(mcsapi.CLUSTER_ID_PROPERTY, host.topology.name)

    # ---------------------------------------------------------------- ClusterProperty

    def set_property(self, name: str, value: str) -> Object:
        """Create or change a ClusterProperty (the two well-known ones are made this way)."""
        current = self.properties.get(name)
        if current is not None and current["spec"].get("value") == value:
            return current
        if current is None:
            return self.create(CLUSTERPROPERTIES, "", {"metadata": {"name": name}, "spec": {"value": value}})
        return self.replace(CLUSTERPROPERTIES, "", name, {**current, "spec": {"value": value}})

    # ---------------------------------------------------------------- generic writes

    def table(self, kind: Kind) -> dict[Any, Object]:
        return {SERVICEEXPORTS.plural: self.exports, SERVICEIMPORTS.plural: self.imports,
                CLUSTERPROPERTIES.plural: self.properties}[kind.plural]

    @staticmethod
    def _key(kind: Kind, namespace: str, name: str) -> Any:
        return (namespace, name) if kind.namespaced else name

    def _checked(self, kind: Kind, namespace: str, body: Any, name: str | None = None) -> Object:
        if not isinstance(body, dict):
            raise APIError(400, f"the request body must be a JSON object (a {kind.kind})")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, kind.kind):
            raise APIError(400, f'the kind of the object ({obj.get("kind")}) does not match the endpoint ({kind.kind})')
        if obj.get("apiVersion") not in (None, kind.api_version):
            raise APIError(400, f'the apiVersion of the object ({obj.get("apiVersion")}) does not match the endpoint '
                                f'({kind.api_version})')
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise invalid(kind.kind, "", [("metadata", "Invalid value: must be an object")], kind.group)
        if name is not None:
            if meta.get("name") not in (None, name):
                raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            meta["name"] = name
        if kind.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise APIError(400, "the namespace of the provided object does not match the namespace sent on the "
                                    f"request ({meta['namespace']} != {namespace})")
            meta["namespace"] = namespace
        errors = validate_object(kind, obj)
        if errors:
            raise invalid(kind.kind, str(meta.get("name") or ""), errors, kind.group)
        return obj

    def create(self, kind: Kind, namespace: str, body: Any) -> Object:
        obj = self._checked(kind, namespace, body)
        name = obj["metadata"]["name"]
        table, key = self.table(kind), self._key(kind, namespace, name)
        if key in table:
            raise already_exists(kind.plural, name, kind.group)
        meta = {**self.host._new_meta(name, namespace if kind.namespaced else None), "generation": 1,
                **{k: v for k, v in obj["metadata"].items() if k in WRITABLE_META}}
        stored = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, "spec": obj.get("spec") or {}}
        if kind is not SERVICEEXPORTS and isinstance(obj.get("status"), dict):
            stored["status"] = obj["status"]  # imports and properties: status travels with the object
        elif kind is SERVICEEXPORTS:
            stored["status"] = {}
        if kind.namespaced:
            self.host.ensure_namespace(namespace)
        table[key] = stored
        self.host.on_change()
        return stored

    def _current(self, kind: Kind, namespace: str, name: str) -> tuple[dict[Any, Object], Any, Object]:
        table, key = self.table(kind), self._key(kind, namespace, name)
        current = table.get(key)
        if current is None:
            raise not_found(kind.plural, name, kind.group)
        return table, key, current

    def replace(self, kind: Kind, namespace: str, name: str, body: Any) -> Object:
        table, key, current = self._current(kind, namespace, name)
        obj = self._checked(kind, namespace, body, name)
        rv = obj["metadata"].get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise conflict(kind.plural, name, kind.group)
        meta = {k: v for k, v in current["metadata"].items() if k not in WRITABLE_META}
        meta.update({k: v for k, v in obj["metadata"].items() if k in WRITABLE_META})
        spec = obj.get("spec") or {}
        status = current.get("status")
        if kind is not SERVICEEXPORTS and "status" in obj:
            status = obj["status"]
        if meta == current["metadata"] and spec == current.get("spec") and status == current.get("status"):
            return current  # a no-op update keeps its resourceVersion
        if spec != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
        meta["resourceVersion"] = self.host.next_rv()
        updated = {**current, "metadata": meta, "spec": spec}
        if status is not None:
            updated["status"] = status
        table[key] = updated
        self.host.on_change()
        return updated

    def replace_status(self, kind: Kind, namespace: str, name: str, status: Any) -> Object:
        table, key, current = self._current(kind, namespace, name)
        if not isinstance(status, dict):
            raise invalid(kind.kind, name, [("status", "Invalid value: must be an object")], kind.group)
        if status == current.get("status"):
            return current
        updated = {**current, "metadata": {**current["metadata"], "resourceVersion": self.host.next_rv()},
                   "status": status}
        table[key] = updated
        self.host.on_change()
        return updated

    def annotate(self, kind: Kind, namespace: str, name: str, key: str, value: str | None) -> bool:
        """Set (or with None remove) one annotation, as the cluster's own controllers do."""
        table = self.table(kind)
        current = table.get(self._key(kind, namespace, name))
        if current is None:
            return False
        annotations = dict(current["metadata"].get("annotations") or {})
        if annotations.get(key) == value:
            return False
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        meta = {**current["metadata"], "annotations": annotations, "resourceVersion": self.host.next_rv()}
        if not annotations:
            meta.pop("annotations")
        table[self._key(kind, namespace, name)] = {**current, "metadata": meta}
        self.host.on_change()
        return True

    def delete(self, kind: Kind, namespace: str, name: str) -> Object:
        table, key = self.table(kind), self._key(kind, namespace, name)
        current = table.pop(key, None)
        if current is None:
            raise not_found(kind.plural, name, kind.group)
        self.host.next_rv()
        self.host.on_change()
        return {**current, "metadata": {**current["metadata"], "deletionTimestamp": now_rfc3339()}}

    def drop_namespace(self, namespace: str) -> None:
        """A namespace's deletion takes its exports and imports with it."""
        for table in (self.exports, self.imports):
            for key in [k for k in table if k[0] == namespace]:
                del table[key]
