"""OpenAPI v3 documents and the schemas behind them, generated from a list of resources.

kubectl reads ``/openapi/v3`` (an index with one document per group-version) for three
things, and each shapes what is served here:

- ``kubectl apply`` and ``create`` check that the kind's ``patch`` operation takes a
  ``fieldValidation`` parameter; if so they leave field validation to the server
  (``?fieldValidation=Strict``), which :func:`unknown_fields` then does with these schemas;
- ``kubectl apply`` computes its strategic merge patch from the schema's
  ``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy`` when the patch
  operation accepts ``application/strategic-merge-patch+json``, which every kind here does
  (the server merges with the same extensions, see :mod:`apimachinery.strategic`);
- ``kubectl explain cluster.spec`` walks the schema found by
  ``x-kubernetes-group-version-kind`` and prints descriptions and types.

The schemas are written once below (a small builder keeps them readable); a kind without
one gets an open schema (``x-kubernetes-preserve-unknown-fields``), so a member cluster
can serve a document for any kind it adds before anyone writes its schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Sequence

from apimachinery.kinds import Kind

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
FED = "io.ubernetes.federation.v1beta1."
COORD = "io.k8s.api.coordination.v1."
APPS = "io.k8s.api.apps.v1."
AUTOSCALING = "io.k8s.api.autoscaling.v1."
BATCH = "io.k8s.api.batch.v1."
NETWORKING = "io.k8s.api.networking.v1."
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)

# --- a small schema builder -------------------------------------------------------------


def _s(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **extra}


def _i(desc: str) -> dict[str, Any]:
    return {"type": "integer", "format": "int32", "description": desc}


def _b(desc: str) -> dict[str, Any]:
    return {"type": "boolean", "description": desc}


def _ref(name: str, desc: str) -> dict[str, Any]:
    return {"description": desc, "default": {}, "allOf": [{"$ref": f"#/components/schemas/{name}"}]}


def _strmap(desc: str) -> dict[str, Any]:
    return {"type": "object", "description": desc, "additionalProperties": {"type": "string", "default": ""}}


def _open(desc: str) -> dict[str, Any]:
    return {"type": "object", "description": desc, "x-kubernetes-preserve-unknown-fields": True}


def _int_or_string(desc: str) -> dict[str, Any]:
    return {"description": desc, "x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}


def _quantities(desc: str) -> dict[str, Any]:
    return {"type": "object", "description": desc, "additionalProperties": _s("A quantity, such as 4 or 8Gi.")}


def _list(items: dict[str, Any], desc: str, *, key: str | None = None, strategy: str | None = None,
          atomic: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "description": desc, "items": items}
    if key:
        out["x-kubernetes-patch-merge-key"] = key
        out["x-kubernetes-patch-strategy"] = strategy or "merge"
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = [key]
    elif strategy:
        out["x-kubernetes-patch-strategy"] = strategy
        out["x-kubernetes-list-type"] = "set"
    elif atomic:
        out["x-kubernetes-list-type"] = "atomic"
    return out


def _item(name: str) -> dict[str, Any]:
    return {"default": {}, "allOf": [{"$ref": f"#/components/schemas/{name}"}]}


def _obj(desc: str, props: dict[str, Any], required: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "description": desc, "properties": props, **extra}
    if required:
        out["required"] = list(required)
    return out


def _kind(desc: str, group: str, version: str, kind: str, spec_ref: str | None, status_ref: str | None,
          spec_desc: str = "", status_desc: str = "", **more: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "apiVersion": _s("APIVersion defines the versioned schema of this representation of an object."),
        "kind": _s("Kind is a string value representing the REST resource this object represents. In CamelCase."),
        "metadata": _ref(META + "ObjectMeta", "Standard object's metadata."),
    }
    if spec_ref:
        props["spec"] = _ref(spec_ref, spec_desc or "Spec defines the desired state.")
    if status_ref:
        props["status"] = _ref(status_ref, status_desc or "Status is the most recently observed state. Read-only.")
    props.update(more)
    return _obj(desc, props, **{"x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind}]})


_CONDITION = _obj(
    "A condition of the object: a type, a status and why.",
    {
        "type": _s("Type of the condition, such as Ready or Offline."),
        "status": _s("Status of the condition: True, False or Unknown."),
        "reason": _s("A one-word CamelCase reason for the condition's last transition."),
        "message": _s("A human-readable message with details about the last transition."),
        "lastProbeTime": _s("The last time the condition was probed.", format="date-time"),
        "lastTransitionTime": _s("The last time the condition changed from one status to another.", format="date-time"),
        "lastHeartbeatTime": _s("The last time a heartbeat was received.", format="date-time"),
    },
    ["type", "status"],
)

SCHEMAS: dict[str, dict[str, Any]] = {
    # --- meta.k8s.io
    META + "Status": _obj(
        "Status is the answer to a request that did not return an object (every error).",
        {
            "apiVersion": _s("v1."), "kind": _s("Status."),
            "metadata": _ref(META + "ListMeta", "Standard list metadata."),
            "status": _s("Success or Failure."),
            "message": _s("A human-readable description of the status."),
            "reason": _s("A machine-readable, one-word CamelCase reason (NotFound, Conflict, Invalid, ...)."),
            "details": _open("Name, group, kind and causes of the status, when there are any."),
            "code": {"type": "integer", "format": "int32", "description": "The HTTP status code."},
        },
    ),
    META + "ListMeta": _obj(
        "ListMeta describes a list: its resourceVersion and, when paged, the continue token.",
        {
            "resourceVersion": _s("The resourceVersion the list was read at."),
            "continue": _s("The token that gives the next page, when there is one."),
            "remainingItemCount": {"type": "integer", "format": "int64",
                                   "description": "How many items follow this page."},
        },
    ),
    AUTOSCALING + "Scale": _kind(
        "Scale is the scale subresource of a Deployment: its desired and observed replicas.",
        "autoscaling", "v1", "Scale", None, None,
        spec=_obj("The desired replicas.", {"replicas": {"type": "integer", "format": "int32",
                                                         "description": "Desired replicas."}}),
        status=_obj("The observed replicas and the selector of their pods.", {
            "replicas": {"type": "integer", "format": "int32", "description": "Observed replicas."},
            "selector": _s("The label selector of the pods, as a string."),
        }),
    ),
    META + "ObjectMeta": _obj(
        "ObjectMeta is metadata that all persisted resources must have.",
        {
            "name": _s("Name must be unique within a namespace. Cannot be updated."),
            "generateName": _s("An optional prefix the server uses to generate a unique name when name is empty."),
            "namespace": _s("The namespace of a namespaced object; empty for cluster-scoped kinds."),
            "uid": _s("UID is the unique in time and space value for this object. Set by the server."),
            "resourceVersion": _s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": _s("When this object was created. Set by the server.", format="date-time"),
            "deletionTimestamp": _s("When this object will be deleted. Set by the server.", format="date-time"),
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Seconds allowed for graceful termination."},
            "labels": _strmap("Map of string keys and values that can be used to organize and categorize objects."),
            "annotations": _strmap("Unstructured key value map stored with a resource, not queryable."),
            "ownerReferences": _list({"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                     "Objects this object depends on.", key="uid"),
            "finalizers": _list({"type": "string", "default": ""}, "Must be empty before the object is deleted.",
                                strategy="merge"),
            "managedFields": _list({"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                   "Which field manager owns which fields (server-side apply).", atomic=True),
            "selfLink": _s("Deprecated; not set."),
        },
    ),
    # --- core/v1 Service
    CORE + "Service": _kind(
        "A Service is a named abstraction of software service. In a federation it is federated: "
        "the control plane creates it in every ready member cluster, aggregates the members' load "
        "balancer ingresses into its status, and publishes DNS records for its healthy shards.",
        "", "v1", "Service", CORE + "ServiceSpec", CORE + "ServiceStatus",
        "Spec defines the behavior of a service; the federation copies it to every member cluster.",
        "The federated status: every member cluster's ingresses and its shards.",
    ),
    CORE + "ServiceSpec": _obj(
        "ServiceSpec describes the attributes that a user creates on a service.",
        {
            "ports": _list(_item(CORE + "ServicePort"), "The list of ports exposed by this service.", key="port"),
            "selector": _strmap("Route service traffic to pods with label keys and values matching this selector."),
            "clusterIP": _s("The IP address of the service in a member cluster; usually assigned by the member."),
            "clusterIPs": _list({"type": "string", "default": ""}, "IP addresses assigned to the service.", atomic=True),
            "type": _s("How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName. "
                       "A federated service needs LoadBalancer to get DNS records.",
                       enum=["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]),
            "externalIPs": _list({"type": "string", "default": ""}, "IP addresses for which nodes also accept traffic.", atomic=True),
            "externalName": _s("The external reference returned as a CNAME for an ExternalName service."),
            "sessionAffinity": _s("None or ClientIP.", enum=["ClientIP", "None"]),
            "loadBalancerIP": _s("Deprecated: the load balancer IP to ask for."),
            "loadBalancerSourceRanges": _list({"type": "string", "default": ""}, "Client IP ranges allowed through the load balancer.", atomic=True),
            "externalTrafficPolicy": _s("Cluster or Local."),
            "internalTrafficPolicy": _s("Cluster or Local."),
            "ipFamilies": _list({"type": "string", "default": ""}, "IPv4 and/or IPv6.", atomic=True),
            "ipFamilyPolicy": _s("SingleStack, PreferDualStack or RequireDualStack."),
            "allocateLoadBalancerNodePorts": _b("Whether NodePorts are allocated for a LoadBalancer service."),
            "publishNotReadyAddresses": _b("Publish addresses of pods that are not ready."),
            "healthCheckNodePort": _i("Health check node port for externalTrafficPolicy Local."),
            "sessionAffinityConfig": _open("Session affinity settings."),
            "loadBalancerClass": _s("The class of the load balancer implementation."),
            "trafficDistribution": _s("How traffic is distributed to endpoints."),
        },
    ),
    CORE + "ServicePort": _obj(
        "ServicePort contains information on a service's port.",
        {
            "name": _s("The name of this port within the service; required when there is more than one port."),
            "protocol": _s("TCP, UDP or SCTP. Default is TCP.", enum=["SCTP", "TCP", "UDP"]),
            "port": _i("The port that will be exposed by this service."),
            "targetPort": {"description": "Number or name of the port to access on the pods targeted by the service.",
                           "x-kubernetes-int-or-string": True},
            "nodePort": _i("The port on each node on which this service is exposed."),
            "appProtocol": _s("The application protocol for this port."),
        },
        ["port"],
    ),
    CORE + "ServiceStatus": _obj(
        "ServiceStatus represents the current status of a service.",
        {
            "loadBalancer": _ref(CORE + "LoadBalancerStatus", "The ingresses of every member cluster's load balancer."),
            "shards": _list(_item(FED + "ServiceShard"), "One shard per member cluster: its ingresses, its ready "
                            "endpoints and whether DNS counts it as healthy.", key="cluster"),
            "conditions": _list(_item(META + "Condition"), "Current service state.", key="type"),
        },
    ),
    CORE + "LoadBalancerStatus": _obj(
        "LoadBalancerStatus represents the status of a load balancer.",
        {"ingress": _list(_item(CORE + "LoadBalancerIngress"), "Ingress points for the load balancer.", atomic=True)},
    ),
    CORE + "LoadBalancerIngress": _obj(
        "An ingress point for a load balancer.",
        {"ip": _s("IP address of the ingress point."), "hostname": _s("DNS name of the ingress point."),
         "ipMode": _s("VIP or Proxy."), "ports": _list(_open("A port status."), "Port statuses.", atomic=True)},
    ),
    FED + "ServiceShard": _obj(
        "A member cluster's copy of a federated service, as the federation observed it.",
        {
            "cluster": _s("The member cluster's name."),
            "ingress": _list(_item(CORE + "LoadBalancerIngress"), "The member's load balancer ingresses.", atomic=True),
            "readyEndpoints": _i("How many ready endpoints the member's copy has."),
            "clusterReady": _b("Whether the member cluster is Ready."),
            "healthy": _b("A healthy shard has an ingress and a ready endpoint in a ready cluster; DNS answers with it."),
        },
    ),
    META + "Condition": _CONDITION,
    # --- federation/v1beta1 Cluster
    FED + "Cluster": _kind(
        "Cluster is a member cluster of the federation: where its API server is, and its health as the "
        "federation's health controller sees it.",
        "federation", "v1beta1", "Cluster", FED + "ClusterSpec", FED + "ClusterStatus",
        "Spec says how to reach the member cluster.",
        "Status is written by the federation's health controller: Ready and Offline conditions, region, zones.",
    ),
    FED + "ClusterSpec": _obj(
        "ClusterSpec describes how to reach a member cluster's API.",
        {
            "serverAddressByClientCIDRs": _list(
                _item(FED + "ServerAddressByClientCIDR"),
                "A map of client CIDR to server address: clients match the most specific CIDR and use its address.",
                key="clientCIDR"),
            "provider": _s("The cloud provider the cluster runs on, such as aws or gcp."),
            "secretRef": _open("A reference to a secret with the cluster's credentials (not used by the emulator)."),
        },
        ["serverAddressByClientCIDRs"],
    ),
    FED + "ServerAddressByClientCIDR": _obj(
        "The address clients in one CIDR use to reach the member cluster.",
        {"clientCIDR": _s("The CIDR of the clients that use this address, such as 0.0.0.0/0."),
         "serverAddress": _s("Address of the member's API server: host:port or a URL.")},
        ["clientCIDR", "serverAddress"],
    ),
    FED + "ClusterStatus": _obj(
        "ClusterStatus is the member cluster's health and topology.",
        {
            "conditions": _list(_item(FED + "ClusterCondition"), "Ready and Offline, as in Federation v1.", key="type"),
            "region": _s("The member's region, read from its nodes' topology.kubernetes.io/region label."),
            "zones": _list({"type": "string", "default": ""}, "The member's zones, read from its nodes' "
                           "topology.kubernetes.io/zone label.", atomic=True),
        },
    ),
    FED + "ClusterCondition": _CONDITION,
    # --- federation/v1beta1 DNSRecord
    FED + "DNSRecord": _kind(
        "DNSRecord is one DNS record set the federation publishes; the DNS responder serves them.",
        "federation", "v1beta1", "DNSRecord", FED + "DNSRecordSpec", None, "The record set.",
    ),
    FED + "DNSRecordSpec": _obj(
        "One record set: name, type, TTL and targets.",
        {
            "name": _s("The absolute, lower-case DNS name, ending in '.'."),
            "type": _s("A, AAAA, CNAME, SRV or TXT.", enum=["A", "AAAA", "CNAME", "SRV", "TXT"]),
            "ttl": _i("Time to live of the record set, in seconds."),
            "targets": _list({"type": "string", "default": ""}, "Addresses (A, AAAA), one absolute name (CNAME), "
                             "'priority weight port target.' (SRV) or text (TXT).", atomic=True),
        },
        ["name", "type", "ttl", "targets"],
    ),
    # --- coordination.k8s.io/v1 Lease
    COORD + "Lease": _kind("Lease defines a lease concept; each member cluster renews one in federation-system.",
                           "coordination.k8s.io", "v1", "Lease", COORD + "LeaseSpec", None),
    COORD + "LeaseSpec": _obj(
        "LeaseSpec is a specification of a Lease.",
        {
            "holderIdentity": _s("The identity of the holder of the current lease."),
            "leaseDurationSeconds": _i("How long candidates wait to force-acquire the lease."),
            "acquireTime": _s("When the current lease was acquired.", format="date-time"),
            "renewTime": _s("When the current holder last renewed the lease.", format="date-time"),
            "leaseTransitions": _i("The number of transitions of the lease between holders."),
            "strategy": _s("The strategy for picking the leader."),
            "preferredHolder": _s("The holder that should take the lease."),
        },
    ),
    # --- core/v1 Secret (issue 8: bootstrap tokens, cluster credentials and access tokens)
    CORE + "Secret": _kind(
        "Secret holds a small amount of sensitive data; readable by group system:masters only.",
        "", "v1", "Secret", None, None,
        type=_s("Used to facilitate programmatic handling of secret data, e.g. bootstrap.kubernetes.io/token."),
        data=_open("Base64-encoded values by key."),
        stringData=_open("Write-only plain-text values by key, folded into data on write."),
        immutable=_b("If true, the data cannot be changed."),
        status=_open("On the federation (issue 15): propagation status per cluster and the Propagation condition."),
    ),
    # --- core/v1 ConfigMap (issue 15); status: the federation's propagation status, on the federation only
    CORE + "ConfigMap": _kind(
        "ConfigMap holds configuration data for pods to consume.",
        "", "v1", "ConfigMap", None, None,
        data=_open("Configuration data: UTF-8 values by key."),
        binaryData=_open("Binary data: base64-encoded values by key."),
        immutable=_b("If true, the data cannot be changed."),
        status=_open("On the federation: propagation status per cluster and the Propagation condition."),
    ),
    # --- core/v1 Event
    CORE + "Event": _kind(
        "Event is a report of an event somewhere in the federation: joins, condition changes, propagation, DNS.",
        "", "v1", "Event", None, None,
        involvedObject=_ref(CORE + "ObjectReference", "The object this event is about."),
        reason=_s("A short, machine-understandable reason for the transition."),
        message=_s("A human-readable description of the status of this operation."),
        type=_s("Normal or Warning."),
        source=_open("The component reporting this event."),
        firstTimestamp=_s("The time at which the event was first recorded.", format="date-time"),
        lastTimestamp=_s("The time at which the most recent occurrence of this event was recorded.", format="date-time"),
        eventTime=_s("When this event was first observed.", format="date-time"),
        count=_i("The number of times this event has occurred."),
        reportingComponent=_s("Name of the controller that emitted this event."),
        reportingInstance=_s("ID of the controller instance."),
        action=_s("What action was taken or failed."),
        related=_open("Optional secondary object."),
        series=_open("Data about the event series this event represents."),
    ),
    CORE + "ObjectReference": _obj(
        "ObjectReference contains enough information to let you inspect or modify the referred object.",
        {k: _s(f"The referent's {k}.") for k in ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")},
    ),
    # --- core/v1 Namespace
    CORE + "Namespace": _kind("Namespace provides a scope for names.", "", "v1", "Namespace", None, None,
                              spec=_open("Spec defines the behavior of the Namespace."),
                              status=_open("Status describes the current status of a Namespace.")),
    # --- member cluster kinds
    CORE + "Pod": _kind("Pod is a collection of containers that can run on a host.", "", "v1", "Pod",
                        CORE + "PodSpec", None, status=_open("The most recently observed status of the pod.")),
    CORE + "PodSpec": _obj(
        "PodSpec is a description of a pod.",
        {
            "containers": _list(_item(CORE + "Container"), "The containers of the pod.", key="name"),
            "initContainers": _list(_item(CORE + "Container"), "Init containers, run in order before the others.", key="name"),
            "volumes": _list(_open("A volume."), "Volumes that containers can mount.", key="name"),
            "nodeName": _s("The node the pod is bound to."),
            "nodeSelector": _strmap("Labels a node must have to run the pod."),
            "restartPolicy": _s("Always, OnFailure or Never."),
            "serviceAccountName": _s("The service account the pod runs as."),
            "hostname": _s("The pod's hostname."),
            "subdomain": _s("The pod's subdomain."),
            "tolerations": _list(_open("A toleration."), "The pod's tolerations.", atomic=True),
            "affinity": _open("Scheduling constraints."),
            "terminationGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Grace period for termination."},
            "dnsPolicy": _s("ClusterFirst, Default, ..."),
            "securityContext": _open("Pod-level security attributes."),
            "schedulerName": _s("The scheduler that schedules the pod."),
            "priority": _i("The pod's priority."),
            "enableServiceLinks": _b("Inject service environment variables."),
            "preemptionPolicy": _s("PreemptLowerPriority or Never."),
        },
        ["containers"],
    ),
    CORE + "Container": _obj(
        "A single application container that runs within a pod.",
        {
            "name": _s("Name of the container, unique within the pod."),
            "image": _s("Container image name."),
            "command": _list({"type": "string", "default": ""}, "Entrypoint array.", atomic=True),
            "args": _list({"type": "string", "default": ""}, "Arguments to the entrypoint.", atomic=True),
            "ports": _list(_open("A container port."), "Ports to expose from the container.", key="containerPort"),
            "env": _list(_open("An environment variable."), "Environment variables.", key="name"),
            "resources": _open("Compute resources required by this container."),
            "volumeMounts": _list(_open("A volume mount."), "Volumes to mount.", key="mountPath"),
            "imagePullPolicy": _s("Always, Never or IfNotPresent."),
            "readinessProbe": _open("Periodic probe of container service readiness."),
            "livenessProbe": _open("Periodic probe of container liveness."),
            "startupProbe": _open("Startup probe."),
            "workingDir": _s("The container's working directory."),
            "securityContext": _open("Security options."),
            "terminationMessagePath": _s("Path of the termination message."),
            "terminationMessagePolicy": _s("File or FallbackToLogsOnError."),
            "envFrom": _list(_open("A source of environment variables."), "Sources of environment variables.", atomic=True),
        },
        ["name"],
    ),
    # --- apps/v1: federated Deployments (and the member clusters' own)
    APPS + "Deployment": _kind(
        "Deployment enables declarative updates for Pods. A federated Deployment's replicas are split "
        "across the member clusters (placement, overrides and preferences are annotations).",
        "apps", "v1", "Deployment", APPS + "DeploymentSpec", None,
        status=_open("The most recently observed status of the Deployment (across the members, when federated)."),
    ),
    APPS + "DeploymentSpec": _obj(
        "DeploymentSpec is the specification of the desired behavior of the Deployment.",
        {
            "replicas": _i("Number of desired pods (in all member clusters together, when federated). Defaults to 1."),
            "selector": _open("Label selector for pods; must match the template's labels."),
            "template": _ref(CORE + "PodTemplateSpec", "Template describes the pods that will be created."),
            "strategy": _obj("The deployment strategy: RollingUpdate (default) or Recreate.", {
                "type": _s("Recreate or RollingUpdate. Default is RollingUpdate."),
                "rollingUpdate": _obj("Rolling update parameters, when type is RollingUpdate.", {
                    "maxUnavailable": _int_or_string("Pods that can be unavailable during the update: a number "
                                                     "or a percentage of desired pods (default 25%)."),
                    "maxSurge": _int_or_string("Pods that can be scheduled above the desired number: a number "
                                               "or a percentage of desired pods (default 25%)."),
                }),
            }),
            "minReadySeconds": _i("Minimum seconds a new pod must be ready to count as available."),
            "revisionHistoryLimit": _i("Number of old ReplicaSets to retain. Defaults to 10."),
            "progressDeadlineSeconds": _i("Maximum seconds for the deployment to make progress. Defaults to 600."),
            "paused": _b("Indicates that the deployment is paused."),
        },
        ["selector", "template"],
    ),
    CORE + "PodTemplateSpec": _obj(
        "PodTemplateSpec describes the data a pod should have when created from a template.",
        {"metadata": _ref(META + "ObjectMeta", "Standard object's metadata."),
         "spec": _ref(CORE + "PodSpec", "Specification of the desired behavior of the pod.")},
    ),
    APPS + "ControllerRevision": _kind(
        "ControllerRevision is an immutable snapshot of a Deployment's template, one per revision.",
        "apps", "v1", "ControllerRevision", None, None,
        data=_open("The serialized state at this revision."),
        revision={"type": "integer", "format": "int64", "description": "The revision number."},
    ),
    CORE + "Node": _kind("Node is a worker node of a member cluster.", "", "v1", "Node", None, None,
                         spec=_open("Spec defines the behavior of a node."),
                         status=_obj("The most recently observed status of the node.", {
                             "capacity": _quantities("The total resources of the node."),
                             "allocatable": _quantities("The resources of the node available for scheduling."),
                             "phase": _s("The lifecycle phase of the node (deprecated)."),
                             "conditions": _list(_obj("A condition of the node.", {
                                 "type": _s("Type of node condition: Ready, MemoryPressure, DiskPressure, ..."),
                                 "status": _s("True, False or Unknown."),
                                 "lastHeartbeatTime": _s("Last time the condition was updated.", format="date-time"),
                                 "lastTransitionTime": _s("Last time the condition changed.", format="date-time"),
                                 "reason": _s("Why the condition last changed."),
                                 "message": _s("Details of the last change."),
                             }, ["type", "status"]), "The node's current conditions.", key="type"),
                             "addresses": _list(_obj("An address of the node.", {
                                 "type": _s("Hostname, ExternalIP or InternalIP."),
                                 "address": _s("The address."),
                             }, ["type", "address"]), "Addresses reachable to the node.", key="type"),
                             "nodeInfo": _obj("General information about the node.", {
                                 name: _s(text) for name, text in (
                                     ("machineID", "The machine ID."), ("systemUUID", "The system UUID."),
                                     ("bootID", "The boot ID."), ("kernelVersion", "Kernel version."),
                                     ("osImage", "OS image."), ("containerRuntimeVersion", "Container runtime."),
                                     ("kubeletVersion", "Kubelet version."), ("kubeProxyVersion", "Kube-proxy version."),
                                     ("operatingSystem", "The operating system."), ("architecture", "The architecture."))
                             }),
                         })),
    # --- batch/v1, apps/v1 DaemonSet, networking.k8s.io/v1 Ingress (issue 15): members run them,
    # the federation propagates them; the pod template's schema is the Deployment's
    BATCH + "Job": _kind(
        "Job runs pods until a number of them succeed. A federated Job's completions and parallelism are split "
        "across the member clusters.", "batch", "v1", "Job", BATCH + "JobSpec", None,
        status=_open("The most recently observed status of the Job (summed over the members, when federated)."),
    ),
    BATCH + "JobSpec": _obj("JobSpec describes how the job execution will look like.", {
        "completions": _i("Pods that must succeed (in all member clusters together, when federated)."),
        "parallelism": _i("Pods running at any time (at least one per member cluster with completions, when federated)."),
        "backoffLimit": _i("Failed pods before the Job is marked failed. Defaults to 6."),
        "activeDeadlineSeconds": _i("Seconds the Job may be active before it is failed."),
        "completionMode": _s("NonIndexed (the only one simulated)."),
        "suspend": _b("Suspend the Job: its running pods are deleted and none start."),
        "manualSelector": _b("Let the user give the selector instead of the generated one."),
        "ttlSecondsAfterFinished": _i("Not simulated."),
        "podFailurePolicy": _open("Not simulated."),
        "podReplacementPolicy": _s("Not simulated."),
        "successPolicy": _open("Not simulated."),
        "backoffLimitPerIndex": _i("Not simulated (Indexed Jobs only)."),
        "maxFailedIndexes": _i("Not simulated (Indexed Jobs only)."),
        "selector": _open("Label selector for pods; generated from the Job's uid unless manualSelector is set."),
        "template": _ref(CORE + "PodTemplateSpec", "The pods the Job runs."),
    }, ["template"]),
    BATCH + "CronJob": _kind(
        "CronJob creates Jobs on a schedule.", "batch", "v1", "CronJob", BATCH + "CronJobSpec", None,
        status=_open("The most recently observed status of the CronJob."),
    ),
    BATCH + "CronJobSpec": _obj("CronJobSpec describes how the job execution will look like and when it will actually run.", {
        "schedule": _s("The schedule in Cron format (UTC), or @every <duration>."),
        "timeZone": _s("Only UTC is simulated."),
        "startingDeadlineSeconds": _i("Deadline in seconds for starting a Job that missed its time."),
        "concurrencyPolicy": _s("Allow (default), Forbid or Replace."),
        "suspend": _b("Suspend subsequent executions."),
        "successfulJobsHistoryLimit": _i("Successful finished Jobs to keep. Defaults to 3."),
        "failedJobsHistoryLimit": _i("Failed finished Jobs to keep. Defaults to 1."),
        "jobTemplate": _obj("The Job to create at each time.", {
            "metadata": _ref(META + "ObjectMeta", "Standard object's metadata of the jobs created from this template."),
            "spec": _ref(BATCH + "JobSpec", "The Job's spec."),
        }),
    }, ["schedule", "jobTemplate"]),
    APPS + "DaemonSet": _kind(
        "DaemonSet runs one pod on every node (of every member cluster it is placed in, when federated).",
        "apps", "v1", "DaemonSet", APPS + "DaemonSetSpec", None,
        status=_open("The most recently observed status of the DaemonSet (summed over the members, when federated)."),
    ),
    APPS + "DaemonSetSpec": _obj("DaemonSetSpec is the specification of a daemon set.", {
        "selector": _open("Label selector for pods; must match the template's labels."),
        "template": _ref(CORE + "PodTemplateSpec", "The pod each node runs."),
        "updateStrategy": _obj("How pods are replaced when the template changes.", {
            "type": _s("RollingUpdate (default) or OnDelete."),
            "rollingUpdate": _obj("Rolling update parameters.", {
                "maxUnavailable": _int_or_string("Pods that can be unavailable during the update (default 1)."),
                "maxSurge": _int_or_string("Not simulated (default 0)."),
            }),
        }),
        "minReadySeconds": _i("Minimum seconds a new pod must be ready to count as available."),
        "revisionHistoryLimit": _i("Old history to retain. Defaults to 10."),
    }, ["selector", "template"]),
    NETWORKING + "Ingress": _kind(
        "Ingress routes HTTP to services; each member cluster writes its ingress address into the status.",
        "networking.k8s.io", "v1", "Ingress", NETWORKING + "IngressSpec", None,
        status=_open("The ingress addresses in status.loadBalancer.ingress (of every member, when federated)."),
    ),
    NETWORKING + "IngressSpec": _obj("IngressSpec describes the Ingress the user wishes to exist.", {
        "ingressClassName": _s("The IngressClass."),
        "defaultBackend": _open("The backend for requests no rule matches."),
        "tls": _list(_open("TLS configuration."), "TLS configuration.", atomic=True),
        "rules": _list(_obj("A host rule.", {
            "host": _s("The host name."),
            "http": _obj("HTTP paths.", {
                "paths": _list(_open("A path and its backend."), "The paths.", atomic=True),
            }),
        }), "Host rules.", atomic=True),
    }),
    CORE + "Endpoints": _kind("Endpoints is the set of ready addresses behind a service.", "", "v1", "Endpoints", None, None,
                              subsets=_list(_open("A set of addresses with a common set of ports."), "The endpoints.",
                                            atomic=True)),
}

# --- kinds -> schemas, documents --------------------------------------------------------


def schema_name(res: Kind) -> str:
    """The component name of a kind's schema (a generated open one if none is written)."""
    for name, schema in SCHEMAS.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk["group"], gvk["version"], gvk["kind"]) == (res.group, res.version, res.kind):
                return name
    group = ".".join(reversed(res.group.split("."))) if res.group else "core"
    return f"io.ubernetes.{group}.{res.version}.{res.kind}"


def schemas_for(resources: Sequence[Kind]) -> dict[str, dict[str, Any]]:
    """Every component schema the resources need: the written ones, plus an open schema
    for each kind that has none."""
    out = dict(SCHEMAS)
    for res in resources:
        name = schema_name(res)
        if name not in out:
            out[name] = _kind(f"{res.kind} ({res.api_version}).", res.group, res.version, res.kind, None, None,
                              spec=_open("Spec."), status=_open("Status."))
        out[name + "List"] = list_schema(res)
    return out


def _param(name: str, desc: str, where: str = "query", type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "description": desc, "schema": {"type": type_, "uniqueItems": True}}


_FIELD_VALIDATION = _param(
    "fieldValidation",
    "How the server treats unknown or duplicate fields: Ignore, Warn (the default) or Strict (reject the request).",
)
_FIELD_MANAGER = _param("fieldManager", "The name of the actor making the change (server-side apply and managedFields).")
_DRY_RUN = _param("dryRun", "When present, the change is not persisted (All).")
_FORCE = _param("force", "Server-side apply: take over fields other managers own.", type_="boolean")


def _json_body(ref: str, types: Sequence[str] = ("application/json", "application/yaml")) -> dict[str, Any]:
    return {"required": True, "content": {t: {"schema": {"$ref": ref}} for t in types}}


STATUS_REF = f"#/components/schemas/{META}Status"
# What each kind of request may be refused with (issue 18: declared, so a client or a schema
# checker knows a refusal from a fault); every refusal is a Status.
READ_ERRORS = ("400", "401", "403", "404")
WRITE_ERRORS = ("400", "401", "403", "404", "409", "413", "415", "422", "429")
ERROR_TEXT = {"400": "Bad Request", "401": "Unauthorized", "403": "Forbidden", "404": "Not Found",
              "405": "Method Not Allowed", "409": "Conflict", "410": "Gone", "413": "Request Entity Too Large",
              "415": "Unsupported Media Type", "422": "Unprocessable Entity", "429": "Too Many Requests",
              "504": "Gateway Timeout"}


def _responses(ref: str, codes: Sequence[str] = ("200",), errors: Sequence[str] = READ_ERRORS) -> dict[str, Any]:
    out: dict[str, Any] = {code: {"description": {"200": "OK", "201": "Created"}[code],
                                  "content": {"application/json": {"schema": {"$ref": ref}}}} for code in codes}
    for code in errors:
        out[code] = {"description": ERROR_TEXT[code], "content": {"application/json": {"schema": {"$ref": STATUS_REF}}}}
    return out


def _ok(ref: str) -> dict[str, Any]:
    return _responses(ref)


def list_schema(res: Kind) -> dict[str, Any]:
    """``<Kind>List``: what a list answers (apiVersion, kind, list metadata, items)."""
    return _obj(f"{res.kind}List is a list of {res.kind} objects.", {
        "apiVersion": _s("APIVersion of the list."),
        "kind": _s("Kind of the list."),
        "metadata": _ref(META + "ListMeta", "Standard list metadata."),
        "items": {"type": "array", "description": f"The {res.plural}.",
                  "items": {"$ref": f"#/components/schemas/{schema_name(res)}"}},
    }, ["items"])


def _paths(res: Kind) -> dict[str, Any]:
    """The operations ``res`` really has (its verbs and subresources; issue 18)."""
    ref = f"#/components/schemas/{schema_name(res)}"
    list_ref = f"#/components/schemas/{schema_name(res)}List"
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    tag = f"{res.group or 'core'}_{res.version}"
    collection = res.base_path("{namespace}") if res.namespaced else res.base_path()
    item = collection + "/{name}"
    path_params = [_param("name", f"name of the {res.kind}", "path")]
    if res.namespaced:
        path_params.append(_param("namespace", "object name and auth scope, such as for teams and projects", "path"))
    common = {"tags": [tag], "x-kubernetes-group-version-kind": gvk}
    verbs = set(res.verbs)

    def op(action: str, op_id: str, **more: Any) -> dict[str, Any]:
        return {**common, "operationId": f"{op_id}{res.kind}", "x-kubernetes-action": action, **more}

    write_params = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    if res.virtual:
        return {collection: {"post": op("post", "create", requestBody=_json_body(ref),
                                        responses=_responses(ref, ("201",), ("400", "401", "403", "415")))}}
    list_params = [_param("labelSelector", "A label selector."), _param("fieldSelector", "A field selector."),
                   _param("limit", "At most this many items (then a continue token).", type_="integer"),
                   _param("continue", "The token of the previous page.")]
    colls: dict[str, Any] = {"parameters": path_params[1:]}
    items: dict[str, Any] = {"parameters": path_params}
    if "list" in verbs:
        colls["get"] = op("list", "list", parameters=list_params, responses=_responses(list_ref))
    if "create" in verbs:
        colls["post"] = op("post", "create", parameters=write_params, requestBody=_json_body(ref),
                           responses=_responses(ref, ("200", "201"), WRITE_ERRORS))
    if "deletecollection" in verbs:
        colls["delete"] = op("deletecollection", "deletecollection", parameters=[_DRY_RUN, *list_params[:2]],
                             responses=_responses(list_ref, ("200",), WRITE_ERRORS))
    if "get" in verbs:
        items["get"] = op("get", "read", responses=_responses(ref))
    if "update" in verbs:
        items["put"] = op("put", "replace", parameters=write_params, requestBody=_json_body(ref),
                          responses=_responses(ref, ("200",), WRITE_ERRORS))
    if "patch" in verbs:
        items["patch"] = op("patch", "patch", parameters=write_params + [_FORCE],
                            requestBody={"required": True,
                                         "content": {t: {"schema": {"type": "object"}} for t in PATCH_TYPES}},
                            responses=_responses(ref, ("200", "201"), WRITE_ERRORS))
    if "delete" in verbs:
        items["delete"] = op("delete", "delete", parameters=[_DRY_RUN, _param("propagationPolicy",
                                                                               "Orphan, Background or Foreground.")],
                             responses=_responses(ref, ("200",), WRITE_ERRORS))
    out: dict[str, Any] = {}
    if len(colls) > 1:
        out[collection] = colls
    if len(items) > 1:
        out[item] = items
    for sub in res.subresources:
        sub_ref = f"#/components/schemas/{AUTOSCALING}Scale" if sub == "scale" else ref
        out[f"{item}/{sub}"] = {
            "parameters": path_params,
            "get": op("get", f"read{sub.title()}", responses=_responses(sub_ref)),
            "put": op("put", f"replace{sub.title()}", parameters=write_params, requestBody=_json_body(sub_ref),
                      responses=_responses(sub_ref, ("200",), WRITE_ERRORS)),
            "patch": op("patch", f"patch{sub.title()}", parameters=write_params,
                        requestBody={"required": True, "content": {t: {"schema": {"type": "object"}}
                                                                   for t in PATCH_TYPES[:3]}},
                        responses=_responses(sub_ref, ("200",), WRITE_ERRORS)),
        }
    return out


def group_version_path(group: str, version: str) -> str:
    """The index's key for a group-version: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def document(resources: Sequence[Kind], group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document for one group-version, or None if it is not served."""
    mine = [r for r in resources if (r.group, r.version) == (group, version)]
    if not mine:
        return None
    paths: dict[str, Any] = {}
    for res in mine:
        paths.update(_paths(res))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Ubernetes", "version": "v1.32.0-ubernetes"},
        "paths": paths,
        "components": {"schemas": schemas_for(resources)},
    }


def document_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def index(resources: Sequence[Kind]) -> dict[str, Any]:
    """``GET /openapi/v3``: each group-version's document with a content hash (kubectl caches by it)."""
    from apimachinery.discovery import group_versions

    paths = {}
    for group, version in group_versions(resources):
        key = group_version_path(group, version)
        doc = document(resources, group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(doc or {})}"}
    return {"paths": paths}


# --- schema walking: for strict field validation and strategic merge -------------------


class SchemaNode:
    """A position in a schema, with ``$ref`` and ``allOf`` resolved against the components."""

    def __init__(self, schema: dict[str, Any], components: dict[str, dict[str, Any]]) -> None:
        self.components = components
        self.schema = self._resolve(schema)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged = dict(schema)
        for _ in range(10):
            ref = merged.pop("$ref", None)
            parts = merged.pop("allOf", None)
            if ref is None and not parts:
                break
            for part in ([{"$ref": ref}] if ref else []) + list(parts or []):
                if "$ref" in part:
                    target = self.components.get(part["$ref"].rsplit("/", 1)[-1], {})
                    merged = {**target, **merged}
                else:
                    merged = {**part, **merged}
        return merged

    @property
    def open(self) -> bool:
        """Whether any field is allowed here (no fixed properties)."""
        s = self.schema
        return bool(s.get("x-kubernetes-preserve-unknown-fields")) or (
            "properties" not in s and s.get("type") in (None, "object")
        ) or s.get("x-kubernetes-int-or-string", False)

    def field(self, name: str) -> "SchemaNode | None":
        props = self.schema.get("properties")
        if props and name in props:
            return SchemaNode(props[name], self.components)
        extra = self.schema.get("additionalProperties")
        if isinstance(extra, dict):
            return SchemaNode(extra, self.components)
        return None

    def items(self) -> "SchemaNode | None":
        items = self.schema.get("items")
        return SchemaNode(items, self.components) if isinstance(items, dict) else None

    @property
    def merge_key(self) -> str | None:
        return self.schema.get("x-kubernetes-patch-merge-key")

    @property
    def strategy(self) -> str:
        return self.schema.get("x-kubernetes-patch-strategy") or ""

    @property
    def list_type(self) -> str:
        return self.schema.get("x-kubernetes-list-type") or ""


def root_node(res: Kind, resources: Sequence[Kind] = ()) -> SchemaNode:
    components = schemas_for(list(resources) or [res])
    return SchemaNode(components[schema_name(res)] if schema_name(res) in components else {}, components)


def unknown_fields(node: SchemaNode | None, obj: Any, path: str = "") -> Iterator[str]:
    """The paths of fields in ``obj`` that the schema does not know, as the API server's
    strict decoder names them (``spec.foo``, ``spec.ports[0].bar``)."""
    if node is None:
        return
    if isinstance(obj, dict):
        if node.open or node.schema.get("additionalProperties"):
            if node.schema.get("additionalProperties") and not node.schema.get("properties"):
                extra = node.field("")
                for key, value in obj.items():
                    yield from unknown_fields(extra, value, f"{path}.{key}" if path else key)
            return
        for key, value in obj.items():
            child = node.field(key)
            where = f"{path}.{key}" if path else key
            if child is None:
                yield where
            else:
                yield from unknown_fields(child, value, where)
    elif isinstance(obj, list):
        items = node.items()
        for i, value in enumerate(obj):
            yield from unknown_fields(items, value, f"{path}[{i}]")
