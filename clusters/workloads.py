"""Simulated Deployments, ReplicaSets and their Pods in one member cluster.

Enough of the real controllers to make a federated rollout observable: a Deployment owns
ReplicaSets (one per pod template, named ``<deployment>-<pod-template-hash>``, numbered by
the ``deployment.kubernetes.io/revision`` annotation), rolls from the old to the new one
honouring ``maxSurge`` and ``maxUnavailable`` (the arithmetic of the real deployment
controller's ``reconcileNewReplicaSet`` / ``reconcileOldReplicaSets``), or ``Recreate``s,
keeps ``revisionHistoryLimit`` old ReplicaSets and reports ``Available`` and
``Progressing`` (with ``ProgressDeadlineExceeded``) conditions. A ReplicaSet keeps its
replica count of Pods.

A Pod is a small state machine advanced by the clock, the kubelet's life in miniature:

- its seccomp annotations are checked first: a ``localhost/<profile>`` the node does not
  have fails container creation (``CreateContainerError``, and a message naming the
  profile and the ones the node has), as the kubelet's runtime does;
- init containers run in order (``Init:0/2``, ``Init:1/2``); one that fails (its command is
  ``false`` or ``exit N``, N > 0) shows ``Init:Error``, then ``Init:CrashLoopBackOff``
  with a doubling back-off, its restart count rising on every attempt;
- an image tagged ``:broken`` fails to pull: ``ErrImagePull``, then ``ImagePullBackOff``
  (``Init:`` before either for an init container), retried with the same back-off;
- then ``PodInitializing`` (``ContainerCreating`` without init containers), ``Running``, and
  Ready after the cluster's ``--pod-ready-delay``.

Deleting follows ``ownerReferences`` as the garbage collector does: ``Background`` removes
the owner at once and its dependents on the next pass, ``Foreground`` marks the owner
(``deletionTimestamp`` + the ``foregroundDeletion`` finalizer) and removes it only once its
dependents are gone, ``Orphan`` strips the owner reference from the dependents and leaves
them running.

Like :mod:`clusters.state`, nothing here does I/O or sleeps: :meth:`Workloads.reconcile`
makes one pass and :meth:`Workloads.next_deadline` says when the next pass is due. The
timings are :class:`WorkloadSettings` with quick defaults (tenths of a second, where a
kubelet takes seconds), so tests run fast.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from apimachinery.meta import merge_patch, now_rfc3339, selector_matches
from federation.resources import (
    DEPLOYMENTS,
    SECCOMP_CONTAINER_PREFIX,
    SECCOMP_POD_ANNOTATION,
    _containers_errors,
    default_deployment,
    validate_deployment,
)
from clusters.validation import validate_metadata
from federation.names import CHANGE_CAUSE_ANNOTATION, PODS_ANNOTATION, REVISION_ANNOTATION, ZONE_ANNOTATION, ZONE_LABEL
from apimachinery.errors import APIError, already_exists, conflict, invalid, not_found



class WorkloadHost(Protocol):
    """What the workload controllers use of the cluster they run in (clusters.state.ClusterState):
    its pods, nodes and addresses, its clock, its events and its resourceVersions."""

    topology: Any
    pods: dict[tuple[str, str], dict[str, Any]]
    nodes: dict[str, dict[str, Any]]
    pod_ips: Any
    clock: Callable[[], float]
    on_change: Callable[[], None]

    def next_rv(self) -> str: ...
    def nodes_in_zone(self, zone: str) -> list[str]: ...
    def ensure_namespace(self, name: str) -> dict[str, Any]: ...
    def record_event(self, obj: dict[str, Any] | None, type_: str, reason: str, message: str) -> dict[str, Any] | None: ...

Key = tuple[str, str]

HASH_LABEL = "pod-template-hash"
FOREGROUND = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
BROKEN_TAG = ":broken"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class WorkloadSettings:
    """How long the simulated kubelet takes; real kubelets take seconds, these tenths."""

    init_container_duration: float = 0.1  # how long each init container runs
    container_start_delay: float = 0.1  # PodInitializing / ContainerCreating
    image_pull_delay: float = 0.05  # before a pull of a :broken image fails
    error_display: float = 0.1  # how long Init:Error / ErrImagePull shows before the back-off
    backoff: float = 0.2  # first back-off (the kubelet's is 10 s), doubling
    backoff_max: float = 2.0  # cap (the kubelet's is 5 min)
    seccomp_profiles: tuple[str, ...] = ("audit.json", "fine-grained.json", "violation.json")
    job_pod_duration: float = 0.5  # how long a Job's pod runs before its containers exit (issue 15)

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...]) -> "WorkloadSettings":
        """From ``KEY=VALUE`` strings (the ``--workload`` flag), e.g. ``backoff=0.5``."""
        values: dict[str, Any] = {}
        names = {f.replace("_", "-"): f for f in cls.__dataclass_fields__}
        for item in items:
            key, sep, value = item.partition("=")
            fname = names.get(key.strip().replace("_", "-"))
            if not sep or fname is None:
                raise ValueError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(names))}")
            if fname == "seccomp_profiles":
                values[fname] = tuple(p for p in value.split(",") if p)
            else:
                try:
                    values[fname] = float(value)
                except ValueError:
                    raise ValueError(f"{item!r}: {key} takes a number of seconds") from None
                if values[fname] < 0:
                    raise ValueError(f"{item!r}: must not be negative")
        return cls(**values)


# ------------------------------------------------------------------ pure helpers


def safe_hash(value: Any, length: int = 10) -> str:
    """A short, stable, DNS-safe hash (the alphabet of Kubernetes' ``rand.SafeEncodeString``)."""
    n = zlib.crc32(json.dumps(value, sort_keys=True).encode()) | (zlib.adler32(json.dumps(value).encode()) << 32)
    out = ""
    while len(out) < length:
        n, r = divmod(n, len(SAFE_ALPHABET))
        out += SAFE_ALPHABET[r]
    return out


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(SAFE_ALPHABET) for _ in range(length))


def resolve_int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def rolling_limits(deployment: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts, as ``ResolveFenceposts`` computes them."""
    spec = deployment["spec"]
    desired = spec.get("replicas", 1)
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        return 0, desired
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def init_failure_code(container: dict[str, Any]) -> int:
    """The exit code a simulated container ends with: ``false`` and ``exit N`` fail."""
    words = " ".join((container.get("command") or []) + (container.get("args") or []))
    if re.fullmatch(r"\s*(/bin/|/usr/bin/)?false\s*", words):
        return 1
    m = re.search(r"\bexit\s+(\d+)", words)
    return int(m.group(1)) if m else 0


def image_broken(container: dict[str, Any]) -> bool:
    return str(container.get("image", "")).endswith(BROKEN_TAG)


def seccomp_problem(pod: dict[str, Any], profiles: tuple[str, ...], node: str) -> str | None:
    """Why the runtime cannot create the pod's containers with their seccomp profiles."""
    annotations = pod["metadata"].get("annotations") or {}
    containers = pod["spec"].get("initContainers", []) + pod["spec"].get("containers", [])
    for c in containers:
        value = annotations.get(SECCOMP_CONTAINER_PREFIX + c["name"]) or annotations.get(SECCOMP_POD_ANNOTATION)
        if isinstance(value, str) and value.startswith("localhost/"):
            profile = value[len("localhost/"):]
            if profile not in profiles:
                return (
                    f'failed to create container "{c["name"]}": cannot load seccomp profile "{value}": '
                    f'no profile "{profile}" in the seccomp profile root on node {node} '
                    f'(profiles there: {", ".join(profiles) or "none"})'
                )
    return None


def pod_display_status(pod: dict[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods`` (kubectl's printPod logic)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    n_init = len((pod.get("spec") or {}).get("initContainers") or [])
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode") == 0:
            continue
        if term is not None:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break
    if not initializing:
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def deletion_policy(options: Any, query: dict[str, str] | None = None) -> str:
    """The propagation policy of a DELETE: DeleteOptions body first, then the query string."""
    query = query or {}
    policy = None
    orphan = None
    if isinstance(options, dict):
        policy = options.get("propagationPolicy")
        orphan = options.get("orphanDependents")
    policy = policy or query.get("propagationPolicy")
    if orphan is None and "orphanDependents" in query:
        orphan = query["orphanDependents"].lower() == "true"
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise APIError(400, f'unsupported propagationPolicy "{policy}": supported values: Background, Foreground, Orphan')
    if policy is None:
        policy = "Orphan" if orphan else "Background"
    return policy


# ------------------------------------------------------------------ pod simulation


@dataclass
class PodSim:
    key: Key
    rs_uid: str
    zone: str
    node: str
    ip: str
    stage: str  # create-failed | init | init-error | init-backoff | pulling | pull-error | pull-backoff | starting | running
    until: float | None
    init_index: int = 0
    pull_target: str = ""  # "init" or "main": whose image is being pulled
    restarts: list[int] = field(default_factory=list)
    backoff: float = 0.0
    last_exit: int = 0
    ready_at: float | None = None
    ready: bool = False
    started: str = ""
    run_for: float | None = None  # a Job's pod: runs this long, then its containers exit


class PodOwner(Protocol):
    """A controller whose pods the workload simulation runs (Jobs, DaemonSets: issue 15).

    :meth:`Workloads.reconcile` calls ``sync_pods`` after the ReplicaSets have theirs and
    ``sync_status`` after the pods advanced; ``uids`` keeps the owners' pods from the
    garbage collector, ``deadlines`` says when the owner wants a pass of its own."""

    def uids(self) -> set[str]: ...
    def sync_pods(self) -> bool: ...
    def sync_status(self) -> bool: ...
    def deadlines(self) -> list[float]: ...


class Workloads:
    """Deployments, ReplicaSets and their Pods; the cluster state owns one."""

    def __init__(self, state: WorkloadHost, settings: WorkloadSettings | None = None) -> None:
        self.state = state
        self.settings = settings or WorkloadSettings()
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.replicasets: dict[Key, dict[str, Any]] = {}
        self.sims: dict[Key, PodSim] = {}
        self._progress: dict[Key, tuple[Any, float]] = {}
        self.owners: list[PodOwner] = []  # Jobs, CronJobs, DaemonSets (clusters/jobs.py, clusters/daemonsets.py)
        # the exit code of a container's command (clusters.podstreams.container_exit: the
        # command interpreter under the container's seccomp profile); plain ``false``/``exit N`` here
        # StatefulSets and PetSets (clusters.statefulsets), set by the cluster state: they own
        # pods of this simulation too, so garbage collection and Services must know them
        self.stateful: Any = None
        self.run_container: Callable[[dict[str, Any], dict[str, Any]], int] = lambda pod, c: init_failure_code(c)

    # -------------------------------------------------------------- helpers

    @property
    def clock(self) -> float:
        return self.state.clock()

    def _meta(self, name: str, namespace: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self.state.next_rv(),
            "creationTimestamp": now_rfc3339(),
        }

    def _touch(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = self.state.next_rv()

    def _uids(self) -> set[str]:
        uids = {o["metadata"]["uid"] for o in list(self.deployments.values()) + list(self.replicasets.values())}
        for owner in self.owners:
            uids |= owner.uids()
        return uids | (self.stateful.uids() if self.stateful is not None else set())

    def pods_of(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        uid = rs["metadata"]["uid"]
        return [self.state.pods[s.key] for s in self.sims.values() if s.rs_uid == uid and s.key in self.state.pods]

    def replicasets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        uid = deployment["metadata"]["uid"]
        return [rs for rs in self.replicasets.values() if controller_uid(rs) == uid]

    # -------------------------------------------------------------- Deployment API

    def create_deployment(self, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object (a Deployment)")
        obj = copy.deepcopy(body)
        _check_kind(obj, "Deployment")
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = meta["generateName"] + random_suffix()
        if meta.get("namespace") not in (None, namespace):
            raise APIError(400, f"the namespace of the provided object does not match the namespace sent on the request ({meta['namespace']} != {namespace})")
        name = meta.get("name")
        obj["metadata"] = meta
        self._validate(obj, str(name or ""))
        key = (namespace, name)
        if key in self.deployments:
            raise already_exists("deployments.apps", name)
        default_deployment(obj)
        new = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                **self._meta(name, namespace),
                "generation": 1,
                **{k: v for k, v in meta.items() if k in ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")},
            },
            "spec": obj["spec"],
            "status": {},
        }
        self.state.ensure_namespace(namespace)
        self.deployments[key] = new
        self.state.on_change()
        return new

    def _validate(self, obj: dict[str, Any], name: str) -> None:
        errors: list[tuple[str, str]] = []
        # the federation's name rule for Deployments, so a federated one fits every member
        validate_metadata(obj.get("metadata"), errors, name_check=DEPLOYMENTS.name_check)
        errors += validate_deployment(obj)
        if errors:
            raise invalid("Deployment", name, errors, "apps")

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.deployments[(namespace, name)]
        except KeyError:
            raise not_found("deployments", name, "apps") from None

    def replace_deployment(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object (a Deployment)")
        _check_kind(body, "Deployment")
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") not in (None, name):
            raise APIError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        return self._update_deployment(namespace, name, copy.deepcopy(body), body_rv=meta.get("resourceVersion"))

    def patch_deployment(self, namespace: str, name: str, patch: Any, *, json_patch: bool = False) -> dict[str, Any]:
        current = self.get_deployment(namespace, name)
        if json_patch:
            from apimachinery.jsonpatch import PatchError, apply_json_patch

            try:
                merged = apply_json_patch(current, patch)
            except PatchError as err:
                raise APIError(422, f'deployments.apps "{name}": {err}', reason="Invalid") from None
            body_rv = None
        else:
            if not isinstance(patch, dict):
                raise APIError(400, "a merge patch must be a JSON object")
            merged = merge_patch(copy.deepcopy(current), patch)
            body_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch.get("metadata"), dict) else None
        return self._update_deployment(namespace, name, merged, body_rv=body_rv)

    def _update_deployment(self, namespace: str, name: str, obj: dict[str, Any], *, body_rv: Any) -> dict[str, Any]:
        current = self.get_deployment(namespace, name)
        if body_rv not in (None, "") and str(body_rv) != current["metadata"]["resourceVersion"]:
            raise conflict("deployments", name, "apps")
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        obj["metadata"]["name"] = name
        self._validate(obj, name)
        default_deployment(obj)
        if obj["spec"].get("selector") != current["spec"].get("selector"):
            raise invalid("Deployment", name, [("spec.selector", f"Invalid value: {obj['spec'].get('selector')}: field is immutable")], "apps")
        new_meta = dict(current["metadata"])
        for k in ("labels", "annotations", "ownerReferences", "finalizers", "managedFields"):
            if k in obj["metadata"]:
                new_meta[k] = obj["metadata"][k]
            else:
                new_meta.pop(k, None)
        changed_spec = obj["spec"] != current["spec"]
        if not changed_spec and new_meta == current["metadata"]:
            return current
        if changed_spec:
            new_meta["generation"] = current["metadata"].get("generation", 1) + 1
        new_meta["resourceVersion"] = self.state.next_rv()
        updated = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": new_meta, "spec": obj["spec"], "status": current["status"]}
        self.deployments[(namespace, name)] = updated
        self.state.on_change()
        return updated

    def delete_deployment(self, namespace: str, name: str, *, policy: str = "Background") -> dict[str, Any]:
        return self._delete(self.deployments, (namespace, name), "deployments", policy)

    # -------------------------------------------------------------- ReplicaSet and Pod API

    def get_replicaset(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.replicasets[(namespace, name)]
        except KeyError:
            raise not_found("replicasets", name, "apps") from None

    def delete_replicaset(self, namespace: str, name: str, *, policy: str = "Background") -> dict[str, Any]:
        return self._delete(self.replicasets, (namespace, name), "replicasets", policy)

    def create_pod(self, namespace: str, body: Any) -> dict[str, Any]:
        """A bare Pod (issue 14: the post's seccomp pair): no owner; ``restartPolicy: Never``
        lets its containers run to the end (``Succeeded`` or ``Failed``)."""
        if not isinstance(body, dict):
            raise APIError(400, "the body of a pod must be an object")
        _check_pod_kind(body)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        name = str(meta.get("name") or "")
        errors: list[tuple[str, str]] = []
        validate_metadata(meta, errors, name_check=DEPLOYMENTS.name_check)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else None
        if spec is None:
            errors.append(("spec", "Required value"))
        else:
            errors += _pod_errors(spec)
        if errors:
            raise invalid("Pod", name, errors)
        if (namespace, name) in self.state.pods:
            raise already_exists("pods", name)
        self.state.ensure_namespace(namespace)
        spec = copy.deepcopy(spec)
        spec.setdefault("restartPolicy", "Always")
        owner = {"metadata": {"name": name, "namespace": namespace, "uid": ""},
                 "spec": {"template": {"metadata": meta, "spec": spec}}}
        if not self._create_pod(owner, name=name):
            raise APIError(500, "pod CIDR exhausted", reason="InternalError")
        self.state.on_change()
        return self.state.pods[(namespace, name)]

    def replace_pod(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """Labels and annotations may change; a pod's spec may not (the API server's rule for the
        fields this simulation has)."""
        key = (namespace, name)
        current = self.state.pods.get(key)
        if current is None:
            raise not_found("pods", name)
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise APIError(400, "the body of a pod must be an object with metadata")
        rv = body["metadata"].get("resourceVersion")
        if rv not in (None, "") and str(rv) != str(current["metadata"].get("resourceVersion")):
            raise conflict("pods", name)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        if {**current["spec"], **spec} != current["spec"]:  # fields left out keep their values
            raise invalid("Pod", name, [("spec", "Forbidden: pod updates may not change fields other than "
                                         "metadata.labels and metadata.annotations on this simulated cluster")])
        meta = current["metadata"]
        labels, annotations = body["metadata"].get("labels") or {}, body["metadata"].get("annotations") or {}
        if labels == (meta.get("labels") or {}) and annotations == (meta.get("annotations") or {}):
            return current
        meta["labels"], meta["annotations"] = dict(labels), dict(annotations)
        self._touch(current)
        self.state.on_change()
        return current

    def delete_pod(self, namespace: str, name: str) -> dict[str, Any]:
        key = (namespace, name)
        if key not in self.sims:
            if key in self.state.pods:
                raise APIError(405, f'pod "{name}" belongs to the per-service simulation ({PODS_ANNOTATION}); change the service instead', reason="MethodNotAllowed")
            raise not_found("pods", name)
        if self.stateful is not None and self.stateful.owns(key) is not None:
            return self.stateful.delete_pod(key)  # Terminating, then made again with its name
        pod = self.state.pods[key]
        self._remove_pod(key)
        self.state.on_change()
        return pod

    def _delete(self, table: dict[Key, dict[str, Any]], key: Key, plural: str, policy: str) -> dict[str, Any]:
        obj = table.get(key)
        if obj is None:
            raise not_found(plural, key[1], "apps")
        uid = obj["metadata"]["uid"]
        if policy == "Orphan":
            self.orphan_dependents(uid)
            del table[key]
        elif policy == "Foreground":
            meta = obj["metadata"]
            meta.setdefault("deletionTimestamp", now_rfc3339())
            meta["deletionGracePeriodSeconds"] = 0
            if FOREGROUND not in (meta.get("finalizers") or []):
                meta["finalizers"] = list(meta.get("finalizers") or []) + [FOREGROUND]
            self._touch(obj)
        else:
            del table[key]
        self.state.on_change()
        return obj

    def orphan_dependents(self, uid: str) -> None:
        """``propagationPolicy: Orphan``: the owner's dependents lose their reference to it and stay."""
        for dependent in self._dependents(uid):
            refs = [r for r in dependent["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                dependent["metadata"]["ownerReferences"] = refs
            else:
                dependent["metadata"].pop("ownerReferences", None)
            if dependent["kind"] == "Pod":
                sim = self.sims.get((dependent["metadata"]["namespace"], dependent["metadata"]["name"]))
                if sim is not None:
                    sim.rs_uid = ""  # a bare pod now: the garbage collector leaves it
            self._touch(dependent)

    def _dependents(self, uid: str) -> list[dict[str, Any]]:
        out = [rs for rs in self.replicasets.values() if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])]
        for sim in self.sims.values():
            pod = self.state.pods.get(sim.key)
            if pod and any(r.get("uid") == uid for r in pod["metadata"].get("ownerReferences") or []):
                out.append(pod)
        return out

    # -------------------------------------------------------------- services

    def pods_matching(self, namespace: str, selector: dict[str, str] | None) -> list[PodSim] | None:
        """The workload pods a service selector picks, or None when it backs onto no workload.

        A selector backs onto workloads when it matches a Deployment's or ReplicaSet's pod
        template, even one scaled to zero, so a service whose Deployment has no replicas in
        this cluster has no endpoints rather than the per-service simulated pods.
        """
        if not selector:
            return None
        reqs = [(k, "=", [v]) for k, v in selector.items()]
        templates = [d["spec"].get("template") for (ns, _), d in self.deployments.items() if ns == namespace]
        templates += [rs["spec"].get("template") for (ns, _), rs in self.replicasets.items() if ns == namespace]
        if self.stateful is not None:
            templates += self.stateful.templates(namespace)
        backed = any(selector_matches(reqs, ((t or {}).get("metadata") or {}).get("labels") or {}) for t in templates)
        picked = [
            s for s in self.sims.values()
            if s.key[0] == namespace and s.key in self.state.pods
            and selector_matches(reqs, self.state.pods[s.key]["metadata"].get("labels") or {})
        ]
        if not backed and not picked:
            return None
        return sorted(picked, key=lambda s: s.key[1])

    # -------------------------------------------------------------- the pass

    def next_deadline(self) -> float | None:
        now = self.clock
        times = [s.until for s in self.sims.values() if s.until is not None]
        times += [s.ready_at for s in self.sims.values() if s.ready_at is not None and not s.ready]
        for d in self.deployments.values():
            entry = self._progress.get((d["metadata"]["namespace"], d["metadata"]["name"]))
            if entry is not None and not _complete(d):
                times.append(entry[1] + d["spec"].get("progressDeadlineSeconds", 600))
            mrs = d["spec"].get("minReadySeconds", 0)
            if mrs:
                times.append(now + min(mrs, 1.0))
        for owner in self.owners:
            times += owner.deadlines()
        future = [t for t in times if t > now]
        return min(future) if future else None

    def reconcile(self) -> bool:
        """Passes of every simulated controller until they settle; True when anything changed.

        One controller's change is the next one's input (an old ReplicaSet scaled down lets
        the new one scale up), so a single pass would leave work for the next resync.
        """
        changed = False
        for _ in range(10):
            if not self._pass():
                break
            changed = True
        return changed

    def _pass(self) -> bool:
        changed = self._collect_garbage()
        for key in list(self.deployments):
            changed |= self._sync_deployment(key)
        for key in list(self.replicasets):
            changed |= self._sync_replicaset(key)
        for owner in self.owners:
            changed |= owner.sync_pods()
        for sim in list(self.sims.values()):
            changed |= self._advance(sim)
        for owner in self.owners:
            changed |= owner.sync_status()
        for key in list(self.replicasets):
            changed |= self._replicaset_status(key)
        for key in list(self.deployments):
            changed |= self._deployment_status(key)
        return changed

    # ---- garbage collection

    def _collect_garbage(self) -> bool:
        changed = False
        for _ in range(3):  # deployments -> replicasets -> pods settle within a pass
            uids = self._uids()
            step = False
            for key, rs in list(self.replicasets.items()):
                refs = rs["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in uids for r in refs):
                    del self.replicasets[key]
                    step = True
            uids = self._uids()
            for key, sim in list(self.sims.items()):
                if sim.rs_uid and sim.rs_uid not in uids:
                    pod = self.state.pods.get(key)
                    refs = (pod or {}).get("metadata", {}).get("ownerReferences") or []
                    if refs:
                        self._remove_pod(key)
                        step = True
            for table in (self.deployments, self.replicasets):
                for key, obj in list(table.items()):
                    meta = obj["metadata"]
                    if FOREGROUND not in (meta.get("finalizers") or []):
                        continue
                    dependents = self._dependents(meta["uid"])
                    for dep in dependents:
                        if dep["kind"] == "Pod":
                            self._remove_pod((dep["metadata"]["namespace"], dep["metadata"]["name"]))
                        else:
                            self._delete(self.replicasets, (dep["metadata"]["namespace"], dep["metadata"]["name"]), "replicasets", "Foreground")
                        step = True
                    if not self._dependents(meta["uid"]):
                        meta["finalizers"] = [f for f in meta["finalizers"] if f != FOREGROUND]
                        if not meta["finalizers"]:
                            del table[key]
                        step = True
            changed |= step
            if not step:
                break
        return changed

    def _remove_pod(self, key: Key) -> None:
        self.sims.pop(key, None)
        self.state.pods.pop(key, None)
        self.state.pod_ips.release(key)

    # ---- deployment controller

    def _sync_deployment(self, key: Key) -> bool:
        d = self.deployments[key]
        if d["metadata"].get("deletionTimestamp"):
            return False
        owned = self.replicasets_of(d)
        template = d["spec"]["template"]
        new_rs = next((rs for rs in owned if template_without_hash(rs["spec"]["template"]) == template), None)
        old = [rs for rs in owned if rs is not new_rs]
        max_rev = max((int(rs["metadata"].get("annotations", {}).get(REVISION_ANNOTATION, "0")) for rs in owned), default=0)
        changed = False
        desired = d["spec"].get("replicas", 1)
        if new_rs is None:
            new_rs = self._create_replicaset(d, revision=max_rev + 1, replicas=0)
            changed = True
        elif int(new_rs["metadata"]["annotations"].get(REVISION_ANNOTATION, "0")) < max_rev:
            # a rollback to an old template: the old ReplicaSet becomes the newest revision
            new_rs["metadata"]["annotations"][REVISION_ANNOTATION] = str(max_rev + 1)
            self._touch(new_rs)
            changed = True
        revision = new_rs["metadata"]["annotations"].get(REVISION_ANNOTATION)
        if (d["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) != revision:
            # The Deployment says which revision it runs, as Kubernetes' controller writes it
            # (kubectl rollout undo patches these annotations and needs them there).
            d["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
            self._touch(d)
            changed = True
        cause = (d["metadata"].get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION)
        if cause and new_rs["metadata"]["annotations"].get(CHANGE_CAUSE_ANNOTATION) != cause:
            new_rs["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] = cause
            self._touch(new_rs)
            changed = True
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            changed |= self._recreate(d, new_rs, old, desired)
        else:
            changed |= self._rolling(d, new_rs, old, desired)
        changed |= self._cleanup_history(d, new_rs)
        return changed

    def _create_replicaset(self, d: dict[str, Any], *, revision: int, replicas: int) -> dict[str, Any]:
        ns, dname = d["metadata"]["namespace"], d["metadata"]["name"]
        template = copy.deepcopy(d["spec"]["template"])
        pod_hash = safe_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        name = f"{dname}-{pod_hash}"
        annotations = {REVISION_ANNOTATION: str(revision)}
        cause = (d["metadata"].get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION)
        if cause:
            annotations[CHANGE_CAUSE_ANNOTATION] = cause
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                **self._meta(name, ns),
                "generation": 1,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
            "status": {"replicas": 0, "observedGeneration": 0},
        }
        self.replicasets[(ns, name)] = rs
        return rs

    def _scale(self, rs: dict[str, Any], replicas: int) -> bool:
        replicas = max(0, replicas)
        if rs["spec"]["replicas"] == replicas:
            return False
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
        self._touch(rs)
        return True

    def _recreate(self, d: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]], desired: int) -> bool:
        changed = False
        for rs in old:
            changed |= self._scale(rs, 0)
        if any(self.pods_of(rs) for rs in old):
            return changed
        return self._scale(new_rs, desired) or changed

    def _rolling(self, d: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]], desired: int) -> bool:
        surge, max_unavailable = rolling_limits(d)
        changed = False
        all_rs = [new_rs] + old
        # scale the new ReplicaSet up (reconcileNewReplicaSet)
        new_count = new_rs["spec"]["replicas"]
        if new_count > desired:
            changed |= self._scale(new_rs, desired)
        elif new_count < desired:
            current = sum(rs["spec"]["replicas"] for rs in all_rs)
            room = desired + surge - current
            if room > 0:
                changed |= self._scale(new_rs, new_count + min(room, desired - new_count))
        # scale old ReplicaSets down (reconcileOldReplicaSets)
        old_count = sum(rs["spec"]["replicas"] for rs in old)
        if old_count == 0:
            return changed
        all_count = sum(rs["spec"]["replicas"] for rs in all_rs)
        min_available = desired - max_unavailable
        new_unavailable = new_rs["spec"]["replicas"] - self._available(new_rs)
        max_scale_down = all_count - min_available - new_unavailable
        if max_scale_down <= 0:
            return changed
        # first the unhealthy pods of old ReplicaSets (cleanupUnhealthyReplicas)
        for rs in sorted(old, key=_revision):
            if max_scale_down <= 0:
                break
            unhealthy = rs["spec"]["replicas"] - self._available(rs)
            if unhealthy <= 0 or rs["spec"]["replicas"] == 0:
                continue
            down = min(unhealthy, max_scale_down, rs["spec"]["replicas"])
            changed |= self._scale(rs, rs["spec"]["replicas"] - down)
            max_scale_down -= down
        # then healthy ones, keeping minAvailable (scaleDownOldReplicaSetsForRollingUpdate)
        available = sum(self._available(rs) for rs in all_rs)
        total_down = min(available - min_available, max_scale_down)
        for rs in sorted(old, key=_revision):
            if total_down <= 0:
                break
            down = min(rs["spec"]["replicas"], total_down)
            if down > 0:
                changed |= self._scale(rs, rs["spec"]["replicas"] - down)
                total_down -= down
        return changed

    def _cleanup_history(self, d: dict[str, Any], new_rs: dict[str, Any]) -> bool:
        limit = d["spec"].get("revisionHistoryLimit", 10)
        idle = [rs for rs in self.replicasets_of(d) if rs is not new_rs and rs["spec"]["replicas"] == 0 and not self.pods_of(rs)]
        idle.sort(key=_revision)
        changed = False
        for rs in idle[: max(0, len(idle) - limit)]:
            del self.replicasets[(rs["metadata"]["namespace"], rs["metadata"]["name"])]
            changed = True
        return changed

    # ---- replicaset controller

    def _available(self, rs: dict[str, Any]) -> int:
        min_ready = rs["spec"].get("minReadySeconds", 0)
        now = self.clock
        count = 0
        for pod in self.pods_of(rs):
            sim = self.sims[(pod["metadata"]["namespace"], pod["metadata"]["name"])]
            if sim.ready and sim.ready_at is not None and now >= sim.ready_at + min_ready:
                count += 1
        return count

    def _sync_replicaset(self, key: Key) -> bool:
        rs = self.replicasets[key]
        if rs["metadata"].get("deletionTimestamp"):
            return False
        pods = self.pods_of(rs)
        want = rs["spec"]["replicas"]
        changed = False
        if len(pods) > want:
            # delete the least useful first: not ready before ready, newest first
            def rank(p: dict[str, Any]) -> tuple:
                sim = self.sims[(p["metadata"]["namespace"], p["metadata"]["name"])]
                return (sim.ready, -(sim.ready_at or 0), p["metadata"]["name"])

            for pod in sorted(pods, key=rank)[: len(pods) - want]:
                self._remove_pod((pod["metadata"]["namespace"], pod["metadata"]["name"]))
                changed = True
        for _ in range(want - len(pods)):
            if not self._create_pod(rs):
                break
            changed = True
        return changed

    def _place(self, rs: dict[str, Any]) -> tuple[str, str]:
        """Spread: the zone with the fewest of this ReplicaSet's pods, then the emptiest node."""
        mine = [self.sims[(p["metadata"]["namespace"], p["metadata"]["name"])] for p in self.pods_of(rs)]
        zones = self.state.topology.zones
        zone = min(zones, key=lambda z: (sum(1 for s in mine if s.zone == z), zones.index(z)))
        nodes = self.state.nodes_in_zone(zone)
        node = min(nodes, key=lambda n: (sum(1 for s in self.sims.values() if s.node == n), n))
        return zone, node

    def _create_pod(self, rs: dict[str, Any], *, name: str = "", owner: dict[str, Any] | None = None) -> bool:
        return self.create_owned_pod(rs, name=name, owner=owner) is not None

    def create_owned_pod(self, rs: dict[str, Any], *, name: str = "", owner: dict[str, Any] | None = None,
                         node: str = "", run_for: float | None = None) -> dict[str, Any] | None:
        """A pod of ``rs``'s template: owned by it with a random name, a bare one (``name``),
        or a named one of another owner (``name`` and ``owner``, a StatefulSet's
        ``<set>-<ordinal>``); on ``node`` (else the zone with fewest of its pods); ``run_for``:
        a Job's pod, whose containers exit that long after they start. None when the pod
        CIDR is exhausted."""
        ns = rs["metadata"]["namespace"]
        named = bool(name)
        bare = named and owner is None
        for _ in range(0 if named else 10):
            name = f"{rs['metadata']['name']}-{random_suffix()}"
            if (ns, name) not in self.state.pods:
                break
        key = (ns, name)
        ip = self.state.pod_ips.allocate(key)
        if ip is None:
            self.state.record_event(rs, "Warning", "FailedCreate", "Error creating: pod CIDR exhausted")
            return None
        if node:
            zone = (self.state.nodes[node]["metadata"].get("labels") or {}).get(ZONE_LABEL, "")
        else:
            zone, node = self._place(rs)
        template = copy.deepcopy(rs["spec"]["template"])
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[ZONE_ANNOTATION] = zone
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **self._meta(name, ns),
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                **({} if bare else {"ownerReferences": [owner or owner_ref(rs)]}),
                **({} if named else {"generateName": rs["metadata"]["name"] + "-"}),
            },
            "spec": {**template.get("spec", {}), "nodeName": node},
            "status": {
                "phase": "Pending",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": self.state.nodes[node]["status"]["addresses"][0]["address"],
                "startTime": now_rfc3339(),
                "qosClass": "BestEffort",
            },
        }
        n_init = len(pod["spec"].get("initContainers") or [])
        sim = PodSim(key, rs["metadata"]["uid"], zone, node, ip, stage="", until=None, restarts=[0] * n_init,
                     backoff=self.settings.backoff, run_for=run_for)
        self.sims[key] = sim
        self.state.pods[key] = pod
        problem = seccomp_problem(pod, self.settings.seccomp_profiles, node)
        now = self.clock
        if named:  # what `kubectl describe pod` shows a Docker 1.10 user (issue 14)
            self.state.record_event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
        if problem:
            sim.stage, sim.until = "create-failed", None
            self.state.record_event(pod, "Warning", "Failed", problem)
        elif n_init:
            self._enter_init(sim, pod, 0, now)
        else:
            self._enter_pull_or_start(sim, pod, now)
        self._render(sim, pod)
        return pod

    # ---- kubelet

    def _enter_init(self, sim: PodSim, pod: dict[str, Any], index: int, now: float) -> None:
        sim.init_index = index
        container = pod["spec"]["initContainers"][index]
        if image_broken(container):
            sim.stage, sim.pull_target, sim.until = "pulling", "init", now + self.settings.image_pull_delay
        else:
            sim.stage, sim.until = "init", now + self.settings.init_container_duration

    def _enter_pull_or_start(self, sim: PodSim, pod: dict[str, Any], now: float) -> None:
        if any(image_broken(c) for c in pod["spec"]["containers"]):
            sim.stage, sim.pull_target, sim.until = "pulling", "main", now + self.settings.image_pull_delay
        else:
            sim.stage, sim.until = "starting", now + self.settings.container_start_delay

    def _advance(self, sim: PodSim) -> bool:
        pod = self.state.pods.get(sim.key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return False  # gone, or terminating: a terminating pod does not become Ready again
        now = self.clock
        changed = False
        for _ in range(50):
            if sim.until is None or sim.until > now:
                break
            at = sim.until
            changed = True
            s = self.settings
            if sim.stage == "init":
                container = pod["spec"]["initContainers"][sim.init_index]
                code = init_failure_code(container)
                if code:
                    sim.last_exit = code
                    sim.restarts[sim.init_index] += 1
                    sim.stage, sim.until = "init-error", at + min(s.error_display, sim.backoff)
                elif sim.init_index + 1 < len(pod["spec"]["initContainers"]):
                    self._enter_init(sim, pod, sim.init_index + 1, at)
                else:
                    sim.init_index += 1
                    self._enter_pull_or_start(sim, pod, at)
            elif sim.stage == "init-error":
                sim.stage, sim.until = "init-backoff", at + sim.backoff
                sim.backoff = min(sim.backoff * 2, s.backoff_max)
            elif sim.stage == "init-backoff":
                self._enter_init(sim, pod, sim.init_index, at)
            elif sim.stage == "pulling":
                sim.stage, sim.until = "pull-error", at + min(s.error_display, sim.backoff)
            elif sim.stage == "pull-error":
                sim.stage, sim.until = "pull-backoff", at + sim.backoff
                sim.backoff = min(sim.backoff * 2, s.backoff_max)
            elif sim.stage == "pull-backoff":
                sim.stage, sim.until = "pulling", at + s.image_pull_delay
            elif sim.stage == "running" and sim.run_for is not None:
                sim.stage, sim.until, sim.ready = "exited", None, False
                sim.last_exit = max(self.run_container(pod, c) for c in pod["spec"]["containers"])
            elif sim.stage == "starting":
                sim.stage, sim.until = "running", None
                sim.started = now_rfc3339()
                sim.ready_at = at + self.state.topology.pod_ready_delay
                if not sim.rs_uid:
                    for c in pod["spec"]["containers"]:
                        self.state.record_event(pod, "Normal", "Pulled", f'Container image "{c["image"]}" already present on machine')
                        self.state.record_event(pod, "Normal", "Created", f"Created container {c['name']}")
                        self.state.record_event(pod, "Normal", "Started", f"Started container {c['name']}")
                if sim.run_for is not None:
                    sim.until = at + sim.run_for  # a Job's pod: its containers run, then exit
                elif pod["spec"].get("restartPolicy") == "Never" and any(c.get("command") for c in pod["spec"]["containers"]):
                    sim.stage = "exited"  # the command runs to its end (issue 14)
                    sim.last_exit = max(self.run_container(pod, c) for c in pod["spec"]["containers"])
            else:
                sim.until = None
        if sim.stage == "running" and not sim.ready and sim.ready_at is not None and now >= sim.ready_at:
            sim.ready = True
            changed = True
        if changed:
            self._render(sim, pod)
            self._touch(pod)
        return changed

    def _render(self, sim: PodSim, pod: dict[str, Any]) -> None:
        """Write the pod's status from its simulation state, in the kubelet's shapes."""
        stamp = now_rfc3339()
        inits = pod["spec"].get("initContainers") or []
        mains = pod["spec"]["containers"]
        stage = sim.stage
        in_init = bool(inits) and stage in ("init", "init-error", "init-backoff") or (stage.startswith("pull") and sim.pull_target == "init")
        init_done = not inits or (not in_init and stage != "create-failed")
        statuses = []
        for i, c in enumerate(inits):
            base = {"name": c["name"], "image": c["image"], "restartCount": sim.restarts[i] if i < len(sim.restarts) else 0}
            if stage == "create-failed":
                state = {"waiting": {"reason": "CreateContainerError" if i == 0 else "PodInitializing", **({"message": self._seccomp_message(pod)} if i == 0 else {})}}
                statuses.append({**base, "ready": False, "state": state})
                continue
            if init_done or i < sim.init_index:
                statuses.append({**base, "ready": True, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}})
            elif i == sim.init_index:
                state = self._container_state(sim, c, "init")
                entry = {**base, "ready": False, "state": state}
                if sim.restarts[i]:
                    entry["lastState"] = {"terminated": {"exitCode": sim.last_exit, "reason": "Error"}}
                statuses.append(entry)
            else:
                statuses.append({**base, "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}})
        containers = []
        for c in mains:
            base = {"name": c["name"], "image": c["image"], "restartCount": 0, "started": stage == "running"}
            if stage == "create-failed":
                state = {"waiting": {"reason": "CreateContainerError", "message": self._seccomp_message(pod)}} if not inits else {"waiting": {"reason": "PodInitializing"}}
            elif not init_done:
                state = {"waiting": {"reason": "PodInitializing"}}
            elif stage == "running":
                state = {"running": {"startedAt": sim.started}}
            elif stage == "exited":
                code = self.run_container(pod, c)
                state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                        "startedAt": sim.started, "finishedAt": sim.started}}
            elif stage.startswith("pull") and sim.pull_target == "main":
                state = self._container_state(sim, c, "main") if image_broken(c) else {"waiting": {"reason": "ContainerCreating"}}
            else:
                state = {"waiting": {"reason": "PodInitializing" if inits else "ContainerCreating"}}
            containers.append({**base, "ready": sim.ready, "state": state})
        status = pod["status"]
        if inits:
            status["initContainerStatuses"] = statuses
        status["containerStatuses"] = containers
        status["phase"] = {"running": "Running", "exited": "Failed" if sim.last_exit else "Succeeded"}.get(stage, "Pending")
        ready = "True" if sim.ready else "False"
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True" if init_done and stage != "create-failed" else "False"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ]
        old = {c["type"]: c for c in status.get("conditions") or []}
        for cond in conditions:
            prev = old.get(cond["type"])
            cond["lastTransitionTime"] = prev["lastTransitionTime"] if prev and prev["status"] == cond["status"] else stamp
            if cond["type"] == "Initialized" and cond["status"] == "False":
                cond["reason"] = "ContainersNotInitialized"
                cond["message"] = f"containers with incomplete status: [{', '.join(c['name'] for c in inits[sim.init_index:])}]"
            if cond["type"] in ("ContainersReady", "Ready") and cond["status"] == "False":
                cond["reason"] = "ContainersNotReady"
                cond["message"] = f"containers with unready status: [{', '.join(c['name'] for c in mains)}]"
        status["conditions"] = conditions

    def _seccomp_message(self, pod: dict[str, Any]) -> str:
        return seccomp_problem(pod, self.settings.seccomp_profiles, pod["spec"].get("nodeName", "")) or ""

    def _container_state(self, sim: PodSim, c: dict[str, Any], target: str) -> dict[str, Any]:
        stage = sim.stage
        if stage == "init":
            return {"running": {"startedAt": now_rfc3339()}}
        if stage == "init-error":
            return {"terminated": {"exitCode": sim.last_exit, "reason": "Error"}}
        if stage == "init-backoff":
            return {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {sim.backoff:g}s restarting failed container={c['name']} pod={sim.key[1]}"}}
        if stage == "pulling":
            return {"waiting": {"reason": "ContainerCreating" if target == "main" else "PodInitializing"}}
        if stage == "pull-error":
            return {"waiting": {"reason": "ErrImagePull", "message": f'failed to pull image "{c["image"]}": rpc error: manifest for {c["image"]} not found: manifest unknown'}}
        if stage == "pull-backoff":
            return {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c["image"]}"'}}
        return {"waiting": {"reason": "ContainerCreating"}}

    # ---- status

    def _replicaset_status(self, key: Key) -> bool:
        rs = self.replicasets[key]
        pods = self.pods_of(rs)
        ready = sum(1 for p in pods if self.sims[(p["metadata"]["namespace"], p["metadata"]["name"])].ready)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": self._available(rs),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        if rs["status"] == status:
            return False
        rs["status"] = status
        self._touch(rs)
        return True

    def _deployment_status(self, key: Key) -> bool:
        d = self.deployments[key]
        owned = self.replicasets_of(d)
        template = d["spec"]["template"]
        new_rs = next((rs for rs in owned if template_without_hash(rs["spec"]["template"]) == template), None)
        desired = d["spec"].get("replicas", 1)
        replicas = sum(rs["status"].get("replicas", 0) for rs in owned)
        updated = new_rs["status"].get("replicas", 0) if new_rs else 0
        ready = sum(rs["status"].get("readyReplicas", 0) for rs in owned)
        available = sum(rs["status"].get("availableReplicas", 0) for rs in owned)
        _, max_unavailable = rolling_limits(d)
        now = self.clock
        signature = (d["metadata"].get("generation"), new_rs["metadata"]["name"] if new_rs else None, replicas, updated, ready, available)
        previous = self._progress.get(key)
        if previous is None or previous[0] != signature:
            self._progress[key] = (signature, now)
        last_progress = self._progress[key][1]
        old_conditions = {c["type"]: c for c in d["status"].get("conditions") or []}
        stamp = now_rfc3339()
        rs_name = new_rs["metadata"]["name"] if new_rs else d["metadata"]["name"]
        complete = updated == desired and replicas == desired and available == desired
        if complete:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif now - last_progress > d["spec"].get("progressDeadlineSeconds", 600):
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        if available >= desired - max_unavailable:
            availability = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            availability = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        conditions = []
        for ctype, (cstatus, reason, message) in (("Available", availability), ("Progressing", progressing)):
            prev = old_conditions.get(ctype)
            same = prev is not None and prev.get("status") == cstatus and prev.get("reason") == reason
            conditions.append({
                "type": ctype,
                "status": cstatus,
                "reason": reason,
                "message": message,
                "lastUpdateTime": prev["lastUpdateTime"] if same and prev.get("message") == message else stamp,
                "lastTransitionTime": prev["lastTransitionTime"] if prev is not None and prev.get("status") == cstatus else stamp,
            })
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available) if replicas or desired else 0,
            "conditions": conditions,
        }
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
        if d["status"] == status:
            return False
        d["status"] = status
        self._touch(d)
        return True


def _revision(rs: dict[str, Any]) -> int:
    return int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0"))


def _complete(d: dict[str, Any]) -> bool:
    s = d.get("status") or {}
    desired = d["spec"].get("replicas", 1)
    return s.get("updatedReplicas", 0) == desired and s.get("replicas", 0) == desired and s.get("availableReplicas", 0) == desired


def _check_pod_kind(obj: dict[str, Any]) -> None:
    if obj.get("kind") not in (None, "Pod") or obj.get("apiVersion") not in (None, "v1"):
        raise APIError(400, f'the kind of the object ({obj.get("apiVersion")}/{obj.get("kind")}) does not match the endpoint (v1/Pod)')


def _pod_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    errors = list(_containers_errors(spec, "spec"))
    if spec.get("restartPolicy", "Always") not in ("Always", "OnFailure", "Never"):
        errors.append(("spec.restartPolicy", f'Unsupported value: {spec.get("restartPolicy")!r}: supported values: "Always", "OnFailure", "Never"'))
    return errors


def _check_kind(obj: dict[str, Any], kind: str) -> None:
    if obj.get("kind") not in (None, kind):
        raise APIError(400, f'the kind of the object ({obj.get("kind")}) does not match the endpoint ({kind})')
    if obj.get("apiVersion") not in (None, "apps/v1"):
        raise APIError(400, f'the apiVersion of the object ({obj.get("apiVersion")}) does not match the endpoint (apps/v1)')
