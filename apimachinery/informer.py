"""Informers: one list, then one watch per kind, feeding a local indexed cache and handlers.

The federation's controllers listed whole kinds from the store on every wake-up. An
informer, as client-go's shared informer does, lists a kind once, fills a cache
(:class:`Indexer`), says so (:attr:`Informer.has_synced`), then watches from the list's
resourceVersion and keeps the cache current, telling handlers what changed (a handler
typically enqueues the object's key in a :class:`apimachinery.workqueue.WorkQueue`).

- **Where objects come from** is a :class:`ListWatch`; :class:`APIListWatch` is the one over
  :class:`apimachinery.client.APIClient` (a path, label and field selectors, bookmarks and a
  server-side watch timeout, so a watch is renewed and a hung server noticed).
- **410 Gone** (the watch's resourceVersion is older than the server keeps): list again and
  tell handlers the differences (an object missing from the new list is a delete).
- **Any other failure** (server down, connection reset, a bad answer): wait a backoff
  (:class:`apimachinery.backoff.Backoff`) and watch again from the last resourceVersion seen.
- **Resync** (optional): every ``resync_period`` seconds each cached object is delivered
  again as an update, so level-based controllers also repair what they missed.

Objects in the cache are shared with every handler and reader: never modify them (copy first).
Single event loop, no threads. The module imports nothing of ubernetes but the machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, Protocol

from apimachinery.backoff import Backoff
from apimachinery.client import APIClient
from apimachinery.errors import Gone

log = logging.getLogger(__name__)

Object = dict[str, Any]
IndexFunc = Callable[[Object], Iterable[str]]

EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


# ------------------------------------------------------------------ keys


def object_key(obj: Object) -> str:
    """``"namespace/name"``, or ``"name"`` for a cluster-scoped object (client-go's
    MetaNamespaceKeyFunc). Raises ValueError for an object without a name."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError("the object has no metadata.name")
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key; the namespace is ``""`` for a cluster-scoped one."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def resource_version(obj: Object) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(rv) if rv not in (None, "") else ""


# ------------------------------------------------------------------ index functions


def by_label(label: str) -> IndexFunc:
    """Index by the value of one label (objects without it are not indexed)."""

    def index(obj: Object) -> list[str]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        value = labels.get(label) if isinstance(labels, dict) else None
        return [str(value)] if value is not None else []

    return index


def by_owner_uid(obj: Object) -> list[str]:
    """Index by the uid of each owner reference."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    if not isinstance(refs, list):
        return []
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]


def by_namespace(obj: Object) -> list[str]:
    """Index by namespace (client-go's NamespaceIndex)."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if isinstance(namespace, str) and namespace else []


# ------------------------------------------------------------------ the cache


class Indexer:
    """Objects by key, plus named indexes (index value -> keys), updated together.

    Read with :meth:`get`, :meth:`list` and :meth:`by_index`; only the informer writes."""

    def __init__(self) -> None:
        self._items: dict[str, Object] = {}
        self._funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._values: dict[str, dict[str, tuple[str, ...]]] = {}  # index -> key -> its values
        self._failed: set[str] = set()  # indexes whose function raised

    # reads

    def get(self, key: str) -> Object | None:
        return self._items.get(key)

    def list(self) -> list[Object]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, name: str, value: str) -> list[Object]:
        """The objects whose index function ``name`` gave ``value``, in key order."""
        return [self._items[k] for k in self.index_keys(name, value)]

    def index_keys(self, name: str, value: str) -> list[str]:
        return sorted(self._index(name).get(value, ()))

    def index_values(self, name: str) -> list[str]:
        """The values index ``name`` holds now."""
        return sorted(self._index(name))

    def _index(self, name: str) -> dict[str, set[str]]:
        try:
            return self._indices[name]
        except KeyError:
            raise KeyError(f"no index named {name!r} (have: {', '.join(sorted(self._indices)) or 'none'})") from None

    # the index functions

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Add an index; objects already cached are indexed at once."""
        if name in self._funcs:
            raise ValueError(f"an index named {name!r} exists already")
        self._funcs[name] = fn
        self._indices[name] = {}
        self._values[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def _values_of(self, name: str, obj: Object) -> tuple[str, ...]:
        try:
            return tuple(dict.fromkeys(str(v) for v in self._funcs[name](obj)))
        except Exception:
            # A function that cannot read one odd object must not stop the informer; the
            # first failure of each index is logged with its traceback, later ones briefly.
            if name in self._failed:
                log.debug("index %r failed on %s; not indexed", name, _describe(obj), exc_info=True)
            else:
                self._failed.add(name)
                log.exception("index %r failed on %s; not indexed (later failures of it: debug)", name,
                              _describe(obj))
            return ()

    def _index_one(self, name: str, key: str, obj: Object) -> None:
        values = self._values_of(name, obj)
        if values:
            self._values[name][key] = values
            index = self._indices[name]
            for v in values:
                index.setdefault(v, set()).add(key)

    def _unindex_one(self, name: str, key: str) -> None:
        index = self._indices[name]
        for v in self._values[name].pop(key, ()):
            keys = index.get(v)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[v]

    # writes (the informer's)

    def put(self, key: str, obj: Object) -> Object | None:
        """Store ``obj`` under ``key``; the object it replaces, if any."""
        old = self._items.get(key)
        for name in self._funcs:
            if old is not None:
                self._unindex_one(name, key)
            self._index_one(name, key, obj)
        self._items[key] = obj
        return old

    def remove(self, key: str) -> Object | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._funcs:
                self._unindex_one(name, key)
        return old


def _describe(obj: Any) -> str:
    try:
        return repr(object_key(obj))
    except ValueError:
        return "an object without a name"


# ------------------------------------------------------------------ sources


class ListWatch(Protocol):
    """Where an informer's objects come from."""

    async def list(self) -> tuple[list[Object], str]:
        """Every object, and the resourceVersion the list is a snapshot of."""
        ...

    def watch(self, resource_version: str) -> AsyncIterator[Object]:
        """Events after ``resource_version``: ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK,
        "object": ...}``. Raises :class:`apimachinery.errors.Gone` when that version is
        older than the source keeps. May end; the informer then watches again."""
        ...


class APIListWatch:
    """:class:`ListWatch` over an HTTP API: ``GET path`` and ``GET path?watch=true``.

    ``watch_timeout``: seconds after which the server ends a watch (``timeoutSeconds``) and
    the informer opens a new one. ``idle_timeout``: silence for longer than that (the
    servers send a bookmark every few seconds on an idle watch) means a hung server."""

    def __init__(self, client: APIClient, path: str, *, label_selector: str | None = None,
                 field_selector: str | None = None, watch_timeout: float = 300.0, idle_timeout: float = 30.0,
                 list_timeout: float = 60.0) -> None:
        if watch_timeout <= 0 or idle_timeout <= 0 or list_timeout <= 0:
            raise ValueError("watch_timeout, idle_timeout and list_timeout must be positive")
        self.client = client
        self.path = path
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.idle_timeout = idle_timeout
        self.list_timeout = list_timeout

    def _selectors(self) -> dict[str, str]:
        params = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    async def list(self) -> tuple[list[Object], str]:
        body = await self.client.get(self.path, params=self._selectors() or None, timeout=self.list_timeout)
        items = body.get("items") if isinstance(body, dict) else None
        meta = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(meta, dict):
            raise ValueError(f"GET {self.path}: the answer is not a list (no items and metadata)")
        return [o for o in items if isinstance(o, dict)], str(meta.get("resourceVersion") or "")

    def watch(self, resource_version: str) -> AsyncIterator[Object]:
        timeout = self.watch_timeout
        params = self._selectors() | {"timeoutSeconds": str(int(timeout)) if timeout == int(timeout) else str(timeout)}
        return self.client.watch(self.path, resource_version=resource_version, timeout=timeout + self.idle_timeout,
                                 idle_timeout=self.idle_timeout, params=params)

    def __repr__(self) -> str:
        sel = ",".join(f"{k}={v}" for k, v in self._selectors().items())
        return f"{self.client.base_url}{self.path}" + (f"?{sel}" if sel else "")


# ------------------------------------------------------------------ the informer


@dataclass(frozen=True)
class Handler:
    on_add: Callable[[Object], Any] | None = None
    on_update: Callable[[Object, Object], Any] | None = None
    on_delete: Callable[[Object], Any] | None = None


class Informer:
    """List, then watch, one source; keep :attr:`cache` current; tell the handlers.

    ``resync_period``: seconds between deliveries of every cached object as an update
    (``None``: never). ``backoff_initial`` / ``backoff_max``: the waits after a failure."""

    MIN_WATCH = 1.0  # a watch that ends sooner with nothing in it counts as a failure

    def __init__(self, source: ListWatch, *, resync_period: float | None = None, name: str = "",
                 backoff_initial: float = 0.2, backoff_max: float = 30.0) -> None:
        if resync_period is not None and resync_period <= 0:
            raise ValueError(f"resync_period must be positive, not {resync_period}")
        self.source = source
        self.name = name or repr(source)
        self.resync_period = resync_period
        self.cache = Indexer()
        self._handlers: list[Handler] = []
        self._backoff: Backoff[str] = Backoff(initial=backoff_initial, maximum=backoff_max)
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.resource_version = ""  # the last one seen (list, event or bookmark)
        self.lists = 0  # how many lists succeeded (1 + relists)
        self.watches = 0  # how many watches were opened

    # -------------------------------------------------------------- setup

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self.cache.add_index(name, fn)

    def add_handler(self, on_add: Callable[[Object], Any] | None = None,
                    on_update: Callable[[Object, Object], Any] | None = None,
                    on_delete: Callable[[Object], Any] | None = None) -> Handler:
        """Call these (plain functions, not coroutines) after each change of the cache. A
        handler added after objects were cached gets an ``on_add`` for each of them first."""
        handler = Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self.cache.list():
                self._call(handler.on_add, obj)
        return handler

    def remove_handler(self, handler: Handler) -> None:
        self._handlers.remove(handler)

    # -------------------------------------------------------------- running

    @property
    def has_synced(self) -> bool:
        """The first list is in the cache and its adds were delivered."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until :attr:`has_synced`; ``False`` if ``timeout`` seconds pass first."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    def start(self) -> None:
        """Start listing and watching in the background (once; again after :meth:`stop`)."""
        if self.running:
            return
        self._tasks = [asyncio.create_task(self._run(), name=f"informer {self.name}")]
        if self.resync_period is not None:
            self._tasks.append(asyncio.create_task(self._resync(), name=f"informer {self.name} resync"))

    async def stop(self) -> None:
        """Stop watching; the cache keeps what it holds."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> "Informer":
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def _run(self) -> None:
        relist = True
        gone_in_a_row = 0  # Gone again, with nothing in between: back off instead of relisting at once
        while True:
            got_events = False
            started = time.monotonic()
            try:
                if relist:
                    items, rv = await self.source.list()
                    self._replace(items, rv)
                    relist = False
                    self._backoff.succeeded("source")
                async with contextlib.aclosing(self.source.watch(self.resource_version)) as events:
                    self.watches += 1
                    async for event in events:
                        if not got_events:
                            got_events, gone_in_a_row = True, 0
                            self._backoff.succeeded("source")
                        self._apply(event)
                if got_events or time.monotonic() - started >= self.MIN_WATCH:
                    continue  # the server ended the watch (its timeout): watch again
                problem = "the watch ended at once"
            except asyncio.CancelledError:
                raise
            except Gone as err:
                relist = True
                gone_in_a_row = 0 if got_events else gone_in_a_row + 1
                if gone_in_a_row <= 1:
                    log.info("informer %s: %s; relisting", self.name, err)
                    continue
                problem = f"gone again right after a list: {err}"
            except Exception as err:  # the server is down, a connection broke, a bad answer
                problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            delay = self._backoff.failed("source", "")
            log.warning("informer %s: %s; %s again in %.2f s", self.name, problem,
                        "listing" if relist else f"watching from {self.resource_version}", delay)
            await asyncio.sleep(delay)

    async def _resync(self) -> None:
        assert self.resync_period is not None
        while True:
            await asyncio.sleep(self.resync_period)
            if not self.has_synced:
                continue
            for obj in self.cache.list():
                self._notify_update(obj, obj)

    # -------------------------------------------------------------- the cache and the handlers

    def _replace(self, items: list[Object], rv: str) -> None:
        """A list arrived: make the cache hold exactly ``items``, then tell the handlers
        what changed (all adds on the first list)."""
        new: dict[str, Object] = {}
        for obj in items:
            try:
                new[object_key(obj)] = obj
            except ValueError:
                log.warning("informer %s: the list holds an object without a name; skipped", self.name)
        deleted = [(key, self.cache.remove(key)) for key in self.cache.keys() if key not in new]
        changes = [(self.cache.put(key, obj), obj) for key, obj in new.items()]
        self.resource_version = rv
        self.lists += 1
        for _, old in deleted:
            if old is not None:
                self._notify_delete(old)
        for old, obj in changes:
            if old is None:
                self._notify_add(obj)
            elif resource_version(old) != resource_version(obj) or not resource_version(obj):
                self._notify_update(old, obj)
        self._synced.set()

    def _apply(self, event: Object) -> None:
        etype = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if etype not in EVENT_TYPES or not isinstance(obj, dict):
            log.warning("informer %s: ignored a watch event of type %r", self.name, etype)
            return
        rv = resource_version(obj)
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        try:
            key = object_key(obj)
        except ValueError:
            log.warning("informer %s: ignored a %s event for an object without a name", self.name, etype)
            return
        if rv:
            self.resource_version = rv
        if etype == "DELETED":
            old = self.cache.remove(key)
            if old is not None:
                self._notify_delete(obj)
            return
        old = self.cache.put(key, obj)
        if old is None:
            self._notify_add(obj)
        else:
            self._notify_update(old, obj)

    def _notify_add(self, obj: Object) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: Object, new: Object) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: Object) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., Any], *args: Object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer %s: a handler failed on %s", self.name, _describe(args[-1]))


# ------------------------------------------------------------------ sharing


class InformerFactory:
    """One informer per (path, selectors) over one client, so controllers that read the
    same kind share its cache and its single watch."""

    def __init__(self, client: APIClient, *, resync_period: float | None = None, **source_options: Any) -> None:
        self.client = client
        self.resync_period = resync_period
        self.source_options = source_options
        self._informers: dict[tuple[str, str, str], Informer] = {}

    def informer(self, path: str, *, label_selector: str | None = None,
                 field_selector: str | None = None) -> Informer:
        key = (path, label_selector or "", field_selector or "")
        informer = self._informers.get(key)
        if informer is None:
            source = APIListWatch(self.client, path, label_selector=label_selector, field_selector=field_selector,
                                  **self.source_options)
            informer = self._informers[key] = Informer(source, resync_period=self.resync_period)
        return informer

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until every informer made so far has synced; ``False`` after ``timeout`` s."""
        informers = list(self._informers.values())
        try:
            await asyncio.wait_for(asyncio.gather(*(i.wait_for_sync() for i in informers)), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
