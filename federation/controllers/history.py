"""The failover history's recorder: writes a FailoverRecord per step of a change of standing (issue 17).

The health controller, the data-plane controller and the DNS controller tell it what they
saw (a first failed probe, a prober's changed vote, a verdict, the DNS records they wrote);
it groups the steps of one cluster's change of standing into an incident (opened by the
``Fault`` record ``ubernetes chaos`` left, when there is one), writes them through the
registry (so they are watched like any object), and, when ``--dns-responder`` names
the responder, asks that responder over DNS until it answers the changed names as planned:
that is the ``Served`` step, with the SOA serial read around those answers. The responder is
another process and nothing else tells the federation what it serves; a client's question
is the truest answer. Probes that fail without a verdict are held in memory and dropped
after ``history_window`` seconds, so a lost probe makes no record. The newest
``history_limit`` records stay; older ones are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from apimachinery.errors import APIError
from federation import metrics
from federation.api.cache import Reader, StoreReader
from federation.api.events import record_event
from federation.api.registry import Registry
from federation.planners import history as plan
from federation.resources import FAILOVERRECORDS, SERVICES
from federation.settings import Settings

log = logging.getLogger("federation.history")

SERVED_TIMEOUT = 15.0  # seconds to wait for the responder to serve a change
SERVED_POLL = 0.01


def wall(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class FailoverHistory:
    def __init__(self, registry: Registry, settings: Settings, reader: Reader | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.reader = reader or StoreReader(registry)
        self.open: dict[str, plan.Incident] = {}  # cluster -> its incident now
        self.pending: dict[str, list[plan.Step]] = {}  # cluster -> failed probes waiting for a vote or verdict
        self._tasks: set[asyncio.Task[None]] = set()

    # -------------------------------------------------------------- incidents

    def _fault(self, cluster: str, direction: str, now: datetime) -> tuple[str, datetime] | None:
        """The newest Fault record that chaos left for ``cluster`` going ``direction``, within the window."""
        best = None
        for record in self.reader.list(FAILOVERRECORDS):
            spec = record.get("spec") or {}
            when = plan.record_time(record)
            if spec.get("step") != plan.FAULT or spec.get("cluster") != cluster or when is None:
                continue
            if (spec.get("direction") or plan.DOWN) != direction:
                continue
            if 0 <= (now - when).total_seconds() <= self.settings.history_window and (best is None or when > best[1]):
                best = (str(spec.get("incident")), when)
        return best

    def _incident(self, cluster: str, direction: str, now: datetime) -> plan.Incident:
        current = self.open.get(cluster)
        fault = self._fault(cluster, direction, now)
        if plan.continues(current, direction=direction, now=now, window=self.settings.history_window) and (
                fault is None or fault[0] == current.id or fault[1] <= current.started):  # type: ignore[union-attr]
            return current  # type: ignore[return-value]
        if fault is not None:
            incident = plan.Incident(fault[0], cluster, direction, fault[1])
        else:
            first = min([s.time for s in self.pending.get(cluster, []) if direction == plan.DOWN] + [now])
            incident = plan.Incident(plan.incident_id(cluster, direction, first), cluster, direction, first)
        self.open[cluster] = incident
        return incident

    def _write(self, incident: plan.Incident, step: plan.Step) -> None:
        since = max(0.0, (step.time - incident.started).total_seconds())
        obj = plan.record_object(step, incident=incident.id, since_fault=since)
        try:
            self.registry.create(FAILOVERRECORDS, "", obj)
        except APIError as err:
            log.warning("could not record %s of %s: %s", step.step, incident.id, err)
            return
        log.info("history %s %s: %s", incident.id, step.step, step.message)
        self._prune()

    def _prune(self) -> None:
        records = self.reader.list(FAILOVERRECORDS)
        for name in plan.oldest_beyond(records, self.settings.history_limit):
            try:
                self.registry.delete(FAILOVERRECORDS, "", name)
            except APIError:
                pass  # gone already

    def _flush(self, cluster: str, incident: plan.Incident) -> None:
        window = timedelta(seconds=self.settings.history_window)
        for step in sorted(self.pending.pop(cluster, []), key=lambda s: s.time):
            if step.time >= incident.started - window:
                self._write(incident, step)

    # -------------------------------------------------------------- what the controllers saw

    def probe_failed(self, cluster: str, when: datetime, message: str, **details: Any) -> None:
        """A first failed probe: held until a vote or a verdict says it mattered."""
        held = [s for s in self.pending.get(cluster, [])
                if (when - s.time).total_seconds() <= self.settings.history_window]
        held.append(plan.Step(when, plan.PROBE_FAILED, message, cluster=cluster, details=details))
        self.pending[cluster] = held

    def vote(self, cluster: str, when: datetime, direction: str, message: str, **details: Any) -> None:
        incident = self._incident(cluster, direction, when)
        self._flush(cluster, incident)
        self._write(incident, plan.Step(when, plan.VOTE, message, cluster=cluster, details=details))

    def verdict(self, cluster: str, when: datetime, direction: str, label: str, message: str, *,
                addresses: frozenset[str], **details: Any) -> None:
        """A verdict (down) or a recovery (up) on ``cluster`` or one of its shards."""
        incident = self._incident(cluster, direction, when)
        self._flush(cluster, incident)
        incident.verdict_time, incident.verdict = when, label
        incident.addresses = incident.addresses | addresses
        step = plan.VERDICT if direction == plan.DOWN else plan.RECOVERED
        self._write(incident, plan.Step(when, step, message, cluster=cluster, details={"verdict": label, **details}))

    def cluster_addresses(self, cluster: str) -> frozenset[str]:
        """Every shard address of ``cluster`` in the federated Services."""
        found = set()
        for service in self.reader.list(SERVICES):
            for shard in (service.get("status") or {}).get("shards") or []:
                if isinstance(shard, dict) and shard.get("cluster") == cluster:
                    found |= {i.get("ip") for i in shard.get("ingress") or [] if isinstance(i, dict) and i.get("ip")}
        return frozenset(found)

    def records_written(self, service: str, before: dict[str, Any], after: dict[str, Any], when: datetime) -> None:
        """The DNS controller wrote ``service``'s DNSRecords (specs by object name, before and after)."""
        changes = plan.answer_changes(before, after)
        if not changes:
            return
        for incident in list(self.open.values()):
            if incident.verdict_time is None or (when - incident.verdict_time).total_seconds() > self.settings.history_window:
                continue
            touched = [c for c in changes if plan.touches(c, incident.addresses)]
            if not touched:
                continue
            message = "; ".join(c.text() for c in touched)
            self._write(incident, plan.Step(when, plan.RECORDS_CHANGED, message, cluster=incident.cluster,
                                            service=service, details={"answers": [c.as_dict() for c in touched]}))
            self._event(service, "DNSRecordsChanged", f"records changed after {incident.verdict} of "
                                                      f"{incident.cluster}: {message}")
            if self.settings.dns_responder:
                task = asyncio.get_running_loop().create_task(self._served(incident, service, touched))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _event(self, service: str, reason: str, message: str) -> None:
        namespace, _, name = service.partition("/")
        obj = self.reader.get(SERVICES, namespace, name)
        if obj is not None:
            record_event(self.registry, involved=obj, reason=reason, message=message[:1000])

    # -------------------------------------------------------------- served?

    async def _served(self, incident: plan.Incident, service: str, changes: list[plan.AnswerChange]) -> None:
        verdict_time, label = incident.verdict_time, incident.verdict
        host, _, port = self.settings.dns_responder.rpartition(":")
        deadline = time.monotonic() + SERVED_TIMEOUT
        try:
            while time.monotonic() < deadline:
                serial = await served_serial(host.strip("[]") or "127.0.0.1", int(port), self.settings.domain, changes)
                if serial is not None:
                    now = datetime.now(timezone.utc)
                    seconds = (now - verdict_time).total_seconds() if verdict_time else 0.0
                    metrics.dns_served(label, seconds)  # the same figure as the record's
                    message = f"the responder serves serial {serial} with {len(changes)} changed answer(s)"
                    self._write(incident, plan.Step(now, plan.SERVED, message, cluster=incident.cluster,
                                                    service=service, serial=serial,
                                                    details={"detectionToDNS": round(seconds, 6),
                                                             "verdict": label}))
                    self._event(service, "DNSRecordsServed", f"{message} ({seconds:.3f}s after the {label} verdict)")
                    return
                await asyncio.sleep(SERVED_POLL)
            log.warning("the responder at %s did not serve %s's changed records within %gs",
                        self.settings.dns_responder, service, SERVED_TIMEOUT)
        except (ValueError, OSError) as err:
            log.warning("cannot ask the responder at %s: %s", self.settings.dns_responder, err)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _ask(host: str, port: int, name: str, rdtype: str) -> Any:
    import dns.asyncquery
    import dns.message

    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, host, port=port, timeout=1.0)


async def served_serial(host: str, port: int, apex: str, changes: list[plan.AnswerChange]) -> int | None:
    """The SOA serial the responder serves when it answers every change as planned (and the
    serial read before and after the answers is the same), else None."""
    import dns.exception
    import dns.rdatatype

    try:
        first = await _ask(host, port, apex, "SOA")
        for change in changes:
            rdtype = change.new_type or change.old_type or "A"
            reply = await _ask(host, port, change.name, rdtype)
            found = [rr for rr in reply.answer if rr.name.to_text() == change.name
                     and rr.rdtype == dns.rdatatype.from_text(rdtype)]
            got = tuple(sorted(r.to_text() for rr in found for r in rr))
            if change.new_type is None:
                if got:
                    return None
            elif got != tuple(sorted(change.new_targets)):
                return None
        second = await _ask(host, port, apex, "SOA")
    except (dns.exception.DNSException, OSError):
        return None
    serials = [a[0][0].serial for a in (first.answer, second.answer) if a]
    if len(serials) == 2 and serials[0] == serials[1]:
        return int(serials[0])
    return None
