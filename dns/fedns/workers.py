"""``ubernetes dns --workers N``: N responder processes on one address, one syncing supervisor.

Python answers on one core per process, so the responder uses every core the way Knot and
NSD do: N worker processes (:mod:`fedns.worker`), each with its own SO_REUSEPORT UDP and
TCP sockets on the same address, so the kernel spreads datagrams and connections over them.
This process, the supervisor, answers no queries. It

- checks the address is free (a clear error, as a single process gives) and holds it with
  SO_REUSEPORT sockets of its own until the first worker is bound, so port 0 stays one port;
- lists and watches the federation API once and hands each change to every worker with its
  serial (:class:`fedns.feed.ZoneFeed`): a worker that starts gets a snapshot first;
- restarts a worker that exits (at once, then backing off to 5 s if it keeps crashing
  within 10 s of its start);
- serves ``/status`` and ``/metrics`` (``--status-listen``): before answering it asks every
  worker for its counters (1 s timeout; a worker that does not answer counts its last
  figures). Counters are summed across workers, and a worker that exited keeps its last
  figures in the sums, so a restart never makes a counter go down; ``workers`` in
  ``/status`` lists each one (pid, restarts, replies, serial, RSS);
- shares the TCP limits: ``--max-tcp-connections`` and ``--max-tcp-per-client`` are totals,
  each worker holds its share (rounded up), so N workers do not hold N times the sockets;
- on SIGTERM or Ctrl-C stops every worker with SIGTERM (SIGKILL after 5 s) and exits 0.
  A worker whose supervisor vanishes stops by itself (its socket closes).

``--workers 1`` does not come here: it is the single process :func:`fedns.app.serve` runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import signal
import socket
import sys
import time
from types import SimpleNamespace
from typing import Any, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from apimachinery.eventloop import loop_name
from apimachinery.transport import warn_token_transport
from fedns.app import Edges, Settings, split_host_port
from fedns.feed import Message, ZoneFeed, frame, read_frame
from fedns.metrics import ResponderCollector
from fedns.server import DNSServer
from fedns.status import iso_time

log = logging.getLogger("fedns")

READY_TIMEOUT = 60.0  # seconds for a worker to load the zone and bind
STATUS_TIMEOUT = 1.0
STOP_TIMEOUT = 5.0
QUICK_CRASH = 10.0  # a worker exiting sooner than this after its start is backed off
MAX_RESTART_DELAY = 5.0

# Figures a worker's status document gives that are gauges: summed over live workers only.
GAUGES = ("tcpConnections", "clients")


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def add_counts(into: dict[str, Any], doc: dict[str, Any], *, gauges: bool = True) -> None:
    """Sum the numbers of ``doc`` into ``into``: numbers, lists of numbers, nested dicts."""
    for key, value in doc.items():
        if not gauges and key in GAUGES:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            into[key] = into.get(key, 0) + value
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            have = into.setdefault(key, [0] * len(value))
            if len(have) < len(value):
                have.extend([0] * (len(value) - len(have)))
            for i, v in enumerate(value):
                have[i] += v
        elif isinstance(value, dict):
            add_counts(into.setdefault(key, {}), value, gauges=gauges)


COUNTED = ("queries", "dropped", "truncated", "errors", "tcpConnections", "tcp", "transfers",
           "refusedTransfers", "notify")


def countable(doc: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The part of a worker's status that is summed across workers."""
    out = {k: doc[k] for k in COUNTED if k in doc}
    out["raw"] = raw
    return out


class Slot:
    """One worker position (index): the process in it now, and how often it was replaced."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None  # set while the worker follows the feed
        self.ready: asyncio.Future | None = None
        self.started = 0.0
        self.restarts = 0
        self.document: dict[str, Any] | None = None  # its last status document
        self.counts: dict[str, Any] | None = None  # its last countable figures
        self.waiting: dict[int, asyncio.Future] = {}
        self.task: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and self.writer is not None


class WorkerPool(Edges):
    """The supervisor of ``--workers N``: ``await pool.start()``, then ``await pool.stop()``."""

    def __init__(self, settings: Settings, workers: int, *, log_level: str = "info") -> None:
        if workers < 2:
            raise ValueError("a pool has 2 workers or more; --workers 1 is the single process")
        self.settings = settings
        self.count = workers
        self.log_level = log_level
        self.host, self.port = split_host_port(settings.listen, default_port=1053)
        self.slots = [Slot(i) for i in range(workers)]
        self.feed = ZoneFeed(self._broadcast, static=settings.records)
        self.retired: dict[str, Any] = {}  # the last figures of workers that exited
        self.metrics = CollectorRegistry()
        self.metrics.register(ResponderCollector(self))  # type: ignore[arg-type]
        self.metrics.register(WorkerCollector(self))  # type: ignore[arg-type]
        self.stopping = False
        self.event_loop: str | None = None
        self._ids = itertools.count(1)
        self._hold: tuple[socket.socket, socket.socket] | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # -- starting ------------------------------------------------------------------------

    def _reserve(self) -> None:
        """Fail now if the address is taken (a plain bind, as one process does), then hold it
        with SO_REUSEPORT sockets the workers join; the port of port 0 is fixed here."""
        probe = DNSServer(lambda *_: None, host=self.host, port=self.port)
        udp, tcp = probe._bind()  # noqa: SLF001 - the same bind and port-0 logic
        self.port = probe.port
        udp.close()
        tcp.close()
        hold = DNSServer(lambda *_: None, host=self.host, port=self.port, reuse_port=True)
        self._hold = hold._bind()  # noqa: SLF001

    def _release(self) -> None:
        if self._hold is not None:
            for sock in self._hold:
                sock.close()
            self._hold = None

    def worker_settings(self, index: int) -> Settings:
        s = self.settings
        identity = s.identity if s.identity is not None else f"{socket.gethostname()}/{index}"
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        share = lambda total: max(1, -(-total // self.count))  # noqa: E731 - ceil(total / workers)
        return dataclasses.replace(
            s, max_tcp_connections=share(s.max_tcp_connections), max_tcp_per_client=share(s.max_tcp_per_client),
            federation=None, token=None, records=[], status_listen=None, listen=listen, reuse_port=True,
            notify=s.notify if index == 0 else (), identity=identity,
        )

    async def start(self) -> "WorkerPool":
        s = self.settings
        self.event_loop = loop_name()
        warn_token_transport(s.federation, s.token, allow_http=s.insecure_allow_http_token)
        self._reserve()
        loop = asyncio.get_running_loop()
        for slot in self.slots:
            slot.ready = loop.create_future()
            slot.task = loop.create_task(self._keep(slot), name=f"fedns-worker-{slot.index}")
        try:
            first = asyncio.ensure_future(asyncio.wait([s.ready for s in self.slots], return_when=asyncio.FIRST_COMPLETED))  # type: ignore[misc]
            await asyncio.wait_for(first, READY_TIMEOUT)
            self._release()
            await asyncio.wait_for(asyncio.gather(*(s.ready for s in self.slots)), READY_TIMEOUT)  # type: ignore[misc]
        except BaseException:
            await self.stop()
            raise
        log.info("serving DNS on %s (udp+tcp), %d workers", self.address, self.count)
        if s.federation:
            self._start_sync(s, self.feed)
        if s.status_listen:
            await self._start_status(s, self.status_document, self.metrics, refresh=self.refresh)
        return self

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's worker; start another when it exits, until the pool stops."""
        delay = 0.0
        while not self.stopping:
            try:
                rc = await self._run_once(slot)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # could not even start: try again, backing off
                log.error("worker %d could not start: %s", slot.index, err)
                rc = None
            if self.stopping:
                return
            quick = time.monotonic() - slot.started < QUICK_CRASH
            delay = min(MAX_RESTART_DELAY, max(0.1, delay * 2)) if quick else 0.0
            slot.restarts += 1
            log.warning("worker %d exited (%s); starting another%s", slot.index,
                        f"exit code {rc}" if rc is not None and rc >= 0 else f"signal {-rc}" if rc else "no process",
                        f" in {delay:.1f} s" if delay else "")
            if delay:
                await asyncio.sleep(delay)

    async def _run_once(self, slot: Slot) -> int | None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            slot.started = time.monotonic()
            slot.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fedns.worker", str(child.fileno()), pass_fds=(child.fileno(),),
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        writer.write(frame(("start", self.worker_settings(slot.index), slot.index, self.log_level)))
        writer.write(frame(self.feed.snapshot()))  # flushes pending changes first: nothing missed
        slot.writer = writer
        listening = asyncio.get_running_loop().create_task(self._listen(slot, reader))
        try:
            return await slot.process.wait()
        finally:
            slot.writer = None
            listening.cancel()
            writer.close()
            for waiter in slot.waiting.values():
                if not waiter.done():
                    waiter.cancel()
            slot.waiting.clear()
            if slot.counts is not None:  # its figures stay in the sums
                add_counts(self.retired, slot.counts, gauges=False)
                slot.counts = None

    async def _listen(self, slot: Slot, reader: asyncio.StreamReader) -> None:
        while True:
            message = await read_frame(reader)
            if message is None:
                return
            if message[0] == "ready":
                if slot.ready is not None and not slot.ready.done():
                    slot.ready.set_result(message[2])
            elif message[0] == "status":
                _, rid, document, raw = message
                slot.document, slot.counts = document, countable(document, raw)
                waiter = slot.waiting.pop(rid, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _broadcast(self, message: Message) -> None:
        data = frame(message)
        for slot in self.slots:
            if slot.writer is not None:
                slot.writer.write(data)

    # -- status ------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Ask every live worker for its figures (what /status and /metrics show)."""
        loop = asyncio.get_running_loop()
        waits = []
        for slot in self.slots:
            if slot.writer is None:
                continue
            rid = next(self._ids)
            waiter = slot.waiting[rid] = loop.create_future()
            slot.writer.write(frame(("status", rid)))
            waits.append(waiter)
        if waits:
            await asyncio.wait(waits, timeout=STATUS_TIMEOUT)

    def totals(self) -> dict[str, Any]:
        """Every worker's figures summed, those of exited workers included."""
        out: dict[str, Any] = {}
        add_counts(out, self.retired)
        for slot in self.slots:
            if slot.counts is not None:
                add_counts(out, slot.counts)
        return out

    @property
    def handler(self) -> SimpleNamespace:
        """The summed per-query counters, shaped as fedns.metrics reads a handler's."""
        raw = self.totals().get("raw", {})
        qtypes = [0] * 65536
        for qtype, n in raw.get("qtypes", {}).items():
            qtypes[int(qtype)] = n
        return SimpleNamespace(rcodes=raw.get("rcodes", [0] * 32), qtypes=qtypes,
                               duration_counts=raw.get("durationCounts", [0]), duration_sum=raw.get("durationSum", 0.0))

    def _zone_document(self) -> dict[str, Any]:
        docs = [s.document for s in self.slots if s.document is not None and s.alive]
        return max(docs, key=lambda d: d.get("serial") or 0) if docs else {}

    @property
    def view(self) -> SimpleNamespace:
        doc = self._zone_document()
        return SimpleNamespace(last_change=doc.get("lastChangeUnix"))

    def status_document(self) -> dict[str, Any]:
        """``GET /status``: the zone as the workers serve it, the supervisor's sync, every
        counter summed over the workers, and ``workers``: one entry per worker."""
        zone, totals, sync = self._zone_document(), self.totals(), self.sync
        workers = []
        for slot in self.slots:
            doc = slot.document or {}
            workers.append({
                "index": slot.index,
                "pid": slot.pid,
                "alive": slot.alive,
                "restarts": slot.restarts,
                "replies": sum((doc.get("queries") or {}).values()) if slot.alive else 0,
                "dropped": doc.get("dropped", 0) if slot.alive else 0,
                "tcpConnections": doc.get("tcpConnections", 0) if slot.alive else 0,
                "serial": doc.get("serial") if slot.alive else None,
                "identity": doc.get("identity"),
                "udpBatches": doc.get("udpBatches") if slot.alive else None,
                "rssKiB": rss_kib(slot.pid) if slot.alive and slot.pid else None,
            })
        return {
            "records": zone.get("records", 0),
            "objects": zone.get("objects", 0),
            "serial": zone.get("serial"),
            "zones": zone.get("zones", []),
            "identity": zone.get("identity"),
            "eventLoop": zone.get("eventLoop", self.event_loop),
            "udpIO": zone.get("udpIO"),
            "lastSync": iso_time(sync.last_sync) if sync else None,
            "lastChange": zone.get("lastChange"),
            "stale": sync.stale if sync else False,
            "federation": sync.client.base_url if sync else None,
            "lastError": sync.last_error if sync else None,
            "queries": totals.get("queries", {}),
            "dropped": totals.get("dropped", 0),
            "truncated": totals.get("truncated", 0),
            "errors": totals.get("errors", 0),
            "tcpConnections": totals.get("tcpConnections", 0),
            "tcp": totals.get("tcp", {}),
            "problems": zone.get("problems", []),
            "cnameShadows": zone.get("cnameShadows", {"current": 0, "total": 0}),
            "zoneChanges": zone.get("zoneChanges", {"inPlace": 0, "wholeBuilds": 0}),
            "transfers": totals.get("transfers", 0),
            "refusedTransfers": totals.get("refusedTransfers", 0),
            "notify": {k: totals.get("notify", {}).get(k, 0) for k in ("sent", "acked", "failed")},
            "workers": workers,
            "feed": {"steps": self.feed.steps, "snapshots": self.feed.snapshots, "serial": self.feed.serial,
                     "supervisorRssKiB": rss_kib(os.getpid())},
        }

    # -- stopping ------------------------------------------------------------------------------

    async def stop(self) -> None:
        self.stopping = True
        self._release()
        await self._stop_edges()
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                try:
                    slot.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                await asyncio.wait_for(slot.process.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("worker %d did not stop in %.0f s; killing it", slot.index, STOP_TIMEOUT)
                slot.process.kill()
                await slot.process.wait()
        for slot in self.slots:
            if slot.task is not None:
                slot.task.cancel()
                try:
                    await slot.task
                except (asyncio.CancelledError, Exception):
                    pass


class WorkerCollector:
    """``/metrics`` families about the workers themselves."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        slots = self.pool.slots
        yield GaugeMetricFamily("ubernetes_dns_workers", "Worker processes answering now.",
                                value=sum(1 for s in slots if s.alive))
        restarts = CounterMetricFamily("ubernetes_dns_worker_restarts_total",
                                       "Workers started again after one exited, by worker index.", labels=["worker"])
        replies = CounterMetricFamily("ubernetes_dns_worker_replies_total",
                                      "Replies sent by the worker now in this position (restarts at 0 with it).",
                                      labels=["worker"])
        for slot in slots:
            restarts.add_metric([str(slot.index)], slot.restarts)
            doc = slot.document if slot.alive else None
            replies.add_metric([str(slot.index)], sum((doc or {}).get("queries", {}).values()))
        yield restarts
        yield replies


async def serve_workers(settings: Settings, workers: int, *, stop: asyncio.Event, log_level: str = "info") -> None:
    """Run a pool of ``workers`` until ``stop`` is set."""
    pool = WorkerPool(settings, workers, log_level=log_level)
    await pool.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await pool.stop()
