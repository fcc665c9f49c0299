"""A member's Multi-Cluster Services data plane: each export served, each ClusterSetIP listened on.

Two halves, both real sockets, so a client that resolves ``<svc>.<ns>.svc.clusterset.local``
and connects gets an answer from a pod somewhere in the clusterset:

- **Exports.** Every exported Service (a ServiceExport next to a Service that is neither
  ExternalName nor headless) is served on an address of the cluster's LB pool, on each of
  its TCP ports, by the same HTTP responder as a load balancer (:class:`clusters.dataplane.
  DataPlane`: it says which cluster, zone and pod answered, 503 with no ready pod). The
  address goes on the ServiceExport as the annotation ``multicluster.ubernetes.io/
  export-address``; the federation reads it and lists it as a backend of the import.
- **Imports.** Every ``ClusterSetIP`` ServiceImport's IP (from the clusterset range,
  127.240.0.0/16 by default) is listened on at each TCP port, in the spirit of kube-proxy:
  a connection is forwarded, byte for byte, to the first backend that accepts, nearest
  first (this cluster, then a cluster sharing one of its zones, then its region, then the
  rest; round robin within each group, or one backend per client address with
  ``sessionAffinity: ClientIP``). The backends are what the federation wrote on the import
  (the annotation ``multicluster.ubernetes.io/backends``: healthy exporting clusters only).

Every member on one host listens on the same ClusterSetIP and port: the sockets have
``SO_REUSEPORT``, and the kernel hands each connection to one of them, as if the client
sat in that cluster. A member that dies closes its socket and the others take its share.
A black-holed data plane (chaos) accepts and stays silent, as the load balancers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from clusters.chaos import Chaos
from clusters.dataplane import DataPlane
from clusters.state import AddressPool, ClusterState
from federation import mcsapi
from federation.planners.mcsplan import Backend
from federation.resources import SERVICEEXPORTS

log = logging.getLogger("ubernetes.cluster.mcs")

CONNECT_TIMEOUT = 1.0


class ExportOwner(NamedTuple):
    """The LB pool's owner of an export's address (a load balancer's owner is a plain key)."""

    namespace: str
    name: str


def parse_backends(text: str | None) -> list[Backend]:
    """The backends annotation (JSON list), skipping entries that are not well formed."""
    try:
        items = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            ipaddress.ip_address(item["ip"])
            out.append(Backend(str(item["cluster"]), str(item.get("region") or ""), tuple(item.get("zones") or ()),
                               str(item["ip"]), tuple(int(p) for p in item.get("ports") or ())))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def nearest_first(backends: list[Backend], *, cluster: str, region: str, zones: tuple[str, ...], port: int,
                  turn: int) -> list[Backend]:
    """The backends serving ``port``, nearest first; each group rotated by ``turn``."""
    groups: list[list[Backend]] = [[], [], [], []]
    for b in backends:
        if port not in b.ports:
            continue
        rank = 0 if b.cluster == cluster else 1 if set(b.zones) & set(zones) else 2 if b.region == region else 3
        groups[rank].append(b)
    out: list[Backend] = []
    for group in groups:
        if group:
            k = turn % len(group)
            out += group[k:] + group[:k]
    return out


@dataclass
class _ImportListener:
    ip: str
    port: int
    server: asyncio.base_events.Server | None = None
    error: str | None = None
    turn: int = 0
    connections: set[asyncio.Task[None]] = field(default_factory=set)


class MultiClusterDataPlane:
    """Keeps the export listeners and the ClusterSetIP listeners in step with the objects."""

    def __init__(self, *, state: ClusterState, chaos: Chaos, lb_pool: AddressPool, federation_name: str = "") -> None:
        self.state = state
        self.chaos = chaos
        self.lb_pool = lb_pool
        self.exports = DataPlane(state=state, chaos=chaos, federation_name=federation_name)
        self._imports: dict[tuple[str, str, int], _ImportListener] = {}  # (namespace, name, port)

    # ------------------------------------------------------------------ exports

    def _served_exports(self) -> dict[tuple[str, str], list[int]]:
        out = {}
        for key in self.state.mcs.exports:
            svc = self.state.services.get(key)
            if svc is None or svc["spec"].get("type") == "ExternalName" or svc["spec"].get("clusterIP") == "None":
                continue
            out[key] = [p["port"] for p in svc["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        return out

    async def _reconcile_exports(self) -> None:
        wanted = self._served_exports()
        for owner in [o for o in self.lb_pool.owners() if isinstance(o, ExportOwner)]:
            if (owner.namespace, owner.name) not in wanted:
                await self.exports.remove((owner.namespace, owner.name))
                self.lb_pool.release(owner)
        for key in self.state.mcs.exports:
            address = None
            if key in wanted:
                address = self.lb_pool.allocate(ExportOwner(*key))
                if address is None:
                    log.warning("export %s/%s: no free address left in the pool %s", key[0], key[1], self.lb_pool.network)
                else:
                    errors = await self.exports.ensure(key, address, wanted[key])
                    if errors and len(errors) == len(set(wanted[key])):
                        address = None  # nothing bound: not a backend yet (the next pass retries)
            self.state.mcs.annotate(SERVICEEXPORTS, key[0], key[1], mcsapi.EXPORT_ADDRESS_ANNOTATION, address)

    # ------------------------------------------------------------------ imports

    def _wanted_imports(self) -> set[tuple[str, str, int]]:
        out = set()
        for (ns, name), imp in self.state.mcs.imports.items():
            spec = imp.get("spec") or {}
            if spec.get("type") != mcsapi.CLUSTERSET_IP or not spec.get("ips"):
                continue
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and port.get("protocol", "TCP") == "TCP" and isinstance(port.get("port"), int):
                    out.add((ns, name, port["port"]))
        return out

    async def _reconcile_imports(self) -> None:
        wanted = self._wanted_imports()
        for key in [k for k in self._imports if k not in wanted or self._import_ip(k) != self._imports[k].ip]:
            await self._close_listener(self._imports.pop(key))
        for key in sorted(wanted):
            listener = self._imports.get(key)
            if listener is None:
                listener = self._imports[key] = _ImportListener(self._import_ip(key) or "", key[2])
            if listener.server is None:
                await self._listen(key, listener)

    def _import_ip(self, key: tuple[str, str, int]) -> str | None:
        imp = self.state.mcs.imports.get((key[0], key[1]))
        ips = ((imp or {}).get("spec") or {}).get("ips") or []
        return str(ips[0]) if ips else None

    async def _listen(self, key: tuple[str, str, int], listener: _ImportListener) -> None:
        try:
            listener.server = await asyncio.start_server(
                lambda r, w: self._accept(key, listener, r, w), listener.ip, listener.port,
                reuse_address=True, reuse_port=True)
        except OSError as err:
            message = f"cannot listen on {listener.ip}:{listener.port}: {err.strerror or err}"
            if listener.error != message:
                log.warning("import %s/%s: %s", key[0], key[1], message)
            listener.error = message
            return
        listener.error = None
        log.info("import %s/%s: ClusterSetIP listening on %s:%d", key[0], key[1], listener.ip, listener.port)

    async def _close_listener(self, listener: _ImportListener) -> None:
        if listener.server is not None:
            listener.server.close()
            for task in list(listener.connections):
                task.cancel()
            await asyncio.gather(*listener.connections, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.server.wait_closed(), 1.0)
            log.info("import: stopped listening on %s:%d", listener.ip, listener.port)

    def _accept(self, key: tuple[str, str, int], listener: _ImportListener, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(key, listener, reader, writer))
        listener.connections.add(task)
        task.add_done_callback(listener.connections.discard)

    def backends_for(self, key: tuple[str, str, int], client_ip: str, turn: int) -> list[Backend]:
        """Where a connection to the import ``key`` from ``client_ip`` goes, in the order tried."""
        imp = self.state.mcs.imports.get((key[0], key[1])) or {}
        backends = parse_backends(((imp.get("metadata") or {}).get("annotations") or {}).get(mcsapi.BACKENDS_ANNOTATION))
        if (imp.get("spec") or {}).get("sessionAffinity") == "ClientIP":
            turn = zlib.crc32(client_ip.encode())
        t = self.state.topology
        return nearest_first(backends, cluster=t.name, region=t.region, zones=tuple(t.zones), port=key[2], turn=turn)

    async def _forward(self, key: tuple[str, str, int], listener: _ImportListener, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            if self.chaos.dataPlaneBlackholed:
                await asyncio.sleep(3600)
            peer = writer.get_extra_info("peername") or ("", 0)
            listener.turn += 1
            for backend in self.backends_for(key, str(peer[0]), listener.turn):
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(backend.ip, key[2]), CONNECT_TIMEOUT)
                except (OSError, asyncio.TimeoutError):
                    continue  # the next nearest
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
                return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ------------------------------------------------------------------ both

    async def reconcile(self) -> None:
        await self._reconcile_exports()
        await self._reconcile_imports()

    def import_errors(self) -> dict[tuple[str, str, int], str]:
        return {k: v.error for k, v in self._imports.items() if v.error}

    async def close(self) -> None:
        for key in list(self._imports):
            await self._close_listener(self._imports.pop(key))
        await self.exports.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await source.read(65536)
            if not data:
                break
            sink.write(data)
            await sink.drain()
    finally:
        with contextlib.suppress(Exception):
            if sink.can_write_eof():
                sink.write_eof()
