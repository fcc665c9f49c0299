"""The responder as one object: view, handler, listeners, sync and status, started and
stopped together.

:class:`Responder` is what ``ubernetes dns`` runs and what tests start in-process on an
ephemeral port (``Settings(listen="127.0.0.1:0")``, then read ``responder.port``).
:func:`serve` runs one until an event is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from prometheus_client import CollectorRegistry

from fedns.handler import Handler, check_identity
from fedns.metrics import ResponderCollector
from fedns.notify import Notifier
from fedns.server import DNSServer
from fedns.status import StatusServer, iso_time, tcp_counters
from fedns.topology import ClientTopology
from apimachinery.eventloop import loop_name
from apimachinery.transport import check_token_transport, warn_token_transport
from federation.names import DEFAULT_SERVER as DEFAULT_FEDERATION
from fedns.transfer import History, TransferPolicy, default_allow
from fedns.view import ZoneView
from fedns.zone import CLUSTERSET, ZoneConfig

log = logging.getLogger("fedns")

DEFAULT_LISTEN = "127.0.0.1:1053"


def split_host_port(text: str, *, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` as (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        host, port = text, ""
    else:
        host, port = text, ""
    host = host or "127.0.0.1"
    if port and not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: the port must be a number between 0 and 65535")
    return host, int(port) if port else default_port


@dataclass
class Settings:
    federation: str | None = DEFAULT_FEDERATION  # None: no sync (static records only)
    listen: str = DEFAULT_LISTEN
    domain: str = "example.com"
    zones: tuple[str, ...] = (CLUSTERSET,)
    negative_ttl: int = 5
    ns_ttl: int = 60
    ns_address: str | None = None  # default: the listen address, or 127.0.0.1 on a wildcard
    tcp_idle_timeout: float = 10.0  # seconds without an answered message
    max_tcp_connections: int = 256
    tcp_max_lifetime: float = 120.0  # seconds a TCP connection lives at most, busy or not
    max_tcp_per_client: int = 32  # TCP connections one client address may hold
    status_listen: str | None = None
    # Served beside the federation's records, whatever it says (``--records FILE``).
    records: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] = field(default_factory=list)
    max_backoff: float = 2.0
    # Zone transfer (AXFR/IXFR over TCP) from these networks; () turns it off; None: the
    # listen address alone (127.0.0.1 and ::1 on a wildcard), see transfer_networks().
    allow_transfer: tuple[str, ...] | None = None
    notify: tuple[str, ...] = ()  # HOST:PORT of secondaries sent NOTIFY on every change
    notify_retries: int = 5
    # Topology-aware answers: a ClientTopology, a path to its YAML file, or a list of entries.
    client_topology: Any = None
    nearest_only: bool = False
    # issue 8: a bearer token for the federation API (a reader's) and a CA for an HTTPS one.
    token: str | None = None
    ca_file: str | None = None
    # The token over plain http to a host that is not loopback (apimachinery.transport).
    insecure_allow_http_token: bool = False
    # Who answered: NSID (RFC 5001) and id.server./hostname.bind. CH TXT. None: the host name.
    identity: str | None = None
    # Whole replies kept for this many distinct fast-path queries (fedns.handler); 0: none.
    reply_cache: int = 10000
    # SO_REUSEPORT on the DNS sockets: set for each worker of ``--workers N`` (fedns.workers).
    reuse_port: bool = False
    # How UDP is read: "auto" (batched recvmmsg/sendmmsg where Linux has them, fedns.mmsg),
    # "batched", or "loop" (the event loop's datagram transport, one datagram at a time).
    udp_io: str = "auto"

    def server_identity(self) -> str:
        """The identity this responder gives; raises ValueError when it cannot be served."""
        identity = socket.gethostname() if self.identity is None else self.identity
        check_identity(identity)
        return identity

    def transfer_networks(self) -> tuple[str, ...]:
        if self.allow_transfer is not None:
            return tuple(self.allow_transfer)
        return default_allow(split_host_port(self.listen, default_port=1053)[0])

    def token_warning(self) -> str | None:
        """A warning about the token's transport; raises InsecureTokenTransport when it must not go."""
        return check_token_transport(self.federation, self.token, allow_http=self.insecure_allow_http_token)

    def topology(self) -> ClientTopology | None:
        t = self.client_topology
        if t is None or isinstance(t, ClientTopology):
            return t
        if isinstance(t, list):
            return ClientTopology.from_entries(t)
        return ClientTopology.load(t)

    def zone_config(self) -> ZoneConfig:
        host, _ = split_host_port(self.listen, default_port=1053)
        ns_address = self.ns_address
        if ns_address is None:
            try:
                addr = ipaddress.ip_address(host)
                ns_address = "127.0.0.1" if addr.is_unspecified else str(addr)
            except ValueError:
                ns_address = "127.0.0.1"
        return ZoneConfig(
            apexes=(self.domain, *self.zones),
            ns_address=ns_address,
            negative_ttl=self.negative_ttl,
            ns_ttl=self.ns_ttl,
        )


class Edges:
    """What a responder and the supervisor of ``--workers N`` (fedns.workers) both run
    beside the DNS sockets: the federation watch and the status server."""

    sync: Any = None
    status: StatusServer | None = None
    _client: Any = None
    _sync_task: asyncio.Task | None = None

    def _start_sync(self, s: Settings, objects: Any) -> None:
        """List and watch s.federation into ``objects`` (a view or the zone feed)."""
        from apimachinery.client import APIClient

        from fedns.sync import RecordSync

        self._client = APIClient(s.federation, token=s.token, ca_file=s.ca_file,  # type: ignore[arg-type]
                                 allow_http_token=s.insecure_allow_http_token)
        self.sync = RecordSync(self._client, objects, max_backoff=s.max_backoff)
        self._sync_task = asyncio.get_running_loop().create_task(self.sync.run(), name="fedns-sync")

    async def _start_status(self, s: Settings, document: Any, metrics: CollectorRegistry, refresh: Any = None) -> None:
        shost, sport = split_host_port(s.status_listen or "", default_port=0)
        self.status = StatusServer(document, host=shost, port=sport, metrics=metrics, refresh=refresh)
        await self.status.start()

    async def _stop_edges(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            try:
                await self._sync_task
            except (asyncio.CancelledError, Exception):
                pass
            self._sync_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.status is not None:
            await self.status.close()
            self.status = None


class Responder(Edges):
    """The DNS responder; ``async with Responder(settings) as r:`` serves on ``r.port``."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = s = settings or Settings(**overrides)
        self.topology = s.topology()
        self.view = ZoneView(
            s.zone_config(),
            places=self.topology.places if self.topology else (),
            nearest_only=s.nearest_only,
        )
        self.transfer_networks = s.transfer_networks()
        self.history = History() if self.transfer_networks else None
        if self.history is not None:
            self.history.record(self.view.table)
            self.view.listeners.append(self.history.record)
        self.notifier = Notifier(
            [split_host_port(t, default_port=53) for t in s.notify], retries=s.notify_retries
        )
        self.view.listeners.append(self.notifier.changed)
        self.handler = Handler(
            self.view,
            topology=self.topology,
            transfer=TransferPolicy(self.transfer_networks),
            history=self.history,
            identity=s.server_identity(),
            reply_cache=s.reply_cache,
        )
        self.view.listeners.append(self.handler.forget)  # the table changed: cached replies go
        self.metrics = CollectorRegistry()  # this responder's /metrics (issue 17; fedns.metrics)
        self.metrics.register(ResponderCollector(self))  # type: ignore[arg-type]
        self.server: DNSServer | None = None
        self.event_loop: str | None = None  # uvloop or asyncio, once started

    @property
    def port(self) -> int:
        assert self.server is not None, "start() the responder first"
        return self.server.port

    @property
    def host(self) -> str:
        return split_host_port(self.settings.listen, default_port=1053)[0]

    def status_document(self) -> dict[str, Any]:
        """What ``GET /status`` answers (fedns.status serves it)."""
        view, handler, sync = self.view, self.handler, self.sync
        return {
            "records": view.record_count,
            "objects": len(view.specs),
            "serial": view.serial,
            "zones": list(view.config.apexes),
            "identity": handler.identity,
            "eventLoop": self.event_loop,
            "udpIO": self.server.udp_mode if self.server is not None else None,
            "udpBatches": self.server.udp_batches if self.server is not None else None,
            "lastSync": iso_time(sync.last_sync) if sync else None,
            "lastChange": iso_time(view.last_change),
            "stale": sync.stale if sync else False,
            "federation": sync.client.base_url if sync else None,
            "lastError": sync.last_error if sync else None,
            "queries": handler.stats(),
            "dropped": handler.dropped,
            "truncated": handler.truncated,
            "errors": handler.errors,
            "tcpConnections": len(self.server.connections) if self.server else 0,
            "tcp": tcp_counters(self.server),
            "problems": list(view.problems),
            # issue 20: a CNAME beside other data at its name (a record set changing type)
            # is counted here, not logged: the other data is served meanwhile (docs/dns.md).
            "cnameShadows": view.cname_shadows,
            "zoneChanges": {"inPlace": view.steps, "wholeBuilds": view.whole_builds},
            "transfers": handler.transfers,
            "refusedTransfers": handler.refused_transfers,
            "notify": {
                "sent": self.notifier.sent,
                "acked": self.notifier.acked,
                "failed": self.notifier.failed,
            },
        }

    async def start(self) -> "Responder":
        s = self.settings
        self.event_loop = loop_name()
        # before anything is bound or sent: refuse, or warn once (apimachinery.transport)
        warn_token_transport(s.federation, s.token, allow_http=s.insecure_allow_http_token)
        if s.records:
            self.view.set_static(s.records)
            await self.view.settled()
        host, port = split_host_port(s.listen, default_port=1053)
        self.server = DNSServer(
            self.handler.handle,
            host=host,
            port=port,
            idle_timeout=s.tcp_idle_timeout,
            max_connections=s.max_tcp_connections,
            max_lifetime=s.tcp_max_lifetime,
            max_per_client=s.max_tcp_per_client,
            udp_peer=self.topology is not None,
            reuse_port=s.reuse_port,
            udp_io=s.udp_io,
            replay=self.handler.replay if self.handler.cache_limit else None,
            observe=self.handler.observe,
        )
        await self.server.start()
        log.info(
            "authoritative for %s; %s",
            ", ".join(self.view.config.apexes),
            f"records from {s.federation}" if s.federation else "static records only",
        )
        if s.federation:
            self._start_sync(s, self.view)
        if s.status_listen:
            await self._start_status(s, self.status_document, self.metrics)
        return self

    async def stop(self) -> None:
        await self._stop_edges()
        if self.server is not None:
            await self.server.close()
        await self.notifier.close()
        await self.view.close()

    async def __aenter__(self) -> "Responder":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def serve(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run a responder until ``stop`` is set."""
    responder = Responder(settings)
    responder.view.freeze_after_build = True  # this process is the responder (fedns.view)
    await responder.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await responder.stop()
