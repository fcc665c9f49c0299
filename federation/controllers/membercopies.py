"""What the members hold, as the federation sees it: one informer per member and kind (issue 11).

The propagation and deployment controllers used to list every Ready member's copies on
every pass (one request per member per pass, and the member re-serializing them). They now
read :class:`MemberCopies`: for each trusted member with a client, an informer over one kind
(label-selected to this federation's copies, or every object for endpoints), started when
the member appears, restarted when its address or token changes (a new client), stopped
when it leaves. A member whose informer has not synced yet answers None, which the
controllers treat as a member that did not answer this pass.

``on_change`` is called when any member's copies change, and when a member's view has
synced (a member with nothing of ours syncs without an event), so a controller wakes up
at once instead of at its next period. A controller that reconciles one key at a time
passes ``on_object`` instead (called with the member's name and the object that was
added, changed or deleted, so it enqueues that object's key) and ``on_synced`` (called
with the member's name when its view has synced), and reads one copy with :meth:`get`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from apimachinery.client import APIClient
from apimachinery.informer import APIListWatch, Informer
from apimachinery.kinds import Kind
from federation.controllers.members import MemberClients

log = logging.getLogger("federation.membercopies")

Key = tuple[str, str]  # (namespace, name)


class MemberCopies:
    def __init__(self, members: MemberClients, kind: Kind, *, label_selector: str | None = None,
                 on_change: Callable[[], None] | None = None,
                 on_object: Callable[[str, dict[str, Any]], None] | None = None,
                 on_synced: Callable[[str], None] | None = None, idle_timeout: float = 30.0) -> None:
        self.members = members
        self.kind = kind
        self.label_selector = label_selector
        self.on_change = on_change
        self.on_object = on_object
        self.on_synced = on_synced
        self.idle_timeout = idle_timeout
        self._informers: dict[str, tuple[APIClient, Informer]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _poke_when_synced(self, name: str, informer: Informer) -> None:
        if not await informer.wait_for_sync(60.0):
            return
        if self.on_change is not None:
            self.on_change()
        if self.on_synced is not None:
            self.on_synced(name)

    def track(self, clusters: list[dict[str, Any]]) -> None:
        """Watch exactly these clusters (those with a client); stop watching the others."""
        wanted: dict[str, APIClient] = {}
        for cluster in clusters:
            client = self.members.for_cluster(cluster)
            if client is not None:
                wanted[cluster["metadata"]["name"]] = client
        for name in list(self._informers):
            client, informer = self._informers[name]
            if wanted.get(name) is not client:  # gone, or a new address or token
                del self._informers[name]
                asyncio.get_running_loop().create_task(informer.stop())
        for name, client in wanted.items():
            if name not in self._informers:
                source = APIListWatch(client, self.kind.path(), label_selector=self.label_selector,
                                      idle_timeout=self.idle_timeout)
                # A member back from a short outage is seen again within 2 s (the health
                # controller's own period), not after an informer's 30 s backoff.
                informer = Informer(source, name=f"{name}/{self.kind.plural}", backoff_max=2.0)
                if self.on_change is not None:
                    poke = self.on_change
                    informer.add_handler(on_add=lambda o: poke(), on_update=lambda o, n: poke(),
                                         on_delete=lambda o: poke())
                if self.on_object is not None:
                    tell = self.on_object
                    informer.add_handler(on_add=lambda o, c=name: tell(c, o), on_update=lambda o, n, c=name: tell(c, n),
                                         on_delete=lambda o, c=name: tell(c, o))
                informer.start()
                self._informers[name] = (client, informer)
                if self.on_change is not None or self.on_synced is not None:
                    # a member with nothing of ours yet syncs without an event
                    task = asyncio.get_running_loop().create_task(self._poke_when_synced(name, informer))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def items(self, cluster: str) -> dict[Key, dict[str, Any]] | None:
        """The member's objects by (namespace, name), or None until its informer has synced."""
        entry = self._informers.get(cluster)
        if entry is None or not entry[1].has_synced:
            return None
        return {(o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in entry[1].cache.list()}

    def synced(self, cluster: str) -> bool:
        """The member's informer runs and has synced."""
        entry = self._informers.get(cluster)
        return entry is not None and entry[1].has_synced

    def get(self, cluster: str, key: str) -> dict[str, Any] | None:
        """The member's object under ``key`` (``"namespace/name"``), or None (none, or not synced)."""
        entry = self._informers.get(cluster)
        return entry[1].cache.get(key) if entry is not None and entry[1].has_synced else None

    def keys(self, cluster: str) -> list[str]:
        """The keys of the member's objects (none until its informer has synced)."""
        entry = self._informers.get(cluster)
        return entry[1].cache.keys() if entry is not None and entry[1].has_synced else []

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        informers = [i for _, i in self._informers.values()]
        self._informers.clear()
        await asyncio.gather(*(i.stop() for i in informers), return_exceptions=True)
