"""The simulated objects of one member cluster, in memory, and the pure helpers they need.

A member cluster is a process, not a real Kubernetes: it holds Nodes, Services, Pods,
Endpoints and Events as Kubernetes-shaped dicts and changes them only through the methods
here, so every rule (validation, defaulting, resourceVersion, generation, pod readiness,
endpoints) lives in one place and can be tested without sockets or an event loop.

Pods are simulated without Deployments or selectors: every Service (except ExternalName)
owns N pods, N from its annotation ``ubernetes.io/pods`` or the cluster's default. Pods are
spread over the zones round-robin and become Ready a fixed delay after they are created
(:meth:`ClusterState.reconcile` flips them; the caller sleeps until
:meth:`ClusterState.next_deadline`). Endpoints list the ready pods' IPs.

Time is injected (``clock``) so tests can step it. Nothing here is thread-safe: the process
runs one asyncio loop and every call happens on it.
"""

from __future__ import annotations

import copy
import ipaddress
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from clusters.ingresses import sync_ingress_status
from clusters.validation import NODE_PORT_RANGE, PODS_ANNOTATION, is_int, validate_metadata, validate_service
from apimachinery.meta import merge_patch, now_rfc3339, parse_selector, selector_matches
from apimachinery.errors import APIError, already_exists, conflict, invalid, not_found
from federation.names import KUBERNETES_NAMESPACES as DEFAULT_NAMESPACES
from federation.names import (
    LEGACY_REGION_LABEL,
    LEGACY_ZONE_LABEL,
    NAMESPACE_NAME_LABEL,
    REGION_LABEL,
    SERVICE_LABEL,
    ZONE_ANNOTATION,
    ZONE_LABEL,
)


Key = tuple[str, str]  # (namespace, name)


# --------------------------------------------------------------------------- address pools


class AddressPool:
    """Hands out addresses of a CIDR, lowest free first, so allocation is deterministic.

    The network and broadcast addresses are skipped for prefixes shorter than /31; the first
    usable address is handed out like any other. ``allocate`` is idempotent per owner.
    """

    def __init__(self, cidr: str, *, skip: int = 0) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        hosts = list(self.network.hosts()) if self.network.num_addresses > 2 else list(self.network)
        self._hosts = [str(h) for h in hosts][skip:]
        self._by_owner: dict[Any, str] = {}
        self._owner_of: dict[str, Any] = {}

    def __contains__(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.network
        except ValueError:
            return False

    @property
    def size(self) -> int:
        return len(self._hosts)

    def owners(self) -> list[Any]:
        return list(self._by_owner)

    def owner(self, address: str) -> Any:
        return self._owner_of.get(address)

    def address_of(self, owner: Any) -> str | None:
        return self._by_owner.get(owner)

    def allocate(self, owner: Any, requested: str | None = None) -> str | None:
        """The owner's address: the one it has, else ``requested`` if free, else the lowest free.

        Returns None when the pool is exhausted or ``requested`` is taken or outside the pool.
        """
        current = self._by_owner.get(owner)
        if current is not None and (not requested or requested == current):
            return current
        if current is not None:
            self.release(owner)
        if requested:
            if requested not in self._hosts or requested in self._owner_of:
                return None
            chosen = requested
        else:
            chosen = next((h for h in self._hosts if h not in self._owner_of), None)
            if chosen is None:
                return None
        self._by_owner[owner] = chosen
        self._owner_of[chosen] = owner
        return chosen

    def release(self, owner: Any) -> str | None:
        address = self._by_owner.pop(owner, None)
        if address is not None:
            self._owner_of.pop(address, None)
        return address


class SharedAddress(AddressPool):
    """One address that every LoadBalancer service shares, told apart by port.

    For a member whose only address is its host's (a container on a compose network):
    like MetalLB's ``allow-shared-ip``, services on one address must use different ports; a
    port already bound by another service shows up as a bind error on the later one.
    ``loadBalancerIP`` may only name this address.
    """

    def __init__(self, address: str) -> None:
        super().__init__(f"{ipaddress.ip_address(address)}/{ipaddress.ip_address(address).max_prefixlen}")

    def allocate(self, owner: Any, requested: str | None = None) -> str | None:
        address = self._hosts[0]
        if requested and requested != address:
            return None
        self._by_owner[owner] = address
        return address

    def release(self, owner: Any) -> str | None:
        return self._by_owner.pop(owner, None)


def default_pod_cidr(cluster_name: str) -> str:
    """10.<n>.0.0/16 with n in 20..219 derived from the name, so clusters rarely share one."""
    return f"10.{zlib.crc32(cluster_name.encode()) % 200 + 20}.0.0/16"


# --------------------------------------------------------------------------- cluster state


@dataclass
class Topology:
    """Where the cluster is: fixed for the life of the process."""

    name: str
    region: str
    zones: list[str]
    provider: str
    nodes_per_zone: int = 1
    pods_per_service: int = 2
    pod_ready_delay: float = 0.5
    pod_cidr: str = ""

    def __post_init__(self) -> None:
        if not self.pod_cidr:
            self.pod_cidr = default_pod_cidr(self.name)


@dataclass
class _PodSim:
    """What the simulation knows about a pod beyond its object."""

    key: Key
    service: Key
    zone: str
    node: str
    ip: str
    ready_at: float
    ready: bool = False


@dataclass
class ClusterState:
    """All objects of one member cluster. Mutations bump resourceVersion and call ``on_change``."""

    topology: Topology
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[], None] = lambda: None
    # chaos hook (issue 5): "ns/name" of a service -> number of its pods forced unready
    forced_unready: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rv = 0
        self.nodes: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.services: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, Any]] = {}
        self.endpoints: dict[Key, dict[str, Any]] = {}
        self.events: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._sims: dict[Key, _PodSim] = {}
        # Deployments, ReplicaSets and their pods (issue 7); their pods live in self.pods too
        from clusters.workloads import Workloads

        self.workloads = Workloads(self)
        # StatefulSets, PetSets and their claims (issue 14); their pods are the workloads' too
        from clusters.statefulsets import StatefulSets

        self.stateful = StatefulSets(self, self.workloads)
        self.workloads.stateful = self.stateful
        # ServiceExports, ServiceImports and ClusterProperties (issue 14, clusters/mcs.py)
        from clusters.mcs import MultiClusterObjects

        self.mcs = MultiClusterObjects(self)
        # ConfigMaps and Secrets, kept as written (issue 15)
        from clusters.plainobjects import PlainObjects

        self.plain = PlainObjects(self)
        # Jobs, CronJobs and DaemonSets run their pods in the workload simulation (issue 15)
        from clusters.daemonsets import DaemonSets
        from clusters.jobs import Jobs, prepare_job

        self.plain.prepare["jobs"] = prepare_job
        self.jobs = Jobs(self.workloads, self.plain)
        self.daemonsets = DaemonSets(self.workloads, self.plain.daemonsets)
        self.workloads.owners += [self.jobs, self.daemonsets]
        pod_net = ipaddress.ip_network(self.topology.pod_cidr, strict=False)
        base = int(pod_net.network_address)
        # nodes take the first /24 of the pod CIDR (.0.10 upwards), pods the rest (.1.0 upwards)
        self.pod_ips = AddressPool(self.topology.pod_cidr, skip=255)
        self._cluster_ips = AddressPool("10.96.0.0/16", skip=9)
        self._node_ports: set[int] = set()
        for ns in DEFAULT_NAMESPACES:
            self.ensure_namespace(ns)
        self._make_nodes(base)

    # ---- bookkeeping

    def scratch(self) -> "ClusterState":
        """A copy to run a dry-run write on (``?dryRun=All``): everything the write would do,
        on objects nobody else sees; telling the controller about it is left out."""
        return copy.deepcopy(self, {id(self.on_change): lambda: None})

    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def _new_meta(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), resourceVersion=self.next_rv(), creationTimestamp=now_rfc3339())
        return meta

    # ---- nodes

    def _make_nodes(self, base: int) -> None:
        t = self.topology
        i = 0
        for zone in t.zones:
            for n in range(t.nodes_per_zone):
                name = f"{t.name}-{zone}-node-{n}"
                ip = str(ipaddress.ip_address(base + 10 + i))
                i += 1
                now = now_rfc3339()
                self.nodes[name] = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        **self._new_meta(name),
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            ZONE_LABEL: zone,
                            REGION_LABEL: t.region,
                            LEGACY_ZONE_LABEL: zone,
                            LEGACY_REGION_LABEL: t.region,
                            "node.kubernetes.io/instance-type": "ubernetes.sim",
                        },
                    },
                    "spec": {"providerID": f"{t.provider}://{t.region}/{zone}/{name}", "podCIDR": t.pod_cidr},
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "kubelet is posting ready status (simulated)",
                                "lastHeartbeatTime": now,
                                "lastTransitionTime": now,
                            }
                        ],
                        "addresses": [
                            {"type": "InternalIP", "address": ip},
                            {"type": "Hostname", "address": name},
                        ],
                        "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                        "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                        "nodeInfo": {"kubeletVersion": "v1.32.0-ubernetes", "operatingSystem": "linux", "architecture": "amd64"},
                    },
                }

    def nodes_in_zone(self, zone: str) -> list[str]:
        return [n for n, o in self.nodes.items() if o["metadata"]["labels"][ZONE_LABEL] == zone]

    # ---- namespaces

    def ensure_namespace(self, name: str) -> dict[str, Any]:
        if name not in self.namespaces:
            self.namespaces[name] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {**self._new_meta(name), "labels": {NAMESPACE_NAME_LABEL: name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        return self.namespaces[name]

    def create_namespace(self, body: Any) -> dict[str, Any]:
        errors: list[tuple[str, str]] = []
        validate_metadata(body.get("metadata") if isinstance(body, dict) else None, errors, namespaced=False)
        name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
        if errors:
            raise invalid("Namespace", str(name or ""), errors)
        if name in self.namespaces:
            raise already_exists("namespaces", name)
        ns = self.ensure_namespace(name)
        labels = (body["metadata"].get("labels") or {})
        ns["metadata"]["labels"].update(labels)
        if body["metadata"].get("annotations"):  # a federated Namespace's owner marks (issue 15)
            ns["metadata"]["annotations"] = dict(body["metadata"]["annotations"])
        return ns

    def replace_namespace(self, name: str, body: Any) -> dict[str, Any]:
        """An update of a namespace: its labels, annotations and finalizers (a namespace has no
        spec a user writes but finalizers, and its status is the cluster's)."""
        current = self.namespaces.get(name)
        if current is None:
            raise not_found("namespaces", name)
        meta = body.get("metadata") if isinstance(body, dict) and isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") not in (None, name):
            raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise conflict("namespaces", name)
        errors: list[tuple[str, str]] = []
        validate_metadata({**meta, "name": name}, errors, namespaced=False)
        if errors:
            raise invalid("Namespace", name, errors)
        new_meta = dict(current["metadata"])
        for key in ("labels", "annotations", "finalizers", "managedFields"):
            if key in meta:
                new_meta[key] = meta[key]
            else:
                new_meta.pop(key, None)
        new_meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = name
        if new_meta == current["metadata"]:
            return current
        new_meta["resourceVersion"] = self.next_rv()
        updated = {**current, "metadata": new_meta}
        self.namespaces[name] = updated
        self.on_change()
        return updated

    def delete_namespace(self, name: str) -> dict[str, Any]:
        """Delete a namespace and what lives in it, as a cluster's namespace controller does
        (here at once); the namespaces every cluster has cannot be deleted."""
        if name not in self.namespaces:
            raise not_found("namespaces", name)
        if name in DEFAULT_NAMESPACES:
            raise APIError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           reason="Forbidden", kind="namespaces", name=name)
        for ns, svc in [k for k in self.services if k[0] == name]:
            self.delete_service(ns, svc)
        for ns, deployment in [k for k in self.workloads.deployments if k[0] == name]:
            self.workloads.delete_deployment(ns, deployment)
        for sset in [s for s in self.stateful.all_sets() if s["metadata"]["namespace"] == name]:
            self.stateful.delete(sset["kind"], name, sset["metadata"]["name"])
        for key in [k for k in self.stateful.claims if k[0] == name]:
            self.stateful.delete_claim(*key)
        self.plain.delete_namespace(name)
        for key in [k for k, e in self.events.items() if e["metadata"].get("namespace") == name]:
            del self.events[key]
        self.mcs.drop_namespace(name)
        gone = self.namespaces.pop(name)
        self.next_rv()
        self.on_change()
        return gone

    # ---- services

    def create_service(self, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object (a Service)")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {}) if isinstance(obj.get("metadata", {}), dict) else obj.get("metadata")
        if isinstance(meta, dict):
            if not meta.get("name") and isinstance(meta.get("generateName"), str):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if meta.get("namespace") not in (None, namespace):
                raise APIError(
                    400,
                    f"the namespace of the provided object does not match the namespace sent on the request ({meta['namespace']} != {namespace})",
                )
        _check_kind(obj, "Service")
        name = meta.get("name") if isinstance(meta, dict) else None
        errors = validate_service(obj)
        if errors:
            raise invalid("Service", str(name or ""), errors)
        key = (namespace, name)
        if key in self.services:
            raise already_exists("services", name)
        self._allocate_ips(key, obj, None)
        self._default_spec(obj["spec"])
        obj = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                **self._new_meta(name, namespace),
                "generation": 1,
                **{k: v for k, v in meta.items() if k in ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")},
            },
            "spec": obj["spec"],
            "status": {"loadBalancer": {}},
        }
        self.ensure_namespace(namespace)
        self.services[key] = obj
        self._sync_pods(key)
        self.on_change()
        return obj

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.services[(namespace, name)]
        except KeyError:
            raise not_found("services", name) from None

    def replace_service(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object (a Service)")
        _check_kind(body, "Service")
        meta = body.get("metadata")
        if isinstance(meta, dict):
            if meta.get("name") not in (None, name):
                raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            if meta.get("namespace") not in (None, namespace):
                raise APIError(
                    400,
                    f"the namespace of the provided object does not match the namespace sent on the request ({meta['namespace']} != {namespace})",
                )
        return self._update_service(namespace, name, copy.deepcopy(body), body_rv=(meta or {}).get("resourceVersion") if isinstance(meta, dict) else None)

    def patch_service(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        current = self.get_service(namespace, name)
        if not isinstance(patch, dict):
            raise APIError(400, "a merge patch must be a JSON object")
        pmeta = patch.get("metadata") if isinstance(patch.get("metadata"), dict) else {}
        for immutable in ("name", "namespace", "uid"):
            if immutable in pmeta and pmeta[immutable] != current["metadata"].get(immutable):
                raise invalid("Service", name, [(f"metadata.{immutable}", "Invalid value: field is immutable")])
        merged = merge_patch(copy.deepcopy(current), patch)
        body_rv = pmeta.get("resourceVersion")
        if isinstance(merged.get("metadata"), dict):
            merged["metadata"]["resourceVersion"] = body_rv
        return self._update_service(namespace, name, merged, body_rv=body_rv)

    def _update_service(self, namespace: str, name: str, obj: dict[str, Any], *, body_rv: Any) -> dict[str, Any]:
        current = self.get_service(namespace, name)
        if body_rv not in (None, "") and str(body_rv) != current["metadata"]["resourceVersion"]:
            raise conflict("services", name)
        obj.setdefault("metadata", {})
        if isinstance(obj["metadata"], dict):
            obj["metadata"]["name"] = name
        _drop_type_dependent_fields(obj, current)
        errors = validate_service(obj)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        old_ip = current["spec"].get("clusterIP")
        if spec.get("clusterIP") not in (None, "", old_ip) and current["spec"].get("type") != "ExternalName":
            errors.append(("spec.clusterIP", f'Invalid value: "{spec.get("clusterIP")}": field is immutable'))
        if errors:
            raise invalid("Service", name, errors)
        self._allocate_ips((namespace, name), obj, current)
        self._default_spec(obj["spec"])
        meta = obj["metadata"]
        new_meta = dict(current["metadata"])
        for k in ("labels", "annotations", "ownerReferences", "finalizers", "managedFields"):
            if k in meta:
                new_meta[k] = meta[k]
            else:
                new_meta.pop(k, None)
        changed_spec = obj["spec"] != current["spec"]
        if not changed_spec and new_meta == current["metadata"]:
            return current  # a no-op update keeps its resourceVersion, as the API server does
        deleting = current["metadata"].get("deletionTimestamp")
        if deleting and set(new_meta.get("finalizers") or []) - set(current["metadata"].get("finalizers") or []):
            raise invalid("Service", name, [("metadata.finalizers", "Forbidden: no new finalizers can be added if "
                                             "the object is being deleted")])
        if changed_spec:
            new_meta["generation"] = current["metadata"].get("generation", 1) + 1
        new_meta["resourceVersion"] = self.next_rv()
        updated = {"apiVersion": "v1", "kind": "Service", "metadata": new_meta, "spec": obj["spec"], "status": current["status"]}
        self._release_node_ports(current, keep=updated)
        self.services[(namespace, name)] = updated
        self._sync_pods((namespace, name))
        self.on_change()
        if deleting and not new_meta.get("finalizers"):
            return self._remove_service(namespace, name)  # the last finalizer is gone: now it goes
        return updated

    def delete_service(self, namespace: str, name: str) -> dict[str, Any]:
        """Delete, or with finalizers only mark it (deletionTimestamp): it goes when an update
        empties ``metadata.finalizers``, as in Kubernetes."""
        obj = self.get_service(namespace, name)
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                marked = {**obj, "metadata": {**meta, "deletionTimestamp": now_rfc3339(),
                                              "deletionGracePeriodSeconds": 0, "resourceVersion": self.next_rv()}}
                self.services[(namespace, name)] = marked
                self.on_change()
                return marked
            return obj
        return self._remove_service(namespace, name)

    def _remove_service(self, namespace: str, name: str) -> dict[str, Any]:
        key = (namespace, name)
        obj = self.get_service(namespace, name)
        del self.services[key]
        self._cluster_ips.release(key)
        self._release_node_ports(obj, keep=None)
        self._sync_pods(key)
        self.endpoints.pop(key, None)
        self.on_change()
        return obj

    def set_load_balancer_status(self, key: Key, ingress: list[dict[str, Any]]) -> bool:
        """Write ``status.loadBalancer``; returns True if it changed (and bumps resourceVersion)."""
        svc = self.services.get(key)
        if svc is None:
            return False
        wanted = {"ingress": ingress} if ingress else {}
        if svc["status"].get("loadBalancer") == wanted:
            return False
        svc = copy.deepcopy(svc)
        svc["status"]["loadBalancer"] = wanted
        svc["metadata"]["resourceVersion"] = self.next_rv()
        self.services[key] = svc
        return True

    def _default_spec(self, spec: dict[str, Any]) -> None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    def _allocate_ips(self, key: Key, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
        spec = obj["spec"]
        mine = {p.get("nodePort") for p in ((current or {}).get("spec", {}).get("ports") or [])}
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            taken = [
                (f"spec.ports[{i}].nodePort", f"Invalid value: {p['nodePort']}: provided port is already allocated")
                for i, p in enumerate(spec.get("ports") or [])
                if p.get("nodePort") and p["nodePort"] in self._node_ports and p["nodePort"] not in mine
            ]
            if taken:
                raise invalid("Service", key[1], taken)
        if spec.get("type") == "ExternalName":
            self._cluster_ips.release(key)
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            ip = (current or {}).get("spec", {}).get("clusterIP") or self._cluster_ips.address_of(key)
            if not ip or ip == "None":
                ip = self._cluster_ips.allocate(key, spec.get("clusterIP") or None) or self._cluster_ips.allocate(key)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in ((current or {}).get("spec", {}).get("ports") or [])}
        for port in spec.get("ports") or []:
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                if not port.get("nodePort"):
                    port["nodePort"] = old_ports.get((port.get("port"), port.get("protocol", "TCP"))) or self._free_node_port()
                self._node_ports.add(port["nodePort"])
            else:
                port.pop("nodePort", None)

    def _free_node_port(self) -> int:
        for p in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1):
            if p not in self._node_ports:
                return p
        raise APIError(422, "no free node port in 30000-32767", reason="Invalid")

    def _release_node_ports(self, old: dict[str, Any], keep: dict[str, Any] | None) -> None:
        kept = {p.get("nodePort") for p in ((keep or {}).get("spec", {}).get("ports") or [])}
        for p in old["spec"].get("ports") or []:
            if p.get("nodePort") and p["nodePort"] not in kept:
                self._node_ports.discard(p["nodePort"])

    # ---- pods and endpoints

    def desired_pods(self, svc: dict[str, Any]) -> int:
        if svc["spec"].get("type") == "ExternalName":
            return 0
        value = (svc["metadata"].get("annotations") or {}).get(PODS_ANNOTATION)
        return int(value) if value is not None else self.topology.pods_per_service

    def _sync_pods(self, key: Key) -> None:
        """Create or delete the service's pods to match its desired count (new pods start unready)."""
        ns, name = key
        svc = self.services.get(key)
        want = self.desired_pods(svc) if svc else 0
        if svc and self.workloads.pods_matching(ns, svc["spec"].get("selector")) is not None:
            want = 0  # the service fronts workload pods: no per-service simulated pods
        mine = sorted((s for s in self._sims.values() if s.service == key), key=lambda s: _pod_index(s.key[1]))
        for sim in mine[want:]:
            self.pod_ips.release(sim.key)
            del self._sims[sim.key]
            self.pods.pop(sim.key, None)
        have = {_pod_index(s.key[1]) for s in mine[:want]}
        zones = self.topology.zones
        for i in range(want):
            if i in have:
                continue
            zone = zones[i % len(zones)]
            nodes = self.nodes_in_zone(zone)
            node = nodes[(i // len(zones)) % len(nodes)]
            pod_key = (ns, f"{name}-{i}")
            ip = self.pod_ips.allocate(pod_key)
            if ip is None:
                self.record_event(svc, "Warning", "FailedCreatePod", "pod CIDR exhausted")
                break
            sim = _PodSim(pod_key, key, zone, node, ip, ready_at=self.clock() + self.topology.pod_ready_delay)
            self._sims[pod_key] = sim
            self.pods[pod_key] = self._pod_object(svc, sim, i)
        self._refresh_readiness()

    def _pod_object(self, svc: dict[str, Any], sim: _PodSim, index: int) -> dict[str, Any]:
        ns, name = sim.key
        labels = {SERVICE_LABEL: svc["metadata"]["name"], **(svc["spec"].get("selector") or {})}
        ports = [
            {"containerPort": p["targetPort"] if is_int(p.get("targetPort")) else p["port"], "protocol": p.get("protocol", "TCP")}
            for p in svc["spec"].get("ports") or []
        ]
        now = now_rfc3339()
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **self._new_meta(name, ns),
                "labels": labels,
                "annotations": {ZONE_ANNOTATION: sim.zone},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"], "uid": svc["metadata"]["uid"]}
                ],
            },
            "spec": {
                "nodeName": sim.node,
                "containers": [{"name": "app", "image": "ubernetes/echo:sim", "ports": ports}],
            },
            "status": {
                "phase": "Running",
                "podIP": sim.ip,
                "podIPs": [{"ip": sim.ip}],
                "hostIP": self.nodes[sim.node]["status"]["addresses"][0]["address"],
                "startTime": now,
                "conditions": _pod_conditions(False, now),
                "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0, "image": "ubernetes/echo:sim", "started": True,
                                       "state": {"running": {"startedAt": now}}}],
            },
        }

    def next_deadline(self) -> float | None:
        """The monotonic time of the next pod that will turn Ready on its own, if any."""
        pending = [s.ready_at for s in self._sims.values() if not s.ready and s.ready_at > self.clock()]
        for workload in (self.workloads.next_deadline(), self.stateful.next_deadline()):
            if workload is not None:
                pending.append(workload)
        return min(pending) if pending else None

    def reconcile(self) -> bool:
        """Flip pods whose delay has passed (or whose chaos state changed); refresh endpoints.

        Returns True when anything changed.
        """
        changed = False
        for _ in range(10):  # a set's next pod may start once the previous one is Ready
            step = self.workloads.reconcile()
            step |= self.stateful.reconcile()
            changed |= step
            if not step:
                break
        changed |= sync_ingress_status(self.plain.ingresses, self.nodes, self.workloads._touch)
        for key in list(self.services):
            changed |= self._sync_service_pods_only(key)
        return self._refresh_readiness() or changed

    def _sync_service_pods_only(self, key: Key) -> bool:
        """Drop (or restore) a service's simulated pods when workloads start (or stop) backing it."""
        svc = self.services[key]
        backed = self.workloads.pods_matching(key[0], svc["spec"].get("selector")) is not None
        have = sum(1 for s in self._sims.values() if s.service == key)
        want = 0 if backed else self.desired_pods(svc)
        if have == want:
            return False
        self._sync_pods(key)
        return True

    def _refresh_readiness(self) -> bool:
        now = self.clock()
        changed = False
        forced: dict[Key, int] = {}
        for ref, count in self.forced_unready.items():
            ns, _, name = ref.partition("/")
            forced[(ns, name)] = int(count)
        per_service: dict[Key, list[_PodSim]] = {}
        for sim in self._sims.values():
            per_service.setdefault(sim.service, []).append(sim)
        for key, sims in per_service.items():
            sims.sort(key=lambda s: _pod_index(s.key[1]))
            n_forced = forced.get(key, 0)
            for idx, sim in enumerate(sims):
                ready = now >= sim.ready_at and idx >= n_forced
                if ready != sim.ready:
                    sim.ready = ready
                    pod = self.pods[sim.key]
                    stamp = now_rfc3339()
                    pod["status"]["conditions"] = _pod_conditions(ready, stamp)
                    pod["status"]["containerStatuses"][0]["ready"] = ready
                    pod["metadata"]["resourceVersion"] = self.next_rv()
                    changed = True
        for key in list(self.services):
            changed |= self._sync_endpoints(key)
        return changed

    def _sync_endpoints(self, key: Key) -> bool:
        svc = self.services[key]
        if svc["spec"].get("type") == "ExternalName":
            return self.endpoints.pop(key, None) is not None
        sims = sorted((s for s in self._sims.values() if s.service == key), key=lambda s: _pod_index(s.key[1]))
        workload = self._workload_backends(key)
        if workload is not None:
            sims = workload

        def address(sim: Any) -> dict[str, Any]:
            pod_spec = self.pods[sim.key]["spec"]
            # a pod with a hostname in this service's subdomain (a StatefulSet's pod) is named
            # by its address, as Kubernetes' endpoints controller does
            named = pod_spec.get("hostname") and pod_spec.get("subdomain") == key[1]
            return {
                "ip": sim.ip,
                **({"hostname": pod_spec["hostname"]} if named else {}),
                "nodeName": sim.node,
                "targetRef": {"kind": "Pod", "namespace": key[0], "name": sim.key[1], "uid": self.pods[sim.key]["metadata"]["uid"]},
            }

        ready = [address(s) for s in sims if s.ready]
        not_ready = [address(s) for s in sims if not s.ready]
        ports = [
            {
                **({"name": p["name"]} if p.get("name") else {}),
                "port": p["targetPort"] if is_int(p.get("targetPort")) else self._named_port(key, p),
                "protocol": p.get("protocol", "TCP"),
            }
            for p in svc["spec"].get("ports") or []
        ]
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets = [{**subset, "ports": ports}] if subset else []
        existing = self.endpoints.get(key)
        if existing is not None and existing["subsets"] == subsets and existing["metadata"].get("labels") == svc["metadata"].get("labels"):
            return False
        meta = existing["metadata"] if existing else self._new_meta(key[1], key[0])
        meta = {**meta, "resourceVersion": self.next_rv() if existing else meta["resourceVersion"]}
        if svc["metadata"].get("labels"):
            meta["labels"] = dict(svc["metadata"]["labels"])
        else:
            meta.pop("labels", None)
        self.endpoints[key] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}
        return True

    def ready_pods(self, key: Key) -> list[dict[str, Any]]:
        """The service's ready pods with where they run (for the data plane)."""
        workload = self._workload_backends(key)
        if workload is not None:
            return [{"name": s.key[1], "ip": s.ip, "zone": s.zone, "node": s.node} for s in workload if s.ready]
        sims = sorted((s for s in self._sims.values() if s.service == key and s.ready), key=lambda s: _pod_index(s.key[1]))
        return [{"name": s.key[1], "ip": s.ip, "zone": s.zone, "node": s.node} for s in sims]

    def _workload_backends(self, key: Key) -> list[Any] | None:
        """The workload pods behind a service (chaos-forced ones unready), or None if none back it."""
        svc = self.services.get(key)
        if svc is None:
            return None
        picked = self.workloads.pods_matching(key[0], svc["spec"].get("selector"))
        if picked is None:
            return None
        n_forced = int(self.forced_unready.get(f"{key[0]}/{key[1]}", 0))
        out = []
        for i, sim in enumerate(picked):
            view = copy.copy(sim)
            view.ready = sim.ready and i >= n_forced
            out.append(view)
        return out

    def _named_port(self, key: Key, port: dict[str, Any]) -> int:
        """A named targetPort resolved against the workload pods' container ports."""
        target = port.get("targetPort")
        if isinstance(target, str):
            for pod in (self.pods[s.key] for s in self._workload_backends(key) or [] if s.key in self.pods):
                for c in pod["spec"].get("containers") or []:
                    for cp in c.get("ports") or []:
                        if cp.get("name") == target:
                            return cp["containerPort"]
        return port["port"]

    # ---- events

    def record_event(self, obj: dict[str, Any] | None, type_: str, reason: str, message: str) -> dict[str, Any] | None:
        """Record a Kubernetes Event about ``obj``; repeats bump ``count`` like the real recorder."""
        if obj is None:
            return None
        meta = obj["metadata"]
        ns = meta.get("namespace", "default")
        ident = (ns, obj["kind"], meta["name"], meta.get("uid"), reason, message)
        now = now_rfc3339()
        event = self.events.get(ident)
        if event is not None:
            event["count"] += 1
            event["lastTimestamp"] = now
            event["metadata"]["resourceVersion"] = self.next_rv()
            self.events.move_to_end(ident)
            return event
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": self._new_meta(f"{meta['name']}.{uuid.uuid4().hex[:16]}", ns),
            "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": meta["name"], "uid": meta.get("uid"), "apiVersion": "v1"},
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": "ubernetes-cluster", "host": self.topology.name},
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
        }
        self.events[ident] = event
        while len(self.events) > 1000:
            self.events.popitem(last=False)
        return event


def _check_kind(obj: dict[str, Any], kind: str) -> None:
    if obj.get("kind") not in (None, kind):
        raise APIError(400, f'the kind of the object ({obj.get("kind")}) does not match the endpoint ({kind})')
    if obj.get("apiVersion") not in (None, "v1"):
        raise APIError(400, f'the apiVersion of the object ({obj.get("apiVersion")}) does not match the endpoint (v1)')


def _drop_type_dependent_fields(obj: dict[str, Any], current: dict[str, Any]) -> None:
    """Clear node ports a type change made meaningless, as the API server's service strategy does."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
        return
    old = {p.get("nodePort") for p in current["spec"].get("ports") or []}
    ports = spec.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if isinstance(port, dict) and is_int(port.get("nodePort")) and port["nodePort"] in old:
            port.pop("nodePort", None)
    if spec.get("type") == "ExternalName" and spec.get("clusterIP") == current["spec"].get("clusterIP"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)


def _pod_index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _pod_conditions(ready: bool, stamp: str) -> list[dict[str, Any]]:
    r = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": r, "lastTransitionTime": stamp},
        {"type": "Ready", "status": r, "lastTransitionTime": stamp},
    ]


def filter_by_selector(items: Iterable[dict[str, Any]], selector: str | None) -> list[dict[str, Any]]:
    """Objects whose labels match a label selector string (raises SelectorError when malformed)."""
    reqs = parse_selector(selector)
    return [o for o in items if selector_matches(reqs, o["metadata"].get("labels"))]
