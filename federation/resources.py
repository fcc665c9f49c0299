"""The kinds of ubernetes as data: the federation's table (:data:`ALL`) and a member
cluster's (:data:`MEMBER`), where each kind lives, its defaults and its validation.

Validation collects every bad field before answering, as Kubernetes' ``field.ErrorList``
does, so one ``Invalid`` Status tells the user everything that is wrong with an object.
Member clusters validate their services with :func:`validate_service` too.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any, Callable

from apimachinery.kinds import READ_VERBS, Errors, Kind
from apimachinery.meta import check_dns_label, check_label_key, list_name_problem, check_label_name, check_label_value, parse_time
from federation.names import NAMESPACE_NAME_LABEL
from federation import mcsapi, statefulapi


DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
RECORD_TYPES = ("A", "AAAA", "CNAME", "SRV", "TXT")


# ---------------------------------------------------------------------------- helpers


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_metadata(obj: dict[str, Any], *, namespaced: bool, name_check: Callable[[str], str | None]) -> Errors:
    errs: Errors = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [("metadata", "Required value: must be an object")]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errs.append(("metadata.name", "Required value: name or generateName is required"))
    else:
        problem = name_check(name)
        if problem:
            errs.append(("metadata.name", f"Invalid value: {name!r}: {problem}"))
    if namespaced:
        ns = meta.get("namespace")
        if isinstance(ns, str) and check_dns_label(ns):
            errs.append(("metadata.namespace", f"Invalid value: {ns!r}: {check_dns_label(ns)}"))
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            errs.append((f"metadata.{key}", "Invalid value: must be a map of strings"))
            continue
        for k, v in value.items():
            problem = check_label_key(k)
            if problem:
                errs.append((f"metadata.{key}", f"Invalid value: {k!r}: {problem}"))
            if key == "labels":
                vp = check_label_value(v)
                if vp:
                    errs.append(("metadata.labels", f"Invalid value: {v!r}: {vp}"))
            elif not isinstance(v, str):
                errs.append(("metadata.annotations", f"Invalid value: {k!r}: must be a string"))
    return errs


def check_dns1035(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not DNS1035_LABEL.match(name):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character"
        )
    return None


# ---------------------------------------------------------------------------- Service


def default_service(obj: dict[str, Any]) -> None:
    if not isinstance(obj.get("status"), dict):
        obj["status"] = {"loadBalancer": {}}  # what a real API server answers a create with
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            number = port.get("port")
            if _is_int(number) and 1 <= number <= 65535:
                port.setdefault("targetPort", number)


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except (ValueError, TypeError):
        return False


def validate_service(obj: dict[str, Any]) -> Errors:
    """A Service's spec, by Kubernetes' rules. The member clusters validate with this too
    (plus their own node-port range and pods annotation), so a Service is valid or invalid
    the same way on the federation and on every member."""
    errs: Errors = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    stype = spec.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        errs.append(("spec.type", f"Unsupported value: {stype!r}: supported values: {', '.join(SERVICE_TYPES)}"))
    if stype == "ExternalName":
        ext = spec.get("externalName")
        if not ext or not isinstance(ext, str) or check_label_name(ext.rstrip(".")):
            errs.append(("spec.externalName", f"Invalid value: {ext!r}: must be a DNS-1123 subdomain"))
    cluster_ip = spec.get("clusterIP")
    if cluster_ip not in (None, "", "None") and not _is_ip(cluster_ip):
        errs.append(("spec.clusterIP", f"Invalid value: {cluster_ip!r}: must be empty, 'None', or a valid IP address"))
    lb_ip = spec.get("loadBalancerIP")
    if lb_ip not in (None, "") and not _is_ip(lb_ip):
        errs.append(("spec.loadBalancerIP", f"Invalid value: {lb_ip!r}: must be a valid IP address"))
    affinity = spec.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        errs.append(("spec.sessionAffinity", f"Unsupported value: {affinity!r}: supported values: ClientIP, None"))
    ports = spec.get("ports")
    if stype != "ExternalName" and cluster_ip != "None":  # a headless service may have no ports
        if not isinstance(ports, list) or not ports:
            errs.append(("spec.ports", "Required value"))
            ports = []
    if ports is not None and not isinstance(ports, list):
        errs.append(("spec.ports", "Invalid value: must be a list"))
        ports = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    for i, port in enumerate(ports or []):
        path = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            errs.append((path, "Invalid value: must be an object"))
            continue
        number = port.get("port")
        if number is None:
            errs.append((f"{path}.port", "Required value"))
        elif not _is_int(number) or not 1 <= number <= 65535:
            errs.append((f"{path}.port", f"Invalid value: {number!r}: must be between 1 and 65535, inclusive"))
        proto = port.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            errs.append((f"{path}.protocol", f"Unsupported value: {proto!r}: supported values: TCP, UDP, SCTP"))
        elif _is_int(number):
            if (number, proto) in seen:
                errs.append((path, f'Duplicate value: {{"port": {number}, "protocol": "{proto}"}}'))
            seen.add((number, proto))
        pname = port.get("name")
        if pname not in (None, ""):
            if not isinstance(pname, str) or check_dns_label(pname):
                errs.append((f"{path}.name", f"Invalid value: {pname!r}: must be a DNS-1123 label"))
            elif pname in names:
                errs.append((f"{path}.name", f"Duplicate value: {pname!r}"))
            else:
                names.add(pname)
        elif len(ports) > 1:
            errs.append((f"{path}.name", "Required value: ports must be named when there is more than one"))
        target = port.get("targetPort")
        if target is not None:
            if _is_int(target):
                if not 1 <= target <= 65535:
                    errs.append((f"{path}.targetPort", f"Invalid value: {target!r}: must be between 1 and 65535, inclusive"))
            elif not isinstance(target, str) or not target or len(target) > 15 or check_dns_label(target):
                errs.append((f"{path}.targetPort", f"Invalid value: {target!r}: must be a port number or an IANA service name"))
        node_port = port.get("nodePort")
        if node_port not in (None, 0) and (not _is_int(node_port) or not 1 <= node_port <= 65535):
            errs.append((f"{path}.nodePort", f"Invalid value: {node_port!r}: must be between 1 and 65535, inclusive"))
    selector = spec.get("selector")
    if selector is not None:
        if not isinstance(selector, dict):
            errs.append(("spec.selector", "Invalid value: must be a map of strings"))
        else:
            for k, v in selector.items():
                if check_label_key(k):
                    errs.append(("spec.selector", f"Invalid value: {k!r}: {check_label_key(k)}"))
                if check_label_value(v):
                    errs.append(("spec.selector", f"Invalid value: {v!r}: {check_label_value(v)}"))
    return errs


# ---------------------------------------------------------------------------- Cluster


def validate_cluster(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    addrs = spec.get("serverAddressByClientCIDRs")
    if not isinstance(addrs, list) or not addrs:
        errs.append(("spec.serverAddressByClientCIDRs", "Required value: at least one server address"))
        addrs = []
    for i, entry in enumerate(addrs):
        path = f"spec.serverAddressByClientCIDRs[{i}]"
        if not isinstance(entry, dict):
            errs.append((path, "Invalid value: must be an object"))
            continue
        cidr = entry.get("clientCIDR")
        try:
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            errs.append((f"{path}.clientCIDR", f"Invalid value: {cidr!r}: must be a CIDR such as 0.0.0.0/0"))
        server = entry.get("serverAddress")
        if not isinstance(server, str) or not re.match(r"^(https?://)?[^\s/]+(:\d+)?(/.*)?$", server or ""):
            errs.append((f"{path}.serverAddress", f"Invalid value: {server!r}: must be host:port or a URL"))
    provider = spec.get("provider")
    if provider is not None and (not isinstance(provider, str) or check_dns_label(provider)):
        errs.append(("spec.provider", f"Invalid value: {provider!r}: must be a DNS-1123 label such as aws or gcp"))
    return errs


# ---------------------------------------------------------------------------- Lease


def validate_lease(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    spec = obj.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: must be an object")]
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not _is_int(duration) or duration <= 0):
        errs.append(("spec.leaseDurationSeconds", f"Invalid value: {duration!r}: must be greater than 0"))
    for key in ("renewTime", "acquireTime"):
        value = spec.get(key)
        if value is not None:
            try:
                parse_time(str(value))
            except ValueError:
                errs.append((f"spec.{key}", f"Invalid value: {value!r}: must be an RFC 3339 time"))
    return errs


# ---------------------------------------------------------------------------- DNSRecord


def _dns_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name.endswith("."):
        return "must be an absolute DNS name ending in '.'"
    labels = name[:-1].split(".")
    if len(name) > 254 or any(not 0 < len(label) <= 63 for label in labels):
        return "must be a valid DNS name (labels of 1 to 63 characters, at most 255 in all)"
    return None


def validate_dnsrecord(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    problem = _dns_name_problem(spec.get("name"))
    if problem:
        errs.append(("spec.name", f"Invalid value: {spec.get('name')!r}: {problem}"))
    rtype = spec.get("type")
    if rtype not in RECORD_TYPES:
        errs.append(("spec.type", f"Unsupported value: {rtype!r}: supported values: {', '.join(RECORD_TYPES)}"))
    ttl = spec.get("ttl")
    if not _is_int(ttl) or not 0 <= ttl <= 2**31 - 1:
        errs.append(("spec.ttl", f"Invalid value: {ttl!r}: must be between 0 and 2147483647"))
    targets = spec.get("targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        errs.append(("spec.targets", "Required value: a non-empty list of strings"))
        return errs
    for i, target in enumerate(targets):
        path = f"spec.targets[{i}]"
        try:
            if rtype == "A":
                ipaddress.IPv4Address(target)
            elif rtype == "AAAA":
                ipaddress.IPv6Address(target)
        except ValueError:
            errs.append((path, f"Invalid value: {target!r}: must be an IPv{4 if rtype == 'A' else 6} address"))
        if rtype == "CNAME" and _dns_name_problem(target):
            errs.append((path, f"Invalid value: {target!r}: {_dns_name_problem(target)}"))
    if rtype == "CNAME" and len(targets) != 1:
        errs.append(("spec.targets", "Invalid value: a CNAME has exactly one target"))
    return errs


# ---------------------------------------------------------------------------- Event


def validate_event(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    if not isinstance(obj.get("involvedObject"), dict):
        errs.append(("involvedObject", "Required value"))
    return errs


# ---------------------------------------------------------------------------- Deployment
# Shared with the member clusters (clusters/workloads.py), so a Deployment the federation
# accepts is one every member accepts too.

SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
STRATEGIES = ("RollingUpdate", "Recreate")


def _default_rolling_update(spec: dict[str, Any], key: str, **limits: Any) -> None:
    """A workload's update strategy: ``RollingUpdate`` with the kind's default limits."""
    strategy = spec.setdefault(key, {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                for name, value in limits.items():
                    rolling.setdefault(name, value)


def default_deployment(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("minReadySeconds", 0)
    _default_rolling_update(spec, "strategy", maxSurge="25%", maxUnavailable="25%")
    default_pod_template(spec.get("template"), restart_policy="Always")


def default_pod_template(template: Any, *, restart_policy: str | None) -> None:
    """A workload's pod template as the API server defaults it (Deployments, DaemonSets, Jobs:
    a Job's restart policy has no default, its validation asks for one)."""
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    template_meta = template.get("metadata") if isinstance(template, dict) else None
    if isinstance(template_meta, dict) and template_meta.get("creationTimestamp", "") is None:
        del template_meta["creationTimestamp"]  # Go's JSON writes null; one template, one form
    if isinstance(pod_spec, dict):
        if restart_policy:
            pod_spec.setdefault("restartPolicy", restart_policy)
        for key in ("initContainers", "containers"):
            for c in pod_spec.get(key) or []:
                if isinstance(c, dict):
                    c.setdefault("imagePullPolicy", "IfNotPresent")
                    if c.get("resources", None) == {}:
                        del c["resources"]  # no requests and no limits, as the protobuf form has it
                    for port in c.get("ports") or []:
                        if isinstance(port, dict):
                            port.setdefault("protocol", "TCP")


def _int_or_percent(value: Any) -> bool:
    if _is_int(value):
        return value >= 0
    return isinstance(value, str) and bool(re.fullmatch(r"\d{1,3}%", value)) and int(value[:-1]) <= 100


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def check_seccomp(value: Any) -> str | None:
    """Why a seccomp annotation value is invalid (None when fine)."""
    if value in ("runtime/default", "docker/default", "unconfined"):
        return None
    if isinstance(value, str) and value.startswith("localhost/"):
        profile = value[len("localhost/"):]
        if profile and ".." not in profile.split("/") and not profile.startswith("/"):
            return None
        return "localhost/ must be followed by a relative profile path without '..'"
    return "must be runtime/default, docker/default, unconfined or localhost/<profile>"


def _label_map_errors(value: Any, path: str) -> Errors:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(path, "Invalid value: must be a map of strings")]
    errs: Errors = []
    for k, v in value.items():
        problem = check_label_key(str(k)) or check_label_value(v)
        if problem:
            errs.append((f"{path}[{k}]", f"Invalid value: {v!r}: {problem}"))
    return errs


def _containers_errors(pod_spec: dict[str, Any], path: str) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        items = pod_spec.get(key)
        if items is None and key == "initContainers":
            continue
        if not isinstance(items, list) or (key == "containers" and not items):
            errs.append((f"{path}.{key}", "Required value" if key == "containers" else "Invalid value: must be a list"))
            continue
        for i, c in enumerate(items):
            where = f"{path}.{key}[{i}]"
            if not isinstance(c, dict):
                errs.append((where, "Invalid value: must be an object"))
                continue
            problem = list_name_problem(c.get("name"), names)
            if problem:
                errs.append((f"{where}.name", problem))
            image = c.get("image")
            if not isinstance(image, str) or not image.strip():
                errs.append((f"{where}.image", "Required value"))
            command = c.get("command")
            if command is not None and (not isinstance(command, list) or not all(isinstance(a, str) for a in command)):
                errs.append((f"{where}.command", "Invalid value: must be a list of strings"))
            for j, port in enumerate(c.get("ports") or []):
                number = port.get("containerPort") if isinstance(port, dict) else None
                if not _is_int(number) or not 1 <= number <= 65535:
                    errs.append((f"{where}.ports[{j}].containerPort", f"Invalid value: {number!r}: must be between 1 and 65535, inclusive"))
    return errs


def validate_deployment(obj: dict[str, Any]) -> Errors:
    """Field errors of an apps/v1 Deployment, Kubernetes' paths and wording where we can."""
    errs: Errors = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    replicas = spec.get("replicas", 1)
    if not _is_int(replicas) or replicas < 0:
        errs.append(("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"))
    for key in ("revisionHistoryLimit", "minReadySeconds"):
        value = spec.get(key, 0)
        if not _is_int(value) or value < 0:
            errs.append((f"spec.{key}", f"Invalid value: {value!r}: must be greater than or equal to 0"))
    deadline = spec.get("progressDeadlineSeconds", 600)
    if not _is_int(deadline) or deadline <= 0:
        errs.append(("spec.progressDeadlineSeconds", f"Invalid value: {deadline!r}: must be greater than 0"))
    elif _is_int(spec.get("minReadySeconds", 0)) and deadline <= spec.get("minReadySeconds", 0):
        errs.append(("spec.progressDeadlineSeconds", f"Invalid value: {deadline}: must be greater than minReadySeconds"))
    strategy = spec.get("strategy") or {}
    if not isinstance(strategy, dict):
        errs.append(("spec.strategy", "Invalid value: must be an object"))
        strategy = {}
    stype = strategy.get("type", "RollingUpdate")
    if stype not in STRATEGIES:
        errs.append(("spec.strategy.type", f'Unsupported value: {stype!r}: supported values: "Recreate", "RollingUpdate"'))
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'"))
    if isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
        for key, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
            if not _int_or_percent(value):
                errs.append((f"spec.strategy.rollingUpdate.{key}", f"Invalid value: {value!r}: must be a non-negative integer or a percentage such as 25%"))
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when `maxSurge` is 0"))
    return errs + pod_template_errors(spec, path="spec")


def pod_template_errors(spec: dict[str, Any], *, path: str, selector_required: bool = True,
                        restart_policies: tuple[str, ...] = ("Always",)) -> Errors:
    """A workload's ``selector`` and pod ``template`` (Deployments, DaemonSets, Jobs): the
    selector matches the template's labels, the containers are well formed, the restart
    policy is one the kind allows."""
    from federation.planners.placement import PlacementError, selector_requirements
    from apimachinery.meta import selector_matches

    errs: Errors = []
    selector = spec.get("selector")
    reqs = None
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        if selector_required or selector is not None:
            errs.append((f"{path}.selector", "Required value"))
    else:
        try:
            reqs = selector_requirements(selector, path=f"{path}.selector")
        except PlacementError as err:
            where, _, message = str(err).partition(": ")
            errs.append((where, f"Invalid value: {message}"))
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append((f"{path}.template", "Required value"))
        return errs
    tmeta = template.get("metadata") or {}
    if not isinstance(tmeta, dict):
        errs.append((f"{path}.template.metadata", "Invalid value: must be an object"))
        tmeta = {}
    errs += _label_map_errors(tmeta.get("labels"), f"{path}.template.metadata.labels")
    if reqs is not None and not selector_matches(reqs, tmeta.get("labels") or {}):
        errs.append((f"{path}.template.metadata.labels", f"Invalid value: {tmeta.get('labels') or {}}: `selector` does not match template `labels`"))
    annotations = tmeta.get("annotations") or {}
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            if key == SECCOMP_POD_ANNOTATION or str(key).startswith(SECCOMP_CONTAINER_PREFIX):
                problem = check_seccomp(value)
                if problem:
                    errs.append((f"{path}.template.metadata.annotations[{key}]", f"Invalid value: {value!r}: {problem}"))
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        errs.append((f"{path}.template.spec", "Required value"))
        return errs
    errs += _containers_errors(pod_spec, f"{path}.template.spec")
    policy = pod_spec.get("restartPolicy", "Always")
    if policy not in restart_policies:
        shown = ", ".join(f'"{p}"' for p in restart_policies)
        errs.append((f"{path}.template.spec.restartPolicy", f"Unsupported value: {policy!r}: supported values: {shown}"))
    return errs


def validate_federated_deployment(obj: dict[str, Any]) -> Errors:
    """A Deployment plus the federation's placement, overrides and preferences annotations."""
    from federation.planners.placement import validate_federation_annotations

    return validate_deployment(obj) + validate_federation_annotations(obj)


def validate_controllerrevision(obj: dict[str, Any]) -> Errors:
    revision = obj.get("revision")
    if not _is_int(revision) or revision < 1:
        return [("revision", f"Invalid value: {revision!r}: must be a positive integer")]
    return []


# ---------------------------------------------------------------------------- Secret (issue 8)

SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def default_secret(obj: dict[str, Any]) -> None:
    """``stringData`` is write-only, as in Kubernetes: folded into ``data`` (base64) on write."""
    import base64

    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        obj["data"] = {**data, **{k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}}
    elif string_data is not None:
        obj["stringData"] = string_data  # left for validation to refuse
    obj.setdefault("type", "Opaque")


def validate_secret(obj: dict[str, Any]) -> Errors:
    import base64
    import binascii

    errs: Errors = []
    if not isinstance(obj.get("type", "Opaque"), str):
        errs.append(("type", "Invalid value: must be a string"))
    for section, key, item in _data_items(obj, ("data", "stringData"), errs):
        if section == "data":
            try:
                base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                errs.append((f"data[{key}]", "Invalid value: must be base64-encoded"))
    return errs


def _data_items(obj: dict[str, Any], sections: tuple[str, ...], errs: Errors) -> list[tuple[str, str, str]]:
    """The (section, key, value) of a Secret's or ConfigMap's data maps whose key and value are
    well formed; the others' errors go into ``errs``."""
    out = []
    for section in sections:
        value = obj.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            errs.append((section, "Invalid value: must be a map of keys to values"))
            continue
        for key, item in value.items():
            if not SECRET_KEY.match(str(key)):
                errs.append((f"{section}[{key}]", f"Invalid value: {key!r}: a valid config key must consist of "
                                                  "alphanumeric characters, '-', '_' or '.'"))
            elif not isinstance(item, str):
                errs.append((f"{section}[{key}]", "Invalid value: must be a string"))
            else:
                out.append((section, str(key), item))
    return out


# ---------------------------------------------------------------------------- ConfigMap (issue 15)


def validate_configmap(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    keys: set[str] = set()
    for section, key, _ in _data_items(obj, ("data", "binaryData"), errs):
        if key in keys:
            errs.append((f"{section}[{key}]", f"Invalid value: {key!r}: duplicate of key present in data"))
        keys.add(key)
    return errs


# ---------------------------------------------------------------------------- Job, CronJob, DaemonSet, Ingress (issue 15)
# Shared with the members (clusters/jobs.py, clusters/daemonsets.py), so a federated object
# is valid or invalid the same way on both. The selector of a Job is generated by the
# member that runs it (from its own uid, as Kubernetes' job strategy does), never copied.

JOB_RESTART_POLICIES = ("OnFailure", "Never")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")


def _counts_errors(spec: dict[str, Any], path: str, names: tuple[str, ...], *, positive: tuple[str, ...] = ()) -> Errors:
    errs: Errors = []
    for key in names + positive:
        value = spec.get(key)
        if value is None:
            continue
        low = 1 if key in positive else 0
        if not _is_int(value) or value < low:
            bound = "greater than 0" if low else "greater than or equal to 0"
            errs.append((f"{path}.{key}", f"Invalid value: {value!r}: must be {bound}"))
    return errs


def default_job(obj: dict[str, Any]) -> None:
    """batch/v1 Job defaults: one completion at a time unless said otherwise."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    default_pod_template(spec.get("template"), restart_policy=None)


def validate_job(obj: dict[str, Any], *, path: str = "spec") -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [(path, "Required value")]
    errs = _counts_errors(spec, path, ("completions", "parallelism", "backoffLimit"), positive=("activeDeadlineSeconds",))
    mode = spec.get("completionMode", "NonIndexed")
    if mode != "NonIndexed":
        errs.append((f"{path}.completionMode", f'Unsupported value: {mode!r}: supported values: "NonIndexed" '
                                               "(Indexed Jobs are not simulated)"))
    if spec.get("selector") is not None and not spec.get("manualSelector"):
        errs.append((f"{path}.selector", "Invalid value: `selector` will be auto-generated; set "
                                         "`manualSelector: true` to give your own"))
    return errs + pod_template_errors(spec, path=path, selector_required=False, restart_policies=JOB_RESTART_POLICIES)


def default_cronjob(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    template = spec.get("jobTemplate")
    if isinstance(template, dict):
        default_job(template)


def validate_cronjob(obj: dict[str, Any]) -> Errors:
    from federation.planners.cronschedule import problem

    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs: Errors = []
    schedule = spec.get("schedule")
    if not isinstance(schedule, str) or not schedule.strip():
        errs.append(("spec.schedule", "Required value"))
    elif problem(schedule):
        errs.append(("spec.schedule", f"Invalid value: {schedule!r}: {problem(schedule)}"))
    if spec.get("timeZone") not in (None, "", "UTC", "Etc/UTC"):
        errs.append(("spec.timeZone", f"Invalid value: {spec.get('timeZone')!r}: only UTC is simulated"))
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy not in CONCURRENCY_POLICIES:
        errs.append(("spec.concurrencyPolicy", f'Unsupported value: {policy!r}: supported values: "Allow", "Forbid", "Replace"'))
    errs += _counts_errors(spec, "spec", ("successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"))
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        return errs + [("spec.jobTemplate", "Required value")]
    return errs + validate_job(template, path="spec.jobTemplate.spec")


def default_daemonset(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    _default_rolling_update(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    default_pod_template(spec.get("template"), restart_policy="Always")


def validate_daemonset(obj: dict[str, Any]) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs = _counts_errors(spec, "spec", ("revisionHistoryLimit", "minReadySeconds"))
    strategy = spec.get("updateStrategy") or {}
    stype = strategy.get("type", "RollingUpdate") if isinstance(strategy, dict) else None
    if stype not in ("RollingUpdate", "OnDelete"):
        errs.append(("spec.updateStrategy.type", f'Unsupported value: {stype!r}: supported values: "OnDelete", "RollingUpdate"'))
    unavailable = ((strategy.get("rollingUpdate") or {}) if isinstance(strategy, dict) else {}).get("maxUnavailable", 1)
    if not _int_or_percent(unavailable) or _is_zero(unavailable):
        errs.append(("spec.updateStrategy.rollingUpdate.maxUnavailable",
                     f"Invalid value: {unavailable!r}: must be a positive integer or a percentage such as 25%"))
    return errs + pod_template_errors(spec, path="spec")


def validate_ingress(obj: dict[str, Any]) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errs: Errors = []
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        return [("spec.rules", "Invalid value: must be a list")]
    if not rules and not isinstance(spec.get("defaultBackend"), dict):
        errs.append(("spec", "Invalid value: either `defaultBackend` or `rules` must be specified"))
    for i, rule in enumerate(rules):
        where = f"spec.rules[{i}]"
        if not isinstance(rule, dict):
            errs.append((where, "Invalid value: must be an object"))
            continue
        host = rule.get("host")
        if host not in (None, "") and (not isinstance(host, str) or check_label_name(host.removeprefix("*."))):
            errs.append((f"{where}.host", f"Invalid value: {host!r}: must be a DNS-1123 subdomain"))
        for j, entry in enumerate(((rule.get("http") or {}).get("paths") or []) if isinstance(rule.get("http"), dict) else []):
            at = f"{where}.http.paths[{j}]"
            if not isinstance(entry, dict):
                errs.append((at, "Invalid value: must be an object"))
                continue
            if entry.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                errs.append((f"{at}.pathType", f'Unsupported value: {entry.get("pathType")!r}: supported values: '
                                               '"Exact", "ImplementationSpecific", "Prefix"'))
            if entry.get("pathType") in ("Exact", "Prefix") and not str(entry.get("path", "")).startswith("/"):
                errs.append((f"{at}.path", f"Invalid value: {entry.get('path')!r}: must be an absolute path"))
            if not isinstance(entry.get("backend"), dict):
                errs.append((f"{at}.backend", "Required value"))
    return errs


# ---------------------------------------------------------------------------- FederatedTypeConfig (issue 15)
# KubeFed's registry of federated kinds: one object per kind, named as the kind's plural
# (group-qualified outside the core group), saying whether it propagates.

PROPAGATION_MODES = ("Enabled", "Disabled")


def validate_federatedtypeconfig(obj: dict[str, Any]) -> Errors:
    errs: Errors = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    target = spec.get("targetType")
    if not isinstance(target, dict):
        errs.append(("spec.targetType", "Required value"))
    else:
        for key in ("version", "kind", "pluralName"):
            if not isinstance(target.get(key), str) or not target.get(key):
                errs.append((f"spec.targetType.{key}", "Required value"))
        if target.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(("spec.targetType.scope", f"Unsupported value: {target.get('scope')!r}: supported values: "
                                                  '"Cluster", "Namespaced"'))
    mode = spec.get("propagation", "Enabled")
    if mode not in PROPAGATION_MODES:
        errs.append(("spec.propagation", f'Unsupported value: {mode!r}: supported values: "Disabled", "Enabled"'))
    return errs


CLUSTERS = Kind(
    "federation", "v1beta1", "clusters", "Cluster", False, short_names=("cl",), singular="cluster", categories=("federation",),
    validate=validate_cluster,
)
SERVICES = Kind(
    "", "v1", "services", "Service", True, short_names=("svc",), singular="service", categories=("all",),
    field_labels=("spec.type", "spec.clusterIP"),
    validate=validate_service, default=default_service, name_check=check_dns1035,
)
LEASES = Kind("coordination.k8s.io", "v1", "leases", "Lease", True, singular="lease", validate=validate_lease)
DNSRECORDS = Kind(
    "federation", "v1beta1", "dnsrecords", "DNSRecord", False, short_names=("dnsr",), singular="dnsrecord",
    validate=validate_dnsrecord,
)
EVENT_FIELD_LABELS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                      "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                      "reason", "reportingComponent", "source", "type")
EVENTS = Kind("", "v1", "events", "Event", True, short_names=("ev",), singular="event", validate=validate_event,
              field_labels=EVENT_FIELD_LABELS)
DEPLOYMENTS = Kind(
    "apps", "v1", "deployments", "Deployment", True, short_names=("deploy",), singular="deployment", categories=("all",),
    validate=validate_federated_deployment, default=default_deployment, subresources=("status", "scale"),
)
CONTROLLERREVISIONS = Kind(
    "apps", "v1", "controllerrevisions", "ControllerRevision", True, singular="controllerrevision",
    validate=validate_controllerrevision,
)

SECRETS = Kind("", "v1", "secrets", "Secret", True, singular="secret", validate=validate_secret, default=default_secret)
CONFIGMAPS = Kind("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",), singular="configmap",
                  validate=validate_configmap, subresources=())
FEDERATEDTYPECONFIGS = Kind(
    "federation", "v1beta1", "federatedtypeconfigs", "FederatedTypeConfig", False, short_names=("ftc",),
    singular="federatedtypeconfig", categories=("federation",), validate=validate_federatedtypeconfig,
)

def _with_federation(validate: Callable[[dict[str, Any]], Errors]) -> Callable[[dict[str, Any]], Errors]:
    """A kind's own rules plus the federation's placement, overrides and preferences annotations."""
    def checked(obj: dict[str, Any]) -> Errors:
        from federation.planners.placement import validate_federation_annotations

        return validate(obj) + validate_federation_annotations(obj)
    return checked


# Workloads beyond Deployments (issue 15): the members run them, the federation propagates them.
JOBS = Kind("batch", "v1", "jobs", "Job", True, singular="job", categories=("all",),
            validate=_with_federation(validate_job), default=default_job)
CRONJOBS = Kind("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), singular="cronjob",
                categories=("all",), validate=_with_federation(validate_cronjob), default=default_cronjob)
DAEMONSETS = Kind("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",), singular="daemonset",
                  categories=("all",), validate=_with_federation(validate_daemonset), default=default_daemonset)
INGRESSES = Kind("networking.k8s.io", "v1", "ingresses", "Ingress", True, short_names=("ing",), singular="ingress",
                 validate=_with_federation(validate_ingress))

def validate_failoverrecord(obj: dict[str, Any]) -> Errors:
    from federation.planners import history

    return history.validate(obj)


# The failover history (issue 17, docs/history.md): one object per step of a change of standing.
FAILOVERRECORDS = Kind(
    "federation", "v1beta1", "failoverrecords", "FailoverRecord", False, short_names=("fr",), singular="failoverrecord",
    categories=("federation",), subresources=(), validate=validate_failoverrecord,
)

# A member cluster's kinds, as discovery, OpenAPI and the tables know them, with the verbs and
# subresources it really serves (discovery must not promise more: kubectl believes it).
READ_ONLY = dict(verbs=READ_VERBS, subresources=())
NODES = Kind("", "v1", "nodes", "Node", False, short_names=("no",), singular="node", **READ_ONLY)
NAMESPACES = Kind("", "v1", "namespaces", "Namespace", False, short_names=("ns",), singular="namespace",
                  verbs=("create", "delete", "patch", "update", *READ_VERBS), subresources=())
MEMBER_SERVICES = replace(SERVICES, verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))
ENDPOINTS = Kind("", "v1", "endpoints", "Endpoints", True, short_names=("ep",), singular="endpoints", **READ_ONLY)
PODS = Kind("", "v1", "pods", "Pod", True, short_names=("po",), singular="pod", categories=("all",),
            field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                          "status.phase", "status.podIP", "status.nominatedNodeName"),
            verbs=("create", "delete", "patch", "update", *READ_VERBS), subresources=())  # bare pods (issue 14)
MEMBER_EVENTS = replace(EVENTS, **READ_ONLY)
MEMBER_DEPLOYMENTS = replace(DEPLOYMENTS, verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))
REPLICASETS = Kind("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",), singular="replicaset",
                   categories=("all",), verbs=("delete", *READ_VERBS), subresources=())
MEMBER = [NODES, NAMESPACES, MEMBER_SERVICES, ENDPOINTS, PODS, MEMBER_EVENTS, MEMBER_DEPLOYMENTS, REPLICASETS]
# Kinds a member keeps as written (clusters/plainobjects.py), federated by the one sync path (issue 15).
MEMBER_CONFIGMAPS = replace(CONFIGMAPS, verbs=MEMBER_SERVICES.verbs)
MEMBER_SECRETS = replace(SECRETS, verbs=MEMBER_SERVICES.verbs, subresources=())
MEMBER += [MEMBER_CONFIGMAPS, MEMBER_SECRETS]

# Jobs, CronJobs, DaemonSets and Ingresses (issue 15): stored as written (clusters/plainobjects.py),
# run by the member's controllers (clusters/jobs.py, clusters/daemonsets.py, clusters/ingresses.py).
MEMBER_JOBS = replace(JOBS, verbs=MEMBER_SERVICES.verbs, validate=validate_job)
MEMBER_CRONJOBS = replace(CRONJOBS, verbs=MEMBER_SERVICES.verbs, validate=validate_cronjob)
MEMBER_DAEMONSETS = replace(DAEMONSETS, verbs=MEMBER_SERVICES.verbs, validate=validate_daemonset)
MEMBER_INGRESSES = replace(INGRESSES, verbs=MEMBER_SERVICES.verbs, validate=validate_ingress)
MEMBER += [MEMBER_JOBS, MEMBER_CRONJOBS, MEMBER_DAEMONSETS, MEMBER_INGRESSES]

# Kinds served empty, read only (issue 18): kubectl apply --prune without --prune-allowlist
# resolves kubectl's default prune set (ConfigMap, Endpoints, Namespace, PVC, PV, Pod,
# ReplicationController, Secret, Service, Job, CronJob, Ingress, DaemonSet, Deployment,
# ReplicaSet, StatefulSet) in discovery first and stops at the first kind it cannot find.
# Nothing simulates these, so each lists nothing, as a cluster without any would. (Members
# run StatefulSets and their PVCs, issue 14, below; the federation serves PVCs empty.)
PERSISTENTVOLUMES = Kind("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",),
                         singular="persistentvolume", **READ_ONLY)
REPLICATIONCONTROLLERS = Kind("", "v1", "replicationcontrollers", "ReplicationController", True, short_names=("rc",),
                              singular="replicationcontroller", categories=("all",), **READ_ONLY)
NOT_SIMULATED = [PERSISTENTVOLUMES, REPLICATIONCONTROLLERS]
MEMBER += NOT_SIMULATED

# Multi-Cluster Services (KEP-1645) and ClusterProperty (KEP-2149) in every member (issue 14,
# docs/mcs.md): users export, the federation (the clusterset's MCS controller) imports.
SERVICEEXPORTS = Kind(mcsapi.GROUP, mcsapi.VERSION, "serviceexports", "ServiceExport", True, short_names=("svcex",),
                      singular="serviceexport", validate=mcsapi.validate_serviceexport, name_check=check_dns1035)
SERVICEIMPORTS = Kind(mcsapi.GROUP, mcsapi.VERSION, "serviceimports", "ServiceImport", True, short_names=("svcim",),
                      singular="serviceimport", subresources=(), validate=mcsapi.validate_serviceimport,
                      name_check=check_dns1035)
CLUSTERPROPERTIES = Kind(mcsapi.ABOUT_GROUP, "v1alpha1", "clusterproperties", "ClusterProperty", False,
                         singular="clusterproperty", subresources=(), validate=mcsapi.validate_clusterproperty)
MEMBER += [SERVICEEXPORTS, SERVICEIMPORTS, CLUSTERPROPERTIES]

def validate_statefulset(obj: dict[str, Any]) -> Errors:
    """A StatefulSet's or PetSet's own rules, then its pod template's (the Deployments' ones)."""
    errs = statefulapi.validate_statefulset(obj)
    template = (obj.get("spec") or {}).get("template") if isinstance(obj.get("spec"), dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        errs += _containers_errors(template["spec"], "spec.template.spec")
    return errs


def default_statefulset(obj: dict[str, Any]) -> None:
    statefulapi.default_statefulset(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
        shell = {"spec": {"template": spec["template"]}}
        default_deployment(shell)  # the pod template's defaults, as a Deployment's
        spec["template"] = shell["spec"]["template"]


# Stateful pods (issue 14, docs/workloads.md): StatefulSet, the 1.3 post's PetSet, and the
# claims their volumeClaimTemplates make (clusters/statefulsets.py).
STATEFULSETS = Kind("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",), singular="statefulset",
                    categories=("all",), subresources=("status", "scale"), validate=validate_statefulset,
                    default=default_statefulset)
PETSETS = Kind("apps", "v1alpha1", "petsets", "PetSet", True, singular="petset", subresources=("status",),
               validate=validate_statefulset, default=default_statefulset)
PERSISTENTVOLUMECLAIMS = Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",),
                              singular="persistentvolumeclaim", verbs=("create", "delete", *READ_VERBS), subresources=(),
                              validate=statefulapi.validate_pvc)
MEMBER += [STATEFULSETS, PETSETS, PERSISTENTVOLUMECLAIMS]


def default_namespace(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if isinstance(meta.get("name"), str):
        labels = meta.setdefault("labels", {})
        if isinstance(labels, dict):
            labels[NAMESPACE_NAME_LABEL] = meta["name"]
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}


# The federation stores namespaces (issue 18): kubectl creates, deletes and watches them.
FEDERATION_NAMESPACES = replace(NAMESPACES, verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                                subresources=("status",), default=default_namespace)

# The federation's ReplicaSets: each federated Deployment's revisions (its ControllerRevisions)
# as kubectl rollout history and rollout undo read them; derived, read only (issue 18).
FEDERATION_REPLICASETS = replace(REPLICASETS, verbs=("get", "list"), subresources=())

# What kubectl auth can-i and kubectl auth whoami post (issue 18): answered, never stored.
REVIEWS = [
    Kind("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
         verbs=("create",), subresources=(), virtual=True),
    Kind("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
         verbs=("create",), subresources=(), virtual=True),
]

# The federation's kinds.
ALL = [CLUSTERS, SERVICES, LEASES, DNSRECORDS, EVENTS, DEPLOYMENTS, CONTROLLERREVISIONS, SECRETS, FEDERATION_NAMESPACES]
# The clusterset's ServiceImports, one per exported service, as the MCS controller keeps them
# (their ClusterSetIP is allocated here): derived, read only (issue 14).
FEDERATION_SERVICEIMPORTS = replace(SERVICEIMPORTS, verbs=READ_VERBS)
ALL += [FEDERATION_SERVICEIMPORTS]
ALL += [CONFIGMAPS, FEDERATEDTYPECONFIGS]  # issue 15
ALL += [FAILOVERRECORDS]  # issue 17
ALL += [STATEFULSETS]  # issue 14: federated StatefulSets, their ordinals split over the members
ALL += [JOBS, CRONJOBS, DAEMONSETS, INGRESSES]  # issue 15
# The rest of kubectl's default prune set (issue 18): the federation runs no pods, keeps no
# endpoints of its own (each member has them) and makes no claims, so it serves those empty,
# like NOT_SIMULATED.
FEDERATION_PODS = replace(PODS, **READ_ONLY)
FEDERATION_PVCS = replace(PERSISTENTVOLUMECLAIMS, **READ_ONLY)
ALL += [*NOT_SIMULATED, ENDPOINTS, FEDERATION_PODS, FEDERATION_PVCS]


def validate_object(res: Kind, obj: dict[str, Any]) -> Errors:
    """Every problem with ``obj`` as a ``res``: metadata first, then the kind's own rules."""
    errs = validate_metadata(obj, namespaced=res.namespaced, name_check=res.name_check)
    return errs or res.validate(obj)
