"""Watch events for the member cluster's API, derived by diffing its state.

:class:`~clusters.state.ClusterState` changes objects in many places (services on a write,
pods and endpoints as the simulation goes, load-balancer status from the controller) and
not all of them call ``on_change``. Rather than thread an event through every one, a
:class:`ChangeFeed` compares what it saw last with what is there now, per kind, and turns
the difference into ``ADDED`` / ``MODIFIED`` / ``DELETED`` events, kept in a bounded log.
It looks again when the state says it changed (``on_change``), before every list (so a
list's resourceVersion and the log agree, which is what ``kubectl get -w`` relies on:
list, then watch from the list's resourceVersion) and on a short tick while anyone
watches (for the changes that do not call ``on_change``).

An event's position is the object's resourceVersion, and a deletion takes a fresh one, as
in the real API server; a watch from a resourceVersion older than the log is answered
``410 Expired`` and the client relists. The diff is pure bookkeeping over dicts; the only
I/O is the waiting in :meth:`ChangeFeed.wait`.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from apimachinery.watchevents import as_seen

Key = tuple[str, str]  # (namespace, name)
Source = Callable[[], Iterable[dict[str, Any]]]

HISTORY = 5000  # events kept for watchers that resume from a resourceVersion


@dataclass(frozen=True)
class Event:
    seq: int  # the resourceVersion the event happened at
    plural: str
    type: str  # ADDED, MODIFIED or DELETED
    object: dict[str, Any]
    previous: dict[str, Any] | None = None  # a MODIFIED object as it was (selector transitions)


class TooOld(Exception):
    """A watch asked for history the feed no longer has."""


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class ChangeFeed:
    """Events of the kinds in ``sources`` (plural -> current objects), from diffs of them.

    ``next_rv`` hands out the resourceVersion a deletion is recorded at (the state's
    counter, so lists and events share one sequence).
    """

    def __init__(self, sources: dict[str, Source], *, next_rv: Callable[[], str], history: int = HISTORY) -> None:
        self.sources = sources
        self.next_rv = next_rv
        self.log: deque[Event] = deque(maxlen=history)
        self._seen: dict[str, dict[Key, int]] = {}
        self._last: dict[str, dict[Key, dict[str, Any]]] = {}
        self.horizon = 0  # events at or below this resourceVersion may be missing from the log
        self._changed: asyncio.Event | None = None
        self.watchers = 0
        for plural in sources:
            self._seen[plural] = {}
            self._last[plural] = {}
        self.sync()
        self.log.clear()  # what exists at start is the baseline, not history
        self.horizon = max((s for seen in self._seen.values() for s in seen.values()), default=0)

    # ---- diffing

    def sync(self) -> int:
        """Record what changed since the last look; returns the number of new events."""
        fresh: list[Event] = []
        for plural, source in self.sources.items():
            seen, last = self._seen[plural], self._last[plural]
            now: dict[Key, dict[str, Any]] = {}
            for obj in source():
                now[_key(obj)] = obj
            for key, obj in now.items():
                rv = _rv(obj)
                before = seen.get(key)
                if before == rv:
                    continue
                if before is not None and _uid(last[key]) != _uid(obj):
                    # the same name, another object (a StatefulSet's pod made again): its
                    # predecessor's DELETED first, then this one ADDED at a later version
                    gone = copy.deepcopy(last.pop(key))
                    gone["metadata"]["resourceVersion"] = self.next_rv()
                    fresh.append(Event(int(gone["metadata"]["resourceVersion"]), plural, "DELETED", gone))
                    obj["metadata"]["resourceVersion"] = self.next_rv()
                    rv, before = _rv(obj), None
                snapshot = copy.deepcopy(obj)
                fresh.append(Event(rv, plural, "ADDED" if before is None else "MODIFIED", snapshot, last.get(key)))
                seen[key], last[key] = rv, snapshot
            for key in [k for k in seen if k not in now]:
                gone = copy.deepcopy(last.pop(key))
                del seen[key]
                rv = int(self.next_rv())
                gone.setdefault("metadata", {})["resourceVersion"] = str(rv)
                fresh.append(Event(rv, plural, "DELETED", gone))
        if not fresh:
            return 0
        fresh.sort(key=lambda e: e.seq)
        for event in fresh:
            if len(self.log) == self.log.maxlen:
                self.horizon = max(self.horizon, self.log[0].seq)
            self.log.append(event)
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return len(fresh)

    # ---- reading

    @staticmethod
    def as_seen(event: Event, wanted: Callable[[dict[str, Any]], bool]) -> tuple[str, dict[str, Any]] | None:
        """The event as a selector watch gets it (:func:`apimachinery.watchevents.as_seen`)."""
        return as_seen(event.type, event.object, event.previous, wanted)

    def since(self, rv: int) -> list[Event]:
        """Events after resourceVersion ``rv``, oldest first (raises TooOld if the log lost some)."""
        if rv < self.horizon:
            raise TooOld(f"too old resource version: {rv} ({self.horizon})")
        return [e for e in self.log if e.seq > rv]

    def current(self, plural: str) -> list[dict[str, Any]]:
        """The objects of ``plural`` as of the last :meth:`sync` (copies)."""
        return [copy.deepcopy(o) for o in self._last[plural].values()]

    async def wait(self, timeout: float) -> None:
        """Until new events arrive or ``timeout`` seconds pass."""
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def run(self, *, tick: float = 0.25) -> None:
        """Look again every ``tick`` seconds while anyone watches (changes that bypass ``on_change``)."""
        while True:
            await asyncio.sleep(tick)
            if self.watchers:
                self.sync()
