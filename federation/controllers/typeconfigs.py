"""The type registry at work: one sync controller per enabled FederatedTypeConfig (issue 15).

KubeFed's controller manager starts a sync controller for each ``FederatedTypeConfig``
whose ``spec.propagation`` is ``Enabled`` and stops it when the config is disabled or
deleted, so ``kubefedctl enable`` takes effect without a restart. This does the same: it
watches the configs (the shared informer), and on every change starts or stops
:class:`~federation.controllers.sync.FederatedKindController` instances (an informer for
the kind is started on demand), then writes each config's ``status`` as KubeFed does
(``observedGeneration``, ``propagationController: Running | NotRunning``). A config for a
kind the members do not serve stays ``NotRunning``, with a condition that says why.

Stopping a kind's controller leaves its member copies where they are, as KubeFed does:
disabling propagation is not deleting.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from apimachinery.errors import Conflict, NotFound
from federation.api.cache import InformerReader
from federation.api.registry import Registry
from federation.controllers import run_keyed
from federation.controllers.members import MemberClients
from federation.controllers.sync import FederatedKindController
from federation.resources import FEDERATEDTYPECONFIGS
from federation.settings import Settings
from federation import typeregistry

log = logging.getLogger("federation.typeconfigs")


class TypeConfigController:
    def __init__(self, registry: Registry, settings: Settings, members: MemberClients, reader: InformerReader) -> None:
        self.registry = registry
        self.settings = settings
        self.members = members
        self.reader = reader
        self.running: dict[str, tuple[FederatedKindController, asyncio.Task[None] | None]] = {}
        self._changed = asyncio.Event()

    def attach(self) -> None:
        poke = self._changed.set
        self.reader.informer(FEDERATEDTYPECONFIGS).add_handler(
            on_add=lambda o: poke(), on_update=lambda o, n: poke(), on_delete=lambda o: poke())

    async def run(self) -> None:
        """Reconcile at start and after every change of the configs (a failure retries in 1 s)."""
        self._changed.set()
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.reconcile(start_loops=True)
            except Exception:  # noqa: BLE001 - the registry must outlive one bad pass
                log.exception("federated type configs: reconcile failed; retrying")
                await asyncio.sleep(1.0)
                self._changed.set()

    def controller(self, name: str) -> FederatedKindController | None:
        entry = self.running.get(name)
        return entry[0] if entry else None

    async def reconcile(self, *, start_loops: bool = False) -> None:
        """Start what is enabled, stop what is not, write every config's status. Tests call it
        with ``start_loops=False`` and drive the kinds' controllers' ``reconcile()`` themselves."""
        configs = self.reader.list(FEDERATEDTYPECONFIGS)
        wanted = typeregistry.enabled(configs)
        for name in [n for n in self.running if n not in wanted]:
            await self._stop(name)
        for name, ftype in wanted.items():
            if name in self.running:
                continue
            await self.reader.ensure(ftype.kind)
            controller = FederatedKindController(ftype, self.registry, self.settings, self.members, reader=self.reader)
            controller.attach()
            task = asyncio.create_task(run_keyed(controller, resync_period=self.settings.resync_period),
                                       name=controller.queue.name) if start_loops else None
            self.running[name] = (controller, task)
            log.info("federating %s: its sync controller is running", name)
        for config in configs:
            self._write_status(config)

    async def _stop(self, name: str) -> None:
        controller, task = self.running.pop(name)
        controller.queue.shutdown(drain=False)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await controller.close()
        log.info("no longer federating %s: its sync controller stopped", name)

    def _write_status(self, config: dict[str, Any]) -> None:
        meta = config["metadata"]
        name = meta["name"]
        known = name in typeregistry.FEDERATABLE
        status: dict[str, Any] = {
            "observedGeneration": int(meta.get("generation", 1)),
            "propagationController": "Running" if name in self.running else "NotRunning",
        }
        if not known:
            status["conditions"] = [{
                "type": "Ready", "status": "False", "reason": "NotServedByMembers",
                "message": f"the members do not serve {name}; federatable: {', '.join(sorted(typeregistry.FEDERATABLE))}",
            }]
        if config.get("status") == status:
            return
        new = copy.deepcopy(config)
        new["status"] = status
        try:
            self.registry.put_if_changed(FEDERATEDTYPECONFIGS, "", name, new)
        except (NotFound, Conflict):
            self._changed.set()  # our cache lagged: look again

    async def close(self) -> None:
        for name in list(self.running):
            await self._stop(name)
