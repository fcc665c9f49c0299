"""Kubernetes Events recorded by the controllers, so ``describe`` can show what happened."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from apimachinery.meta import now_rfc3339, parse_time
from federation.api.registry import Registry
from federation.resources import EVENTS

log = logging.getLogger("federation.api.events")

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


class EventCollector:
    """Deletes Events older than ``ttl`` seconds, as the API server's ``--event-ttl`` does.

    Without it the controllers' Events (one per condition change, propagation and data-plane
    vote) would grow the store without bound in a long experiment.
    """

    def __init__(self, registry: Registry, *, ttl: float) -> None:
        self.registry = registry
        self.ttl = ttl

    async def reconcile(self) -> None:
        now = datetime.now(timezone.utc)
        events, _ = self.registry.list(EVENTS)
        for event in events:
            stamp = event.get("lastTimestamp") or (event.get("metadata") or {}).get("creationTimestamp")
            try:
                age = (now - parse_time(str(stamp))).total_seconds()
            except ValueError:
                age = self.ttl + 1  # an Event without a readable time cannot be aged: collect it
            if age > self.ttl:
                meta = event["metadata"]
                try:
                    self.registry.delete(EVENTS, meta.get("namespace", ""), meta["name"])
                except Exception:  # noqa: BLE001 - gone already, or changed: next pass
                    log.debug("could not delete event %s", meta.get("name"), exc_info=True)
