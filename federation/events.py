"""Kubernetes Events recorded by the controllers, so ``describe`` can show what happened."""

from __future__ import annotations

import logging
from typing import Any

from federation.meta import now_rfc3339
from federation.registry import Registry
from federation.resources import EVENTS

log = logging.getLogger("federation.events")

EVENT_NAMESPACE = "default"


def record_event(registry: Registry, *, involved: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or EVENT_NAMESPACE
    now = now_rfc3339()
    event = {
        "metadata": {"generateName": f"{meta.get('name', 'object')}."},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "federation-controller-manager"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        registry.create(EVENTS, namespace, event)
    except Exception:  # noqa: BLE001 - an event is never worth failing a reconcile
        log.debug("could not record event %s", reason, exc_info=True)
