"""How the zone reaches the workers of ``ubernetes dns --workers N``: one syncing process
decides every change, each worker applies it.

The supervisor (:mod:`fedns.workers`) is the only process that lists and watches the
federation API; :class:`RecordSync` feeds a :class:`ZoneFeed` there exactly as it feeds a
:class:`~fedns.view.ZoneView` in a single process. The feed holds the objects' specs (no
record sets, no rendered answers) and turns what changed into messages that every worker
applies the same way:

- ``("snapshot", serial, static, specs)``: every object; a worker that starts (or restarts
  after a crash) gets one, and so does everyone on a change too large to apply in place
  (more than :data:`~fedns.view.WHOLE_BUILD` objects and a quarter of the zone);
- ``("step", serial, {name: spec or None})``: at most :data:`~fedns.view.STEP` objects
  changed (None: deleted), debounced a few milliseconds as the view itself does.

The serial travels with the change, so every worker serves the same serial for the same
records: a secondary may ask one worker for the SOA and another for the IXFR. Watching
the API from each worker instead would cost N watches and N serials drifting apart; a
shared-memory table would make each query read through an index instead of a dict (the
fast path's one look-up). Each worker therefore holds its own table: memory is about one
single-process responder per worker, the supervisor holds the specs alone
(docs/dns.md, "Workers").

Frames on the supervisor-worker socket are a 4-byte length and a pickle: both ends are
this program, started by each other, over a socketpair nobody else holds.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import time
from typing import Any, Callable, Iterable, Mapping

from fedns.view import STEP, WHOLE_BUILD, FedObjects

Message = tuple
_LENGTH = struct.Struct("!I")


def frame(message: Message) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        data = await reader.readexactly(_LENGTH.unpack(head)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return pickle.loads(data)


class ZoneFeed(FedObjects):
    """The syncing process's copy of the objects, and the messages that carry their changes.

    It takes what :class:`fedns.sync.RecordSync` gives a view (``replace``, ``put``,
    ``delete``, from :class:`~fedns.view.FedObjects`); ``send`` is called with each message for every worker.
    """

    def __init__(
        self,
        send: Callable[[Message], None],
        *,
        static: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]] = (),
        debounce: float = 0.003,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.send = send
        if not isinstance(static, Mapping):
            static = {f"static-{i}": s for i, s in enumerate(static)}  # as ZoneView.set_static keys them
        self.static: dict[str, Mapping[str, Any]] = dict(static)
        self.specs: dict[str, Mapping[str, Any]] = {}
        self.debounce = debounce
        self.clock = clock
        self.serial = int(clock())
        self.steps = 0
        self.snapshots = 0
        self._pending: dict[str, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def record_count(self) -> int:
        """Objects held (RecordSync logs it; the workers count record sets)."""
        return len(self.specs) + len(self.static)

    # -- messages ---------------------------------------------------------------------------

    def snapshot(self) -> Message:
        """Every object at the current serial, for a worker that starts (pending changes
        are sent first, so the snapshot and the steps after it agree)."""
        self.flush()
        return ("snapshot", self.serial, self.static, self.specs)

    def _next_serial(self) -> int:
        self.serial = max(self.serial + 1, int(self.clock()))
        return self.serial

    def _changed(self, names: Iterable[str]) -> None:
        for name in names:
            self._pending[name] = None
        if not self._pending or self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain test): send now
            self.flush()
            return
        self._timer = loop.call_later(self.debounce, self.flush)

    def flush(self) -> None:
        """Send what changed since the last message (a burst of watch events is one step)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        names, self._pending = list(self._pending), {}
        if not names:
            return
        if len(names) > WHOLE_BUILD and len(names) * 4 > len(self.specs):
            self.snapshots += 1
            self.send(("snapshot", self._next_serial(), self.static, self.specs))
            return
        specs = self.specs
        for i in range(0, len(names), STEP):
            chunk = {name: specs.get(name) for name in names[i : i + STEP]}
            self.steps += 1
            self.send(("step", self._next_serial(), chunk))
