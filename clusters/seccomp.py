"""Seccomp profiles of the simulated node, in Docker 1.10's JSON format (Kubernetes 1.3, alpha).

A pod names its profile with the annotation ``seccomp.security.alpha.kubernetes.io/pod``
(one container: ``container.seccomp.security.alpha.kubernetes.io/<name>``); the value
``localhost/<file>`` is a file under the kubelet's seccomp root (``--seccomp-profile-root``,
``/var/lib/kubelet/seccomp`` on a real node). A profile such as::

    {"defaultAction": "SCMP_ACT_ALLOW",
     "syscalls": [{"name": "chmod", "action": "SCMP_ACT_ERRNO"}]}

makes every listed syscall fail; :func:`denied_syscalls` turns it into the set the command
interpreter (:mod:`clusters.simshell`) checks. Reading the file is the only I/O here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.resources import SECCOMP_CONTAINER_PREFIX, SECCOMP_POD_ANNOTATION

DENY_ACTIONS = {"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"}


def profile_of(pod: dict[str, Any], container: str) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(SECCOMP_CONTAINER_PREFIX + container) or annotations.get(SECCOMP_POD_ANNOTATION) or "unconfined")


def denied_by(profile: dict[str, Any]) -> frozenset[str]:
    """The syscalls a Docker 1.10 profile refuses (a deny-by-default profile refuses what it does not allow)."""
    syscalls = [s for s in profile.get("syscalls") or [] if isinstance(s, dict)]
    if profile.get("defaultAction") in DENY_ACTIONS:
        allowed = {s.get("name") for s in syscalls if s.get("action") == "SCMP_ACT_ALLOW"}
        return frozenset({"chmod", "fchmodat"} - allowed)
    return frozenset(str(s.get("name")) for s in syscalls if s.get("action") in DENY_ACTIONS)


def denied_syscalls(pod: dict[str, Any], container: str, root: str | None) -> frozenset[str]:
    """What the container's profile refuses; an unreadable ``localhost/`` profile refuses nothing
    here (container creation already failed for it: clusters.workloads.seccomp_problem)."""
    name = profile_of(pod, container)
    if not name.startswith("localhost/") or not root:
        return frozenset()
    try:
        return denied_by(json.loads((Path(root) / name[len("localhost/"):]).read_text()))
    except (OSError, ValueError, AttributeError):
        return frozenset()
