"""``ubernetes federation-apiserver``: the API server process with its controllers.

Federation v1 split the API server from the controller manager; here one process runs
both (the controllers use the registry in-process), which keeps a local federation to a
handful of processes. ``--no-controllers`` leaves only the API.

On an etcd store several replicas serve the API at once, and only the one holding the
Lease ``federation-system/federation-controller-manager`` runs the controllers
(:mod:`federation.api.leaderelection`); on SQLite the file lock already allows one process, so
it runs them from the start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

import click
from aiohttp import web

from apimachinery import eventloop
from apimachinery.logsetup import setup_logging
from apimachinery.serving import start_site
from apimachinery.watchlimits import WATCH_WINDOW
from federation.api.apiserver import make_app
from federation.controllers import run_forever, run_keyed
from federation.api.events import EventCollector
from federation.metrics import MeteredStore
from federation.controllers.dataplane import DataPlaneController
from federation.controllers.deployments import DeploymentController
from federation.controllers.dnsrecords import DNSRecordController
from federation.controllers.health import HealthController
from federation.controllers.members import MemberClients
from federation.controllers.typeconfigs import TypeConfigController
from federation.api.registry import Registry, WatchHub
from federation.api.cache import InformerReader
from federation.resources import CLUSTERS, CONTROLLERREVISIONS, DEPLOYMENTS, DNSRECORDS, SECRETS, SERVICES
from federation.resources import FEDERATION_SERVICEIMPORTS
from federation.resources import FEDERATEDTYPECONFIGS, FAILOVERRECORDS, STATEFULSETS
from federation.controllers.history import FailoverHistory
from federation.api.leaderelection import ElectionConfig, LeaderElector, default_identity
from federation.settings import Settings, settings_from, settings_options
from federation.storage.store import StoreOpenError
from federation.storage.stores import open_store

log = logging.getLogger("federation.api.apiserver")


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class ControllerManager:
    """The controllers of one API server process, started and stopped as one: at start
    with an SQLite store (one process owns it), or while this replica holds the
    controllers' Lease with a shared (etcd) store (federation/leaderelection.py)."""

    def __init__(self, registry: Registry, hub: WatchHub, settings: Settings, member_kw: dict) -> None:
        self.registry = registry
        self.hub = hub
        self.settings = settings
        self.member_kw = member_kw
        self.tasks: list[asyncio.Task[None]] = []
        self.keyed: list = []
        self.keyed_tasks: list[asyncio.Task[None]] = []
        self.reader: InformerReader | None = None
        self._closers: list = []

    async def start(self) -> None:
        from federation.controllers.propagation import PropagationController

        registry, settings, member_kw = self.registry, self.settings, self.member_kw
        members = MemberClients(timeout=settings.health_timeout, **member_kw)
        # Propagation gets its own clients with a longer timeout than a health probe.
        propagation_members = MemberClients(timeout=max(2.0, settings.health_timeout), **member_kw)
        self._closers = [members.close, propagation_members.close]  # closed even if a stop cuts the start short
        # issue 11: the controllers read shared informers' caches, not the store
        reader = self.reader = InformerReader(registry, [CLUSTERS, SERVICES, DEPLOYMENTS, CONTROLLERREVISIONS, DNSRECORDS,
                                                         FEDERATION_SERVICEIMPORTS, FEDERATEDTYPECONFIGS,
                                                         FAILOVERRECORDS, STATEFULSETS])
        if not await reader.start():
            log.warning("the controllers' informers did not sync within 60 s; starting anyway")
        history = FailoverHistory(registry, settings, reader)  # issue 17
        health = HealthController(registry, settings, members, reader=reader, history=history)
        propagation = PropagationController(registry, settings, propagation_members, reader=reader)
        dataplane = DataPlaneController(registry, settings, MemberClients(timeout=settings.dataplane_timeout, **member_kw),
                                        reader=reader, history=history)
        dns = DNSRecordController(registry, settings, unreachable=dataplane.unreachable,
                                  reachable=dataplane.reachable, reader=reader)
        dns.on_records = history.records_written
        dataplane.on_change = dns.services_changed
        events = EventCollector(registry, ttl=settings.event_ttl)
        # Federated Deployments (issue 7): their own member clients, as propagation has.
        deployments = DeploymentController(registry, settings, MemberClients(timeout=max(2.0, settings.health_timeout), **member_kw),
                                           reader=reader)
        # Propagation, Deployments and DNS reconcile one object at a time, fed by the
        # informers' events (issue 11); a slow resync enqueues every key.
        keyed = [propagation, deployments, dns]
        # Federated StatefulSets (issue 14): ordinal ranges per member (federation/planners/ordinalsplit.py)
        from federation.controllers.statefulsets import StatefulSetController

        statefulsets = StatefulSetController(registry, settings, MemberClients(timeout=max(2.0, settings.health_timeout),
                                                                               **member_kw), reader=reader)
        keyed.append(statefulsets)
        self._closers += [statefulsets.close, statefulsets.members.close]
        # Multi-Cluster Services (issue 14): the clusterset's MCS controller
        from federation.controllers.mcs import MultiClusterServiceController

        mcs = MultiClusterServiceController(registry, settings, MemberClients(timeout=max(2.0, settings.health_timeout),
                                                                              **member_kw), reader=reader)
        keyed.append(mcs)
        self._closers += [mcs.close, mcs.members.close]
        for controller in keyed:
            controller.attach()
        keyed_tasks = [asyncio.create_task(run_keyed(c, resync_period=settings.resync_period), name=c.queue.name) for c in keyed]
        self.keyed, self.keyed_tasks = keyed, keyed_tasks
        tasks = [
            asyncio.create_task(run_forever("events", events.reconcile, hub=None, period=min(60.0, settings.event_ttl))),
            asyncio.create_task(run_forever("health", health.reconcile, hub=None, period=settings.health_period)),
            *keyed_tasks,
        ]
        if settings.dataplane_checks:
            tasks.append(asyncio.create_task(
                run_forever("dataplane", dataplane.reconcile, hub=None, period=settings.dataplane_period)
            ))
        # Every other federated kind (issue 15): a sync controller per enabled FederatedTypeConfig.
        typeconfigs = TypeConfigController(registry, settings,
                                           MemberClients(timeout=max(2.0, settings.health_timeout), **member_kw), reader)
        typeconfigs.attach()
        tasks.append(asyncio.create_task(typeconfigs.run(), name="typeconfigs"))
        self.tasks = tasks
        self._closers += [propagation.close, deployments.close, dataplane.members.close, deployments.members.close]
        self._closers += [typeconfigs.close, typeconfigs.members.close, history.close]
        log.info("controllers started")

    async def stop(self) -> None:
        """Cancel every controller and wait until none runs, then close their clients. The
        keyed workers first finish the key in hand (2 s at most)."""
        for controller in self.keyed:
            controller.queue.shutdown(drain=False)
        if self.keyed_tasks:
            await asyncio.wait(self.keyed_tasks, timeout=2.0)
        self.keyed, self.keyed_tasks = [], []
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.reader is not None:
            await self.reader.stop()
            self.reader = None
        for close in self._closers:
            await close()
        if self._closers:
            log.info("controllers stopped")
        self._closers = []


async def serve(*, host: str, port: int, store_path: str, settings: Settings, controllers: bool,
                tokens: dict | None = None, ssl_context: ssl.SSLContext | None = None,
                member_ssl: ssl.SSLContext | None = None, watch_window: int = WATCH_WINDOW,
                auto_approve: frozenset[str] = frozenset(), identity: str | None = None,
                ui: "UIConfig | None" = None) -> None:
    store = open_store(store_path)
    store = MeteredStore(store, kind="etcd" if store.shared else "sqlite")  # /metrics (issue 17)
    hub = WatchHub()
    registry = Registry(store, hub)
    app = make_app(registry, tokens=tokens, watch_window=watch_window,  # tokens: issue 8's --token-file (None: open)
                   auto_approve=auto_approve)
    from federation.ui.routes import UIConfig, install as install_ui

    install_ui(app, registry, ui or UIConfig(settings=settings))  # the dashboard at /ui/ (issue 17)
    # Member clients reach a member with the token its Cluster's spec.secretRef names (issue 8).
    member_kw = {"secrets": lambda ns, name: registry.find(SECRETS, ns, name), "ssl_context": member_ssl}
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await start_site(runner, host, port, ssl_context=ssl_context)  # handshake and header deadlines
    log.info(
        "federation %s (domain %s) API listening on %s://%s:%d, store %s, %s",
        settings.federation_name, settings.domain, "https" if ssl_context else "http", host, port, store_path,
        f"authentication on ({len(tokens)} static token(s))" if tokens is not None else "no authentication",
    )
    manager = ControllerManager(registry, hub, settings, member_kw)
    election: asyncio.Task[None] | None = None
    if controllers and store.shared:
        # Several replicas on one etcd: only the holder of the Lease runs the controllers.
        config = ElectionConfig(identity=identity or default_identity(),
                                lease_duration=settings.leader_elect_lease_duration,
                                renew_deadline=settings.leader_elect_renew_deadline,
                                retry_period=settings.leader_elect_retry_period)
        elector = LeaderElector(registry, config, on_started=manager.start, on_stopped=manager.stop)
        log.info("standing for leader of the controllers as %s", config.identity)
        election = asyncio.create_task(elector.run())
    elif controllers:
        await manager.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    if election is not None:
        election.cancel()  # stops the controllers first if leading, then releases the Lease
        await asyncio.gather(election, return_exceptions=True)
    await manager.stop()
    await runner.cleanup()
    store.close()


@click.command("federation-apiserver")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve the API on.")
@click.option("--store", "store_path", default="ubernetes.db", show_default=True, help="SQLite file, :memory:, or etcd://HOST:PORT[,HOST:PORT...][/prefix] (docs/architecture.md).")
@settings_options  # federation/settings.py: each setting's flag, default and help, written once
@click.option("--controllers/--no-controllers", default=True, show_default=True)
@click.option("--token-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help='Static tokens (token,user,uid,"group1,group2" per line): turns authentication on (docs/security.md).')
@click.option("--insecure", is_flag=True, help="Allow listening on a non-loopback address without --token-file.")
@click.option("--tls-cert-file", default=None, type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-private-key-file", default=None, type=click.Path(exists=True, dir_okay=False), help="Private key of --tls-cert-file (PEM).")
@click.option("--certificate-authority", "member_ca", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle to verify HTTPS member cluster APIs with.")
@click.option("--auto-approve-clusters", "auto_approve", default="", metavar="NAMES",
              help="Comma-separated Cluster names trusted as soon as they join ('*': all); others wait for "
                   "`ubernetes approve NAME` (docs/security.md).")
@click.option("--watch-window", type=click.IntRange(1), default=WATCH_WINDOW, show_default=True,
              help="Events of its kind one watch may replay; a watch from further back gets 410 Gone (docs/security.md).")
@click.option("--launcher-url", default=None, metavar="URL",
              help="The launcher's fault API the dashboard's fault buttons go to (`ubernetes up` sets it).")
@click.option("--launcher-token-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="File holding the bearer token of --launcher-url.")
@click.option("--reports-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of experiment reports (`experiment run --out`) the dashboard opens; uploads go "
                   "under its uploads/ (docs/dashboard.md).")
@click.option("-v", "--verbose", is_flag=True)
def federation_apiserver(
    listen: str, store_path: str, controllers: bool, verbose: bool, token_file: str | None = None,
    insecure: bool = False, tls_cert_file: str | None = None, tls_private_key_file: str | None = None,
    member_ca: str | None = None, auto_approve: str = "", watch_window: int = WATCH_WINDOW,
    launcher_url: str | None = None, launcher_token_file: str | None = None, reports_dir: str | None = None,
    **options: object,
) -> None:
    """Run the federation API server and its controllers."""
    from federation.api.security import load_tokens, refuse_open_listen, server_ssl_context, client_ssl_context

    setup_logging("apiserver", "debug" if verbose else "info")
    host, port = split_listen(listen)
    tokens = load_tokens(token_file) if token_file else None
    refuse_open_listen(host, tokens_configured=tokens is not None, insecure=insecure, what="the federation API")
    ssl_context = server_ssl_context(tls_cert_file, tls_private_key_file)
    member_ssl = client_ssl_context(member_ca)
    settings = settings_from(options)
    from pathlib import Path

    from federation.ui.routes import UIConfig

    ui = UIConfig(settings=settings, dns=split_listen(settings.dns_responder) if settings.dns_responder else None,
                  launcher_url=launcher_url.rstrip("/") if launcher_url else None,
                  launcher_token=Path(launcher_token_file).read_text().strip() if launcher_token_file else None,
                  ca_file=member_ca, reports_dir=Path(reports_dir) if reports_dir else None)
    try:
        eventloop.run(serve(host=host, port=port, store_path=store_path, settings=settings, controllers=controllers,
                          tokens=tokens, ssl_context=ssl_context, member_ssl=member_ssl, watch_window=watch_window,
                          auto_approve=frozenset(n.strip() for n in auto_approve.split(",") if n.strip()), ui=ui))
    except StoreOpenError as e:
        # Locked by another API server, damaged, or not a store: opening is serve()'s first
        # step, so nothing is listening yet; one sentence and exit status 1, no traceback.
        raise click.ClickException(str(e)) from None
