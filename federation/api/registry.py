"""Kubernetes object semantics on top of the store, shared by the HTTP layer and controllers.

Creating an object fills in uid, creationTimestamp and generation; replacing it keeps what
the caller may not change (status through the main resource, uid, creation time) and bumps
generation when the spec changed; a stale resourceVersion is a conflict. Controllers call
this layer directly (they run in the API server's process), so their writes produce the
same watch events as a client's.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import uuid
from typing import Any

from apimachinery import decoding
from federation.api import approval
from apimachinery import errors as st
from apimachinery.meta import now_rfc3339
from apimachinery.kinds import Kind
from federation.resources import CLUSTERS, FEDERATION_NAMESPACES, validate_object
from federation.storage.store import Event, StoreConflict, StoreNotFound, Store


class WatchHub:
    """Fans store events out to watchers and wakes controllers.

    Each watcher gets a bounded queue; a watcher that falls too far behind is closed with
    a 410 so that it relists, instead of the server buffering without limit.
    """

    def __init__(self, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self._queues: set[asyncio.Queue[Event | None]] = set()
        # One event per resource, replaced after it fires, so a waiter wakes only for the
        # kinds it reads (a lease renewal must not wake the DNS planner).
        self._changed: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> asyncio.Queue[Event | None]:
        self._bind()
        q: asyncio.Queue[Event | None] = asyncio.Queue(self.max_queue)
        self._queues.add(q)
        return q

    def _bind(self) -> None:
        """Remember the event loop the hub's subscribers live on (for :meth:`publish_from_thread`)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self._queues.discard(q)

    def publish(self, event: Event) -> None:
        for q in list(self._queues):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self._queues.discard(q)
                # Make room for the end-of-stream marker; the watcher relists after a 410.
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
        self.notify(event.resource)

    def publish_from_thread(self, events: list[Event]) -> None:
        """:meth:`publish` ``events`` on the hub's event loop, in order, from another thread
        (a shared store's feed). Before anyone subscribed there is nobody to tell: whoever
        subscribes later reads those events from the store's history."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._publish_all, events)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _publish_all(self, events: list[Event]) -> None:
        for event in events:
            self.publish(event)

    def reset_from_thread(self) -> None:
        """Events were lost upstream: every subscriber is told it fell behind, and relists."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.drop_all)
            except RuntimeError:
                pass

    def drop_all(self) -> None:
        for q in list(self._queues):
            self._queues.discard(q)
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)

    def notify(self, key: str) -> None:
        """Wake whoever waits for changes of ``key`` (a store key, or a name of the
        controllers' own, such as a member kind their informers watch)."""
        changed = self._changed.pop(key, None)
        if changed is not None:
            changed.set()

    async def wait_change(self, timeout: float, resources: frozenset[str] | set[str] | None = None) -> None:
        """Return at the next change of one of ``resources`` (store keys) or after ``timeout``
        seconds, whichever comes first; with no resources, just wait out the timeout."""
        self._bind()
        keys = resources or ()
        events = [self._changed.setdefault(key, asyncio.Event()) for key in keys]
        if not events:
            await asyncio.sleep(timeout)
            return
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


class Registry:
    def __init__(self, store: Store, hub: WatchHub) -> None:
        self.store = store
        self.hub = hub
        # A shared store (etcd) brings every replica's writes, this one's included, in
        # revision order from its watch; publishing ours here too could put a write ahead of
        # an older one from another replica that is still on its way, and a watcher that
        # skips what it has passed would lose that one.
        self._publishes = not getattr(store, "shared", False)
        if not self._publishes:
            store.follow(hub.publish_from_thread, hub.reset_from_thread)  # type: ignore[attr-defined]

    # -------------------------------------------------------------- reads

    def get(self, res: Kind, namespace: str, name: str, *, consistent: bool = True) -> dict[str, Any]:
        obj = self.store.get(res.key, namespace, name, consistent=consistent)
        if obj is None:
            raise st.not_found(res.plural, name, res.group)
        return obj

    def find(self, res: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(res.key, namespace, name)

    def list(self, res: Kind, namespace: str | None = None, *,
             consistent: bool = True) -> tuple[list[dict[str, Any]], int]:
        return self.store.list(res.key, namespace, consistent=consistent)

    def stale_reason(self) -> str | None:
        """Why a read at any resourceVersion may now be behind (no etcd quorum), or None."""
        return self.store.stale_reason()

    # -------------------------------------------------------------- writes

    def _check(self, res: Kind, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        errs = validate_object(res, obj)
        if errs:
            raise st.invalid(res.kind, name, errs, res.group)

    @staticmethod
    def _fits(res: Kind, name: str, obj: dict[str, Any]) -> None:
        """Within the object limits every body is decoded with (issue 19): a patch or a merge
        of two objects under the limits may be over them, and then nothing is stored."""
        try:
            decoding.check_object(obj, what="the object")
        except decoding.DecodeError as err:
            raise st.refused(err, f'{res.plural}{"." + res.group if res.group else ""} "{name}"') from None

    def _publish(self, event: Event) -> None:
        if self._publishes:
            self.hub.publish(event)

    def create(self, res: Kind, namespace: str, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Validate, default and store ``obj``; with ``dry_run`` everything but the store
        write (``?dryRun=All``: the answer is the object as it would be stored)."""
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise st.invalid(res.kind, "", [("metadata", "Invalid value: must be an object")], res.group)
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if res.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        res.default(obj)
        self._check(res, obj)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        self._fits(res, meta["name"], obj)
        if dry_run:
            if self.store.get(res.key, namespace if res.namespaced else "", meta["name"]) is not None:
                raise st.already_exists(res.plural, meta["name"], res.group)
            return obj
        if res.namespaced:
            self.ensure_namespace(namespace)
        try:
            stored, event = self.store.create(res.key, namespace if res.namespaced else "", meta["name"], obj)
        except StoreConflict:
            raise st.already_exists(res.plural, meta["name"], res.group) from None
        self._publish(event)
        return stored

    def ensure_namespace(self, name: str) -> None:
        """An object's namespace exists once the object does: the first object in a namespace
        creates it (a member cluster does the same), so a federation user need not create
        namespaces first, and ``kubectl get ns`` lists every namespace in use."""
        if self.store.get(FEDERATION_NAMESPACES.key, "", name) is not None:
            return
        try:
            self.create(FEDERATION_NAMESPACES, "", {"metadata": {"name": name}})
        except st.AlreadyExists:
            pass

    def replace(
        self, res: Kind, namespace: str, name: str, obj: dict[str, Any], *, subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics. ``subresource="status"`` changes only status; otherwise status is kept."""
        ns = namespace if res.namespaced else ""
        current = self.store.get(res.key, ns, name)
        if current is None:
            raise st.not_found(res.plural, name, res.group)
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise st.invalid(res.kind, name, [("metadata", "Required value")], res.group)
        if meta.get("name", name) != name:
            raise st.APIError(
                400, f'the name of the object ({meta.get("name")}) does not match the name on the URL ({name})',
                kind=res.plural, name=name,
            )
        rv_text = meta.get("resourceVersion")
        expected = None
        if rv_text not in (None, ""):
            try:
                expected = int(rv_text)
            except (TypeError, ValueError):
                raise st.invalid(
                    res.kind, name, [("metadata.resourceVersion", f"Invalid value: {rv_text!r}: must be an integer")]
                ) from None
        if subresource == "approval":
            # Only the Approved condition of the body counts (issue 19; federation/approval.py).
            new = approval.with_condition(copy.deepcopy(current), copy.deepcopy(approval.condition(obj)))
            return self._update(res, ns, name, new, expected, current, approval_write=True, dry_run=dry_run)
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
        else:
            new = obj
            new["apiVersion"] = res.api_version
            new["kind"] = res.kind
            new_meta = new["metadata"]
            new_meta["name"] = name
            if res.namespaced:
                new_meta["namespace"] = namespace
            for key in ("uid", "creationTimestamp", "deletionTimestamp"):
                if key in current["metadata"]:
                    new_meta[key] = current["metadata"][key]
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
            res.default(new)
            self._check(res, new)
            generation = current["metadata"].get("generation", 1)
            if new.get("spec") != current.get("spec"):
                generation += 1
            new_meta["generation"] = generation
        return self._update(res, ns, name, new, expected, current, dry_run=dry_run)

    def _update(self, res: Kind, ns: str, name: str, new: dict[str, Any], expected: int | None,
                current: dict[str, Any], *, approval_write: bool = False, dry_run: bool = False) -> dict[str, Any]:
        if res.key == CLUSTERS.key and not approval_write:
            new = approval.carry(current, new)
        self._fits(res, name, new)
        if dry_run:
            if expected is not None and str(expected) != str(current["metadata"].get("resourceVersion")):
                raise st.conflict(res.plural, name, res.group)
            new.setdefault("metadata", {})["resourceVersion"] = current["metadata"].get("resourceVersion")
            return new
        deleting = (current.get("metadata") or {}).get("deletionTimestamp")
        if deleting:
            added = set(new["metadata"].get("finalizers") or []) - set(current["metadata"].get("finalizers") or [])
            if added:
                raise st.invalid(res.kind, name, [("metadata.finalizers", "Forbidden: no new finalizers can be added "
                                                   "if the object is being deleted")], res.group)
            new["metadata"]["deletionTimestamp"] = deleting
            new["metadata"]["deletionGracePeriodSeconds"] = current["metadata"].get("deletionGracePeriodSeconds", 0)
        try:
            stored, event = self.store.update(res.key, ns, name, new, expected)
        except StoreConflict:
            raise st.conflict(res.plural, name, res.group) from None
        except StoreNotFound:
            raise st.not_found(res.plural, name, res.group) from None
        self._publish(dataclasses.replace(event, previous=current))
        if deleting and not stored["metadata"].get("finalizers"):
            return self._remove(res, ns, name, None)  # the last finalizer is gone: now it goes
        return stored

    def put_if_changed(self, res: Kind, namespace: str, name: str, new: dict[str, Any]) -> dict[str, Any]:
        """Controllers' write: store ``new`` (metadata, spec and status as given) unless identical."""
        ns = namespace if res.namespaced else ""
        current = self.store.get(res.key, ns, name)
        if current is None:
            raise st.not_found(res.plural, name, res.group)
        if res.key == CLUSTERS.key:
            new = approval.carry(current, copy.deepcopy(new))
        comparable = copy.deepcopy(new)
        comparable["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        if comparable == current:
            return current
        return self._update(res, ns, name, new, int(new["metadata"]["resourceVersion"]), current)

    def delete(self, res: Kind, namespace: str, name: str, *, expected_rv: int | None = None,
               dry_run: bool = False) -> dict[str, Any]:
        ns = namespace if res.namespaced else ""
        if dry_run:
            current = self.get(res, ns, name)
            if expected_rv is not None and str(expected_rv) != str(current["metadata"].get("resourceVersion")):
                raise st.conflict(res.plural, name, res.group)
            return current
        current = self.store.get(res.key, ns, name)
        if current is not None and current["metadata"].get("finalizers"):
            # Finalizers: the object is only marked (deletionTimestamp), and goes when whoever
            # owns each finalizer has removed it (an update that empties the list).
            if expected_rv is not None and str(expected_rv) != str(current["metadata"].get("resourceVersion")):
                raise st.conflict(res.plural, name, res.group)
            if current["metadata"].get("deletionTimestamp"):
                return current
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            try:
                stored, event = self.store.update(res.key, ns, name, marked, None)
            except StoreNotFound:
                raise st.not_found(res.plural, name, res.group) from None
            self._publish(dataclasses.replace(event, previous=current))
            return stored
        return self._remove(res, ns, name, expected_rv)

    def _remove(self, res: Kind, ns: str, name: str, expected_rv: int | None) -> dict[str, Any]:
        try:
            old, event = self.store.delete(res.key, ns, name, expected_rv)
        except StoreNotFound:
            raise st.not_found(res.plural, name, res.group) from None
        except StoreConflict:
            raise st.conflict(res.plural, name, res.group) from None
        self._publish(event)
        return old
