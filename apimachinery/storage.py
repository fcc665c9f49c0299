"""What the generic API server (:mod:`apimachinery.server`) needs from whoever keeps the objects.

The federation keeps its objects in a store with a durable event log (SQLite or memory,
``federation/store.py`` behind ``federation/registry.py``); a member cluster keeps them in
its simulated state and derives events from it (``clusters/watch.py``). Both serve the same
HTTP API because both answer these two protocols: :class:`Storage` for the verbs and
:class:`WatchSource` for ``?watch=true``. Everything a client can tell apart (codes, Status
bodies, selectors, field validation, apply, dry run, watch semantics) lives in the server,
once; a storage only stores, validates and defaults its own kinds, and raises the
:mod:`apimachinery.errors` classes.
"""

from __future__ import annotations

from typing import Any, Protocol

from apimachinery.kinds import Kind

Object = dict[str, Any]


class WatchEvent(Protocol):
    """One change, as a storage hands it to watchers."""

    type: str  # ADDED, MODIFIED or DELETED
    resource: str  # the kind's store key (:attr:`Kind.key`)
    namespace: str
    object: Object
    previous: Object | None  # a MODIFIED object as it was, for selector transitions
    rv: int


class FellBehind(Exception):
    """A subscription lost events (its buffer overflowed, or the log moved past it)."""


class Subscription(Protocol):
    async def next(self, timeout: float) -> WatchEvent | None:
        """The next event of any kind, or None after ``timeout`` seconds; raises
        :class:`FellBehind` when events were lost."""

    def close(self) -> None: ...


class WatchSource(Protocol):
    def revision(self) -> int:
        """The newest resourceVersion."""

    def oldest(self) -> int:
        """The oldest resourceVersion a watch may resume from."""

    def subscribe(self) -> Subscription:
        """Live events from now on (taken before the initial list or replay, so none is missed)."""

    async def count_events(self, since: int, kind: Kind, limit: int) -> int:
        """How many events of ``kind`` lie after ``since`` (up to ``limit``)."""

    async def events_page(self, after: int, kind: Kind) -> list[WatchEvent]:
        """The next events of ``kind`` after ``after``, a bounded page, oldest first; [] at the
        end; raises :class:`apimachinery.errors.Gone` when the history was compacted."""


class Storage(Protocol):
    watch: WatchSource

    def get(self, kind: Kind, namespace: str, name: str, *, consistent: bool = True) -> Object:
        """The object, or :class:`~apimachinery.errors.NotFound`. ``consistent=False`` is a
        read at any resourceVersion (``?resourceVersion=0``), which a replicated storage
        without its quorum may answer from a copy that is behind."""

    def stale_reason(self) -> str | None:
        """Why a ``consistent=False`` read may now be behind (a ``Warning`` for the client), or None."""

    def find(self, kind: Kind, namespace: str, name: str) -> Object | None: ...

    def list(self, kind: Kind, namespace: str | None, *, consistent: bool = True) -> tuple[list[Object], int]:
        """Every object of ``kind`` (in ``namespace``, or all), and the list's resourceVersion."""

    async def snapshot(self, kind: Kind, namespace: str | None) -> tuple[list[Object], int]:
        """:meth:`list`, off the event loop where that is safe (a watch's initial list)."""

    def create(self, kind: Kind, namespace: str, body: Object, *, dry_run: bool) -> Object: ...

    def replace(self, kind: Kind, namespace: str, name: str, body: Object, *, subresource: str,
                dry_run: bool) -> Object:
        """PUT; a ``metadata.resourceVersion`` in ``body`` is a precondition (409 Conflict)."""

    def delete(self, kind: Kind, namespace: str, name: str, *, expected_rv: int | None, policy: str,
               dry_run: bool) -> Object:
        """DELETE with a propagation policy (Background, Foreground or Orphan)."""
