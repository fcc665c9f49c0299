"""The responder's derived, read-only view of the federation's DNS records.

The federation store is the one source of truth; this view holds the last-known
``DNSRecord`` specs (keyed by object name) and the :class:`~fedns.table.AnswerTable`
built from them, and keeps serving that table while the API is away. Whoever feeds it
(:mod:`fedns.sync`, or a test, or a static file) calls :meth:`ZoneView.replace` (a full
list) or :meth:`ZoneView.put` / :meth:`ZoneView.delete` (watch events).

Changes are debounced for a few milliseconds, so a burst of watch events costs one
rebuild, and the rebuild runs in a worker thread, so queries are answered from the old
table until the new one is swapped in whole. The SOA serial rises only when the set of
records really changes: ``max(serial + 1, unix time)``, so it also rises across restarts
as long as the clock does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable, Mapping

from fedns.records import RecordSet, collect
from fedns.table import AnswerTable, build_table
from fedns.zone import ZoneConfig

log = logging.getLogger("fedns.view")


class ZoneView:
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
        # Called with each new table once it serves (zone history, NOTIFY).
        self.listeners: list[Callable[[AnswerTable], None]] = []
        self.debounce = debounce
        self.clock = clock
        self.specs: dict[str, Mapping[str, Any]] = {}  # from the federation, by object name
        self.static: dict[str, Mapping[str, Any]] = {}  # from --records, served beside them
        self.serial = int(clock())
        self.recordsets: list[RecordSet] = []
        self.problems: list[str] = []
        self.table: AnswerTable = build_table(config, [], self.serial, places=places, nearest_only=nearest_only)
        self.last_change: float | None = None  # wall time the served table last changed
        self._dirty = False
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- feeding -----------------------------------------------------------------------

    def replace(self, specs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> None:
        """Replace every record (a relist). A list of bare specs is keyed by position."""
        if not isinstance(specs, Mapping):
            specs = {f"spec-{i}": s for i, s in enumerate(specs)}
        self.specs = dict(specs)
        self._changed()

    def set_static(self, specs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> None:
        """Records served whatever the federation says (a file given with ``--records``)."""
        if not isinstance(specs, Mapping):
            specs = {f"static-{i}": s for i, s in enumerate(specs)}
        self.static = dict(specs)
        self._changed()

    def all_specs(self) -> dict[str, Mapping[str, Any]]:
        return {**self.static, **self.specs} if self.static else self.specs

    def put(self, name: str, spec: Mapping[str, Any]) -> None:
        if self.specs.get(name) != spec:
            self.specs[name] = spec
            self._changed()

    def delete(self, name: str) -> None:
        if self.specs.pop(name, None) is not None:
            self._changed()

    # -- building ----------------------------------------------------------------------

    def rebuild_now(self) -> bool:
        """Build synchronously from the current specs; True when the records changed."""
        recordsets, problems = collect(self.all_specs())
        if recordsets == self.recordsets:
            return False
        serial = max(self.serial + 1, int(self.clock()))
        table = build_table(
            self.config, recordsets, serial, previous=self.table, places=self.places, nearest_only=self.nearest_only
        )
        self._swap(table, recordsets, problems + table.zone.problems)
        return True

    def _swap(self, table: AnswerTable, recordsets: list[RecordSet], problems: list[str]) -> None:
        for p in problems:
            if p not in self.problems:
                log.warning("%s", p)
        self.table, self.serial, self.recordsets, self.problems = table, table.serial, recordsets, problems
        self.last_change = self.clock()
        log.info("zone serial %d: %d record sets", self.serial, len(recordsets))
        for listener in self.listeners:
            try:
                listener(table)
            except Exception:
                log.exception("a zone listener failed")

    def _changed(self) -> None:
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain test): build now
            self._dirty = False
            self.rebuild_now()
            return
        if self._task is None or self._task.done():
            self._idle.clear()
            self._task = loop.create_task(self._rebuild_loop())

    async def _rebuild_loop(self) -> None:
        try:
            await asyncio.sleep(self.debounce)
            while self._dirty:
                self._dirty = False
                recordsets, problems = collect(self.all_specs())
                if recordsets == self.recordsets:
                    continue
                serial = max(self.serial + 1, int(self.clock()))
                started = time.monotonic()
                table = await asyncio.to_thread(
                    build_table,
                    self.config,
                    recordsets,
                    serial,
                    previous=self.table,
                    places=self.places,
                    nearest_only=self.nearest_only,
                )
                log.debug("rebuilt the answer table in %.1f ms", (time.monotonic() - started) * 1000)
                self._swap(table, recordsets, problems + table.zone.problems)
        except Exception:
            log.exception("rebuilding the answer table failed; still serving serial %d", self.serial)
        finally:
            self._idle.set()

    async def settled(self) -> None:
        """Wait until every change so far is in the served table."""
        while not self._idle.is_set() or self._dirty:
            await self._idle.wait()
            await asyncio.sleep(0)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
