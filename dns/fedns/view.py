"""The responder's derived, read-only view of the federation's DNS records.

The federation store is the one source of truth; this view holds the last-known
``DNSRecord`` specs (keyed by object name), the record sets merged from them
(:class:`~fedns.records.Catalog`) and the :class:`~fedns.table.AnswerTable` built from
those, and keeps serving that table while the API is away. Whoever feeds it
(:mod:`fedns.sync`, or a test, or a static file) calls :meth:`ZoneView.replace` (a full
list) or :meth:`ZoneView.put` / :meth:`ZoneView.delete` (watch events).

A change costs the change, not the zone (issue 20). The objects changed since the last
step are applied together after a few milliseconds (a burst of watch events is one step):
their record sets are merged again and put in the table in place, which re-renders only
the answers that show them (:meth:`AnswerTable.apply`). A step is synchronous on the event
loop, so a query sees all of it or none of it. Only a large change (the first list, or a
relist or burst that changes more than :data:`WHOLE_BUILD` objects and a quarter of the
zone) builds a whole new table, in a worker thread, while queries are answered from the
old one; changes arriving meanwhile are applied on top once it is swapped in.

The SOA serial rises once per step that changes a record set: ``max(serial + 1, unix
time)``, so it also rises across restarts as long as the clock does.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, Callable, Iterable, Mapping

from fedns.records import Catalog, RecordSet
from fedns.table import AnswerTable, build_table
from fedns.zone import ZoneConfig

log = logging.getLogger("fedns.view")

STEP = 512  # objects applied in one synchronous step; more wait for the next turn of the loop
WHOLE_BUILD = 4096  # changed objects above which (and above a quarter of all) a whole build is cheaper


def whole_catalog(static: Mapping[str, Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]]) -> Catalog:
    """The catalog of every object: ``--records`` entries (rank 0) before the federation's."""
    return Catalog.of(
        [*((n, s, 0) for n, s in static.items() if n not in specs), *((n, s, 1) for n, s in specs.items())]
    )


class FedObjects:
    """The last-known DNSRecord specs by object name, as :class:`fedns.sync.RecordSync` feeds
    them: a list replaces them all, watch events put and delete one; ``_changed`` hears
    which objects changed (a :class:`ZoneView`, or the zone feed of ``--workers N``)."""

    specs: dict[str, Mapping[str, Any]]

    def _changed(self, names: Iterable[str]) -> None:
        raise NotImplementedError

    def replace(self, specs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> None:
        """Replace every record (a relist). A list of bare specs is keyed by position."""
        if not isinstance(specs, Mapping):
            specs = {f"spec-{i}": s for i, s in enumerate(specs)}
        old, new = self.specs, dict(specs)
        self.specs = new
        self._changed([n for n, s in new.items() if old.get(n) != s] + [n for n in old if n not in new])

    def put(self, name: str, spec: Mapping[str, Any]) -> None:
        if self.specs.get(name) != spec:
            self.specs[name] = spec
            self._changed([name])

    def delete(self, name: str) -> None:
        if self.specs.pop(name, None) is not None:
            self._changed([name])


class ZoneView(FedObjects):
    def __init__(
        self,
        config: ZoneConfig,
        *,
        debounce: float = 0.003,
        clock: Callable[[], float] = time.time,
        places: tuple[tuple[str, str], ...] = (),
        nearest_only: bool = False,
    ) -> None:
        self.config = config
        self.places = places  # client places of a topology map (fedns.topology)
        self.nearest_only = nearest_only
        # Called with the table after each change it serves (zone history, NOTIFY); the
        # table is the same object across steps, with ``table.changes`` saying what changed.
        self.listeners: list[Callable[[AnswerTable], None]] = []
        self.debounce = debounce
        self.clock = clock
        self.specs: dict[str, Mapping[str, Any]] = {}  # from the federation, by object name
        self.static: dict[str, Mapping[str, Any]] = {}  # from --records, served beside them
        self.serial = int(clock())
        self.catalog = Catalog()
        self.table: AnswerTable = build_table(config, [], self.serial, places=places, nearest_only=nearest_only)
        self.last_change: float | None = None  # wall time the served table last changed
        self.steps = 0  # changes applied in place
        self.whole_builds = 0  # whole tables built
        # A whole zone's objects are long-lived: a responder process (fedns.app.serve) keeps
        # the cyclic garbage collector from walking them again on every full collection, a
        # pause that grows with the zone. Off by default: it is a setting of the process.
        self.freeze_after_build = False
        self._forced_serial: int | None = None  # a whole build's serial, set by follow_snapshot()
        self._pending: dict[str, None] = {}  # objects changed since the last step
        self._whole = False  # a whole build is asked for
        self._logged: dict[tuple, str] = {}  # what each problem logged once is about
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- what it serves --------------------------------------------------------------------

    @property
    def recordsets(self) -> list[RecordSet]:
        """Every record set from the specs, sorted (a copy: built on each call)."""
        return self.catalog.recordsets()

    @property
    def record_count(self) -> int:
        return len(self.catalog.merged)

    @property
    def problems(self) -> list[str]:
        """Why specs or record sets are not served. A CNAME hidden by other data at its name
        is not one (it is the usual moment of a type change): see :attr:`cname_shadows`."""
        return [*self.catalog.problems(), *self.table.zone.rejected.values()]

    @property
    def cname_shadows(self) -> dict[str, int]:
        """CNAMEs hidden now by other data at their name, and how often one was since start."""
        zone = self.table.zone
        return {"current": len(zone.shadowed), "total": zone.shadow_events}

    # -- feeding -----------------------------------------------------------------------

    def set_static(self, specs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> None:
        """Records served whatever the federation says (a file given with ``--records``)."""
        if not isinstance(specs, Mapping):
            specs = {f"static-{i}": s for i, s in enumerate(specs)}
        old, self.static = self.static, dict(specs)
        self._changed([*old, *self.static])

    def all_specs(self) -> dict[str, Mapping[str, Any]]:
        return {**self.static, **self.specs} if self.static else self.specs

    # -- applying ----------------------------------------------------------------------

    def rebuild_now(self) -> bool:
        """Apply every pending change synchronously; True when the records changed."""
        changed = False
        if self._whole:
            self._whole = False
            self._pending.clear()
            changed = self._swap_whole(whole_catalog(self.static, self.specs), self._whole_table)
        while self._pending:
            changed = self._step() or changed
        return changed

    def _changed(self, names: Iterable[str]) -> None:
        for name in names:
            self._pending[name] = None
        if not self._pending and not self._whole:
            return
        if len(self._pending) > WHOLE_BUILD and len(self._pending) * 4 > len(self.catalog.parsed):
            self._whole = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain test): apply now
            self.rebuild_now()
            return
        if self._task is None or self._task.done():
            self._idle.clear()
            self._task = loop.create_task(self._apply_loop())

    def _rank(self, name: str) -> tuple[Mapping[str, Any] | None, int]:
        spec = self.specs.get(name)
        if spec is not None:
            return spec, 1
        return self.static.get(name), 0

    def _step(self) -> bool:
        """Apply up to STEP pending objects in place; True when a record set changed."""
        names = list(self._pending)[:STEP]
        for name in names:
            del self._pending[name]
        return self._apply_names(names)

    def _apply_names(self, names: list[str], serial: int | None = None) -> bool:
        """Put these objects' record sets in the table in one synchronous step; ``serial``
        (a worker following the zone feed, fedns.feed) moves the table to it even when no
        record set changed, so every worker serves the same serial."""
        catalog = self.catalog
        keys: set[tuple[str, str]] = set()
        seen: set[tuple[str, str]] = set()  # every record set the objects named, before or after
        for name in names:
            old = catalog.parsed.get(name)
            if old is not None:
                seen.add((old.name, old.type))
            spec, rank = self._rank(name)
            keys |= catalog.put(name, spec, rank)
            new = catalog.parsed.get(name)
            if new is not None:
                seen.add((new.name, new.type))
        changed = False
        if keys or serial is not None:
            started = time.monotonic()
            if serial is None:
                serial = max(self.serial + 1, int(self.clock()))
            self.table.apply([(k, catalog.merged.get(k)) for k in sorted(keys)], serial)
            self.steps += 1
            log.debug("applied %d record sets in %.2f ms", len(keys), (time.monotonic() - started) * 1000)
            self._served()
            changed = True
        self._log_problems(names, seen)
        return changed

    # -- following a zone feed (a worker of ``--workers N``, fedns.feed) ---------------------

    def follow_step(self, changes: Mapping[str, Mapping[str, Any] | None], serial: int) -> None:
        """Objects changed (None: deleted) as the syncing process decided, applied now at ``serial``."""
        for name, spec in changes.items():
            if spec is None:
                self.specs.pop(name, None)
            else:
                self.specs[name] = spec
        names = list(changes)
        for i in range(0, max(len(names), 1), STEP):  # the feed sends at most STEP; be safe
            self._apply_names(names[i : i + STEP], serial)

    async def follow_snapshot(
        self, static: Mapping[str, Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]], serial: int
    ) -> None:
        """Every object at ``serial`` (a worker's start, or a large change): a whole table
        built in a thread while queries are answered from the old one."""
        self.static, self.specs = dict(static), dict(specs)
        catalog = await asyncio.to_thread(whole_catalog, self.static, self.specs)
        if catalog.merged != self.catalog.merged:
            self._forced_serial = serial
            try:
                table = await asyncio.to_thread(self._whole_table, catalog)
            finally:
                self._forced_serial = None
            self._swap_whole(catalog, lambda _: table)
        else:
            self._swap_whole(catalog, self._whole_table)
        if self.serial != serial:
            self._apply_names([], serial)

    def _whole_table(self, catalog: Catalog) -> AnswerTable:
        serial = self._forced_serial or max(self.serial + 1, int(self.clock()))
        return build_table(
            self.config, catalog.recordsets(), serial, previous=self.table, places=self.places,
            nearest_only=self.nearest_only,
        )

    def _swap_whole(self, catalog: Catalog, build: Callable[[Catalog], AnswerTable]) -> bool:
        same = catalog.merged == self.catalog.merged
        self.catalog = catalog  # with the same record sets, the problems may still differ
        if not same:
            self.table = build(catalog)
            self.whole_builds += 1
            if self.freeze_after_build:
                gc.freeze()
            self._served()
        elif self.last_change is None:
            self.last_change = self.clock()  # the first load is when serving these records began
        self._log_problems(catalog.bad, set(catalog.conflicts) | set(self.table.zone.rejected))
        return not same

    def _served(self) -> None:
        self.serial = self.table.serial
        self.last_change = self.clock()
        for listener in self.listeners:
            try:
                listener(self.table)
            except Exception:
                log.exception("a zone listener failed")

    def _log_problems(self, names: Iterable[str], keys: Iterable[tuple[str, str]]) -> None:
        """Log each problem of these objects and record sets once, when it appears."""
        catalog, rejected = self.catalog, self.table.zone.rejected
        for name in names:
            self._note(("object", name), catalog.bad.get(name))
        for key in keys:
            self._note(("merge", key), "; ".join(catalog.conflicts.get(key, ())) or None)
            self._note(("zone", key), rejected.get(key))

    def _note(self, about: tuple, problem: str | None) -> None:
        if problem is None:
            self._logged.pop(about, None)
        elif self._logged.get(about) != problem:
            log.warning("%s", problem)
            self._logged[about] = problem

    async def _apply_loop(self) -> None:
        try:
            await asyncio.sleep(self.debounce)
            while self._whole or self._pending:
                if self._whole:
                    self._whole = False
                    self._pending.clear()  # changes from now on are applied on top
                    static, specs = dict(self.static), dict(self.specs)
                    started = time.monotonic()
                    catalog = await asyncio.to_thread(whole_catalog, static, specs)
                    if catalog.merged != self.catalog.merged:
                        table = await asyncio.to_thread(self._whole_table, catalog)
                        self._swap_whole(catalog, lambda _: table)
                    else:
                        self._swap_whole(catalog, self._whole_table)
                    log.info("zone serial %d: built %d record sets in %.1f s", self.serial, self.record_count,
                             time.monotonic() - started)
                    # what changed while building is applied in place
                    for name in set(specs) | set(self.specs) | set(static) | set(self.static):
                        then = specs[name] if name in specs else static.get(name)
                        if self._rank(name)[0] is not then:
                            self._pending[name] = None
                    continue
                self._step()
                if self._pending:
                    await asyncio.sleep(0)  # let queries in between steps
        except Exception:
            log.exception("applying DNS record changes failed; still serving serial %d", self.serial)
        finally:
            self._idle.set()

    async def settled(self) -> None:
        """Wait until every change so far is in the served table."""
        while not self._idle.is_set() or self._pending or self._whole:
            await self._idle.wait()
            await asyncio.sleep(0)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
