"""The federation's store on etcd v3: several API servers on one source of truth (issue 13).

The semantics are kube-apiserver's (``k8s.io/apiserver/pkg/storage/etcd3``):

- Objects live under a key prefix: ``<prefix>/<kind>/<namespace>/<name>``, or
  ``<prefix>/<kind>/<name>`` for a cluster-scoped kind. The value is the object's JSON
  without ``metadata.resourceVersion``; a read sets it from the key's ``mod_revision``, so the
  resourceVersion *is* the etcd revision of the object's last write.
- Create is a transaction "if the key does not exist, put it"; update and delete compare the
  key's ``mod_revision`` with the expected resourceVersion (or only that the key exists).
  A failed comparison reads the key in the same transaction, to tell
  :class:`~federation.storage.store.StoreNotFound` from :class:`~federation.storage.store.StoreConflict`.
- A list is one range read, at one revision, and returns that revision.
- History: one etcd watch on the prefix (with the previous values, ``prev_kv``) runs in a
  thread of this store and feeds a bounded in-memory :class:`~federation.storage.eventlog.EventLog`
  (kube-apiserver's watch cache) and, through :meth:`follow`, the registry's hub. Every
  replica's watchers therefore see every write, whichever replica made it, in revision
  order and without gaps. Because the registry must not publish its own writes ahead of
  older ones still on the way from etcd, this store is :attr:`shared`: its events reach
  the hub from the feed only.
- A watch from before the log's window is :class:`~federation.storage.store.HistoryExpired` (410).
  If the feed itself falls behind etcd's compaction (a long disconnection), the log starts
  over and every live watcher is told it fell behind (410, relist).
- Compaction: every ``compact_interval`` seconds the store compacts etcd's history to the
  revision it saw one interval earlier, as kube-apiserver does every 5 minutes; the
  replicas agree through a transaction on ``<prefix>/compact-revision``, so one compaction
  happens per interval however many replicas run.

etcd down: a request fails over to the next member; when none answers it raises
:class:`~federation.storage.store.StoreUnavailable` (503 with a Status) after the request timeout,
never hangs. The feed reconnects with backoff from its last revision.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable
from urllib.parse import unquote

from federation.storage.etcdclient import EtcdError, EtcdUnavailable, Gateway, b64, parse_endpoint, prefix_end, unb64
from federation.storage.eventlog import EventLog
from federation.storage.store import Event, StoreConflict, StoreNotFound, StoreOpenError, StoreUnavailable

log = logging.getLogger("federation.storage.store.etcd")

SCHEME = "etcd://"
DEFAULT_PREFIX = "/registry"
COMPACT_INTERVAL = 300.0  # kube-apiserver's --etcd-compaction-interval
FEED_WAIT = 2.0  # how long a history read waits for the feed to reach this replica's own last write

EventsListener = Callable[[list[Event]], None]
ResetListener = Callable[[], None]


def is_etcd_url(value: str) -> bool:
    return value.startswith(SCHEME)


def parse_etcd_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """``etcd://HOST:PORT[,HOST:PORT...][/prefix]`` -> (endpoints, prefix without a trailing /)."""
    if not is_etcd_url(url):
        raise StoreOpenError(f"{url!r} is not an etcd store: etcd://HOST:PORT[,HOST:PORT...][/prefix]")
    rest = url[len(SCHEME):]
    hosts, slash, prefix = rest.partition("/")
    try:
        endpoints = [parse_endpoint(h) for h in hosts.split(",") if h.strip()]
    except ValueError as e:
        raise StoreOpenError(f"store {url}: {e}; expected etcd://HOST:PORT[,HOST:PORT...][/prefix]") from None
    if not endpoints:
        raise StoreOpenError(f"store {url} names no etcd member; expected etcd://HOST:PORT[,HOST:PORT...][/prefix]")
    prefix = "/" + unquote(prefix).strip("/") if slash and prefix.strip("/") else DEFAULT_PREFIX
    return endpoints, prefix


def _size(value: str | None) -> int:
    """The stored JSON's length in bytes, from its base64 form (what a page's byte limit counts)."""
    return len(value) * 3 // 4 if value else 0


class EtcdStore:
    """:class:`~federation.storage.store.Store` on etcd v3, through its JSON gateway."""

    shared = True  # other replicas write here too: events come from the feed (see the module doc)

    def __init__(self, url: str, *, history: int = 10_000, compact_interval: float = COMPACT_INTERVAL,
                 timeout: float = 5.0, idle_timeout: float = 30.0) -> None:
        self.path = url
        endpoints, prefix = parse_etcd_url(url)
        self.prefix = prefix
        self._root = prefix.encode() + b"/"
        self._gw = Gateway(endpoints, timeout=timeout)
        self._log = EventLog(history)
        self._idle_timeout = idle_timeout
        self._written = 0  # the newest revision this replica wrote: history reads wait for the feed to get there
        self._events_listeners: list[EventsListener] = []
        self._reset_listeners: list[ResetListener] = []
        self._closed = threading.Event()
        try:
            current = self._revision_now()
        except (EtcdUnavailable, EtcdError) as e:
            raise StoreOpenError(f"cannot open store {url}: {e}") from None
        # The history starts now, as kube-apiserver's watch cache starts at its first list: a
        # watch from before this replica started is 410 Gone here and its client relists
        # (replicas that were running keep theirs, so a watch that moves over resumes).
        self._log.start(current)
        self._feed = threading.Thread(target=self._run_feed, name=f"etcd-feed {prefix}", daemon=True)
        self._feed.start()
        self._compactor: threading.Thread | None = None
        if compact_interval > 0:
            self._compactor = threading.Thread(target=self._run_compactor, args=(compact_interval,),
                                               name=f"etcd-compactor {prefix}", daemon=True)
            self._compactor.start()

    # -------------------------------------------------------------- keys and values

    def _key(self, resource: str, namespace: str, name: str) -> bytes:
        middle = f"{resource}/{namespace}/{name}" if namespace else f"{resource}/{name}"
        return self._root + middle.encode()

    def _parse_key(self, key: bytes) -> tuple[str, str, str] | None:
        if not key.startswith(self._root):
            return None
        parts = key[len(self._root):].decode("utf-8", "replace").split("/")
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2:
            return parts[0], "", parts[1]
        return None  # ours but not an object (compact-revision)

    @staticmethod
    def _encode(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata")
        if isinstance(meta, dict) and "resourceVersion" in meta:
            obj = dict(obj)
            obj["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
        return b64(json.dumps(obj, separators=(",", ":")).encode())

    @staticmethod
    def _decode(value: str | None, rv: int) -> dict[str, Any]:
        obj = json.loads(unb64(value)) if value else {}
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        return obj

    def _call(self, path: str, body: dict[str, Any], *, local: bool = False) -> dict[str, Any]:
        try:
            return (self._gw.call_local if local else self._gw.call)(path, body)
        except EtcdUnavailable as e:
            raise StoreUnavailable(f"the federation's store (etcd) is unavailable: {e}", retry_after=1) from None
        except EtcdError as e:
            raise StoreUnavailable(f"the federation's store (etcd) refused a request: {e.message}") from None

    def _revision_now(self) -> int:
        answer = self._gw.call("/v3/kv/range", {"key": b64(self._root), "count_only": True})
        return int(answer["header"]["revision"])

    def _wrote(self, rv: int) -> None:
        if rv > self._written:
            self._written = rv

    # -------------------------------------------------------------- reads

    @property
    def revision(self) -> int:
        """The newest revision of this store's history: the feed's, or this replica's own
        last write if the feed has not brought that one yet (history reads wait for it)."""
        return max(self._log.newest, self._written)

    @property
    def oldest(self) -> int:
        return self._log.oldest

    def stale_reason(self) -> str | None:
        """Why a read at any resourceVersion may now be behind: this replica's last request
        that needed etcd's quorum failed (no leader, members down, or cut off)."""
        why = self._gw.unavailable
        return None if why is None else f"the federation's store (etcd) has no quorum for this API server ({why})"

    def _range(self, body: dict[str, Any], consistent: bool) -> dict[str, Any]:
        """A range read: linearizable (through etcd's leader, as kube-apiserver's quorum
        reads), or for ``consistent=False`` serializable from whichever member answers once
        the quorum is in doubt, so a read at any resourceVersion is served, possibly behind
        (:meth:`stale_reason` says so), while etcd has no quorum."""
        if consistent or self._gw.unavailable is None:
            try:
                return self._call("/v3/kv/range", body)
            except StoreUnavailable:
                if consistent:
                    raise
        return self._call("/v3/kv/range", {**body, "serializable": True}, local=True)

    def get(self, resource: str, namespace: str, name: str, *, consistent: bool = True) -> dict[str, Any] | None:
        answer = self._range({"key": b64(self._key(resource, namespace, name))}, consistent)
        kvs = answer.get("kvs") or []
        return self._decode(kvs[0].get("value"), int(kvs[0]["mod_revision"])) if kvs else None

    def list(self, resource: str, namespace: str | None = None, *,
             consistent: bool = True) -> tuple[list[dict[str, Any]], int]:
        start = self._root + (f"{resource}/{namespace}/" if namespace else f"{resource}/").encode()
        answer = self._range({"key": b64(start), "range_end": b64(prefix_end(start))}, consistent)
        rows = []
        for kv in answer.get("kvs") or []:
            parsed = self._parse_key(unb64(kv["key"]))
            if parsed is None or parsed[0] != resource or (namespace == "" and parsed[1] != ""):
                continue
            rows.append((parsed[1], parsed[2], kv))
        rows.sort(key=lambda r: (r[0], r[1]))  # SQLite's order: namespace, then name
        return [self._decode(kv.get("value"), int(kv["mod_revision"])) for _, _, kv in rows], \
            int(answer["header"]["revision"])

    # -------------------------------------------------------------- writes

    def _txn(self, key: bytes, compare: dict[str, Any], success: dict[str, Any]) -> tuple[dict[str, Any], int]:
        compare = {"key": b64(key), **compare}
        answer = self._call("/v3/kv/txn", {"compare": [compare], "success": [success],
                                           "failure": [{"request_range": {"key": b64(key)}}]})
        if not answer.get("succeeded"):
            found = ((answer.get("responses") or [{}])[0].get("response_range") or {}).get("kvs")
            raise StoreConflict("stale") if found else StoreNotFound(key.decode("utf-8", "replace"))
        rv = int(answer["header"]["revision"])
        self._wrote(rv)
        return answer, rv

    @staticmethod
    def _expect(expected_rv: int | None) -> dict[str, Any]:
        if expected_rv is None:  # it must exist
            return {"target": "CREATE", "result": "GREATER", "create_revision": "0"}
        return {"target": "MOD", "result": "EQUAL", "mod_revision": str(expected_rv)}

    def _put(self, resource: str, namespace: str, name: str, obj: dict[str, Any], compare: dict[str, Any],
             etype: str) -> tuple[dict[str, Any], Event]:
        key = self._key(resource, namespace, name)
        _, rv = self._txn(key, compare, {"request_put": {"key": b64(key), "value": self._encode(obj)}})
        stored = dict(obj)
        stored["metadata"] = dict(obj.get("metadata") or {})
        stored["metadata"]["resourceVersion"] = str(rv)
        return stored, Event(rv, resource, namespace, etype, stored)

    def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Event]:
        try:
            return self._put(resource, namespace, name, obj,
                             {"target": "CREATE", "result": "EQUAL", "create_revision": "0"}, "ADDED")
        except StoreNotFound:  # the comparison failed and yet the read found nothing: a race with a delete
            raise StoreConflict("exists") from None

    def update(self, resource: str, namespace: str, name: str, obj: dict[str, Any],
               expected_rv: int | None) -> tuple[dict[str, Any], Event]:
        return self._put(resource, namespace, name, obj, self._expect(expected_rv), "MODIFIED")

    def delete(self, resource: str, namespace: str, name: str,
               expected_rv: int | None = None) -> tuple[dict[str, Any], Event]:
        key = self._key(resource, namespace, name)
        answer, rv = self._txn(key, self._expect(expected_rv),
                               {"request_delete_range": {"key": b64(key), "prev_kv": True}})
        prev = ((answer.get("responses") or [{}])[0].get("response_delete_range") or {}).get("prev_kvs") or [{}]
        old = self._decode(prev[0].get("value"), rv)  # at the delete's revision, as the API server does
        return old, Event(rv, resource, namespace, "DELETED", old)

    # -------------------------------------------------------------- history

    def follow(self, on_events: EventsListener, on_reset: ResetListener) -> None:
        """Call ``on_events(batch)`` from the feed thread with every batch of events, in
        revision order, after the log holds them; ``on_reset()`` when events were lost."""
        self._events_listeners.append(on_events)
        self._reset_listeners.append(on_reset)

    def _caught_up(self) -> None:
        if self._written > self._log.newest:
            self._log.wait_for(self._written, FEED_WAIT)

    def events_page(self, rv: int, resource: str | None = None, *, types: tuple[str, ...] = (),
                    max_events: int = 100, max_bytes: int = 4 << 20) -> list[Event]:
        self._caught_up()
        return self._log.page(rv, resource, types=types, max_events=max_events, max_bytes=max_bytes)

    def events_since(self, rv: int, resource: str | None = None) -> list[Event]:
        self._caught_up()
        return self._log.page(rv, resource, max_events=1 << 62, max_bytes=1 << 62)

    def count_events(self, rv: int, resource: str | None = None, *, limit: int) -> int:
        self._caught_up()
        return self._log.count(rv, resource, limit=limit)

    def _event(self, change: dict[str, Any]) -> tuple[Event, int] | None:
        kv = change["kv"]
        parsed = self._parse_key(unb64(kv["key"]))
        if parsed is None:
            return None
        resource, namespace, name = parsed
        rv = int(kv["mod_revision"])
        prev = change.get("prev_kv")
        if change.get("type") == "DELETE":
            if prev:
                obj = self._decode(prev.get("value"), rv)
            else:  # etcd no longer had the old value: the name is what is left
                obj = {"metadata": {"name": name, "resourceVersion": str(rv), **({"namespace": namespace} if namespace else {})}}
            return Event(rv, resource, namespace, "DELETED", obj), _size(prev.get("value") if prev else None)
        obj = self._decode(kv.get("value"), rv)
        previous = self._decode(prev.get("value"), int(prev["mod_revision"])) if prev else None
        etype = "ADDED" if kv.get("version") == "1" else "MODIFIED"
        return Event(rv, resource, namespace, etype, obj, previous=previous), _size(kv.get("value"))

    def _deliver(self, changes: list[dict[str, Any]]) -> None:
        batch = [e for e in map(self._event, changes) if e is not None]
        newest = int(changes[-1]["kv"]["mod_revision"])
        self._log.append(batch, newest)
        if batch:
            events = [e for e, _ in batch]
            for listener in self._events_listeners:
                listener(events)

    def _restart_at(self, compacted: int) -> None:
        """The feed asked for revisions etcd has compacted: what lay between is lost."""
        lost = self._log.newest
        self._log.start(compacted - 1)
        log.warning("etcd compacted past this replica's history (at %d, compacted to %d): watchers relist",
                    lost, compacted)
        for listener in self._reset_listeners:
            listener()

    def _run_feed(self) -> None:
        delay = 0.05
        while not self._closed.is_set():
            request = {"key": b64(self._root), "range_end": b64(prefix_end(self._root)),
                       "start_revision": str(self._log.newest + 1), "prev_kv": True, "progress_notify": True}
            try:
                for result in self._gw.watch(request, idle_timeout=self._idle_timeout):
                    if result.get("canceled"):
                        compacted = int(result.get("compact_revision") or 0)
                        if compacted:
                            self._restart_at(compacted)
                            break
                        raise EtcdError(2, str(result.get("cancel_reason") or "the watch was canceled"))
                    changes = result.get("events")
                    if changes:
                        self._deliver(changes)
                    elif not result.get("created") and result.get("header", {}).get("revision"):
                        self._log.advance(int(result["header"]["revision"]))  # a progress notification
                    delay = 0.05
            except (EtcdUnavailable, EtcdError, OSError, ValueError) as e:
                if self._closed.is_set():
                    return
                log.debug("etcd watch: %s; resuming from %d in %.2f s", e, self._log.newest + 1, delay)
                if isinstance(e, EtcdError) or delay >= 1.0:
                    log.warning("etcd watch: %s; resuming from revision %d", e, self._log.newest + 1)
                self._closed.wait(delay)
                delay = min(delay * 2, 2.0)

    # -------------------------------------------------------------- compaction

    def compact(self, rv: int) -> None:
        """Compact etcd's history up to ``rv`` (watches from before it cannot resume at etcd).

        The feed first catches up with this replica's own writes: etcd cancels a watch that
        is still behind the compacted revision, and the replica would lose the history its
        watch cache was about to hold."""
        self._caught_up()
        try:
            self._gw.call("/v3/kv/compaction", {"revision": str(rv)})
        except EtcdError as e:
            if "compacted" not in e.message:  # someone compacted further already
                raise

    def _compact_turn(self, version: int, rv: int) -> int:
        """One scheduled compaction, kube-apiserver's way: the replica whose transaction on
        the compact-revision key succeeds compacts; returns the key's version for the next turn."""
        key = self._root + b"compact-revision"
        answer = self._gw.call("/v3/kv/txn", {
            "compare": [{"key": b64(key), "target": "VERSION", "result": "EQUAL", "version": str(version)}],
            "success": [{"request_put": {"key": b64(key), "value": b64(str(rv).encode())}}],
            "failure": [{"request_range": {"key": b64(key)}}],
        })
        if not answer.get("succeeded"):
            kvs = ((answer.get("responses") or [{}])[0].get("response_range") or {}).get("kvs") or [{}]
            return int(kvs[0].get("version") or 0)
        if rv > 0:
            self.compact(rv)
            log.info("compacted etcd history to revision %d", rv)
        return version + 1

    def _run_compactor(self, interval: float) -> None:
        version, rv = 0, 0
        while not self._closed.wait(interval):
            try:
                version = self._compact_turn(version, rv)
                rv = self._revision_now()
            except (EtcdUnavailable, EtcdError) as e:
                log.warning("etcd compaction skipped: %s", e)

    def close(self) -> None:
        self._closed.set()
        self._gw.close()
        for thread in (self._feed, getattr(self, "_compactor", None)):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5.0)
